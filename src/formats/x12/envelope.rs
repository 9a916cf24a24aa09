//! Interchange, group and transaction envelopes: ISA/IEA, GS/GE, ST/SE.
//!
//! Checks that every opened envelope is closed, that control numbers match
//! (ISA13 = IEA02, GS06 = GE02, ST02 = SE02) and that the counts are true (IEA01 groups,
//! GE01 transactions, SE01 segments from ST to SE inclusive). Findings here are
//! envelope-level warnings: claims are streamed before the closing segment arrives, and
//! a wrong count does not make a complete claim wrong. A transaction cut off before its
//! SE is different: the claim in progress is incomplete, and the claim reader rejects it.

use super::tokenizer::Segment;
use crate::formats::{Finding, Position};

#[derive(Debug, Default)]
struct Open {
    control: Vec<u8>,
    children: u64,
    position: Position,
}

/// Envelope state of one file.
#[derive(Debug, Default)]
pub struct Envelope {
    interchange: Option<Open>,
    group: Option<Open>,
    transaction: Option<Open>,
    /// GS08 of the current group (the implementation guide version).
    pub version: Vec<u8>,
    /// ST01 of the current transaction (`837`, `835`, …).
    pub transaction_type: Vec<u8>,
    /// ST03 of the current transaction (its implementation convention), or GS08 without one.
    pub transaction_version: Vec<u8>,
}

impl Envelope {
    /// Whether a transaction (ST…SE) is open.
    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Observes one segment: envelope segments open and close envelopes, every segment
    /// inside a transaction counts towards SE01.
    pub fn observe(&mut self, segment: &Segment, findings: &mut Vec<Finding>) {
        if let Some(t) = self.transaction.as_mut() {
            t.children += 1;
        }
        let position = segment.position();
        match segment.id() {
            b"ISA" => {
                self.close_transaction_missing(findings);
                self.close_group_missing(findings);
                if let Some(open) = self.interchange.take() {
                    findings.push(Finding::warning(
                        "x12.missing_iea",
                        open.position,
                        "this interchange was not closed by IEA",
                    ));
                }
                self.interchange = Some(Open {
                    control: segment.element(13).to_vec(),
                    children: 0,
                    position,
                });
            }
            b"GS" => {
                self.close_transaction_missing(findings);
                self.close_group_missing(findings);
                match self.interchange.as_mut() {
                    Some(i) => i.children += 1,
                    None => findings.push(Finding::warning(
                        "x12.gs_outside_isa",
                        position.clone(),
                        "GS outside an interchange",
                    )),
                }
                self.version = segment.element(8).to_vec();
                self.group = Some(Open {
                    control: segment.element(6).to_vec(),
                    children: 0,
                    position,
                });
            }
            b"ST" => {
                self.close_transaction_missing(findings);
                match self.group.as_mut() {
                    Some(g) => g.children += 1,
                    None => findings.push(Finding::warning(
                        "x12.st_outside_gs",
                        position.clone(),
                        "ST outside a functional group",
                    )),
                }
                self.transaction_type = segment.element(1).to_vec();
                let st03 = segment.element(3);
                if !st03.is_empty() && !self.version.is_empty() && st03 != self.version.as_slice() {
                    findings.push(Finding::warning(
                        "x12.version_conflict",
                        position.clone(),
                        "ST03 and GS08 name different guides; ST03 is used",
                    ));
                }
                self.transaction_version = if st03.is_empty() {
                    self.version.clone()
                } else {
                    st03.to_vec()
                };
                self.transaction = Some(Open {
                    control: segment.element(2).to_vec(),
                    children: 1,
                    position,
                });
            }
            b"SE" => match self.transaction.take() {
                Some(t) => {
                    check_count(
                        findings,
                        "x12.se_count",
                        &position,
                        segment.element(1),
                        t.children,
                        "SE01 does not equal the number of segments from ST to SE",
                    );
                    check_control(
                        findings,
                        "x12.se_control",
                        &position,
                        segment.element(2),
                        &t.control,
                        "SE02 does not match ST02",
                    );
                }
                None => findings.push(Finding::warning(
                    "x12.unmatched_se",
                    position,
                    "SE without an open ST",
                )),
            },
            b"GE" => {
                self.close_transaction_missing(findings);
                match self.group.take() {
                    Some(g) => {
                        check_count(
                            findings,
                            "x12.ge_count",
                            &position,
                            segment.element(1),
                            g.children,
                            "GE01 does not equal the number of transactions in the group",
                        );
                        check_control(
                            findings,
                            "x12.ge_control",
                            &position,
                            segment.element(2),
                            &g.control,
                            "GE02 does not match GS06",
                        );
                    }
                    None => findings.push(Finding::warning(
                        "x12.unmatched_ge",
                        position,
                        "GE without an open GS",
                    )),
                }
            }
            b"IEA" => {
                self.close_transaction_missing(findings);
                self.close_group_missing(findings);
                match self.interchange.take() {
                    Some(i) => {
                        check_count(
                            findings,
                            "x12.iea_count",
                            &position,
                            segment.element(1),
                            i.children,
                            "IEA01 does not equal the number of groups in the interchange",
                        );
                        check_control(
                            findings,
                            "x12.iea_control",
                            &position,
                            segment.element(2),
                            &i.control,
                            "IEA02 does not match ISA13",
                        );
                    }
                    None => findings.push(Finding::warning(
                        "x12.unmatched_iea",
                        position,
                        "IEA without an open ISA",
                    )),
                }
            }
            _ => {}
        }
    }

    /// Reports every envelope still open at the end of the input, at its opening segment.
    pub fn finish(&mut self, findings: &mut Vec<Finding>) {
        self.close_transaction_missing(findings);
        self.close_group_missing(findings);
        if let Some(open) = self.interchange.take() {
            findings.push(Finding::warning(
                "x12.missing_iea",
                open.position,
                "this interchange was not closed by IEA",
            ));
        }
    }

    fn close_transaction_missing(&mut self, findings: &mut Vec<Finding>) {
        if let Some(open) = self.transaction.take() {
            findings.push(Finding::warning(
                "x12.missing_se",
                open.position,
                "this transaction was not closed by SE",
            ));
        }
    }

    fn close_group_missing(&mut self, findings: &mut Vec<Finding>) {
        if let Some(open) = self.group.take() {
            findings.push(Finding::warning(
                "x12.missing_ge",
                open.position,
                "this functional group was not closed by GE",
            ));
        }
    }
}

fn check_count(
    findings: &mut Vec<Finding>,
    code: &'static str,
    at: &Position,
    stated: &[u8],
    actual: u64,
    message: &str,
) {
    let stated = std::str::from_utf8(stated)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if stated != Some(actual) {
        findings.push(Finding::warning(code, at.clone(), message));
    }
}

fn check_control(
    findings: &mut Vec<Finding>,
    code: &'static str,
    at: &Position,
    closing: &[u8],
    opening: &[u8],
    message: &str,
) {
    if closing.trim_ascii() != opening.trim_ascii() {
        findings.push(Finding::warning(code, at.clone(), message));
    }
}

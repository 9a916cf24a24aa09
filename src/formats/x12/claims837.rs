//! The 837 claim reader: segments → one [`ClaimRecord`] per claim (2300 loop).
//!
//! A state machine follows the HL hierarchy (2000A billing provider → 2000B subscriber →
//! 2000C patient) and keeps the segments of each level as context; a CLM opens a claim,
//! LX opens a service line (2400), and the claim ends at the next CLM, HL or envelope
//! segment. Every segment is tagged with its loop (`2010AA`, `2300`, `2310B`, `2400`, …)
//! so mappings can address it by loop, segment, qualifier and element. Records and their
//! segment lists are reused from claim to claim.

use std::io::Read;

use super::envelope::Envelope;
use super::tokenizer::{Key, Limits, Segment, Tokenizer};
use crate::formats::{Finding, Position};

/// Professional (837P) or institutional (837I), from the implementation guide in ST03 (or GS08).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Variant {
    /// 005010X222A1/A2 (and 004010X098A1).
    Professional,
    /// 005010X223A2/A3 (and 004010X096A1).
    Institutional,
    /// The guide version names neither.
    #[default]
    Unknown,
}

impl Variant {
    /// Decides from a GS08 or ST03 version string.
    pub fn from_version(version: &[u8]) -> Self {
        let has = |needle: &[u8]| version.windows(needle.len()).any(|w| w == needle);
        if has(b"X222") || has(b"X098") {
            Self::Professional
        } else if has(b"X223") || has(b"X096") {
            Self::Institutional
        } else {
            Self::Unknown
        }
    }
}

/// Every loop id the reader assigns; a mapping may name only these.
pub const LOOPS: &[&str] = &[
    "2000A", "2010AA", "2010AB", "2010AC", "2000B", "2010BA", "2010BB", "2000C", "2010CA", "2300",
    "2310", "2310A", "2310B", "2310C", "2310D", "2310E", "2310F", "2320", "2330", "2330A", "2330B",
    "2330C", "2330D", "2330E", "2330F", "2330G", "2400", "2410", "2420", "2420A", "2420B", "2420C",
    "2420D", "2420E", "2420F", "2420G", "2420H", "2430", "2440",
];

/// A list of loop-tagged segments whose allocations are reused.
#[derive(Debug, Default)]
pub struct SegmentList {
    items: Vec<(&'static str, Key, Segment)>,
    /// (loop, segment id) of each item, kept apart so that look-ups scan 16 bytes a
    /// segment instead of the segments themselves.
    keys: Vec<(Key, Key)>,
    len: usize,
}

impl SegmentList {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, loop_id: &'static str, segment: &Segment) {
        let loop_key = Key::of(loop_id.as_bytes());
        match self.items.get_mut(self.len) {
            Some(slot) => {
                slot.0 = loop_id;
                slot.1 = loop_key;
                slot.2.clone_from(segment);
            }
            None => self.items.push((loop_id, loop_key, segment.clone())),
        }
        self.set_key(loop_key, segment.key());
        self.len += 1;
    }

    fn set_key(&mut self, loop_key: Key, segment_key: Key) {
        match self.keys.get_mut(self.len) {
            Some(slot) => *slot = (loop_key, segment_key),
            None => self.keys.push((loop_key, segment_key)),
        }
    }

    fn extend_from(&mut self, other: &SegmentList) {
        for (loop_id, segment) in other.iter() {
            self.push(loop_id, segment);
        }
    }

    /// The segments with their loops, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Segment)> {
        self.items.iter().take(self.len).map(|(l, _, s)| (*l, s))
    }

    /// The segments with id `segment_key` in loop `loop_key` ([`Key::ANY`] for any loop),
    /// in file order. Only the packed keys are compared.
    pub fn matching(&self, loop_key: Key, segment_key: Key) -> impl Iterator<Item = &Segment> {
        self.keys
            .iter()
            .zip(&self.items)
            .take(self.len)
            .filter(move |((l, s), _)| {
                *s == segment_key && (loop_key == Key::ANY || *l == loop_key)
            })
            .map(|(_, (_, _, segment))| segment)
    }

    /// Moves `segment` into the list (its buffers are swapped with a spare slot's, so
    /// nothing is copied); `segment` is left holding stale contents to be overwritten.
    fn push_moved(&mut self, loop_id: &'static str, segment: &mut Segment) {
        let loop_key = Key::of(loop_id.as_bytes());
        if self.items.len() == self.len {
            self.items.push((loop_id, loop_key, Segment::default()));
        }
        let segment_key = segment.key();
        if let Some(slot) = self.items.get_mut(self.len) {
            slot.0 = loop_id;
            slot.1 = loop_key;
            std::mem::swap(&mut slot.2, segment);
        }
        self.set_key(loop_key, segment_key);
        self.len += 1;
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first segment in `loop_id` with id `segment_id` whose element `qualifier.0`
    /// equals `qualifier.1` (when given).
    pub fn find<'a>(
        &'a self,
        loop_id: &'a str,
        segment_id: &'a [u8],
        qualifier: Option<(usize, &'a [u8])>,
    ) -> Option<&'a Segment> {
        self.find_all(loop_id, segment_id, qualifier).next()
    }

    /// Every such segment.
    pub fn find_all<'a>(
        &'a self,
        loop_id: &'a str,
        segment_id: &'a [u8],
        qualifier: Option<(usize, &'a [u8])>,
    ) -> impl Iterator<Item = &'a Segment> + 'a {
        self.iter()
            .filter(move |(l, s)| {
                (loop_id.is_empty() || *l == loop_id)
                    && s.id() == segment_id
                    && qualifier.is_none_or(|(n, v)| s.element(n) == v)
            })
            .map(|(_, s)| s)
    }
}

/// One claim with its context.
#[derive(Debug, Default)]
pub struct ClaimRecord {
    /// Billing provider, subscriber and patient segments (2000A–2010CA) in force for the claim.
    pub context: SegmentList,
    /// The claim's own segments (2300 and its 2310/2320/2330 loops).
    pub claim: SegmentList,
    lines: Vec<SegmentList>,
    line_count: usize,
    /// Where the CLM is; `record` is the claim's number in the file.
    pub position: Position,
    /// Professional or institutional.
    pub variant: Variant,
    /// The implementation guide of the claim's transaction (ST03, or GS08 without one).
    pub version: String,
}

impl ClaimRecord {
    /// The service lines (2400 loops), in order.
    pub fn lines(&self) -> impl Iterator<Item = &SegmentList> {
        self.lines.iter().take(self.line_count)
    }

    /// Number of service lines.
    pub fn line_count(&self) -> usize {
        self.line_count
    }

    fn clear(&mut self) {
        self.context.clear();
        self.claim.clear();
        self.line_count = 0;
    }

    fn start_line(&mut self) -> &mut SegmentList {
        if self.lines.len() <= self.line_count {
            self.lines.push(SegmentList::default());
        }
        let index = self.line_count;
        self.line_count += 1;
        let line = &mut self.lines[index];
        line.clear();
        line
    }

    fn current_line(&mut self) -> Option<&mut SegmentList> {
        self.line_count
            .checked_sub(1)
            .and_then(|i| self.lines.get_mut(i))
    }
}

/// Where inside a claim the reader is, for loop tagging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InClaim {
    Header,
    OtherSubscriber,
    Line,
}

/// Reads claims out of an 837 stream.
pub struct ClaimReader<R> {
    tokenizer: Tokenizer<R>,
    segment: Segment,
    pending: bool,
    envelope: Envelope,
    billing: SegmentList,
    subscriber: SegmentList,
    patient: SegmentList,
    context_loop: &'static str,
    /// The current HL path (billing provider, subscriber, patient): at most three ids, so
    /// memory and time per HL stay flat however many claims one transaction holds.
    hl_path: Vec<Vec<u8>>,
    in_claim: Option<InClaim>,
    claim_loop: &'static str,
    skip_transaction: bool,
    claims: u64,
    finished: bool,
}

impl<R: Read> ClaimReader<R> {
    /// A reader with default limits.
    pub fn new(source: R) -> Self {
        Self::with_limits(source, Limits::default())
    }

    /// A reader with the given tokenizer limits.
    pub fn with_limits(source: R, limits: Limits) -> Self {
        Self {
            tokenizer: Tokenizer::with_limits(source, limits),
            segment: Segment::default(),
            pending: false,
            envelope: Envelope::default(),
            billing: SegmentList::default(),
            subscriber: SegmentList::default(),
            patient: SegmentList::default(),
            context_loop: "",
            hl_path: Vec::new(),
            in_claim: None,
            claim_loop: "2300",
            skip_transaction: false,
            claims: 0,
            finished: false,
        }
    }

    /// Reads the next claim into `record`. Returns `Ok(false)` at the end of the input.
    /// Findings (envelope, structure) are appended to `findings`; a claim cut off by the
    /// end of its transaction or file gets an error finding with its record number.
    pub fn next_claim(
        &mut self,
        record: &mut ClaimRecord,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        loop {
            if !self.pending {
                let before = findings.len();
                let more =
                    !self.finished && self.tokenizer.read_segment(&mut self.segment, findings)?;
                // Problems with a claim's own segments belong to that claim.
                if self.in_claim.is_some() {
                    for finding in findings.iter_mut().skip(before) {
                        finding.position.record = record.position.record;
                    }
                }
                if !more {
                    return Ok(self.finish(record, findings));
                }
                self.envelope.observe(&self.segment, findings);
            }
            self.pending = false;
            let id = self.segment.id();
            let ends_claim = matches!(
                id,
                b"CLM" | b"HL" | b"ST" | b"SE" | b"GS" | b"GE" | b"ISA" | b"IEA"
            );
            if self.in_claim.is_some() && ends_claim {
                if id != b"SE" && !self.envelope.in_transaction()
                    || matches!(id, b"ST" | b"GS" | b"GE" | b"ISA" | b"IEA")
                {
                    // Not closed by SE: the transaction was cut off inside this claim.
                    findings.push(Finding::error(
                        "x12.claim_cut_off",
                        record.position.clone(),
                        "the claim's transaction ends without SE; the claim may be incomplete",
                    ));
                }
                self.in_claim = None;
                self.pending = id != b"SE";
                return Ok(true);
            }
            match id {
                b"ST" => self.start_transaction(findings),
                b"SE" | b"GE" | b"IEA" | b"GS" | b"ISA" => self.reset_context(),
                _ if self.skip_transaction || !self.envelope.in_transaction() => {}
                b"HL" => self.hierarchy(findings),
                b"CLM" => self.start_claim(record),
                _ if self.in_claim.is_some() => self.claim_segment(record, findings),
                _ => self.context_segment(),
            }
        }
    }

    fn finish(&mut self, record: &mut ClaimRecord, findings: &mut Vec<Finding>) -> bool {
        if self.finished {
            return false;
        }
        self.finished = true;
        let open_claim = self.in_claim.take().is_some();
        if open_claim {
            findings.push(Finding::error(
                "x12.claim_cut_off",
                record.position.clone(),
                "the input ends inside this claim; the claim may be incomplete",
            ));
        }
        self.envelope.finish(findings);
        open_claim
    }

    fn start_transaction(&mut self, findings: &mut Vec<Finding>) {
        self.reset_context();
        self.skip_transaction = self.envelope.transaction_type != b"837";
        if self.skip_transaction {
            findings.push(Finding::warning(
                "x12.not_837",
                self.segment.position(),
                "transaction is not an 837 claim; its segments are skipped",
            ));
        }
    }

    fn reset_context(&mut self) {
        self.billing.clear();
        self.subscriber.clear();
        self.patient.clear();
        self.context_loop = "";
        self.hl_path.clear();
    }

    fn hierarchy(&mut self, findings: &mut Vec<Finding>) {
        // HL02 must name an HL on the current path; everything below it is closed.
        let parent = self.segment.element(2);
        match self.hl_path.iter().position(|id| id.as_slice() == parent) {
            Some(at) => self.hl_path.truncate(at + 1),
            None => {
                if !parent.is_empty() {
                    findings.push(Finding::warning(
                        "x12.hl_parent",
                        self.segment.position(),
                        "HL02 names no open parent HL",
                    ));
                }
                self.hl_path.clear();
            }
        }
        if self.hl_path.len() < 3 {
            self.hl_path.push(self.segment.element(1).to_vec());
        }
        match self.segment.element(3) {
            b"20" => {
                self.billing.clear();
                self.subscriber.clear();
                self.patient.clear();
                self.context_loop = "2000A";
                self.billing.push("2000A", &self.segment);
            }
            b"22" => {
                self.subscriber.clear();
                self.patient.clear();
                self.context_loop = "2000B";
                self.subscriber.push("2000B", &self.segment);
            }
            b"23" => {
                self.patient.clear();
                self.context_loop = "2000C";
                self.patient.push("2000C", &self.segment);
            }
            _ => {
                findings.push(Finding::warning(
                    "x12.hl_level",
                    self.segment.position(),
                    "HL03 is not 20, 22 or 23",
                ));
                self.context_loop = "";
            }
        }
    }

    fn context_segment(&mut self) {
        if self.segment.id() == b"NM1" {
            let loop_id = match (self.context_loop, self.segment.element(1)) {
                ("2000A" | "2010AA" | "2010AB" | "2010AC", b"85") => "2010AA",
                ("2000A" | "2010AA" | "2010AB" | "2010AC", b"87") => "2010AB",
                ("2000A" | "2010AA" | "2010AB" | "2010AC", b"PE") => "2010AC",
                ("2000B" | "2010BA" | "2010BB", b"IL") => "2010BA",
                ("2000B" | "2010BA" | "2010BB", b"PR") => "2010BB",
                ("2000C" | "2010CA", b"QC") => "2010CA",
                (current, _) => current,
            };
            self.context_loop = loop_id;
        }
        let list = match self.context_loop {
            "2000A" | "2010AA" | "2010AB" | "2010AC" => &mut self.billing,
            "2000B" | "2010BA" | "2010BB" => &mut self.subscriber,
            "2000C" | "2010CA" => &mut self.patient,
            _ => return, // transaction header (BHT, 1000A/B): not part of any claim
        };
        list.push(self.context_loop, &self.segment);
    }

    fn start_claim(&mut self, record: &mut ClaimRecord) {
        self.claims += 1;
        record.clear();
        record.context.extend_from(&self.billing);
        record.context.extend_from(&self.subscriber);
        record.context.extend_from(&self.patient);
        record.position = self.segment.position();
        record.position.record = self.claims;
        record.position.path = Some("2300/CLM".into());
        record.variant = Variant::from_version(&self.envelope.transaction_version);
        record.version = String::from_utf8_lossy(&self.envelope.transaction_version).into_owned();
        record.claim.push("2300", &self.segment);
        self.in_claim = Some(InClaim::Header);
        self.claim_loop = "2300";
    }

    fn claim_segment(&mut self, record: &mut ClaimRecord, findings: &mut Vec<Finding>) {
        let professional = record.variant != Variant::Institutional;
        let id = self.segment.id();
        let entity = self.segment.element(1);
        if self.in_claim != Some(InClaim::Line)
            && matches!(id, b"SV1" | b"SV2" | b"SV3" | b"SV4" | b"SV5")
        {
            // A service without its LX would vanish from the lines: say so on the claim.
            let mut at = self.segment.position();
            at.record = record.position.record;
            at.path = Some(format!(
                "{}/{}",
                self.claim_loop,
                String::from_utf8_lossy(id)
            ));
            findings.push(Finding::error(
                "x12.service_outside_line",
                at,
                "a service segment outside a 2400 service line loop",
            ));
        }
        match (self.in_claim, id) {
            (_, b"LX") => {
                self.in_claim = Some(InClaim::Line);
                self.claim_loop = "2400";
                record.start_line().push_moved("2400", &mut self.segment);
                return;
            }
            (Some(InClaim::Line), _) => {
                self.claim_loop = match id {
                    b"LIN" => "2410",
                    b"SVD" => "2430",
                    b"LQ" => "2440",
                    b"NM1" => line_provider_loop(professional, entity),
                    _ => self.claim_loop,
                };
                if let Some(line) = record.current_line() {
                    line.push_moved(self.claim_loop, &mut self.segment);
                }
                return;
            }
            (_, b"SBR") => {
                self.in_claim = Some(InClaim::OtherSubscriber);
                self.claim_loop = "2320";
            }
            (Some(InClaim::OtherSubscriber), b"NM1") => {
                self.claim_loop = other_payer_loop(professional, entity)
            }
            (Some(InClaim::Header), b"NM1") => {
                self.claim_loop = claim_provider_loop(professional, entity)
            }
            _ => {}
        }
        record.claim.push_moved(self.claim_loop, &mut self.segment);
    }
}

/// 2310 loops of the claim's providers, by NM101 entity code.
fn claim_provider_loop(professional: bool, entity: &[u8]) -> &'static str {
    match (professional, entity) {
        (true, b"DN" | b"P3") => "2310A",
        (true, b"82") => "2310B",
        (true, b"77") => "2310C",
        (true, b"DQ") => "2310D",
        (true, b"PW") => "2310E",
        (true, b"45") => "2310F",
        (false, b"71") => "2310A",
        (false, b"72") => "2310B",
        (false, b"ZZ") => "2310C",
        (false, b"82") => "2310D",
        (false, b"77") => "2310E",
        (false, b"DN") => "2310F",
        _ => "2310",
    }
}

/// 2330 loops of other payers' names, by NM101 entity code.
fn other_payer_loop(professional: bool, entity: &[u8]) -> &'static str {
    match (professional, entity) {
        (_, b"IL") => "2330A",
        (_, b"PR") => "2330B",
        (true, b"DN" | b"P3") | (false, b"71") => "2330C",
        (true, b"82") | (false, b"72") => "2330D",
        (true, b"77") | (false, b"ZZ") => "2330E",
        (true, b"DQ") | (false, b"77") => "2330F",
        (true, b"85") | (false, b"82") => "2330G",
        _ => "2330",
    }
}

/// 2420 loops of a line's providers, by NM101 entity code.
fn line_provider_loop(professional: bool, entity: &[u8]) -> &'static str {
    match (professional, entity) {
        (true, b"82") => "2420A",
        (true, b"QB") => "2420B",
        (true, b"77") => "2420C",
        (true, b"DQ") => "2420D",
        (true, b"DK") => "2420E",
        (true, b"DN" | b"P3") => "2420F",
        (true, b"PW") => "2420G",
        (true, b"45") => "2420H",
        (false, b"72") => "2420A",
        (false, b"ZZ") => "2420B",
        (false, b"82") => "2420C",
        (false, b"DN") => "2420D",
        _ => "2420",
    }
}

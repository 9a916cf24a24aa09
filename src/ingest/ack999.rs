//! The 999 implementation acknowledgement (005010X231A1) of a received X12 file: one
//! AK1 per functional group, an AK2/IK5 per transaction set, an IK3 for each segment with
//! a syntax or envelope finding (codes `x12.…`), and the AK9 totals.
//!
//! A 999 reports syntax, not business rules: a claim refused for a missing member id is
//! accepted syntax (its reason is in the upload's rejects). A transaction set cut off
//! before its SE is rejected (`IK5*R*2`); one whose trailer disagrees with its header is
//! accepted with errors noted (`IK5*E*4`, `E*3`), as its claims were processed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;

use crate::findings::Finding;
use crate::formats::x12::{Segment, Tokenizer};

/// IK3 lines reported at most (the rest are in the rejects listing).
const MAX_IK3: usize = 1_000;

/// A syntax finding to report: its segment number in the file and its code.
#[derive(Debug, Clone)]
pub struct SyntaxFinding {
    /// Segment number in the file (from 1).
    pub segment: u64,
    /// The finding's code.
    pub code: String,
}

#[derive(Debug, Default)]
struct Set {
    st01: String,
    st02: String,
    st03: String,
    first: u64,
    last: Option<u64>,
    errors: Vec<(String, u64, &'static str)>,
    trailer_code: Option<&'static str>,
}

#[derive(Debug, Default)]
struct Group {
    gs01: String,
    gs02: String,
    gs03: String,
    gs06: String,
    gs08: String,
    sets: Vec<Set>,
}

fn text(segment: &Segment, n: usize) -> String {
    String::from_utf8_lossy(segment.element(n))
        .trim()
        .to_owned()
}

/// IK5 code for a transaction set's worst finding (IK502).
fn trailer_code(code: &str) -> &'static str {
    if code.contains("se_count") {
        "4"
    } else if code.contains("control") {
        "3"
    } else if code.contains("missing_se") || code.contains("incomplete") || code.contains("cut") {
        "2"
    } else {
        "5"
    }
}

/// Builds the 999 for the X12 file `input` with its syntax `findings`; `control` is this
/// acknowledgement's interchange control number. `None` when the file has no interchange.
pub fn build(
    input: impl Read,
    findings: &[SyntaxFinding],
    control: u32,
    now: time::OffsetDateTime,
) -> std::io::Result<Option<String>> {
    let mut by_segment: HashMap<u64, Vec<&str>> = HashMap::new();
    for f in findings {
        by_segment.entry(f.segment).or_default().push(&f.code);
    }
    let mut tokenizer = Tokenizer::new(input);
    let mut segment = Segment::default();
    let mut ignored: Vec<Finding> = Vec::new();
    let (mut sender, mut receiver) = (None, None);
    let mut groups: Vec<Group> = Vec::new();
    let mut ik3 = 0usize;
    while tokenizer.read_segment(&mut segment, &mut ignored)? {
        ignored.clear();
        let number = segment.position().segment.unwrap_or(0);
        match segment.id() {
            b"ISA" if sender.is_none() => {
                sender = Some((text(&segment, 5), text(&segment, 6)));
                receiver = Some((text(&segment, 7), text(&segment, 8)));
            }
            b"GS" => groups.push(Group {
                gs01: text(&segment, 1),
                gs02: text(&segment, 2),
                gs03: text(&segment, 3),
                gs06: text(&segment, 6),
                gs08: text(&segment, 8),
                sets: Vec::new(),
            }),
            b"ST" => {
                if let Some(group) = groups.last_mut() {
                    group.sets.push(Set {
                        st01: text(&segment, 1),
                        st02: text(&segment, 2),
                        st03: text(&segment, 3),
                        first: number,
                        ..Set::default()
                    });
                }
            }
            _ => {}
        }
        let open = groups
            .last_mut()
            .and_then(|g| g.sets.last_mut())
            .filter(|s| s.last.is_none());
        if let Some(set) = open {
            if let Some(codes) = by_segment.get(&number) {
                for code in codes {
                    let trailer = trailer_code(code);
                    if segment.id() == b"SE" || trailer == "2" {
                        set.trailer_code.get_or_insert(trailer);
                    }
                    if ik3 < MAX_IK3 {
                        let id = String::from_utf8_lossy(segment.id()).into_owned();
                        set.errors.push((id, number - set.first + 1, "8"));
                        ik3 += 1;
                    }
                }
            }
            if segment.id() == b"SE" {
                set.last = Some(number);
            }
        }
    }
    let (Some((sender_qual, sender_id)), Some((receiver_qual, receiver_id))) = (sender, receiver)
    else {
        return Ok(None);
    };
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let clock = format!("{:02}{:02}", now.hour(), now.minute());
    let mut body: Vec<String> = Vec::new();
    let mut st_control = 0u32;
    for group in &groups {
        st_control += 1;
        let start = body.len();
        body.push(format!("ST*999*{st_control:04}*005010X231A1"));
        body.push(format!("AK1*{}*{}*{}", group.gs01, group.gs06, group.gs08));
        let mut accepted = 0;
        let mut rejected = 0;
        let mut with_errors = 0;
        for set in &group.sets {
            let mut ak2 = format!("AK2*{}*{}", set.st01, set.st02);
            if !set.st03.is_empty() {
                let _ = write!(ak2, "*{}", set.st03);
            }
            body.push(ak2);
            for (id, position, code) in &set.errors {
                body.push(format!("IK3*{id}*{position}**{code}"));
            }
            let missing_trailer = set.last.is_none();
            let ik5 = if missing_trailer || set.trailer_code == Some("2") {
                rejected += 1;
                "IK5*R*2".to_owned()
            } else if !set.errors.is_empty() {
                // Its claims were processed (each judged on its own): accepted, with the
                // errors noted.
                accepted += 1;
                with_errors += 1;
                format!("IK5*E*{}", set.trailer_code.unwrap_or("5"))
            } else {
                accepted += 1;
                "IK5*A".to_owned()
            };
            body.push(ik5);
        }
        let total = group.sets.len();
        let ak901 = if rejected == 0 && with_errors == 0 {
            "A"
        } else if rejected == 0 {
            "E"
        } else if accepted == 0 {
            "R"
        } else {
            "P"
        };
        body.push(format!("AK9*{ak901}*{total}*{total}*{accepted}"));
        let count = body.len() - start + 1;
        body.push(format!("SE*{count}*{st_control:04}"));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ISA*00*          *00*          *{receiver_qual:<2}*{receiver_id:<15}*{sender_qual:<2}*{sender_id:<15}*{}*{clock}*^*00501*{control:09}*0*P*:~",
        date.get(2..).unwrap_or_default()
    );
    let (gs_sender, gs_receiver) = groups
        .first()
        .map(|g| (g.gs03.clone(), g.gs02.clone()))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "GS*FA*{gs_sender}*{gs_receiver}*{date}*{clock}*{control}*X*005010X231A1~"
    );
    for line in body {
        let _ = writeln!(out, "{line}~");
    }
    let _ = writeln!(out, "GE*{st_control}*{control}~");
    let _ = writeln!(out, "IEA*1*{control:09}~");
    Ok(Some(out))
}

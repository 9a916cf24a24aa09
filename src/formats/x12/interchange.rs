//! The identity of an X12 interchange, read from the head of a received file.
//!
//! A sender numbers its interchanges: ISA13 is unique from one sender (ISA05/ISA06) to one
//! receiver (ISA07/ISA08). A file with a new hash that repeats an interchange already
//! received is a replay or a resend of edited content; intake refuses it unless the
//! provider is known to reuse control numbers.

use super::tokenizer::{Limits, Segment, Tokenizer};

/// How many leading bytes of a file are enough to find its ISA: the tokenizer's tolerance
/// for text before the ISA (4 KiB) plus the 106-byte segment, rounded up.
pub const HEAD_BYTES: usize = 8 * 1024;

/// Sender, receiver and control number of an interchange (identifiers of organisations
/// and a sequence number, never patient data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterchangeId {
    /// ISA05 and ISA06 (qualifier and id), as `ZZ:SUBMITTER`.
    pub sender: String,
    /// ISA07 and ISA08, as `ZZ:RECEIVER`.
    pub receiver: String,
    /// ISA13, the interchange control number.
    pub control_number: String,
}

impl InterchangeId {
    /// The identity of the first interchange in `head` (the first bytes of a file, at
    /// most [`HEAD_BYTES`] are read); `None` when `head` does not start an X12
    /// interchange, or its ISA lacks a numeric control number or an identifier.
    pub fn of_head(head: &[u8]) -> Option<Self> {
        let head = head.get(..HEAD_BYTES).unwrap_or(head);
        let limits = Limits {
            max_file_bytes: HEAD_BYTES as u64,
            ..Limits::default()
        };
        let mut tokenizer = Tokenizer::with_limits(head, limits);
        let mut segment = Segment::default();
        let mut findings = Vec::new();
        if !tokenizer.read_segment(&mut segment, &mut findings).ok()? || segment.id() != b"ISA" {
            return None;
        }
        let text = |n: usize| {
            std::str::from_utf8(segment.element(n))
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        };
        let party =
            |qualifier: usize, id: usize| Some(format!("{}:{}", text(qualifier)?, text(id)?));
        let control_number =
            text(13).filter(|c| c.len() <= 9 && c.bytes().all(|b| b.is_ascii_digit()))?;
        Some(Self {
            sender: party(5, 6)?,
            receiver: party(7, 8)?,
            control_number: control_number.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       \
                       *240101*1200*^*00501*000004711*0*P*:~";

    #[test]
    fn the_first_isa_names_sender_receiver_and_control_number() {
        let file = format!("{ISA}\nGS*HC*SUB*REC*20240101*1200*1*X*005010X222A1~\n");
        let id = InterchangeId::of_head(file.as_bytes()).unwrap();
        assert_eq!(id.sender, "ZZ:SUBMITTER");
        assert_eq!(id.receiver, "ZZ:RECEIVER");
        assert_eq!(id.control_number, "000004711");
    }

    #[test]
    fn a_byte_order_mark_leading_blanks_and_other_delimiters_are_read_too() {
        let file = format!("\u{feff}  \r\n{}", ISA.replace('*', "|").replace('~', "\n"));
        let id = InterchangeId::of_head(file.as_bytes()).unwrap();
        assert_eq!(id.control_number, "000004711");
    }

    #[test]
    fn what_is_not_an_identifiable_interchange_has_no_identity() {
        let cut = &ISA[..60];
        let non_numeric = ISA.replace("000004711", "00000471X");
        let no_sender = ISA.replace("SUBMITTER      ", "               ");
        for head in [
            &b"claim_id,member_id\nC1,M1\n"[..],
            b"",
            b"ISA*ZZRAW~",
            cut.as_bytes(),
            non_numeric.as_bytes(),
            no_sender.as_bytes(),
            b"GS*HC*SUB*REC*20240101*1200*1*X*005010X222A1~",
        ] {
            assert_eq!(
                InterchangeId::of_head(head),
                None,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn only_the_head_is_read() {
        let mut file = vec![b' '; HEAD_BYTES];
        file.extend_from_slice(ISA.as_bytes());
        assert_eq!(InterchangeId::of_head(&file), None);
    }
}

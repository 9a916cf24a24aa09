//! What each fuzz target checks, shared by the cargo-fuzz targets (`fuzz_targets/`) and by
//! the plain `cargo test` that replays every kept input (`tests/formats/fuzz_replay.rs`).
//!
//! A target fails by panicking: the code under test panicked, or an invariant below does
//! not hold. Every input must end in a value or a typed error, within memory bounded by
//! the readers' limits rather than by any length the input declares.

#![allow(dead_code)] // each fuzz target uses one of these; the replay test uses all

use std::io::Read;

use claimgate::audit::{ChainBreak, chain_hash, verify_chain};
use claimgate::crypto::data_key::{DataKey, Envelope, FieldSlot};
use claimgate::crypto::raw_file::{DecryptingReader, EncryptingWriter};
use claimgate::findings::Severity;
use claimgate::mapping::Plan;
use claimgate::pipeline::{MappingChoice, preview};
use claimgate::sftp::jail::{PathRefusal, VirtualPath};
use claimgate::store::StoredAuditEvent;

/// What a target runs on one input.
pub type Check = fn(&[u8]);

/// The targets, by name (the directory names under `fuzz/seeds` and `fuzz/regressions`).
pub const TARGETS: &[(&str, Check)] = &[
    ("x12", x12),
    ("csv_lines", csv_lines),
    ("csv_wide", csv_wide),
    ("fixed_width", fixed_width),
    ("xml", xml),
    ("fhir", fhir),
    ("mapping_definition", mapping_definition),
    ("sftp_path", sftp_path),
    ("field_envelope", field_envelope),
    ("raw_file", raw_file),
    ("audit_chain", audit_chain),
];

const CSV_LINES: &str = include_str!("../schemas/examples/synthea-transactions.toml");
const CSV_WIDE: &str = include_str!("../schemas/examples/desynpuf-carrier.toml");
const FHIR: &str = include_str!("../schemas/examples/fhir-eob.toml");
const FIXED_WIDTH: &str = include_str!("mappings/fixed-width.toml");
const XML: &str = include_str!("mappings/xml.toml");

/// Reads `input` with `choice`; checks the accounting every receipt relies on.
fn read_with(choice: &MappingChoice, input: &[u8]) {
    let (mut claims, mut accepted, mut rejected_records) = (0u64, 0u64, 0u64);
    let summary = preview(
        choice,
        input,
        &mut |mapped| {
            claims += 1;
            let errors = mapped
                .findings
                .iter()
                .any(|f| f.severity == Severity::Error);
            assert!(
                !(mapped.accepted && errors),
                "a claim with an error finding was accepted"
            );
            if mapped.accepted {
                accepted += mapped.records;
            } else {
                rejected_records += mapped.records;
            }
        },
        &mut |_| {},
    );
    // A slice never fails to read, so the only outcome is a summary.
    let summary = summary.expect("reading a byte slice failed");
    assert_eq!(
        summary.records,
        summary.accepted + summary.rejected + summary.skipped,
        "records read are not accepted + rejected + skipped"
    );
    assert_eq!(
        summary.claims, claims,
        "claims reported are not claims seen"
    );
    assert!(
        accepted <= summary.accepted,
        "more records accepted than the summary says"
    );
    assert!(
        accepted + rejected_records <= summary.records,
        "claims carry more records than were read"
    );
}

fn plan(toml: &str) -> MappingChoice {
    MappingChoice::One(Box::new(
        Plan::from_toml(toml).expect("a shipped mapping is valid"),
    ))
}

/// X12 837 (P or I by version): tokenizer, envelope, loop builder and both mappings.
pub fn x12(data: &[u8]) {
    thread_local! {
        static CHOICE: MappingChoice = MappingChoice::resolve("x12").expect("built-in");
    }
    CHOICE.with(|choice| read_with(choice, data));
}

/// Line-level CSV (one row a line, grouped into claims): Synthea's transactions.
pub fn csv_lines(data: &[u8]) {
    read_with(&plan(CSV_LINES), data);
}

/// Wide CSV (line slots in columns): CMS DE-SynPUF carrier claims.
pub fn csv_wide(data: &[u8]) {
    read_with(&plan(CSV_WIDE), data);
}

/// Fixed-width records cut by position.
pub fn fixed_width(data: &[u8]) {
    read_with(&plan(FIXED_WIDTH), data);
}

/// XML claims read by path (DTDs refused, depth bounded).
pub fn xml(data: &[u8]) {
    read_with(&plan(XML), data);
}

/// FHIR ExplanationOfBenefit (a resource, a Bundle or NDJSON).
pub fn fhir(data: &[u8]) {
    read_with(&plan(FHIR), data);
}

/// A mapping definition as an onboarding analyst would upload it: parsed and checked;
/// when valid, applied to a few bytes of each shape.
pub fn mapping_definition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Plan::from_toml(text) {
        Ok(plan) => {
            let choice = MappingChoice::One(Box::new(plan));
            for sample in [
                &b""[..],
                b"a,b,c\n1,2,3\n",
                b"<a><b>1</b></a>",
                b"{\"resourceType\":\"ExplanationOfBenefit\"}",
            ] {
                read_with(&choice, sample);
            }
        }
        Err(problems) => assert!(!problems.is_empty(), "refused without a problem"),
    }
}

/// An SFTP client's path: jailed, canonical, and never climbing.
pub fn sftp_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    match VirtualPath::parse(path) {
        Ok(parsed) => {
            let shown = parsed.display();
            assert!(
                !shown.split('/').any(|part| part == ".." || part == "."),
                "a canonical path holds a dot component"
            );
            assert!(
                !shown.chars().any(char::is_control),
                "a canonical path holds a control character"
            );
            assert_eq!(
                VirtualPath::parse(&shown),
                Ok(parsed),
                "the canonical path does not parse to itself"
            );
        }
        Err(refusal) => {
            if path.split('/').any(|part| part == "..") {
                assert_eq!(refusal, PathRefusal::Traversal);
            }
        }
    }
}

fn fixed_key(id: &str) -> DataKey {
    DataKey::from_bytes(id, zeroize::Zeroizing::new([7u8; 32]), 0).expect("a valid key id")
}

const SLOT: FieldSlot<'static> = FieldSlot {
    table: "claims",
    column: "member_id",
    row: "u1:1",
};

/// A sealed field as it comes back from the database: parsed and opened, or refused.
/// Also: a value sealed here opens to itself, and the same envelope with any one bit
/// flipped (the bit chosen by the input) does not open.
pub fn field_envelope(data: &[u8]) {
    let key = fixed_key("k1");
    if let Ok(envelope) = Envelope::parse(data) {
        assert!(envelope.key_id.len() <= 255);
    }
    assert!(key.open(SLOT, data).is_err(), "a forged envelope opened");
    let sealed = key.seal(SLOT, data).expect("sealing works");
    assert_eq!(
        key.open(SLOT, &sealed)
            .expect("a fresh envelope opens")
            .as_slice(),
        data
    );
    let bit = data.iter().fold(0usize, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(usize::from(*b))
    }) % (sealed.len() * 8);
    let mut tampered = sealed;
    tampered[bit / 8] ^= 1 << (bit % 8);
    assert!(
        key.open(SLOT, &tampered).is_err(),
        "a tampered envelope opened"
    );
}

/// An encrypted raw file: the input as a stored file is refused; the input encrypted
/// here decrypts to itself; cut short or with a byte changed, it is refused.
pub fn raw_file(data: &[u8]) {
    let key = [9u8; 32];
    let mut plain = Vec::new();
    let forged =
        DecryptingReader::new(data, &key, "f1").and_then(|mut r| r.read_to_end(&mut plain));
    assert!(forged.is_err(), "a forged raw file decrypted");
    let mut writer = EncryptingWriter::new(Vec::new(), &key, "f1").expect("writer");
    std::io::Write::write_all(&mut writer, data).expect("encrypting to memory");
    let stored = writer.finish().expect("finish");
    let mut plain = Vec::new();
    DecryptingReader::new(stored.as_slice(), &key, "f1")
        .and_then(|mut r| r.read_to_end(&mut plain))
        .expect("a fresh file decrypts");
    assert_eq!(plain, data);
    let at = data.len() % stored.len();
    let mut plain = Vec::new();
    let cut = DecryptingReader::new(&stored[..at], &key, "f1")
        .and_then(|mut r| r.read_to_end(&mut plain));
    assert!(cut.is_err(), "a truncated raw file decrypted");
    let mut changed = stored.clone();
    changed[at] ^= 0x80;
    let mut plain = Vec::new();
    let changed = DecryptingReader::new(changed.as_slice(), &key, "f1")
        .and_then(|mut r| r.read_to_end(&mut plain));
    assert!(changed.is_err(), "a changed raw file decrypted");
}

/// The audit chain: a trail built from the input verifies; the one change the input's
/// last bytes pick (a byte of a body or hash altered, an event removed, two swapped) is
/// found at the first event it touches; a cut tail alone verifies as the shorter trail
/// (which is why checkpoints are signed).
pub fn audit_chain(data: &[u8]) {
    let (bodies, how) = data.split_at(data.len().saturating_sub(3));
    let mut events = Vec::new();
    let mut prev = vec![0u8; 32];
    for (i, body) in bodies.split(|b| *b == b'\n').take(64).enumerate() {
        let body = String::from_utf8_lossy(body).into_owned();
        let hash = chain_hash(&prev, body.as_bytes());
        events.push(StoredAuditEvent {
            seq: i as i64 + 1,
            kind: "test".into(),
            body,
            prev_hash: prev,
            hash: hash.clone(),
        });
        prev = hash;
    }
    assert_eq!(verify_chain(&events), Ok(events.len()));
    let [op, a, b] = match how {
        [op, a, b] => [*op, *a, *b].map(usize::from),
        _ => return,
    };
    let n = events.len();
    let (i, j) = (a % n, b % n);
    let mut changed = events.clone();
    let first_bad = match op % 5 {
        0 => {
            if changed[i].body.is_empty() {
                changed[i].body.push('x');
            } else {
                let mut bytes = changed[i].body.clone().into_bytes();
                let at = b % bytes.len();
                bytes[at] ^= 0x01;
                changed[i].body = String::from_utf8_lossy(&bytes).into_owned();
            }
            i
        }
        1 => {
            changed[i].hash[b % 32] ^= 0x01;
            // A changed hash no longer matches its own body.
            i
        }
        2 => {
            changed.remove(i);
            if i == n - 1 {
                assert_eq!(verify_chain(&changed), Ok(n - 1));
                return;
            }
            i
        }
        3 => {
            changed.swap(i, j);
            i.min(j)
        }
        _ => {
            changed.truncate(i);
            assert_eq!(verify_chain(&changed), Ok(i), "a cut trail is its prefix");
            return;
        }
    };
    if changed == events {
        assert_eq!(verify_chain(&changed), Ok(n));
        return;
    }
    // The first event that differs is where verification must stop.
    let differs = changed
        .iter()
        .zip(&events)
        .position(|(c, e)| c != e)
        .unwrap_or(first_bad);
    match verify_chain(&changed) {
        Err(ChainBreak::Broken { seq }) => assert_eq!(
            seq,
            differs as i64 + 1,
            "the first bad event is not the one named"
        ),
        other => panic!("a changed trail verified as {other:?}"),
    }
}

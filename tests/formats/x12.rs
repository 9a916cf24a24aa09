//! The X12 tokenizer and 837 reader on generated and hostile inputs.

use claimgate::claims::Money;
use claimgate::formats::x12::{ClaimReader, ClaimRecord, Delimiters, Limits, Segment, Tokenizer};
use claimgate::formats::{Finding, Severity};
use proptest::prelude::*;

use crate::corpus::read_837;

/// A generated claim: id, charge in cents, line charges in cents, patient name.
#[derive(Debug, Clone)]
struct GenClaim {
    id: String,
    lines: Vec<i64>,
    name: String,
}

impl GenClaim {
    fn total(&self) -> i64 {
        self.lines.iter().sum()
    }
}

fn cents(c: i64) -> String {
    Money::from_cents(c).to_string()
}

/// Writes claims as an 837P with the given delimiters and a line break after each segment.
fn write_837(claims: &[GenClaim], d: Delimiters, line_break: &str) -> Vec<u8> {
    let (e, c, s) = (d.element as char, d.component as char, d.segment as char);
    let r = d.repetition.map_or('U', |r| r as char);
    let mut segs: Vec<String> = vec![
        format!(
            "ISA{e}00{e}          {e}00{e}          {e}ZZ{e}SUBMITTER      {e}ZZ{e}RECEIVER       {e}240101{e}1200{e}{r}{e}00501{e}000000001{e}0{e}P{e}{c}"
        ),
        format!("GS{e}HC{e}SUB{e}REC{e}20240101{e}1200{e}1{e}X{e}005010X222A1"),
    ];
    let st_start = segs.len();
    segs.push(format!("ST{e}837{e}0001{e}005010X222A1"));
    segs.push(format!("BHT{e}0019{e}00{e}1{e}20240101{e}1200{e}CH"));
    segs.push(format!("HL{e}1{e}{e}20{e}1"));
    segs.push(format!(
        "NM1{e}85{e}2{e}BILLING CLINIC{e}{e}{e}{e}{e}XX{e}1234567893"
    ));
    for (i, claim) in claims.iter().enumerate() {
        segs.push(format!("HL{e}{}{e}1{e}22{e}0", i + 2));
        segs.push(format!("SBR{e}P{e}18{e}{e}{e}{e}{e}{e}{e}CI"));
        segs.push(format!(
            "NM1{e}IL{e}1{e}{}{e}PAT{e}{e}{e}{e}MI{e}M{}",
            claim.name, i
        ));
        segs.push(format!(
            "CLM{e}{}{e}{}{e}{e}{e}11{c}B{c}1{e}Y{e}A{e}Y{e}Y",
            claim.id,
            cents(claim.total())
        ));
        segs.push(format!("HI{e}ABK{c}J020"));
        for (n, charge) in claim.lines.iter().enumerate() {
            segs.push(format!("LX{e}{}", n + 1));
            segs.push(format!(
                "SV1{e}HC{c}99213{e}{}{e}UN{e}1{e}{e}{e}1",
                cents(*charge)
            ));
            segs.push(format!("DTP{e}472{e}D8{e}20240101"));
        }
    }
    let count = segs.len() - st_start + 1;
    segs.push(format!("SE{e}{count}{e}0001"));
    segs.push(format!("GE{e}1{e}1"));
    segs.push(format!("IEA{e}1{e}000000001"));
    let mut out = String::new();
    for seg in segs {
        out.push_str(&seg);
        out.push(s);
        out.push_str(line_break);
    }
    out.into_bytes()
}

/// Delimiter sets: distinct punctuation bytes, none of them used in the generated values.
fn delimiters() -> impl Strategy<Value = Delimiters> {
    let pool: Vec<u8> = b"*|^~:>!`{}+#\x1d\x1e\x1f".to_vec();
    Just(pool).prop_shuffle().prop_flat_map(|p| {
        (Just(p), any::<bool>()).prop_map(|(p, rep)| Delimiters {
            element: p[0],
            component: p[1],
            segment: p[2],
            repetition: rep.then_some(p[3]),
        })
    })
}

fn line_breaks() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just("\n"), Just("\r\n")]
}

fn claims() -> impl Strategy<Value = Vec<GenClaim>> {
    prop::collection::vec(
        (
            "[A-Z0-9]{1,20}",
            prop::collection::vec(0i64..10_000_000, 1..6),
            "[A-Z]{1,12}",
        )
            .prop_map(|(id, lines, name)| GenClaim { id, lines, name }),
        1..12,
    )
}

/// The reference: split on the segment terminator, drop line breaks, split on the element
/// separator. Slow and obvious.
fn reference_split(bytes: &[u8], d: &Delimiters) -> Vec<Vec<Vec<u8>>> {
    bytes
        .split(|b| *b == d.segment)
        .map(|s| {
            s.iter()
                .copied()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect::<Vec<u8>>()
        })
        .filter(|s| !s.is_empty())
        .map(|s| s.split(|b| *b == d.element).map(<[u8]>::to_vec).collect())
        .collect()
}

fn tokenize(bytes: &[u8]) -> (Vec<Vec<Vec<u8>>>, Vec<Finding>, Option<Delimiters>) {
    let mut tokenizer = Tokenizer::new(bytes);
    let mut segment = Segment::default();
    let mut findings = Vec::new();
    let mut out = Vec::new();
    while tokenizer.read_segment(&mut segment, &mut findings).unwrap() {
        out.push(
            (0..=segment.element_count())
                .map(|n| segment.element(n).to_vec())
                .collect(),
        );
    }
    (out, findings, tokenizer.delimiters())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_tokenizer_agrees_with_a_reference_splitter(claims in claims(), d in delimiters(), lb in line_breaks()) {
        let bytes = write_837(&claims, d, lb);
        let (segments, findings, found) = tokenize(&bytes);
        prop_assert_eq!(found, Some(d));
        prop_assert_eq!(segments, reference_split(&bytes, &d));
        prop_assert!(findings.is_empty(), "{:?}", findings);
    }

    #[test]
    fn generated_837s_round_trip(claims in claims(), d in delimiters(), lb in line_breaks()) {
        let figures = read_837(&write_837(&claims, d, lb));
        prop_assert!(figures.findings.is_empty(), "{:?}", figures.findings);
        prop_assert_eq!(&figures.claim_ids, &claims.iter().map(|c| c.id.clone()).collect::<Vec<_>>());
        prop_assert_eq!(figures.service_lines as usize, claims.iter().map(|c| c.lines.len()).sum::<usize>());
        let total: i64 = claims.iter().map(GenClaim::total).sum();
        prop_assert_eq!(figures.clm02_sum.cents(), total);
        prop_assert_eq!(figures.line_charge_sum.cents(), total);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), prefix in any::<bool>()) {
        let mut input = if prefix { write_837(&[GenClaim { id: "C1".into(), lines: vec![100], name: "X".into() }], STANDARD, "\n") } else { Vec::new() };
        input.extend_from_slice(&bytes);
        let _ = read_837(&input);
    }
}

const STANDARD: Delimiters = Delimiters {
    element: b'*',
    component: b':',
    segment: b'~',
    repetition: Some(b'^'),
};

fn sample(claims: usize) -> Vec<u8> {
    let claims: Vec<GenClaim> = (0..claims)
        .map(|i| GenClaim {
            id: format!("CLAIM{i}"),
            lines: vec![12_345, 500],
            name: format!("ZZCANARY{i}"),
        })
        .collect();
    write_837(&claims, STANDARD, "\n")
}

fn codes(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.code).collect()
}

#[test]
fn a_segment_over_the_length_limit_is_skipped_with_a_finding() {
    let text = String::from_utf8(sample(2))
        .unwrap()
        .replace("HI*ABK:J020", &format!("HI*ABK:{}", "J".repeat(5000)));
    let limits = Limits {
        max_segment_bytes: 1024,
        ..Limits::default()
    };
    let mut reader = ClaimReader::with_limits(text.as_bytes(), limits);
    let (mut record, mut findings, mut claims) = (ClaimRecord::default(), Vec::new(), 0);
    while reader.next_claim(&mut record, &mut findings).unwrap() {
        claims += 1;
    }
    assert_eq!(claims, 2, "reading goes on after the long segment");
    let long: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.code == "x12.segment_too_long")
        .collect();
    assert_eq!(long.len(), 2, "{findings:?}");
    assert!(
        long.iter()
            .all(|f| f.severity == Severity::Error && f.position.line > 1)
    );
}

#[test]
fn an_unterminated_run_longer_than_the_limit_is_dropped_in_bounded_memory() {
    let mut bytes = sample(1);
    bytes.extend(std::iter::repeat_n(b'A', 3 * 1024 * 1024));
    let limits = Limits {
        max_segment_bytes: 4096,
        ..Limits::default()
    };
    let mut tokenizer = Tokenizer::with_limits(bytes.as_slice(), limits);
    let (mut segment, mut findings) = (Segment::default(), Vec::new());
    while tokenizer.read_segment(&mut segment, &mut findings).unwrap() {}
    assert!(
        codes(&findings).contains(&"x12.segment_too_long"),
        "{findings:?}"
    );
}

#[test]
fn the_file_size_limit_stops_reading_with_a_finding() {
    let bytes = sample(200);
    let limits = Limits {
        max_file_bytes: 4096,
        ..Limits::default()
    };
    let mut reader = ClaimReader::with_limits(bytes.as_slice(), limits);
    let (mut record, mut findings) = (ClaimRecord::default(), Vec::new());
    let mut claims = 0;
    while reader.next_claim(&mut record, &mut findings).unwrap() {
        claims += 1;
    }
    assert!(claims < 200);
    assert!(
        codes(&findings).contains(&"x12.file_too_large"),
        "{findings:?}"
    );
}

#[test]
fn too_many_elements_is_a_finding() {
    let text = String::from_utf8(sample(1))
        .unwrap()
        .replace("HI*ABK:J020", &format!("HI{}", "*ABK:J020".repeat(40)));
    let limits = Limits {
        max_elements: 30,
        ..Limits::default()
    };
    let mut reader = ClaimReader::with_limits(text.as_bytes(), limits);
    let (mut record, mut findings) = (ClaimRecord::default(), Vec::new());
    while reader.next_claim(&mut record, &mut findings).unwrap() {}
    assert!(
        codes(&findings).contains(&"x12.too_many_elements"),
        "{findings:?}"
    );
}

#[test]
fn a_truncated_file_rejects_only_the_claim_it_cuts() {
    let bytes = sample(3);
    let cut = bytes.len() - 120; // inside the last claim's lines
    let figures = read_837(&bytes[..cut]);
    assert_eq!(figures.claims, 3);
    let cut_off: Vec<&Finding> = figures
        .findings
        .iter()
        .filter(|f| f.code == "x12.claim_cut_off")
        .collect();
    assert_eq!(cut_off.len(), 1, "{:?}", figures.findings);
    assert_eq!(cut_off[0].position.record, 3, "only the last claim");
    assert!(codes(&figures.findings).contains(&"x12.missing_se"));
    assert!(codes(&figures.findings).contains(&"x12.missing_iea"));
}

#[test]
fn envelope_lies_are_reported_with_positions() {
    let text = String::from_utf8(sample(2)).unwrap();
    let lying = text
        .replace("SE*", "SE*9")
        .replace("GE*1*1", "GE*2*7")
        .replace("IEA*1*000000001", "IEA*1*000000002");
    let figures = read_837(lying.as_bytes());
    assert_eq!(figures.claims, 2, "a lying count does not lose claims");
    for code in [
        "x12.se_count",
        "x12.ge_count",
        "x12.ge_control",
        "x12.iea_control",
    ] {
        let f = figures
            .findings
            .iter()
            .find(|f| f.code == code)
            .unwrap_or_else(|| panic!("{code}: {:?}", figures.findings));
        assert!(f.position.segment.is_some() && f.position.byte > 0);
    }
    let st_mismatch = text.replace("ST*837*0001", "ST*837*0002");
    assert!(codes(&read_837(st_mismatch.as_bytes()).findings).contains(&"x12.se_control"));
}

#[test]
fn a_wrong_isa_length_is_read_with_a_warning() {
    let text =
        String::from_utf8(sample(1))
            .unwrap()
            .replacen("SUBMITTER      ", "SUBMITTER     ", 1);
    let figures = read_837(text.as_bytes());
    assert_eq!(figures.claims, 1);
    let f = figures
        .findings
        .iter()
        .find(|f| f.code == "x12.isa_length")
        .unwrap();
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn binary_garbage_and_other_transactions_yield_findings_not_claims() {
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let figures = read_837(&garbage);
    assert_eq!(figures.claims, 0);
    assert_eq!(codes(&figures.findings), ["x12.no_isa"]);
    let an_835 = String::from_utf8(sample(1))
        .unwrap()
        .replace("ST*837", "ST*835");
    let figures = read_837(an_835.as_bytes());
    assert_eq!(figures.claims, 0);
    assert!(codes(&figures.findings).contains(&"x12.not_837"));
    assert!(
        read_837(b"")
            .findings
            .iter()
            .any(|f| f.code == "x12.no_isa")
    );
}

#[test]
fn loops_are_tagged_for_mapping() {
    let bytes = sample(1);
    let mut reader = ClaimReader::new(bytes.as_slice());
    let (mut record, mut findings) = (ClaimRecord::default(), Vec::new());
    assert!(reader.next_claim(&mut record, &mut findings).unwrap());
    assert!(
        record
            .context
            .find("2010AA", b"NM1", Some((1, b"85")))
            .is_some()
    );
    assert_eq!(
        record
            .context
            .find("2010BA", b"NM1", Some((1, b"IL")))
            .unwrap()
            .element(3),
        b"ZZCANARY0"
    );
    assert_eq!(
        record
            .claim
            .find("2300", b"HI", None)
            .unwrap()
            .component(1, 2),
        b"J020"
    );
    let line = record.lines().next().unwrap();
    assert_eq!(
        line.find("2400", b"SV1", None).unwrap().component(1, 2),
        b"99213"
    );
    assert_eq!(
        line.find("2400", b"DTP", Some((1, b"472")))
            .unwrap()
            .element(3),
        b"20240101"
    );
    assert_eq!(record.position.record, 1);
    assert_eq!(record.position.path.as_deref(), Some("2300/CLM"));
    assert!(!reader.next_claim(&mut record, &mut findings).unwrap());
}

#[test]
fn findings_never_contain_the_phi_of_the_records_they_describe() {
    // Every kind of problem at once, on claims whose names are canaries.
    let text = String::from_utf8(sample(5)).unwrap();
    let hostile = text
        .replace("SE*", "SE*9")
        .replace(
            "HI*ABK:J020",
            &format!("HI*ABK:{}", "ZZCANARY".repeat(2000)),
        )
        .replacen("HL*3*1*22*0", "HL*3*ZZCANARY*99*0", 1);
    let limits = Limits {
        max_segment_bytes: 1024,
        ..Limits::default()
    };
    let mut reader = ClaimReader::with_limits(&hostile.as_bytes()[..hostile.len() - 200], limits);
    let (mut record, mut findings) = (ClaimRecord::default(), Vec::new());
    while reader.next_claim(&mut record, &mut findings).unwrap() {}
    assert!(findings.len() >= 5, "{findings:?}");
    for finding in &findings {
        let text = format!("{finding} {finding:?}");
        assert!(!text.contains("ZZCANARY"), "PHI in a finding: {text}");
    }
}

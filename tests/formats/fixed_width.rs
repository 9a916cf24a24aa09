//! Fixed-width (CCLF-style) files through a mapping: positions, record length, limits.

use claimgate::findings::Finding;
use claimgate::mapping::Plan;
use claimgate::pipeline::{MappedClaim, MappingChoice, Summary, preview};

/// A CCLF5-like layout: claim id 1-13, line 14-16, member 17-27, HCPCS 28-32,
/// charge 33-41 (cents, implied decimals), service date 42-49 (YYYYMMDD), POS 50-51.
const MAPPING: &str = r#"
name = "cclf-like"
format = "fixed_width"
records = "lines"
claim_key = { range = [1, 13] }
[fixed_width]
record_length = 51
[claim]
claim_type = { value = "professional" }
source_claim_id = { range = [1, 13], transforms = ["trim"], required = true }
member_id = { range = [17, 27], transforms = ["trim"], required = true }
[line]
line_number = { range = [14, 16], transforms = ["trim"] }
procedure_code = { range = [28, 32] }
charge = { range = [33, 41], transforms = [{ implied_decimals = 2 }], required = true }
service_from = { range = [42, 49] }
place_of_service = { range = [50, 51] }
"#;

fn line(claim: &str, n: u32, member: &str, hcpcs: &str, cents: u64, date: &str) -> String {
    format!("{claim:<13}{n:>3}{member:<11}{hcpcs:<5}{cents:0>9}{date:<8}11\n")
}

fn run(text: &str) -> (Summary, Vec<MappedClaim>, Vec<Finding>) {
    crate::run_plan(Plan::from_toml(MAPPING).unwrap(), text.as_bytes())
}

#[test]
fn lines_are_cut_by_position_and_grouped_into_claims() {
    let text = [
        line("CLM000000001", 1, "MBR001", "99213", 12_550, "20240115"),
        line("CLM000000001", 2, "MBR001", "87070", 2_500, "20240115"),
        "\n".to_owned(),
        line("CLM000000002", 1, "MBR002", "J3490", 100, "20240116"),
    ]
    .concat();
    let (summary, claims, file) = run(&text);
    assert!(file.is_empty(), "{file:?}");
    assert_eq!(
        (
            summary.records,
            summary.claims,
            summary.lines,
            summary.rejected
        ),
        (3, 2, 3, 0)
    );
    assert_eq!(claims[0].claim.source_claim_id, "CLM000000001");
    let charges: Vec<i64> = claims[0]
        .claim
        .lines
        .iter()
        .map(|l| l.charge.unwrap().cents())
        .collect();
    assert_eq!(charges, [12_550, 2_500]);
    assert_eq!(
        claims[1].claim.lines[0]
            .procedure_code
            .as_ref()
            .unwrap()
            .as_str(),
        "J3490"
    );
    assert_eq!(
        claims[1].claim.lines[0].service_from.unwrap().to_string(),
        "2024-01-16"
    );
    assert_eq!(summary.line_charge_cents, 15_150);
}

#[test]
fn a_line_of_the_wrong_length_rejects_its_claim_with_its_position() {
    let mut short = line("CLM000000009", 1, "MBR009", "99213", 100, "20240115");
    short.truncate(short.len() - 4);
    short.push('\n');
    let text = [
        line("CLM000000001", 1, "MBR001", "99213", 100, "20240115"),
        short,
    ]
    .concat();
    let (summary, claims, _) = run(&text);
    assert_eq!((summary.accepted, summary.rejected), (1, 1));
    let f = claims[1]
        .findings
        .iter()
        .find(|f| f.code == "fixed.record_length")
        .unwrap();
    assert_eq!((f.position.line, f.position.record), (2, 2));
}

#[test]
fn crlf_multibyte_text_and_invalid_utf8() {
    let text =
        line("CLM000000001", 1, "MBR\u{e9}01", "99213", 100, "20240115").replace('\n', "\r\n");
    let (summary, _, _) = run(&text);
    assert_eq!(
        summary.rejected, 1,
        "é is two UTF-8 bytes, so the record is 52 bytes long"
    );
    let mut bytes = line("CLM000000001", 1, "MBR001", "99213", 100, "20240115").into_bytes();
    bytes[18] = 0xff;
    let plan = Plan::from_toml(MAPPING).unwrap();
    let mut findings = Vec::new();
    preview(
        &MappingChoice::One(Box::new(plan)),
        bytes.as_slice(),
        &mut |c| findings.extend(c.findings.clone()),
        &mut |_| {},
    )
    .unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.code == "fixed.invalid_utf8"
                && f.position.path.as_deref() == Some("bytes 17-27")),
        "{findings:?}"
    );
}

#[test]
fn an_over_long_line_is_skipped_in_bounded_memory() {
    let mut text = line("CLM000000001", 1, "MBR001", "99213", 100, "20240115");
    text.push_str(&"Z".repeat(3 * 1024 * 1024));
    text.push('\n');
    text.push_str(&line("CLM000000002", 1, "MBR002", "99213", 100, "20240115"));
    let (summary, claims, _) = run(&text);
    assert_eq!(summary.records, 3);
    assert_eq!(summary.accepted, 2);
    assert!(
        claims
            .iter()
            .any(|c| c.findings.iter().any(|f| f.code == "fixed.line_too_long"))
    );
}

#[test]
fn ranges_belong_to_fixed_width_mappings() {
    let bad = MAPPING.replace("format = \"fixed_width\"", "format = \"csv\"");
    let problems = Plan::from_toml(&bad).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.code == "wrong_format" && p.path.ends_with(".range")),
        "{problems:?}"
    );
    let reversed = MAPPING.replace("range = [28, 32]", "range = [32, 28]");
    let problems = Plan::from_toml(&reversed).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.code == "bad_range" && p.path == "line.procedure_code.range"),
        "{problems:?}"
    );
}

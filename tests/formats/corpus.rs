//! Every 837 in the public corpus, read by claimgate, against `expected.json`: the figures
//! on which independent X12 tools (pyx12, linuxforhealth-x12, a naive counter) agree.

use std::collections::BTreeMap;
use std::path::PathBuf;

use claimgate::claims::Money;
use claimgate::formats::x12::{ClaimReader, ClaimRecord};
use claimgate::formats::{Finding, Severity};

pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CLAIMGATE_TEST_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("expected.json").exists() {
        return Some(dir);
    }
    let required = std::env::var("CLAIMGATE_TEST_REQUIRE_CORPUS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "the corpus is required (CLAIMGATE_TEST_REQUIRE_CORPUS=1) but {} has no expected.json",
        dir.display()
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED corpus tests: no corpus at {} (set CLAIMGATE_TEST_CORPUS)",
        dir.display()
    );
    None
}

/// What claimgate reads from one file.
#[derive(Debug, Default)]
pub struct Figures {
    pub claims: u64,
    pub service_lines: u64,
    pub clm02_sum: Money,
    pub line_charge_sum: Money,
    pub claim_ids: Vec<String>,
    pub findings: Vec<Finding>,
}

pub fn read_837(bytes: &[u8]) -> Figures {
    let mut reader = ClaimReader::new(bytes);
    let mut record = ClaimRecord::default();
    let mut figures = Figures::default();
    while reader
        .next_claim(&mut record, &mut figures.findings)
        .unwrap()
    {
        figures.claims += 1;
        let clm = record.claim.find("2300", b"CLM", None).unwrap();
        figures
            .claim_ids
            .push(String::from_utf8_lossy(clm.element(1)).into_owned());
        let amount =
            |bytes: &[u8]| Money::parse_decimal(std::str::from_utf8(bytes).unwrap_or("x")).ok();
        if let Some(charge) = amount(clm.element(2)) {
            figures.clm02_sum = figures.clm02_sum + charge;
        }
        for line in record.lines() {
            figures.service_lines += 1;
            let charge = line
                .find("2400", b"SV1", None)
                .map(|s| s.element(2))
                .or_else(|| line.find("2400", b"SV2", None).map(|s| s.element(3)));
            if let Some(charge) = charge.and_then(amount) {
                figures.line_charge_sum = figures.line_charge_sum + charge;
            }
        }
    }
    figures
}

fn money(value: &serde_json::Value) -> Money {
    Money::parse_decimal(value.as_str().unwrap()).unwrap()
}

#[test]
fn every_837_in_the_corpus_matches_the_independent_tools() {
    let Some(dir) = corpus_dir() else { return };
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let files = expected["files"].as_object().unwrap();
    let mut compared = 0;
    let mut mismatches = Vec::new();
    let mut totals = BTreeMap::new();
    for (name, entry) in files {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let figures = read_837(&bytes);
        let want = &entry["expected"];
        if entry["kind"] == "835" {
            assert_eq!(figures.claims, 0, "{name}: an 835 holds no claims");
            assert!(
                figures.findings.iter().any(|f| f.code == "x12.not_837"),
                "{name}: the 835 is reported"
            );
            continue;
        }
        let Some(claims) = want.get("claims") else {
            continue;
        };
        compared += 1;
        let mut check = |field: &str, ok: bool, got: String, expected: String| {
            if !ok {
                mismatches.push(format!(
                    "{name}: {field}: claimgate {got}, tools {expected}"
                ));
            }
        };
        check(
            "claims",
            figures.claims == claims.as_u64().unwrap(),
            figures.claims.to_string(),
            claims.to_string(),
        );
        if let Some(lines) = want.get("service_lines") {
            check(
                "service_lines",
                figures.service_lines == lines.as_u64().unwrap(),
                figures.service_lines.to_string(),
                lines.to_string(),
            );
        }
        if let Some(sum) = want.get("clm02_sum") {
            check(
                "clm02_sum",
                figures.clm02_sum == money(sum),
                figures.clm02_sum.to_string(),
                sum.to_string(),
            );
        }
        if let Some(sum) = want.get("line_charge_sum") {
            check(
                "line_charge_sum",
                figures.line_charge_sum == money(sum),
                figures.line_charge_sum.to_string(),
                sum.to_string(),
            );
        }
        if let Some(ids) = want.get("claim_ids") {
            let mut want_ids: Vec<String> = ids
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let mut got_ids = figures.claim_ids.clone();
            want_ids.sort();
            got_ids.sort();
            check(
                "claim_ids",
                got_ids == want_ids,
                format!("{got_ids:?}"),
                format!("{want_ids:?}"),
            );
        }
        *totals.entry("claims").or_insert(0) += figures.claims;
        *totals.entry("service_lines").or_insert(0) += figures.service_lines;
        *totals.entry("error findings").or_insert(0) += figures
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count() as u64;
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        compared >= 80,
        "only {compared} files had figures to compare"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "corpus: {compared} 837 files agree with expected.json; totals {totals:?}"
    );
}

/// Files on which the independent tools disagree: claimgate's reading is pinned here, and
/// the reasons are in the closing note.
#[test]
fn disputed_files_are_read_as_the_bytes_say_with_findings() {
    let Some(dir) = corpus_dir() else { return };
    // A 105-byte ISA: pyx12 refuses the file, linuxforhealth returns 0 claims silently,
    // the naive counter reads 2 claims. The delimiters are unambiguous by counting the
    // sixteen element separators, so claimgate reads both claims and warns.
    let figures = read_837(
        &std::fs::read(dir.join("imsweb-x12-parser/837_5010/x12_bad_first_line.txt")).unwrap(),
    );
    assert_eq!((figures.claims, figures.service_lines), (2, 2));
    assert_eq!(figures.claim_ids, ["A37YH556", "A37YH667"]);
    assert_eq!(
        (figures.clm02_sum.cents(), figures.line_charge_sum.cents()),
        (100_000, 2_450)
    );
    assert!(
        figures
            .findings
            .iter()
            .any(|f| f.code == "x12.isa_length" && f.severity == Severity::Warning)
    );
    // An SV1 before any LX: the naive counter adds its charge to the lines (61.25), pyx12
    // does not (36.75). It is no service line, so claimgate agrees with pyx12, and rejects
    // the claim with a finding instead of letting the charge vanish unremarked.
    let path = dir.join("imsweb-x12-parser/837_5010/x12_missing_required_loops_mult_repeats.txt");
    let figures = read_837(&std::fs::read(path).unwrap());
    assert_eq!(figures.line_charge_sum.cents(), 3_675);
    let outside: Vec<&Finding> = figures
        .findings
        .iter()
        .filter(|f| f.code == "x12.service_outside_line")
        .collect();
    assert!(
        !outside.is_empty()
            && outside
                .iter()
                .all(|f| f.position.record > 0 && f.severity == Severity::Error)
    );
    // No ISA at all: nothing is read, and the error says so at byte 0.
    let figures = read_837(
        &std::fs::read(dir.join("imsweb-x12-parser/837_5010/x12_no_isa_line.txt")).unwrap(),
    );
    assert_eq!(figures.claims, 0);
    assert!(
        figures
            .findings
            .iter()
            .any(|f| f.code == "x12.no_isa" && f.position.byte == 0),
        "{:?}",
        figures.findings
    );
}

fn builtin_x12() -> claimgate::pipeline::MappingChoice {
    use claimgate::mapping::{Plan, builtin::builtin};
    claimgate::pipeline::MappingChoice::X12ByVersion {
        professional: Box::new(Plan::from_toml(builtin("x12-837p").unwrap()).unwrap()),
        institutional: Box::new(Plan::from_toml(builtin("x12-837i").unwrap()).unwrap()),
    }
}

/// The same figures through the whole read → map → validate preview with the built-in
/// mappings: nothing read is lost between the reader and the summary.
#[test]
fn every_837_in_the_corpus_previews_with_the_builtin_mappings() {
    let Some(dir) = corpus_dir() else { return };
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mapping = builtin_x12();
    let mut codes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut accepted, mut rejected) = (0, 0);
    let mut clean = Vec::new();
    for (name, entry) in expected["files"].as_object().unwrap() {
        let want = &entry["expected"];
        let Some(claims) = want.get("claims") else {
            continue;
        };
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let summary = claimgate::pipeline::preview(
            &mapping,
            bytes.as_slice(),
            &mut |c| {
                for f in &c.findings {
                    *codes.entry(f.code).or_default() += 1;
                }
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(summary.claims, claims.as_u64().unwrap(), "{name}");
        assert_eq!(
            summary.records,
            summary.accepted + summary.rejected,
            "{name}: accounting"
        );
        if let Some(lines) = want.get("service_lines") {
            assert_eq!(summary.lines, lines.as_u64().unwrap(), "{name}");
        }
        if let Some(sum) = want.get("clm02_sum") {
            assert_eq!(summary.total_charge_cents, money(sum).cents(), "{name}");
        }
        if let Some(sum) = want.get("line_charge_sum") {
            assert_eq!(summary.line_charge_cents, money(sum).cents(), "{name}");
        }
        accepted += summary.accepted;
        rejected += summary.rejected;
        if summary.rejected == 0 {
            clean.push(name.clone());
        }
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "corpus preview: {accepted} accepted, {rejected} rejected; findings by code {codes:?}"
    );
    // Most corpus claims carry the placeholder NPI 1234567890, whose check digit is wrong,
    // or deliberate errors (imsweb's test files); these files are clean and must pass.
    let expected_clean = [
        "linuxforhealth-x12/837_005010X222A2/demo.drug.example10.1.837",
        "linuxforhealth-x12/837_005010X222A2/demo.drug.example10.2.837",
        "linuxforhealth-x12/837_005010X222A2/demo.drug.example10.3.837",
        "linuxforhealth-x12/837_005010X222A2/demo.example1.837",
        "linuxforhealth-x12/837_005010X222A2/demo.example8.837",
        "stupidedi/X222-HC837/case/1.edi",
        "stupidedi/X222A1-HC837/pass/drug-administered-in-the-physician-office.edi",
        "stupidedi/X222A1-HC837/pass/wheelchair.edi",
    ];
    for file in expected_clean {
        assert!(
            clean.iter().any(|c| c == file),
            "{file} should be accepted entirely"
        );
    }
    assert!(
        codes.get("claim.charge_sum").is_some_and(|n| *n > 1000),
        "imsweb's unbalanced claims are caught"
    );
}

fn preview_file(
    mapping: &str,
    file: &std::path::Path,
) -> (
    claimgate::pipeline::Summary,
    Vec<claimgate::pipeline::MappedClaim>,
    Vec<Finding>,
) {
    let toml = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("schemas")
            .join(mapping),
    )
    .unwrap();
    let plan =
        claimgate::mapping::Plan::from_toml(&toml).unwrap_or_else(|p| panic!("{mapping}: {p:?}"));
    crate::run_plan(plan, &std::fs::read(file).unwrap())
}

#[test]
fn desynpuf_carrier_files_match_their_figures() {
    let Some(dir) = corpus_dir() else { return };
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (name, want) in expected["non_x12"].as_object().unwrap() {
        if want["layout"] != "desynpuf_carrier" {
            continue;
        }
        checked += 1;
        let (summary, claims, file_findings) =
            preview_file("examples/desynpuf-carrier.toml", &dir.join(name));
        assert!(file_findings.is_empty(), "{name}: {file_findings:?}");
        assert_eq!(summary.records, want["rows"].as_u64().unwrap(), "{name}");
        assert_eq!(
            summary.claims,
            want["distinct_claims"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            summary.lines,
            want["nonempty_hcpcs"].as_u64().unwrap(),
            "{name}: one line per filled HCPCS slot"
        );
        let ids: Vec<&str> = claims
            .iter()
            .map(|c| c.claim.source_claim_id.as_str())
            .collect();
        let want_ids: Vec<&str> = want["claim_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(ids, want_ids, "{name}");
        let paid: Money = claims
            .iter()
            .flat_map(|c| &c.claim.lines)
            .filter_map(|l| l.paid)
            .sum();
        let allowed: Money = claims
            .iter()
            .flat_map(|c| &c.claim.lines)
            .filter_map(|l| l.allowed)
            .sum();
        assert_eq!(paid, money(&want["line_nch_pmt_sum"]), "{name}");
        assert_eq!(allowed, money(&want["line_alowd_chrg_sum"]), "{name}");
        assert!(claims.iter().all(|c| {
            c.claim
                .diagnoses
                .iter()
                .all(|d| d.code.system() == "icd-9-cm")
        }));
        // The layout has no place of service, and its synthetic NPIs fail the check digit.
        for c in &claims {
            assert!(
                c.findings
                    .iter()
                    .any(|f| f.code == "claim.place_of_service_missing"),
                "{name}"
            );
            for f in &c.findings {
                let npi = f.code == "mapping.invalid_value" && f.message.contains("rendering_npi");
                assert!(
                    npi || f.code == "claim.place_of_service_missing",
                    "{name}: unexpected {f}"
                );
            }
        }
    }
    assert_eq!(checked, 3);
}

#[test]
fn synthea_transactions_group_charge_rows_into_claims() {
    let Some(dir) = corpus_dir() else { return };
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let name = "synthea-dbt-synthea/claims_transactions.csv";
    let want = &expected["non_x12"][name];
    let (summary, claims, file_findings) =
        preview_file("examples/synthea-transactions.toml", &dir.join(name));
    assert!(file_findings.is_empty(), "{file_findings:?}");
    assert_eq!(summary.records, want["rows"].as_u64().unwrap());
    assert_eq!(
        summary.skipped,
        want["rows"].as_u64().unwrap() - want["charge_lines"].as_u64().unwrap()
    );
    assert_eq!(
        summary.records,
        summary.accepted + summary.rejected + summary.skipped
    );
    assert_eq!(summary.lines, want["charge_lines"].as_u64().unwrap());
    assert_eq!(
        summary.line_charge_cents,
        money(&want["charge_amount_sum"]).cents()
    );
    // 15 claims list their charge rows in two places; streaming cannot join them, so the
    // later part is rejected with csv.claim_key_repeated and nothing is lost or merged.
    let mut ids: Vec<&str> = claims
        .iter()
        .map(|c| c.claim.source_claim_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, want["distinct_claims"].as_u64().unwrap());
    let repeated = claims
        .iter()
        .filter(|c| {
            c.findings
                .iter()
                .any(|f| f.code == "csv.claim_key_repeated")
        })
        .count();
    assert_eq!(repeated, 15);
    assert_eq!(summary.claims, 1267 + 15);
}

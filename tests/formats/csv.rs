//! The delimited reader and CSV mappings on hand-made, generated and hostile inputs.

use claimgate::findings::Finding;
use claimgate::formats::delimited::{
    DelimitedLimits, DelimitedOptions, DelimitedReader, Row, TextEncoding,
};
use claimgate::mapping::Plan;
use claimgate::pipeline::{MappedClaim, Summary};
use proptest::prelude::*;

fn read_all(
    bytes: &[u8],
    options: DelimitedOptions,
) -> (Vec<Vec<String>>, Vec<bool>, Vec<Finding>) {
    let mut reader = DelimitedReader::new(bytes, options);
    let (mut row, mut findings, mut rows, mut broken) =
        (Row::default(), Vec::new(), Vec::new(), Vec::new());
    while reader.read_row(&mut row, &mut findings).unwrap() {
        rows.push(
            (0..row.len())
                .map(|i| row.get(i).unwrap().to_owned())
                .collect(),
        );
        broken.push(row.broken);
    }
    (rows, broken, findings)
}

fn codes(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.code).collect()
}

#[test]
fn quoting_crlf_bom_and_a_header() {
    let text = "\u{feff}A,B,C\r\n1,\"x, \"\"quoted\"\"\",3\r\n\r\n4,\"multi\nline\",6\r\n";
    let (rows, broken, findings) = read_all(text.as_bytes(), DelimitedOptions::default());
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(
        rows,
        [
            vec!["1", "x, \"quoted\"", "3"],
            vec!["4", "multi\nline", "6"]
        ]
    );
    assert_eq!(broken, [false, false]);
}

#[test]
fn other_delimiters_and_no_header() {
    let options = DelimitedOptions {
        delimiter: b'|',
        quote: b'\'',
        header: false,
        ..DelimitedOptions::default()
    };
    let (rows, _, findings) = read_all(b"a|'b|c'|d\ne|f|g\n", options);
    assert!(findings.is_empty());
    assert_eq!(rows, [vec!["a", "b|c", "d"], vec!["e", "f", "g"]]);
}

#[test]
fn rows_with_too_many_or_too_few_columns_are_broken_and_positioned() {
    let (rows, broken, findings) = read_all(
        b"A,B,C\n1,2,3\n1,2\n1,2,3,4\n7,8,9\n",
        DelimitedOptions::default(),
    );
    assert_eq!(rows.len(), 4, "every row is still returned");
    assert_eq!(broken, [false, true, true, false]);
    assert_eq!(codes(&findings), ["csv.column_count", "csv.column_count"]);
    assert_eq!(
        (findings[0].position.record, findings[0].position.line),
        (2, 3)
    );
    assert_eq!(
        (findings[1].position.record, findings[1].position.line),
        (3, 4)
    );
}

#[test]
fn an_unterminated_quote_is_reported() {
    let (rows, broken, findings) = read_all(
        b"A,B\n1,2\n3,\"never closed\n5,6\n",
        DelimitedOptions::default(),
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(broken, [false, true]);
    assert!(
        codes(&findings).contains(&"csv.unbalanced_quote"),
        "{findings:?}"
    );
}

#[test]
fn invalid_utf8_under_a_utf8_mapping_breaks_only_its_row() {
    let (rows, broken, findings) = read_all(b"A,B\n1,caf\xe9\n2,ok\n", DelimitedOptions::default());
    assert_eq!(broken, [true, false]);
    assert_eq!(rows[1], ["2", "ok"]);
    let f = findings
        .iter()
        .find(|f| f.code == "csv.invalid_utf8")
        .unwrap();
    assert_eq!(
        (f.position.record, f.position.path.as_deref()),
        (1, Some("field 2"))
    );
}

#[test]
fn windows_1252_and_latin1_decode() {
    let bytes = b"A\n\x93caf\xe9\x94\n";
    let w = DelimitedOptions {
        encoding: TextEncoding::Windows1252,
        ..DelimitedOptions::default()
    };
    assert_eq!(read_all(bytes, w).0, [vec!["\u{201c}caf\u{e9}\u{201d}"]]);
    let l = DelimitedOptions {
        encoding: TextEncoding::Latin1,
        ..DelimitedOptions::default()
    };
    assert_eq!(read_all(bytes, l).0, [vec!["\u{93}caf\u{e9}\u{94}"]]);
}

#[test]
fn each_limit_is_crossed_with_a_finding_and_reading_goes_on() {
    let limits = DelimitedLimits {
        max_record_bytes: 1024,
        max_field_bytes: 100,
        max_fields: 16,
    };
    let options = DelimitedOptions {
        header: false,
        limits,
        ..DelimitedOptions::default()
    };
    let long_field = format!("a,{}\nb,ok\n", "x".repeat(200));
    let (rows, broken, findings) = read_all(long_field.as_bytes(), options);
    assert_eq!((rows.len(), broken), (2, vec![true, false]));
    assert_eq!(codes(&findings), ["csv.field_too_long"]);
    // An unterminated quote at the start swallows everything: bounded by the record limit.
    let mut swallow = b"\"".to_vec();
    swallow.extend(std::iter::repeat_n(b'y', 5 * 1024 * 1024));
    let (rows, _, findings) = read_all(&swallow, options);
    assert_eq!(rows.len(), 1);
    assert!(
        codes(&findings).contains(&"csv.record_too_long"),
        "{findings:?}"
    );
    let wide = format!("{}\nz\n", vec!["f"; 40].join(","));
    let (rows, broken, findings) = read_all(wide.as_bytes(), options);
    assert_eq!((rows.len(), broken), (2, vec![true, false]));
    assert_eq!(codes(&findings), ["csv.too_many_fields"]);
    let wider = format!("{}\nz\n", vec!["f"; 5000].join(","));
    let (_, _, findings) = read_all(wider.as_bytes(), options);
    assert_eq!(
        codes(&findings),
        ["csv.record_too_long"],
        "past the ends buffer's limit too"
    );
}

const LINES_MAPPING: &str = r#"
name = "test-lines"
format = "csv"
records = "lines"
claim_key = { column = "CLAIM" }
[claim]
source_claim_id = { column = "CLAIM", required = true }
claim_type = { value = "professional" }
member_id = { column = "MEMBER", required = true }
patient_last_name = { column = "NAME" }
place_of_service = { value = "11" }
total_charge = { column = "TOTAL" }
birth_date = { column = "DOB", transforms = [{ date = "MM/DD/YYYY" }] }
diagnoses = { column = "DX{n}", slots = 2 }
[line]
procedure_code = { column = "HCPCS", transforms = ["trim", "upper"] }
charge = { column = "CHARGE", required = true }
service_from = { column = "DOS", transforms = [{ date = "MM/DD/YYYY" }] }
"#;

fn run(mapping: &str, csv: &str) -> (Summary, Vec<MappedClaim>, Vec<Finding>) {
    crate::run_plan(Plan::from_toml(mapping).unwrap(), csv.as_bytes())
}

#[derive(Debug, Clone)]
struct GenClaim {
    id: String,
    lines: Vec<(String, i64)>,
}

fn generated_csv(claims: &[GenClaim]) -> String {
    let mut out = String::from("CLAIM,MEMBER,NAME,TOTAL,DOB,DX1,DX2,HCPCS,CHARGE,DOS\n");
    for c in claims {
        let total: i64 = c.lines.iter().map(|l| l.1).sum();
        for (hcpcs, cents) in &c.lines {
            out.push_str(&format!(
                "{},M-{},\"ZZCANARY, {}\",{}.{:02},02/29/1960,J020,,{},{}.{:02},01/15/2024\n",
                c.id,
                c.id,
                c.id,
                total / 100,
                total % 100,
                hcpcs,
                cents / 100,
                cents % 100
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn generated_line_files_round_trip(claims in prop::collection::btree_map("[A-Z][A-Z0-9]{0,11}", prop::collection::vec(("[A-Z][0-9]{4}|[0-9]{5}", 0i64..5_000_000), 1..5), 1..20)) {
        let claims: Vec<GenClaim> = claims.into_iter().map(|(id, lines)| GenClaim { id, lines }).collect();
        let (summary, mapped, file) = run(LINES_MAPPING, &generated_csv(&claims));
        prop_assert!(file.is_empty());
        prop_assert_eq!(summary.claims as usize, claims.len());
        prop_assert_eq!(summary.rejected, 0, "{:?}", mapped.iter().flat_map(|c| &c.findings).collect::<Vec<_>>());
        for (want, got) in claims.iter().zip(&mapped) {
            prop_assert_eq!(&got.claim.source_claim_id, &want.id);
            let charges: Vec<i64> = got.claim.lines.iter().map(|l| l.charge.unwrap().cents()).collect();
            prop_assert_eq!(charges, want.lines.iter().map(|l| l.1).collect::<Vec<_>>());
            let codes: Vec<&str> = got.claim.lines.iter().map(|l| l.procedure_code.as_ref().unwrap().as_str()).collect();
            prop_assert_eq!(codes, want.lines.iter().map(|l| l.0.as_str()).collect::<Vec<_>>());
            prop_assert_eq!(got.claim.birth_date.expose().map(|d| d.to_string()), Some("1960-02-29".to_owned()));
        }
    }
}

#[test]
fn a_mapping_that_names_a_missing_column_rejects_every_claim_and_says_which() {
    let mapping = LINES_MAPPING.replace("column = \"MEMBER\"", "column = \"MEMBER_ID\"");
    let csv = generated_csv(&[GenClaim {
        id: "C1".into(),
        lines: vec![("99213".into(), 100)],
    }]);
    let (summary, claims, file) = run(&mapping, &csv);
    let f = file
        .iter()
        .find(|f| f.code == "mapping.missing_column")
        .unwrap();
    assert!(
        f.message.contains("MEMBER_ID") && f.position.line == 1,
        "{f}"
    );
    assert_eq!((summary.records, summary.rejected), (1, 1));
    assert!(
        claims[0]
            .findings
            .iter()
            .any(|f| f.code == "mapping.unusable")
    );
}

#[test]
fn bad_rows_reject_their_claim_only_and_findings_carry_no_phi() {
    let csv = "CLAIM,MEMBER,NAME,TOTAL,DOB,DX1,DX2,HCPCS,CHARGE,DOS\n\
C1,M1,ZZCANARY ONE,1.00,02/30/1960,ZZCANARY,,99213,1.00,01/15/2024\n\
C2,M2,ZZCANARY TWO,1.00,01/01/1960,J020,,99213,1.00,01/15/2024,ZZCANARY-EXTRA\n\
C3,M3,ZZCANARY THREE,2.00,01/01/1960,J020,,ZZCANARY,1.50,13/45/2024\n\
C4,M4,ZZCANARY FOUR,1.00,01/01/1960,J020,,99213,1.00,01/15/2024\n";
    let (summary, claims, _) = run(LINES_MAPPING, csv);
    assert_eq!(
        (summary.records, summary.accepted, summary.rejected),
        (4, 1, 3)
    );
    assert!(claims[3].accepted);
    let all: Vec<&Finding> = claims.iter().flat_map(|c| &c.findings).collect();
    for code in [
        "mapping.invalid_value",
        "csv.column_count",
        "claim.charge_sum",
    ] {
        assert!(all.iter().any(|f| f.code == code), "{code}: {all:?}");
    }
    for f in all {
        let text = format!("{f} {f:?}");
        assert!(!text.contains("ZZCANARY"), "PHI in a finding: {text}");
    }
}

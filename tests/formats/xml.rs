//! XML claims: mapping by path, entities, and the attack files of SECURITY-BAR §4.3.

use claimgate::findings::Finding;
use claimgate::mapping::Plan;
use claimgate::pipeline::{MappedClaim, Summary};

const MAPPING: &str = r#"
name = "xml-claims"
format = "xml"
[xml]
record = "Batch/Claims/Claim"
line = "Lines/Line"
[claim]
claim_type = { value = "professional" }
source_claim_id = { path = "@id", required = true }
member_id = { path = "Member/Id", required = true }
patient_last_name = { path = "Member/Name" }
place_of_service = { path = "Pos" }
total_charge = { path = "Total" }
diagnoses = { path = "Dx" }
[line]
line_number = { path = "@n" }
procedure_code = { path = "Code" }
charge = { path = "Charge", required = true }
"#;

fn claim_xml(id: &str, name: &str, lines: &[(&str, &str)]) -> String {
    let total: f64 = lines
        .iter()
        .map(|l| l.1.parse::<f64>().unwrap_or(0.0))
        .sum();
    let lines: String = lines
        .iter()
        .enumerate()
        .map(|(i, (code, charge))| {
            format!(
                "<Line n=\"{}\"><Code>{code}</Code><Charge>{charge}</Charge></Line>",
                i + 1
            )
        })
        .collect();
    format!(
        "<Claim id=\"{id}\"><Member><Id>M-{id}</Id><Name>{name}</Name></Member><Pos>11</Pos><Total>{total:.2}</Total><Dx>J02.0</Dx><Dx>E11.9</Dx><Lines>{lines}</Lines></Claim>"
    )
}

fn doc(claims: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Batch><Header sender=\"x\"/><Claims>\n{}\n</Claims></Batch>\n",
        claims.join("\n")
    )
}

fn run(text: &[u8]) -> (Summary, Vec<MappedClaim>, Vec<Finding>) {
    crate::run_plan(Plan::from_toml(MAPPING).unwrap(), text)
}

#[test]
fn claims_are_read_by_path_with_attributes_entities_and_cdata() {
    let first = claim_xml(
        "C1",
        "SMITH &amp; JONES &#x41;",
        &[("99213", "100.50"), ("87070", "25.00")],
    );
    let second = claim_xml("C2", "<![CDATA[O'BRIEN <JR>]]>", &[("J3490", "10")]);
    let (summary, claims, file) = run(doc(&[first, second]).as_bytes());
    assert!(file.is_empty(), "{file:?}");
    assert_eq!(
        (summary.claims, summary.lines, summary.rejected),
        (2, 3, 0),
        "{:?}",
        claims.iter().map(|c| &c.findings).collect::<Vec<_>>()
    );
    assert_eq!(claims[0].claim.source_claim_id, "C1");
    assert_eq!(
        claims[0].claim.patient_last_name.expose().as_deref(),
        Some("SMITH & JONES A"),
        "text split by entities is joined"
    );
    assert_eq!(
        claims[1].claim.patient_last_name.expose().as_deref(),
        Some("O'BRIEN <JR>")
    );
    assert_eq!(claims[0].claim.diagnoses.len(), 2);
    assert_eq!(claims[0].claim.lines[1].charge.unwrap().cents(), 2500);
    assert_eq!(claims[0].claim.lines[1].line_number, 2);
    assert_eq!(summary.total_charge_cents, 13_550);
}

#[test]
fn billion_laughs_and_xxe_are_refused_at_the_doctype() {
    let mut laughs =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE Batch [\n<!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    laughs.push_str("]>\n<Batch><Claims><Claim id=\"C1\"><Member><Id>&lol9;</Id></Member></Claim></Claims></Batch>\n");
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE Batch [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
<Batch><Claims><Claim id=\"C1\"><Member><Id>&xxe;</Id></Member></Claim></Claims></Batch>";
    let param = "<?xml version=\"1.0\"?><!DOCTYPE Batch [<!ENTITY % p SYSTEM \"http://127.0.0.1:9/evil.dtd\"> %p;]><Batch/>";
    for attack in [laughs.as_str(), xxe, param] {
        let (summary, claims, file) = run(attack.as_bytes());
        assert_eq!(summary.records, 0);
        assert!(claims.is_empty());
        assert_eq!(
            file.iter().map(|f| f.code).collect::<Vec<_>>(),
            ["xml.doctype"]
        );
        assert!(
            !format!("{file:?}").contains("root:"),
            "nothing of /etc/passwd"
        );
    }
}

#[test]
fn an_undeclared_entity_rejects_its_record_only() {
    let bad = claim_xml("C1", "&unknown;", &[("99213", "1")]);
    let good = claim_xml("C2", "X", &[("99213", "1")]);
    let (summary, claims, _) = run(doc(&[bad, good]).as_bytes());
    assert_eq!((summary.accepted, summary.rejected), (1, 1));
    assert!(
        claims[0].findings.iter().any(|f| f.code == "xml.entity"),
        "{:?}",
        claims[0].findings
    );
}

#[test]
fn deep_nesting_stops_with_a_finding_in_bounded_memory() {
    let depth = 100_000;
    let text = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    let (summary, _, file) = run(text.as_bytes());
    assert_eq!(summary.records, 0);
    assert_eq!(
        file.iter().map(|f| f.code).collect::<Vec<_>>(),
        ["xml.too_deep"]
    );
}

#[test]
fn malformed_and_truncated_documents_keep_what_came_before() {
    let good = claim_xml("C1", "X", &[("99213", "1")]);
    let broken = format!(
        "{}</Nope></Claims></Batch>",
        doc(std::slice::from_ref(&good))
            .replace("</Claims></Batch>\n", "<Claim id=\"C2\"><Member>")
    );
    let (summary, claims, _) = run(broken.as_bytes());
    assert_eq!(
        (summary.records, summary.accepted, summary.rejected),
        (2, 1, 1)
    );
    assert!(
        claims[1]
            .findings
            .iter()
            .any(|f| f.code == "xml.malformed" && f.position.byte > 0)
    );
    let truncated = doc(&[good.clone(), good]);
    let cut = &truncated.as_bytes()[..truncated.len() - 60];
    let (summary, claims, _) = run(cut);
    assert_eq!((summary.accepted, summary.rejected), (1, 1));
    assert!(claims[1].findings.iter().any(|f| f.code == "xml.truncated"));
}

#[test]
fn findings_carry_no_phi_and_the_record_size_is_bounded() {
    let huge = claim_xml("C1", &"ZZCANARY".repeat(200_000), &[("99213", "1")]);
    let canary = claim_xml("C2", "ZZCANARY &bogus;", &[("ZZCANARY", "ZZCANARY")]);
    let (summary, claims, file) = run(doc(&[huge, canary]).as_bytes());
    assert_eq!(summary.rejected, 2);
    assert!(
        claims[0]
            .findings
            .iter()
            .any(|f| f.code == "xml.record_too_large")
    );
    for f in claims.iter().flat_map(|c| &c.findings).chain(&file) {
        assert!(!format!("{f} {f:?}").contains("ZZCANARY"), "PHI in {f}");
    }
}

#[test]
fn xml_mappings_are_checked() {
    let no_options = MAPPING.replace(
        "[xml]\nrecord = \"Batch/Claims/Claim\"\nline = \"Lines/Line\"\n",
        "",
    );
    assert!(
        Plan::from_toml(&no_options)
            .unwrap_err()
            .iter()
            .any(|p| p.path == "xml" && p.code == "required_field")
    );
    let bad_path = MAPPING.replace("path = \"Member/Id\"", "path = \"Member//Id\"");
    assert!(
        Plan::from_toml(&bad_path)
            .unwrap_err()
            .iter()
            .any(|p| p.path == "claim.member_id.path")
    );
    let csv = MAPPING.replace("format = \"xml\"", "format = \"csv\"");
    assert!(
        Plan::from_toml(&csv)
            .unwrap_err()
            .iter()
            .any(|p| p.code == "wrong_format")
    );
}

#[test]
fn a_mapping_outside_x12_must_state_the_claim_type() {
    let silent = MAPPING.replace("claim_type = { value = \"professional\" }\n", "");
    let problems = Plan::from_toml(&silent).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.path == "claim.claim_type" && p.code == "required_field"),
        "{problems:?}"
    );
}

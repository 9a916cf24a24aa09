//! FHIR R4 JSON: the corpus EOBs against expected.json, Bundles, NDJSON, hostile input.

use std::path::PathBuf;

use claimgate::findings::Finding;
use claimgate::mapping::Plan;
use claimgate::pipeline::{MappedClaim, Summary};

use crate::corpus::corpus_dir;

fn mapping(ndjson: bool) -> Plan {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/examples/fhir-eob.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let text = if ndjson {
        text.replace("[fhir]\n", "[fhir]\nndjson = true\n")
    } else {
        text
    };
    Plan::from_toml(&text).unwrap()
}

fn run(plan: Plan, bytes: &[u8]) -> (Summary, Vec<MappedClaim>, Vec<Finding>) {
    crate::run_plan(plan, bytes)
}

#[test]
fn corpus_eobs_match_their_figures() {
    let Some(dir) = corpus_dir() else { return };
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (name, want) in expected["non_x12"].as_object().unwrap() {
        if want["format"] != "fhir-json" {
            continue;
        }
        checked += 1;
        let (summary, claims, file) = run(mapping(false), &std::fs::read(dir.join(name)).unwrap());
        assert!(file.is_empty(), "{name}: {file:?}");
        assert_eq!(
            summary.records,
            want["resources"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            summary.lines,
            want["items"].as_u64().unwrap(),
            "{name}: one line per item"
        );
        let ids: Vec<&str> = claims
            .iter()
            .map(|c| c.claim.source_claim_id.as_str())
            .collect();
        let mut want_ids: Vec<&str> = want["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut got_ids = ids.clone();
        got_ids.sort_unstable();
        want_ids.sort_unstable();
        assert_eq!(got_ids, want_ids, "{name}");
        for (claim, want_type) in claims.iter().zip(want["claim_types"].as_array().unwrap()) {
            match want_type.as_str().unwrap() {
                "pharmacy" => assert!(
                    claim
                        .findings
                        .iter()
                        .any(|f| f.code == "mapping.invalid_value"
                            && f.message.contains("claim_type")),
                    "{name}: pharmacy is refused"
                ),
                t => assert_eq!(claim.claim.claim_type.as_str(), t, "{name}"),
            }
        }
    }
    assert_eq!(checked, 7);
}

fn eob(id: &str, kind: &str, items: usize) -> String {
    let items: Vec<String> = (1..=items)
        .map(|i| format!(r#"{{"sequence":{i},"productOrService":{{"coding":[{{"code":"99213"}}]}},"servicedDate":"2024-01-15","locationCodeableConcept":{{"coding":[{{"code":"11"}}]}}}}"#))
        .collect();
    format!(
        r#"{{"resourceType":"{kind}","id":"{id}","type":{{"coding":[{{"code":"professional"}}]}},"patient":{{"reference":"Patient/ZZCANARY-{id}"}},"billablePeriod":{{"start":"2024-01-15","end":"2024-01-15"}},"item":[{}]}}"#,
        items.join(",")
    )
}

#[test]
fn bundles_hold_several_resources_and_other_types_are_refused() {
    let bundle = format!(
        r#"{{"resourceType":"Bundle","entry":[{{"resource":{}}},{{"resource":{{"resourceType":"Patient","id":"p1","name":[{{"family":"ZZCANARY"}}]}}}},{{"resource":{}}}]}}"#,
        eob("E1", "ExplanationOfBenefit", 2),
        eob("C1", "Claim", 1)
    );
    let (summary, claims, _) = run(mapping(false), bundle.as_bytes());
    assert_eq!((summary.records, summary.lines), (3, 3));
    assert_eq!(
        claims[1]
            .findings
            .iter()
            .map(|f| f.code)
            .collect::<Vec<_>>(),
        ["fhir.resource_type"]
    );
    assert_eq!(claims[1].position.path.as_deref(), Some("entry[1]"));
    assert_eq!(claims[2].claim.source_claim_id, "C1");
}

#[test]
fn ndjson_streams_and_a_broken_line_is_one_finding() {
    let text = format!(
        "{}\n{{\"resourceType\": \"ExplanationOfBenefit\", \"id\": \"ZZCANARY\n{}\n\n",
        eob("E1", "ExplanationOfBenefit", 1),
        eob("E2", "ExplanationOfBenefit", 3)
    );
    let (summary, claims, file) = run(mapping(true), text.as_bytes());
    assert!(file.is_empty(), "{file:?}");
    assert_eq!(
        (
            summary.records,
            summary.accepted,
            summary.rejected,
            summary.lines
        ),
        (3, 2, 1, 4),
        "the broken line is a rejected record"
    );
    assert_eq!(claims[2].position.line, 3);
    let broken = claims[1]
        .findings
        .iter()
        .find(|f| f.code == "fhir.malformed")
        .unwrap();
    assert_eq!((broken.position.line, broken.position.record), (2, 2));
    assert!(!format!("{broken} {broken:?}").contains("ZZCANARY"));
}

#[test]
fn malformed_and_deeply_nested_json_give_findings_not_crashes() {
    for bad in [
        "{\"resourceType\": ",
        "[1, 2",
        "not json at all",
        &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    ] {
        let (summary, _, file) = run(mapping(false), bad.as_bytes());
        assert_eq!(summary.records, 0);
        assert_eq!(
            file.iter().map(|f| f.code).collect::<Vec<_>>(),
            ["fhir.malformed"],
            "{}",
            &bad[..bad.len().min(20)]
        );
    }
}

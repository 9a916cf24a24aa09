//! `claimgate mapping check` and `claimgate mapping preview`, through the real binary.

use std::path::Path;

use crate::corpus::corpus_dir;

fn claimgate(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(args)
        .env_clear()
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn builtin_mappings_check_and_a_broken_one_lists_every_problem_with_its_path() {
    for name in ["x12-837p", "x12-837i"] {
        let (ok, out, err) = claimgate(&["mapping", "check", name]);
        assert!(ok && out.contains("is valid"), "{out}{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "name = \"broken\"\nformat = \"x12\"\n[claim]\nsource_claim_id = { x12 = \"2300 CLM01\", transforms = [{ regex = \"(\" }] }\n\
         total_charge = { x12 = \"2300 CLM\" }\nmember_idd = { x12 = \"2010BA NM1[IL]09\" }\n[line]\ncharge = { value = \"1\", x12 = \"2400 SV102\" }\n",
    )
    .unwrap();
    let (ok, _, err) = claimgate(&["mapping", "check", path.to_str().unwrap()]);
    assert!(!ok);
    for needle in [
        "claim.source_claim_id.transforms[0]",
        "bad_transform",
        "claim.total_charge.x12",
        "bad_path",
        "claim.member_idd",
        "unknown_field",
        "line.charge",
        "one_source",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    assert!(!err.contains("panicked"));
    std::fs::write(
        &path,
        "name = \"x\"\nformat = \"x12\"\nmystery = 1\n[claim]\n",
    )
    .unwrap();
    let (ok, _, err) = claimgate(&["mapping", "check", path.to_str().unwrap()]);
    assert!(!ok && err.contains("mystery"), "{err}");
}

#[test]
fn preview_json_lines_are_claims_findings_and_a_summary() {
    let Some(dir) = corpus_dir() else { return };
    let file = dir.join("stupidedi/X223A2-HC837/pass/two-claims-for-the-same-provider.edi");
    let (ok, out, err) = claimgate(&[
        "mapping",
        "preview",
        "--mapping",
        "x12",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"claim"));
    assert_eq!(kinds.last(), Some(&"summary"));
    let claims: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "claim").collect();
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0]["claim_type"], "institutional");
    assert_eq!(claims[0]["bill_type"], "131", "CLM05 13:A:1");
    assert!(claims[0]["lines"][0]["revenue_code"].is_string());
    assert!(
        claims[0]["total_charge_cents"].is_i64(),
        "money is integer cents"
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["claims"], 2);
    assert_eq!(
        summary["records"],
        summary["accepted"].as_u64().unwrap() + summary["rejected"].as_u64().unwrap()
    );
    assert_eq!(summary["total_charge_cents"], 13_995);
    let finding = lines.iter().find(|l| l["kind"] == "finding").unwrap();
    assert!(
        finding["code"].is_string()
            && finding["severity"].is_string()
            && finding["position"]["byte"].is_u64()
    );
}

#[test]
fn preview_findings_carry_no_phi() {
    let dir = tempfile::tempdir().unwrap();
    let text = "ISA*00*          *00*          *ZZ*SUB            *ZZ*REC            *240101*1200*^*00501*000000001*0*P*:~\
GS*HC*S*R*20240101*1200*1*X*005010X222A1~ST*837*0001*005010X222A1~BHT*0019*00*1*20240101*1200*CH~\
HL*1**20*1~NM1*85*2*ZZCANARY CLINIC*****XX*ZZCANARY01~HL*2*1*22*0~SBR*P*18*******CI~\
NM1*IL*1*ZZCANARYLAST*ZZCANARYFIRST****MI*ZZCANARYMEMBER~DMG*D8*ZZCANARY*Q~\
CLM*ZZCANARYCLAIM*ZZCANARY***ZZ:B:1*Y*A*Y*Y~HI*ABK:ZZCANARY~LX*1~SV1*HC:ZZCANARY*ZZCANARY*UN*1***1~DTP*472*D8*ZZCANARY~\
SE*14*0001~GE*1*1~IEA*1*000000001~";
    let path = dir.path().join("canary.837");
    std::fs::write(&path, text).unwrap();
    let (ok, out, err) = claimgate(&[
        "mapping",
        "preview",
        "--mapping",
        "x12-837p",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let findings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("\"kind\":\"finding\""))
        .collect();
    assert!(findings.len() >= 6, "every canary value is refused: {out}");
    for line in findings {
        assert!(!line.contains("ZZCANARY"), "PHI in a finding: {line}");
    }
    assert!(!err.contains("ZZCANARY"));
    let (ok, table, _) = claimgate(&[
        "mapping",
        "preview",
        "--mapping",
        "x12-837p",
        path.to_str().unwrap(),
    ]);
    assert!(ok);
    let finding_lines: Vec<&str> = table
        .lines()
        .filter(|l| l.trim_start().starts_with("error") || l.trim_start().starts_with("warning"))
        .collect();
    assert!(!finding_lines.is_empty());
    assert!(finding_lines.iter().all(|l| !l.contains("ZZCANARY")));
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let (ok, _, err) = claimgate(&[
        "mapping",
        "preview",
        "--mapping",
        "x12",
        Path::new("/nonexistent/claims.837").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("/nonexistent/claims.837") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn the_committed_mapping_schema_is_current() {
    let (ok, out, err) = claimgate(&["mapping", "schema"]);
    assert!(ok, "{err}");
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/mapping.schema.json"),
    )
    .unwrap();
    assert!(
        out == committed,
        "schemas/mapping.schema.json is stale: run `cargo run -- mapping schema > schemas/mapping.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level keys are refused"
    );
    let transforms = schema["$defs"]["Transform"].to_string();
    for name in ["date", "map", "regex", "implied_decimals", "trim"] {
        assert!(transforms.contains(name), "{name}");
    }
}

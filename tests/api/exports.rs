//! The wide claim-line export (Tuva `medical_claim` layout) end to end: an 837P with
//! distinctive fake PHI is uploaded over HTTPS and ingested, then exported over HTTPS as
//! Parquet and CSV, de-identified (analyst) and identified (PHI reader), and the files are
//! read back by an independent reader (DuckDB, from PyPI).

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::helpers::*;

/// One claim of the test file: member, name and street from `tag`, with its birth date,
/// ZIP and lines.
struct Claim {
    id: &'static str,
    frequency: char,
    original: Option<&'static str>,
    tag: &'static str,
    born: &'static str,
    zip: &'static str,
    /// (procedure with modifiers, charge in cents)
    lines: &'static [(&'static str, i64)],
}

fn x12(claims: &[Claim]) -> Vec<u8> {
    let claims: Vec<X12Claim> = claims
        .iter()
        .map(|c| X12Claim {
            frequency: c.frequency,
            original: c.original.map(String::from),
            member: format!("ZZMEM{}", c.tag),
            last: format!("ZZLAST{}", c.tag),
            first: format!("ZZFIRST{}", c.tag),
            street: Some(format!("ZZ{} OAK ST", c.tag)),
            zip: c.zip.into(),
            born: c.born.into(),
            diagnoses: "ABK:J020*ABF:R05*ABF:E119".into(),
            lines: c
                .lines
                .iter()
                .map(|(p, cents)| (p.to_string(), *cents))
                .collect(),
            ..X12Claim::new(c.id, 0)
        })
        .collect();
    x12_837p(&claims)
}

/// The first file: ages 89, 90 and 104 on the service date 2024-01-15, two restricted
/// three-digit ZIP areas (036, 823), and two claims the second file voids and replaces.
const FIRST: &[Claim] = &[
    Claim {
        id: "EXA1",
        frequency: '1',
        original: None,
        tag: "QA",
        born: "19340601",
        zip: "03601",
        lines: &[("99213:25:59", 10_000), ("85025", 5_000)],
    },
    Claim {
        id: "EXA2",
        frequency: '1',
        original: None,
        tag: "QB",
        born: "19330601",
        zip: "82301",
        lines: &[("99214", 20_000)],
    },
    Claim {
        id: "EXA3",
        frequency: '1',
        original: None,
        tag: "QC",
        born: "19191231",
        zip: "10001",
        lines: &[("99215", 30_000)],
    },
    Claim {
        id: "EXA4",
        frequency: '1',
        original: None,
        tag: "QD",
        born: "19800229",
        zip: "90210",
        lines: &[("99212", 40_000)],
    },
    Claim {
        id: "EXA5",
        frequency: '1',
        original: None,
        tag: "QE",
        born: "19750704",
        zip: "60614",
        lines: &[("99211", 50_000)],
    },
];

/// The second file: a void of EXA4 and a replacement of EXA5.
const SECOND: &[Claim] = &[
    Claim {
        id: "EXA4",
        frequency: '8',
        original: Some("EXA4"),
        tag: "QD",
        born: "19800229",
        zip: "90210",
        lines: &[("99212", 40_000)],
    },
    Claim {
        id: "EXA5",
        frequency: '7',
        original: Some("EXA5"),
        tag: "QE",
        born: "19750704",
        zip: "60614",
        lines: &[("99211", 55_000)],
    },
];

/// Values of the test file that identify a member; none may be in a de-identified export.
const FAKE_PHI: &[&str] = &[
    "ZZMEM",
    "ZZLAST",
    "ZZFIRST",
    "ZZTOWN",
    "OAK ST",
    "19340601",
    "1934-06-01",
    "1933-06-01",
    "1919-12-31",
    "1980-02-29",
    "1975-07-04",
    "03601",
    "82301",
    "10001",
    "90210",
    "60614",
    "2024-01-15",
    "EXA1",
    "EXA2",
    "EXA3",
    "EXA4",
    "EXA5",
];

/// The Tuva Project `medical_claim` input-layer columns, in order.
fn tuva_columns() -> Vec<String> {
    let mut names: Vec<String> = [
        "claim_id",
        "claim_line_number",
        "claim_type",
        "person_id",
        "member_id",
        "payer",
        "plan",
        "claim_start_date",
        "claim_end_date",
        "claim_line_start_date",
        "claim_line_end_date",
        "admission_date",
        "discharge_date",
        "admit_source_code",
        "admit_type_code",
        "discharge_disposition_code",
        "place_of_service_code",
        "bill_type_code",
        "drg_code_type",
        "drg_code",
        "revenue_center_code",
        "service_unit_quantity",
        "hcpcs_code",
    ]
    .map(String::from)
    .to_vec();
    names.extend((1..=5).map(|n| format!("hcpcs_modifier_{n}")));
    names.extend(
        [
            "rendering_npi",
            "rendering_tin",
            "billing_npi",
            "billing_tin",
            "facility_npi",
            "paid_date",
            "paid_amount",
            "allowed_amount",
            "charge_amount",
            "coinsurance_amount",
            "copayment_amount",
            "deductible_amount",
            "total_cost_amount",
            "diagnosis_code_type",
        ]
        .map(String::from),
    );
    names.extend((1..=25).map(|n| format!("diagnosis_code_{n}")));
    names.extend((1..=25).map(|n| format!("diagnosis_poa_{n}")));
    names.push("procedure_code_type".into());
    names.extend((1..=25).map(|n| format!("procedure_code_{n}")));
    names.extend((1..=25).map(|n| format!("procedure_date_{n}")));
    names.extend(
        [
            "in_network_flag",
            "data_source",
            "file_name",
            "file_date",
            "ingest_datetime",
        ]
        .map(String::from),
    );
    names
}

/// claimgate's extension columns, after Tuva's.
const EXTENSIONS: &[&str] = &[
    "x_claim_version_id",
    "x_frequency_code",
    "x_final_action",
    "x_member_sex",
    "x_member_state",
    "x_member_zip",
    "x_member_age",
];

/// A GET whose body is kept as bytes (Parquet is binary); a chunked body must end with
/// its last chunk, so a cut-off export fails here.
async fn download(
    addr: SocketAddr,
    token: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = connect(addr, client_config(ClientOptions::default()))
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    send_bytes(&mut stream, request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => panic!("{e}"),
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if !chunked {
        return (status, headers, rest.to_vec());
    }
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return (status, headers, body);
        }
        body.extend_from_slice(&rest[end + 2..end + 2 + size]);
        rest = &rest[end + 2 + size + 2..];
    }
}

/// Runs `sql` in DuckDB over the file at `path` (bound as the view `t`); the rows as JSON.
/// `None` (with a note) when DuckDB is not installed and not required.
fn duckdb(path: &Path, sql: &str) -> Option<Value> {
    let python = std::env::var("CLAIMGATE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys
import duckdb
path, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
reader = "read_parquet" if path.endswith(".parquet") else "read_csv_auto"
con.execute(f"CREATE VIEW t AS SELECT * FROM {reader}('{path}')")
cur = con.execute(sql)
names = [d[0] for d in cur.description]
print(json.dumps([dict(zip(names, row)) for row in cur.fetchall()], default=str))
"#;
    let probe = std::process::Command::new(&python)
        .args(["-c", "import duckdb"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("CLAIMGATE_TEST_REQUIRE_DUCKDB").as_deref() != Ok("1"),
            "DuckDB is required (CLAIMGATE_TEST_REQUIRE_DUCKDB=1) but `{python} -c 'import duckdb'` fails"
        );
        eprintln!("SKIPPED the DuckDB reads: `pip install duckdb` (or set CLAIMGATE_TEST_PYTHON)");
        return None;
    }
    let output = std::process::Command::new(&python)
        .args(["-c", script, path.to_str().unwrap(), sql])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

struct Fixture {
    app: TestApp,
    analyst: String,
    reader: String,
    submitter: String,
}

async fn fixture(backend: Backend, test: &str) -> Option<Fixture> {
    let app = TestApp::on(backend, test, &[]).await?;
    app.provider("acme").await;
    app.activate_mapping("acme", "x12").await;
    let submitter = app
        .principal(
            "acme-system",
            "system",
            json!([{ "role": "provider_submitter", "provider": "acme" }]),
        )
        .await;
    let analyst = app
        .principal(
            "ann",
            "person",
            json!([{ "role": "analyst", "provider": "acme" }]),
        )
        .await;
    let reader = app
        .principal(
            "ops",
            "person",
            json!([{ "role": "phi_reader", "provider": "acme" }]),
        )
        .await;
    for file in [x12(FIRST), x12(SECOND)] {
        let sent = upload_at(
            app.addr,
            &submitter,
            &file,
            "Content-Type: application/edi-x12\r\n",
        )
        .await;
        assert_eq!(sent.status, 202, "{sent:?}");
        let id = sent.json()["upload_id"].as_str().unwrap().to_owned();
        let receipt = receipt_when_finished(app.addr, &submitter, &id).await;
        assert_eq!(receipt["state"], "done", "{receipt}");
        assert_eq!(receipt["counts"]["rejected"], 0, "{receipt}");
    }
    Some(Fixture {
        app,
        analyst,
        reader,
        submitter,
    })
}

async fn deidentified_on(backend: Backend) {
    let Some(f) = fixture(backend, "exports_deidentified").await else {
        return;
    };
    let app = &f.app;
    let dir = tempfile::tempdir().unwrap();
    let base = "/v1/providers/acme/exports/medical_claim";

    // Final action (the default), Parquet: the original EXA5 and both EXA4 versions are
    // out; EXA1 has two lines.
    let (status, headers, parquet) = download(app.addr, &f.analyst, base).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&parquet));
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/vnd.apache.parquet");
    assert_eq!(header("cache-control"), "no-store");
    assert!(
        header("content-disposition").starts_with("attachment; filename=\"medical_claim-acme-"),
        "{headers:?}"
    );
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    let file = dir.path().join("final.parquet");
    std::fs::write(&file, &parquet).unwrap();

    // History, CSV: every stored version.
    let (status, _, csv) = download(
        app.addr,
        &f.analyst,
        &format!("{base}?format=csv&history=true"),
    )
    .await;
    assert_eq!(status, 200);
    let csv_text = String::from_utf8(csv.clone()).unwrap();
    let stored_lines = app.count("SELECT count(*) FROM claim_lines").await;
    assert_eq!(stored_lines, 8);
    assert_eq!(
        csv_text.lines().count() as i64,
        stored_lines + 1,
        "a header and every line"
    );
    let mut expected = tuva_columns();
    expected.extend(EXTENSIONS.iter().map(|s| s.to_string()));
    assert_eq!(csv_text.lines().next().unwrap(), expected.join(","));
    for phi in FAKE_PHI {
        assert!(!csv_text.contains(phi), "{phi} in the de-identified CSV");
        assert!(
            !parquet.windows(phi.len()).any(|w| w == phi.as_bytes()),
            "{phi} in the de-identified Parquet"
        );
    }
    let history = dir.path().join("history.csv");
    std::fs::write(&history, &csv).unwrap();

    // The console writes the very same file, and refuses an identified export without a
    // stated purpose.
    let url = {
        use secrecy::ExposeSecret;
        app.settings.database.url.expose_secret().to_owned()
    };
    let env = test_env(&app.settings.data_dir, Some(&url), &[]);
    let console = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
            .arg("export")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned())
            .output()
            .unwrap()
    };
    let from_console = dir.path().join("console.csv");
    let out = console(&[
        "--provider",
        "acme",
        "--format",
        "csv",
        "--history",
        "--out",
        from_console.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&from_console).unwrap(), csv);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("8 lines of 7 claims"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let refused = console(&["--provider", "acme", "--identified", "--out", "x.parquet"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--purpose"));

    // An analyst reaches neither the identified export nor the look-up API.
    for (method, path) in [
        ("GET", format!("{base}/identified?purpose=research")),
        (
            "GET",
            "/v1/providers/acme/claims?purpose=research".to_owned(),
        ),
    ] {
        let refused = app.call(&f.analyst, method, &path, "").await;
        assert_eq!(refused.status, 403, "{path}: {refused:?}");
    }
    // A submitter is no analyst; another provider's export is refused.
    assert_eq!(app.call(&f.submitter, "GET", base, "").await.status, 403);
    assert_eq!(
        app.call(
            &f.analyst,
            "GET",
            "/v1/providers/other/exports/medical_claim",
            ""
        )
        .await
        .status,
        403
    );
    for bad in [
        "format=xlsx",
        "from=2024-13-01",
        "configuration=../x",
        "upload=a%20b",
        "from=2024-02-01&to=2024-01-01",
        "bogus=1",
    ] {
        let refused = app
            .call(&f.analyst, "GET", &format!("{base}?{bad}"), "")
            .await;
        assert_eq!(refused.status, 400, "{bad}: {refused:?}");
    }

    // The same configuration gives the same pseudonyms; another gives others.
    let (_, _, again) = download(
        app.addr,
        &f.analyst,
        &format!("{base}?format=csv&history=true"),
    )
    .await;
    let (_, _, other) = download(
        app.addr,
        &f.analyst,
        &format!("{base}?format=csv&history=true&configuration=research-2026"),
    )
    .await;
    let members = |csv: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(csv)
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(4).unwrap().to_owned())
            .collect()
    };
    assert_eq!(members(&again), members(&csv));
    assert!(
        members(&other)
            .iter()
            .zip(members(&csv))
            .all(|(a, b)| *a != b)
    );

    let audited = app.audit().await;
    let exports: Vec<_> = audited
        .iter()
        .filter(|e| e.kind == "claims.exported")
        .collect();
    assert_eq!(exports.len(), 5, "one event per export, the console's too");
    assert!(exports.iter().all(|e| !e.body.contains("ZZ")));

    let Some(rows) = duckdb(
        &file,
        "SELECT count(*) AS lines, sum(charge_amount)::VARCHAR AS charges, \
         count(DISTINCT member_id) AS members, count(DISTINCT claim_id) AS claims, \
         string_agg(DISTINCT x_member_zip, ' ' ORDER BY x_member_zip) AS zips, \
         string_agg(DISTINCT x_member_age, ' ' ORDER BY x_member_age) AS ages, \
         count(*) FILTER (WHERE month(claim_line_start_date) <> 1 OR day(claim_line_start_date) <> 1) AS full_dates, \
         min(year(claim_start_date)) AS year, bool_and(x_final_action) AS final, \
         max(length(member_id)) AS pseudonym_length, bool_and(person_id = member_id) AS person \
         FROM t",
    ) else {
        return;
    };
    assert_eq!(
        rows[0],
        json!({
            "lines": 5, "charges": "1200.00", "members": 4, "claims": 4,
            "zips": "000 100 606", "ages": "48 89 90+", "full_dates": 0, "year": 2024,
            "final": true, "pseudonym_length": 32, "person": true
        })
    );
    let columns = duckdb(&file, "SELECT column_name, column_type FROM (DESCRIBE t)").unwrap();
    let names: Vec<&str> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, expected);
    let types: std::collections::HashMap<&str, &str> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["column_name"].as_str().unwrap(),
                c["column_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(types["charge_amount"], "DECIMAL(18,2)");
    assert_eq!(types["claim_start_date"], "DATE");
    assert_eq!(types["claim_line_number"], "INTEGER");
    assert_eq!(types["ingest_datetime"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(types["diagnosis_code_25"], "VARCHAR");
    // The CSV of the history has every version, and the charges of every stored line.
    let history_rows = duckdb(
        &history,
        "SELECT count(*) AS lines, sum(charge_amount)::DECIMAL(18,2)::VARCHAR AS charges, \
         count(*) FILTER (WHERE x_final_action) AS final, \
         string_agg(DISTINCT x_frequency_code::VARCHAR, ' ' ORDER BY x_frequency_code::VARCHAR) AS frequencies, \
         max(hcpcs_modifier_2)::VARCHAR AS modifier, max(diagnosis_code_3) AS dx3, max(diagnosis_code_type) AS dx_type \
         FROM t",
    )
    .unwrap();
    let stored_cents = app
        .count("SELECT CAST(sum(charge_cents) AS BIGINT) FROM claim_lines")
        .await;
    assert_eq!(stored_cents, 250_000);
    assert_eq!(
        history_rows[0],
        json!({
            "lines": 8, "charges": "2500.00", "final": 5, "frequencies": "1 7 8",
            "modifier": "59", "dx3": "E119", "dx_type": "icd-10-cm"
        })
    );
}

#[tokio::test]
async fn a_deidentified_export_is_tuva_shaped_safe_harbor_and_readable_by_duckdb_sqlite() {
    deidentified_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_deidentified_export_is_tuva_shaped_safe_harbor_and_readable_by_duckdb() {
    deidentified_on(Backend::Postgres).await;
}

async fn identified_on(backend: Backend) {
    let Some(f) = fixture(backend, "exports_identified").await else {
        return;
    };
    let app = &f.app;
    let base = "/v1/providers/acme/exports/medical_claim/identified";
    for path in [base.to_owned(), format!("{base}?purpose=curiosity")] {
        let refused = app.call(&f.reader, "GET", &path, "").await;
        assert_eq!(refused.status, 400, "{refused:?}");
        assert!(refused.body.contains("purpose"), "{refused:?}");
    }
    assert_eq!(app.count("SELECT count(*) FROM phi_disclosures").await, 0);
    // A PHI reader is no analyst: the de-identified export is not theirs.
    assert_eq!(
        app.call(
            &f.reader,
            "GET",
            "/v1/providers/acme/exports/medical_claim",
            ""
        )
        .await
        .status,
        403
    );

    let (status, _, csv) = download(
        app.addr,
        &f.reader,
        &format!("{base}?purpose=payment&format=csv"),
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8(csv).unwrap();
    assert_eq!(text.lines().count(), 6, "a header and five lines");
    let row = text
        .lines()
        .find(|l| l.starts_with("EXA3,"))
        .expect("the sender's claim id");
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells[3], "ZZMEMQC", "person_id");
    assert_eq!(cells[4], "ZZMEMQC", "member_id");
    assert_eq!(cells[7], "2024-01-15", "claim_start_date in full");
    assert_eq!(
        &cells[cells.len() - 2..],
        ["10001", "104"],
        "full ZIP, exact age"
    );

    // Every claim sent is recorded as disclosed, and the member's accounting lists it.
    let auditor = app
        .principal("comp", "person", json!([{ "role": "compliance_auditor" }]))
        .await;
    let accounting = app
        .call(
            &auditor,
            "POST",
            "/v1/audit/disclosures",
            &json!({ "provider": "acme", "member_id": "ZZMEMQC" }).to_string(),
        )
        .await;
    assert_eq!(accounting.status, 200, "{accounting:?}");
    let disclosures = accounting.json()["disclosures"].clone();
    assert_eq!(disclosures.as_array().unwrap().len(), 1, "{disclosures}");
    assert_eq!(disclosures[0]["action"], "claims.export");
    assert_eq!(disclosures[0]["purpose"], "payment");
    assert_eq!(disclosures[0]["principal"], "ops");
    assert_eq!(
        app.count("SELECT claim_count FROM phi_disclosures").await,
        4,
        "the four final-action claims"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM phi_disclosed_claims").await,
        4
    );
}

#[tokio::test]
async fn an_identified_export_needs_a_purpose_and_is_an_accounted_disclosure_sqlite() {
    identified_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_identified_export_needs_a_purpose_and_is_an_accounted_disclosure() {
    identified_on(Backend::Postgres).await;
}

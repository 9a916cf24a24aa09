//! Every kept fuzz input, through the same checks the fuzz targets make: the seeds
//! (`fuzz/seeds/<target>/`) and each crash once fixed (`fuzz/regressions/<target>/`),
//! so a regression fails plain `cargo test` without a fuzzer.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_kept_fuzz_input_passes_its_targets_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, check) in harness::TARGETS {
        let mut replayed = 0;
        for kind in ["seeds", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
                continue;
            };
            let mut files: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                let bytes = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&bytes));
                assert!(outcome.is_ok(), "{target}: {} fails", file.display());
                replayed += 1;
            }
        }
        assert!(replayed > 0, "{target}: no kept input to replay");
    }
}

/// The audit-chain target's property over a fixed sweep: trails of several shapes, each
/// with every kind of change at several places, found at the first event it touches.
#[test]
fn every_change_to_an_audit_trail_is_found_at_its_first_event() {
    for bodies in ["a\nb\nc\nd", "{\"seq\":1}\n\n{\"seq\":3}", "x"] {
        for op in 0u8..5 {
            for a in 0u8..4 {
                let mut input = bodies.as_bytes().to_vec();
                input.extend([op, a, 3 - a]);
                harness::audit_chain(&input);
            }
        }
    }
}

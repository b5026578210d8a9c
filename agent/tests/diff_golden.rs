//! Golden fixtures for the diff: agent/tests/fixtures/diff/CASE/{desired,observed,expected},
//! and where a case has it, `expected-no-sa-writes` (the plan while the kernel lacks ESP:
//! no SA can be written).
//! A regression test is a new folder. `BLESS=1 cargo test --test diff_golden` rewrites the
//! expected files (review the change with git diff).

mod support;

use std::fs;
use std::path::Path;

use agent::plan::diff::{diff, diff_with};
use policy_schema::Ownership;
use support::*;

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diff");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no fixtures under {}", root.display());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let read = |f: &str| fs::read_to_string(case.join(f)).unwrap_or_default();
        let d = parse_desired(&read("desired"));
        let o = parse_observed(&read("observed"));
        let own = Ownership::default();
        let plan = diff(&d, &o, &own);
        let mut outputs = vec![("expected", render_plan(&plan))];
        if case.join("expected-no-sa-writes").exists() {
            outputs.push((
                "expected-no-sa-writes",
                render_plan(&diff_with(&d, &o, &own, &|_, _| false)),
            ));
        }
        for (file, got) in outputs {
            if bless {
                fs::write(case.join(file), &got).expect("write expected");
            } else if got != read(file) {
                failures.push(format!(
                    "== {}/{file}\n-- expected\n{}-- got\n{}",
                    case.display(),
                    read(file),
                    got
                ));
            }
        }
        // Whatever the case, applying the plan converges.
        let after = apply_in_memory(&o, &plan.ops)
            .unwrap_or_else(|e| panic!("{}: plan not applicable: {e}", case.display()));
        let again = diff(&d, &after, &own);
        assert!(
            again.ops.is_empty(),
            "{}: not converged: {}",
            case.display(),
            render_plan(&again)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// SAs the kernel cannot take are left out one by one (their class: family and algorithm),
/// not all at once: here only the new inbound SA is refused, and the outbound one and the
/// stale delete are still planned.
#[test]
fn only_unwritable_sas_are_left_out() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diff/rotation");
    let read = |f: &str| fs::read_to_string(case.join(f)).unwrap_or_default();
    let d = parse_desired(&read("desired"));
    let o = parse_observed(&read("observed"));
    let plan = diff_with(&d, &o, &Ownership::default(), &|k, _| k.spi != 0x4000_0801);
    assert_eq!(
        render_plan(&plan),
        "+ sa dst 10.0.0.2 spi 0x40000802 src 10.0.0.1 reqid 2046820353 (peer b out epoch 8)\n\
         - sa dst 10.0.0.2 spi 0x40000702 (stale: owned but not desired)\n"
    );
}

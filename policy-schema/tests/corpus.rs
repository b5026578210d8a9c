//! Golden files: every `invalid/NAME.toml` must fail with exactly the diagnostics in
//! `invalid/NAME.expected`, every `valid/NAME.toml` must load with exactly the warnings in
//! `valid/NAME.expected`. Run with `BLESS=1` to rewrite the expected files after a
//! deliberate change (and review the git diff).

use std::fs;
use std::path::{Path, PathBuf};

fn cases(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut out: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    out
}

/// Line-by-line diff (longest common subsequence), in unified style.
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::from("--- expected\n+++ actual\n");
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!(" {}\n", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("-{}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+{}\n", b[j]);
            j += 1;
        }
    }
    out
}

/// Compare (or, with BLESS, rewrite) each case; `run` gives the actual lines of one file.
fn golden(dir: &str, run: impl Fn(&str, &str) -> Result<String, String>) -> usize {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let cases = cases(dir);
    for path in &cases {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(path).expect("fixture");
        let actual = match run(&name, &text) {
            Ok(lines) => lines,
            Err(why) => {
                failures.push(format!("{dir}/{name}: {why}"));
                continue;
            }
        };
        let exp_path = path.with_extension("expected");
        if bless {
            fs::write(&exp_path, &actual).expect("write expected");
            continue;
        }
        let expected = fs::read_to_string(&exp_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{dir}/{name}:\n{}", diff(&expected, &actual)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (BLESS=1 rewrites):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

fn lines<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|d| d.to_string() + "\n").collect()
}

#[test]
fn invalid_files_report_exactly_the_expected_diagnostics() {
    let n = golden("invalid", |name, text| {
        match policy_schema::load(name, text) {
            Ok(_) => Err("loaded, but it should have failed".into()),
            Err(d) => {
                assert!(d.errors().count() > 0, "{name}: Err without an error");
                Ok(lines(&d.0))
            }
        }
    });
    assert!(
        n >= 35,
        "the corpus has {n} invalid files, expected at least 35"
    );
}

#[test]
fn valid_files_load_with_exactly_the_expected_warnings() {
    let n = golden("valid", |name, text| {
        match policy_schema::load(name, text) {
            Ok(l) => Ok(lines(&l.warnings)),
            Err(d) => Err(format!("failed to load:\n{d}")),
        }
    });
    assert!(n >= 3, "expected at least 3 valid files, found {n}");
}

#[test]
fn the_diff_marks_changed_lines() {
    assert_eq!(
        diff("a\nb\nc\n", "a\nx\nc\n"),
        "--- expected\n+++ actual\n a\n-b\n+x\n c\n"
    );
}

//! Golden fixtures for the compiler: one folder per case under tests/golden/plan/, holding
//! `case.toml` (policy file, key file, time, local addresses) and `expected.json` (the plan
//! with keys, as `plan --json --show-keys` prints it). A regression test is a new folder.
//! `BLESS=1 cargo test --test golden_plan` rewrites the expected files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use agent::keys::{Identity, PrivateKey};
use agent::plan::{desired, Timestamp};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    policy: String,
    key: String,
    now: u64,
    #[serde(default)]
    local: Vec<String>,
    #[serde(default)]
    cluster_keys: Vec<(String, String)>,
}

fn run_case(dir: &Path) -> Result<(), String> {
    let case: Case =
        toml_edit::de::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    let root = repo();
    let text = std::fs::read_to_string(root.join(&case.policy)).unwrap();
    let policy = policy_schema::load(&case.policy, &text)
        .map_err(|e| e.to_string())?
        .policy;
    let key = |p: &str| {
        PrivateKey::from_base64(&std::fs::read_to_string(root.join(p)).unwrap(), p).unwrap()
    };
    let mut id = Identity::resolve(&policy, key(&case.key), None).map_err(|e| e.to_string())?;
    for (name, path) in &case.cluster_keys {
        id.add_cluster_key(&policy, name, key(path), Path::new(path))
            .map_err(|e| e.to_string())?;
    }
    let local: BTreeSet<_> = case.local.iter().map(|a| a.parse().unwrap()).collect();
    let d =
        desired(&policy, &id, &local, Timestamp::from_secs(case.now)).map_err(|e| e.to_string())?;
    let got =
        serde_json::to_string_pretty(&agent::report::desired::plan_json(&d, true)).unwrap() + "\n";
    let expected_path = dir.join("expected.json");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if got != expected {
        let first = got
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!(
            "{}: plan differs from expected.json at line {} (BLESS=1 to accept):\n  got:      {}\n  expected: {}",
            dir.display(),
            first + 1,
            got.lines().nth(first).unwrap_or(""),
            expected.lines().nth(first).unwrap_or("<end>")
        ));
    }
    Ok(())
}

#[test]
fn golden_plans() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plan");
    let mut dirs: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 8,
        "golden cases missing in {}",
        base.display()
    );
    let failures: Vec<String> = dirs.iter().filter_map(|d| run_case(d).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

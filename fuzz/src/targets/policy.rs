//! `policy_schema::load` on any text: never panics, fails exactly when it reports an error,
//! locates every diagnostic inside the file, and whatever loads keeps the model's promises.

use policy_schema::{Diagnostics, Loaded, Severity};

use super::invariants::{check_invariants, check_located};

/// The name diagnostics carry in every target.
pub const FILE: &str = "policy.toml";

/// Load the input as policy text (bytes that are not UTF-8 never reach `load`: reading the
/// file refuses them first).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text, &policy_schema::load(FILE, text));
}

/// What any result of loading `text` must satisfy.
pub fn check(text: &str, loaded: &Result<Loaded, Diagnostics>) {
    match loaded {
        Ok(Loaded { policy, warnings }) => {
            assert!(
                warnings.iter().all(|d| d.severity == Severity::Warning),
                "a policy loaded with an error: {warnings:?}"
            );
            check_located(text, warnings);
            check_invariants(policy);
        }
        Err(d) => {
            assert!(d.errors().count() > 0, "failed without an error: {d:?}");
            check_located(text, &d.0);
        }
    }
}

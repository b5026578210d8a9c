//! The xfrm-agent policy file format: TOML text → validated [`Policy`], with every error
//! located at file:line:column, and a JSON Schema of the format.
//!
//! Pipeline: [`parse`] (syntax, keys, types and values, against the declarative tables in
//! `fields`) → `check` (cross-references, overlaps, capacities) → `build` (typed model).
//! No I/O beyond [`load_path`] reading the one file it is given. A daemon that reloads the
//! file on every change uses a [`Reloader`], which gives the same results and rereads
//! only the entries that changed.

mod build;
mod check;
mod curve;
mod diagnostic;
mod fields;
pub mod model;
mod parse;
mod raw;
mod reload;
mod report;
mod schema;
mod suggest;
mod text;
mod values;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use model::*;
pub use reload::Reloader;

/// A policy that passed validation, and the warnings it produced.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub policy: Policy,
    pub warnings: Vec<Diagnostic>,
}

/// Parse and validate `text`; `file` is the name used in messages.
///
/// Returns every error found in the file (not just the first), or the policy and its warnings.
pub fn load(file: &str, text: &str) -> Result<Loaded, Diagnostics> {
    let mut rep = report::Report::new(file, text);
    let Some(raw) = parse::parse(&mut rep, text) else {
        return Err(Diagnostics(rep.finish()));
    };
    check_and_build(rep, raw)
}

/// The stages after the parse: cross-checks, then the typed policy.
fn check_and_build(mut rep: report::Report, raw: raw::RawPolicy) -> Result<Loaded, Diagnostics> {
    let res = check::Resolver::new(&raw);
    check::check(&mut rep, &raw, &res);
    if rep.has_errors() {
        return Err(Diagnostics(rep.finish()));
    }
    let peers = build::exemption_peers(&raw, &res);
    match build::build(raw, peers) {
        Some(policy) => Ok(Loaded {
            policy,
            warnings: rep.finish(),
        }),
        None => {
            // Unreachable if every missing value was reported; never hand out a half policy.
            rep.error(
                0,
                "internal error: a required value is missing but was not reported",
            );
            Err(Diagnostics(rep.finish()))
        }
    }
}

/// Read and [`load`] a policy file; an unreadable or non-UTF-8 file is a located diagnostic.
pub fn load_path(path: &Path) -> Result<Loaded, Diagnostics> {
    let file = path.display().to_string();
    let fail = |line, col, message: String| {
        Diagnostics(vec![Diagnostic {
            severity: Severity::Error,
            file: file.clone(),
            line,
            col,
            message,
        }])
    };
    let bytes =
        std::fs::read(path).map_err(|e| fail(1, 1, format!("cannot read the policy file: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(text) => load(&file, &text),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let (line, col) = report::LineIndex::new(valid).locate(valid, valid.len());
            Err(fail(
                line,
                col,
                "the file is not valid UTF-8 (expected UTF-8 text, as TOML requires)".into(),
            ))
        }
    }
}

/// The JSON Schema (draft 2020-12) of the policy file, for editor completion.
pub fn json_schema() -> serde_json::Value {
    schema::json_schema()
}

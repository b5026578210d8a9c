//! The xfrm-agent policy file format: TOML text → validated [`Policy`], with every error
//! located at file:line:column, and a JSON Schema of the format.
//!
//! Pipeline: [`parse`] (syntax, keys, types and values, against the declarative tables in
//! `fields`) → `check` (cross-references, overlaps, capacities) → `build` (typed model).
//! No I/O beyond reading the one file it is given ([`file`]: never blocking, regular files
//! only, size capped). A daemon that reloads the
//! file on every change uses a [`Reloader`], which gives the same results and rereads
//! only the entries that changed.

mod authority;
mod build;
mod check;
mod curve;
mod diagnostic;
mod fields;
pub mod file;
pub mod model;
mod parse;
mod raw;
mod reload;
mod report;
mod schema;
mod suggest;
mod summary;
#[cfg(feature = "testkit")]
pub mod testkit;
mod text;
mod values;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use file::{FileVersion, ReadError, DEFAULT_MAX_POLICY_SIZE};
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

/// Read and [`load`] a policy file of at most [`DEFAULT_MAX_POLICY_SIZE`] bytes.
pub fn load_path(path: &Path) -> Result<Loaded, Diagnostics> {
    load_path_limited(path, DEFAULT_MAX_POLICY_SIZE)
}

/// Read and [`load`] a policy file of at most `max` bytes; a file that cannot be read (not
/// a regular file, too large) or is not UTF-8 is a located diagnostic.
pub fn load_path_limited(path: &Path, max: u64) -> Result<Loaded, Diagnostics> {
    let file = path.display().to_string();
    let text = read_text(path, max)?;
    load(&file, &text)
}

/// The text of a policy file of at most `max` bytes (see [`file::read_regular`]), with a
/// located diagnostic when it cannot be read or is not UTF-8.
pub fn read_text(path: &Path, max: u64) -> Result<String, Diagnostics> {
    let file = path.display().to_string();
    match file::read_regular(path, max) {
        Ok(s) => decode(&file, s.bytes),
        Err(e) => Err(read_diagnostic(&file, &e)),
    }
}

/// The diagnostic for a policy file that could not be read.
pub fn read_diagnostic(file: &str, e: &ReadError) -> Diagnostics {
    let message = match e {
        ReadError::Io(e) => format!("cannot read the policy file: {e}"),
        ReadError::TooLarge { max } => format!(
            "the policy file is larger than the limit of {max} bytes (--max-policy-size); \
             refusing to read it"
        ),
        e => format!("the policy file {e}"),
    };
    Diagnostics(vec![Diagnostic {
        severity: Severity::Error,
        file: file.to_string(),
        line: 1,
        col: 1,
        message,
    }])
}

/// The file's bytes as text, or the located error at the first byte that is not UTF-8.
pub fn decode(file: &str, bytes: Vec<u8>) -> Result<String, Diagnostics> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let (line, col) = report::LineIndex::new(valid).locate(valid, valid.len());
        Diagnostics(vec![Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            line,
            col,
            message: "the file is not valid UTF-8 (expected UTF-8 text, as TOML requires)".into(),
        }])
    })
}

/// The JSON Schema (draft 2020-12) of the policy file, for editor completion.
pub fn json_schema() -> serde_json::Value {
    schema::json_schema()
}

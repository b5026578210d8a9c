//! TOML text → located raw policy. Syntax errors stop here (the document has no tree to
//! walk); everything after syntax is collected, never stopping at the first problem.
//!
//! The text becomes a [`tree::Table`] by the byte scanner (`scan`) when it is plain TOML,
//! else from toml_parser's events (`events`), else by toml_edit (`convert`), which also
//! words every syntax error; all give the same tree for any text they accept
//! (`same_tree_tests`), so the walk cannot tell which one ran.

mod builder;
mod convert;
mod endpoint;
mod entries;
mod events;
mod lists;
mod scan;
mod tables;
mod tree;

use std::fmt::Write;

use toml_edit::Document;

use crate::fields::{Kind, TableSpec, ROOT};
use crate::raw::RawPolicy;
use crate::report::Report;
pub(crate) use endpoint::Known;
use entries::{item_desc, start, Entries};
use tree::{Item, Table};

/// Parse `text`; `None` after a TOML syntax error (already reported).
pub(crate) fn parse(rep: &mut Report, text: &str) -> Option<RawPolicy> {
    let doc;
    let fast = scan::document(text).or_else(|| events::document(text));
    let root = match fast {
        Some(root) => root,
        None => match Document::parse(text) {
            Ok(parsed) => {
                doc = parsed;
                convert::root(&doc)
            }
            Err(err) => {
                syntax_error(rep, &err);
                return None;
            }
        },
    };
    Some(walk(rep, &root))
}

/// The root table, key by key, against the format's tables.
fn walk(rep: &mut Report, root: &Table) -> RawPolicy {
    let known = Known::scan(root);
    let mut e = Entries::open(rep, &ROOT, root, 0, String::new());
    let _ = e.int(rep, "version");
    let mut raw = settings(rep, &mut e);
    // Sized up front: a Vec of 10k raw hosts regrown by doubling copies megabytes.
    let hosts = table_array(rep, &mut e, "hosts");
    raw.hosts.reserve_exact(hosts.len());
    for mut h in hosts {
        raw.hosts.push(tables::host(rep, &mut h, &known));
    }
    for mut c in table_array(rep, &mut e, "clusters") {
        raw.clusters.push(tables::cluster(rep, &mut c, &known));
    }
    for mut x in table_array(rep, &mut e, "exemptions") {
        raw.exemptions.push(tables::exemption(rep, &mut x, &known));
    }
    let rules = table_array(rep, &mut e, "rules");
    raw.rules.reserve_exact(rules.len());
    for mut r in rules {
        raw.rules.push(tables::rule(rep, &mut r, &known));
    }
    raw
}

fn syntax_error(rep: &mut Report, err: &toml_edit::TomlError) {
    let at = err.span().map_or(0, |s| s.start);
    let msg = match err.message() {
        "duplicate key" => format!(
            "TOML syntax: duplicate key \"{}\" (expected each key once per table)",
            rep.raw(err.span()).trim_matches(['"', '\''])
        ),
        other => format!("TOML syntax: {other}"),
    };
    rep.error(at, msg);
}

/// [defaults], [ownership] and [zones].
fn settings(rep: &mut Report, e: &mut Entries) -> RawPolicy {
    let mut raw = RawPolicy::default();
    if let Some(mut d) = sub_table(rep, e, "defaults") {
        raw.defaults = tables::defaults(rep, &mut d);
    } else {
        raw.defaults.durations_complete = true;
    }
    if let Some(mut o) = sub_table(rep, e, "ownership") {
        raw.ownership = tables::ownership(rep, &mut o);
    }
    if let Some((_, key_at, item)) = e.get("zones") {
        match item.as_table_like() {
            Some(t) => raw.zones = tables::zones(rep, t),
            None => rep.error(
                key_at,
                format!("zones is {}, expected a table ([zones])", item_desc(item)),
            ),
        }
    }
    raw
}

/// A `[name]` table (or inline table) of the root.
fn sub_table<'a>(rep: &mut Report, e: &mut Entries<'a>, name: &'static str) -> Option<Entries<'a>> {
    let (field, key_at, item) = e.get(name)?;
    let Kind::Table(spec) = field.kind else {
        unreachable!("{name} is not a table")
    };
    match item.as_table_like() {
        Some(t) => Some(Entries::open(
            rep,
            spec,
            t,
            start(item.span(), key_at),
            name.to_string(),
        )),
        None => {
            rep.error(
                key_at,
                format!("{name} is {}, expected a table ([{name}])", item_desc(item)),
            );
            None
        }
    }
}

/// The elements of a `[[name]]` array of tables (or a list of inline tables).
fn table_array<'a>(rep: &mut Report, e: &mut Entries<'a>, name: &'static str) -> Vec<Entries<'a>> {
    let Some((field, key_at, item)) = e.get(name) else {
        return Vec::new();
    };
    let Kind::TableArray(spec) = field.kind else {
        unreachable!("{name} is not a table array")
    };
    let mut tables: Vec<(usize, &'a Table<'a>, usize)> = Vec::new();
    match (item, item.as_value().and_then(tree::Value::as_array)) {
        (Item::ArrayOfTables(a), _) => {
            let each = a.iter().enumerate();
            tables.extend(each.map(|(i, t)| (i, t, start(t.span.clone(), key_at))));
        }
        (_, Some(a)) => {
            for (i, v) in a.iter().enumerate() {
                match v.as_inline_table() {
                    Some(t) => tables.push((i, t, v.span.start)),
                    None => rep.error(
                        v.span.start,
                        format!(
                            "{name}[{i}] {} is {}, expected a table",
                            rep.raw(Some(v.span.clone())),
                            entries::type_desc(v)
                        ),
                    ),
                }
            }
        }
        (other, None) => rep.error(
            key_at,
            format!(
                "{name} is {}, expected {}",
                item_desc(other),
                field.kind.expected()
            ),
        ),
    }
    tables
        .into_iter()
        .map(|(i, t, at)| Entries::open(rep, spec, t, at, label(spec, i, t)))
        .collect()
}

/// `rules[2] "web"`: the index (from 0) and the name, if it has a string one.
fn label(spec: &TableSpec, i: usize, t: &Table) -> String {
    match t.get("name").and_then(Item::as_str) {
        // `{:?}` escapes only quotes, backslashes and unprintable characters: a name with
        // none of them is copied as is, not run through the escaper char by char.
        Some(n)
            if n.bytes()
                .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\') =>
        {
            let mut s = String::with_capacity(spec.name.len() + n.len() + 12);
            let _ = write!(s, "{}[{i}] \"", spec.name);
            s.push_str(n);
            s.push('"');
            s
        }
        Some(n) => format!("{}[{i}] {n:?}", spec.name),
        None => format!("{}[{i}]", spec.name),
    }
}

#[cfg(test)]
#[path = "same_tree_tests.rs"]
mod same_tree_tests;

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

use toml_edit::Document;

use crate::fields::{Kind, TableSpec, ROOT};
use crate::raw::{RawHost, RawPolicy, RawRule};
use crate::report::Report;
pub(crate) use endpoint::Known;
use entries::{item_desc, start, Entries};
pub(crate) use scan::Segment;
use tree::{Item, Table};

/// Parse `text`; `None` after a TOML syntax error (already reported).
pub(crate) fn parse(rep: &mut Report, text: &str) -> Option<RawPolicy> {
    let doc;
    let fast = match scan::document(text) {
        Some(root) => events::Outcome::Tree(root),
        None => events::document(text),
    };
    let root = match fast {
        events::Outcome::Tree(root) => root,
        events::Outcome::TooDeep(at) => {
            let max = events::MAX_KEY_PARTS;
            rep.error(at, format!("TOML: the key path passes {max} parts here (expected at most {max} parts of dotted keys and table headers, counting the inline tables around them; the policy format needs 2)"));
            return None;
        }
        events::Outcome::Declined => match Document::parse(text) {
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
    walk(rep, &root, &NoReuse)
}

/// `text` read piece by piece (`scan::segments`) and walked with `reuse`, which must claim
/// exactly the pieces whose body is skipped; also the offset of every header. `None` when
/// the scanner does not take the pieces (the caller then runs the full [`parse`]), or
/// `reuse` fails.
pub(crate) fn parse_segments(
    rep: &mut Report,
    text: &str,
    segs: &[Segment],
    reuse: &dyn Reuse,
) -> Option<(RawPolicy, Vec<usize>)> {
    let (root, headers) = scan::segments(text, segs)?;
    Some((walk(rep, &root, reuse)?, headers))
}

/// `[[hosts]]` and `[[rules]]` entries a caller already holds, known by the offset of
/// their header: the tree has an empty table there (`scan::segments` skipped the body) and
/// the walk takes the entry from here instead of reading that table.
pub(crate) trait Reuse {
    /// The name of the reused entry whose header is at `at`, if it is one.
    fn name(&self, at: usize) -> Option<&str>;
    /// That entry as [`tables::host`] would read it with `known`, labelled `label`;
    /// `None` when it cannot say (the walk then gives up).
    fn host(&self, at: usize, label: String, known: &Known) -> Option<RawHost>;
    /// The same for a reused `[[rules]]` entry.
    fn rule(&self, at: usize, label: String, known: &Known) -> Option<RawRule>;
}

/// The plain walk: every table is read.
pub(crate) struct NoReuse;

impl Reuse for NoReuse {
    fn name(&self, _: usize) -> Option<&str> {
        None
    }

    fn host(&self, _: usize, _: String, _: &Known) -> Option<RawHost> {
        None
    }

    fn rule(&self, _: usize, _: String, _: &Known) -> Option<RawRule> {
        None
    }
}

/// The root table, key by key, against the format's tables; `None` only when `reuse`
/// cannot supply an entry it claimed.
fn walk(rep: &mut Report, root: &Table, reuse: &dyn Reuse) -> Option<RawPolicy> {
    let known = Known::scan(root, reuse);
    let mut e = Entries::open(rep, &ROOT, root, 0, String::new());
    let _ = e.int(rep, "version");
    let mut raw = settings(rep, &mut e);
    // Sized up front: a Vec of 10k raw hosts regrown by doubling copies megabytes.
    let hosts = table_array(rep, &mut e, "hosts", reuse);
    raw.hosts.reserve_exact(hosts.len());
    for h in hosts {
        raw.hosts.push(match h {
            Opened::Read(mut h) => tables::host(rep, &mut h, &known),
            Opened::Reused(at, label) => reuse.host(at, label, &known)?,
        });
    }
    for c in table_array(rep, &mut e, "clusters", &NoReuse) {
        raw.clusters
            .push(tables::cluster(rep, &mut c.read(), &known));
    }
    for a in table_array(rep, &mut e, "authorities", &NoReuse) {
        raw.authorities.push(tables::authority(rep, &mut a.read()));
    }
    for x in table_array(rep, &mut e, "exemptions", &NoReuse) {
        raw.exemptions
            .push(tables::exemption(rep, &mut x.read(), &known));
    }
    let rules = table_array(rep, &mut e, "rules", reuse);
    raw.rules.reserve_exact(rules.len());
    for r in rules {
        raw.rules.push(match r {
            Opened::Read(mut r) => tables::rule(rep, &mut r, &known),
            Opened::Reused(at, label) => reuse.rule(at, label, &known)?,
        });
    }
    Some(raw)
}

/// An element of a table array: opened for reading, or reused (header offset, label).
enum Opened<'a> {
    Read(Entries<'a>),
    Reused(usize, String),
}

impl<'a> Opened<'a> {
    fn read(self) -> Entries<'a> {
        match self {
            Opened::Read(e) => e,
            Opened::Reused(..) => unreachable!("only hosts and rules are reused"),
        }
    }
}

fn syntax_error(rep: &mut Report, err: &toml_edit::TomlError) {
    let at = err.span().map_or(0, |s| s.start);
    let msg = match err.message() {
        "duplicate key" => format!(
            "TOML syntax: duplicate key \"{}\" (expected each key once per table)",
            rep.raw(err.span()).trim_matches(['"', '\''])
        ),
        "integer number overflowed" => format!(
            "TOML syntax: integer {} is too large (expected at most {})",
            rep.raw(err.span()),
            i64::MAX
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
fn table_array<'a>(
    rep: &mut Report,
    e: &mut Entries<'a>,
    name: &'static str,
    reuse: &dyn Reuse,
) -> Vec<Opened<'a>> {
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
    let open = |(i, t, at): (usize, &'a Table<'a>, usize)| match reuse.name(at) {
        Some(n) => Opened::Reused(at, label(spec, i, Some(n))),
        None => {
            let name = t.get("name").and_then(Item::as_str);
            Opened::Read(Entries::open(rep, spec, t, at, label(spec, i, name)))
        }
    };
    tables.into_iter().map(open).collect()
}

/// `rules[2] "web"`: the index (from 0) and the name, if it has a string one.
fn label(spec: &TableSpec, i: usize, name: Option<&str>) -> String {
    match name {
        // `{:?}` escapes only quotes, backslashes and unprintable characters: a name with
        // none of them is copied as is, not run through the escaper char by char.
        Some(n) if crate::text::is_plain(n) && !n.contains(['"', '\\']) => {
            let mut s = String::with_capacity(spec.name.len() + n.len() + 26);
            s.push_str(spec.name);
            s.push('[');
            push_decimal(&mut s, i);
            s.push_str("] \"");
            s.push_str(n);
            s.push('"');
            s
        }
        Some(n) => format!("{}[{i}] {:?}", spec.name, crate::text::cut(n)),
        None => format!("{}[{i}]", spec.name),
    }
}

/// `i` in decimal, without the formatting machinery (a label per host, 10k per load).
fn push_decimal(s: &mut String, mut i: usize) {
    let mut digits = [0u8; 20];
    let mut n = digits.len();
    loop {
        n -= 1;
        digits[n] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    s.extend(digits[n..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
#[path = "same_tree_tests.rs"]
mod same_tree_tests;

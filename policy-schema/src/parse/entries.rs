//! One table of the file checked against its [`TableSpec`]: unknown keys, missing required
//! keys and TOML types are reported here; typed getters then parse each key's value and
//! report bad values at the value (or list element) itself.

use super::tree::{Entry, Item, Span, Table, Value, ValueKind};
use crate::fields::{Field, Kind, TableSpec};
use crate::raw::Sp;
use crate::report::Report;
use crate::suggest::did_you_mean;
use crate::values;

/// The most keys a table of the format has (`[[rules]]`).
const MAX_FIELDS: usize = 10;

/// The keys of one table, validated against its spec.
pub(crate) struct Entries<'a> {
    spec: &'static TableSpec,
    /// The table's entry for each field of the spec, by the field's position: every key is
    /// looked up once, when the table is opened.
    slots: [Option<&'a Entry<'a>>; MAX_FIELDS],
    /// Offset of the table (header or inline table).
    pub at: usize,
    /// `rules[2] "web"`, or empty at the top level.
    pub label: String,
    /// No value of this table failed to parse.
    pub ok: bool,
}

/// "a string", "an integer", … for messages.
pub(crate) fn type_desc(v: &Value) -> &'static str {
    match v.kind {
        ValueKind::String(_) => "a string",
        ValueKind::Integer(_) => "an integer",
        ValueKind::Float => "a float",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::Datetime => "a date-time",
        ValueKind::Array(_) => "a list",
        ValueKind::InlineTable(_) => "a table",
    }
}

pub(crate) fn item_desc(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => type_desc(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

pub(crate) fn start(span: Option<Span>, fallback: usize) -> usize {
    span.map_or(fallback, |s| s.start)
}

/// A string value without whitespace (`values::as_written`), or the "is X, expected Y"
/// fragment.
pub(crate) fn want_str<'v>(v: &'v Value, expected: &str) -> Result<&'v str, String> {
    v.as_str()
        .ok_or_else(|| format!("is {}, expected {expected}", type_desc(v)))
        .and_then(values::as_written)
}

impl<'a> Entries<'a> {
    /// Check `table`'s keys against `spec`; report unknown and missing keys.
    pub fn open(
        rep: &mut Report,
        spec: &'static TableSpec,
        table: &'a Table<'a>,
        at: usize,
        label: String,
    ) -> Self {
        assert!(
            spec.fields.len() <= MAX_FIELDS,
            "{} has too many keys",
            spec.name
        );
        let mut e = Entries {
            spec,
            slots: [None; MAX_FIELDS],
            at,
            label,
            ok: true,
        };
        for entry in table.iter() {
            match spec.fields.iter().position(|f| f.name == entry.key) {
                Some(i) => e.slots[i] = Some(entry),
                None => e.unknown(rep, entry),
            }
        }
        for (f, slot) in spec.fields.iter().zip(e.slots) {
            if f.required && slot.is_none() {
                e.ok = false;
                rep.error(
                    at,
                    format!(
                        "{}missing required key \"{}\", expected {}",
                        e.prefix(),
                        f.name,
                        f.kind.expected()
                    ),
                );
            }
        }
        e
    }

    fn unknown(&self, rep: &mut Report, entry: &Entry) {
        let k = crate::text::shown(&entry.key);
        let names: Vec<&str> = self.spec.fields.iter().map(|f| f.name).collect();
        rep.error(
            entry.key_span.start,
            format!(
                "{}unknown key \"{k}\", expected one of: {}{}",
                self.prefix(),
                names.join(", "),
                did_you_mean(&entry.key, names.iter().copied())
            ),
        );
    }

    /// `label: ` or nothing.
    pub fn prefix(&self) -> String {
        if self.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.label)
        }
    }

    /// The field, its key's offset and its item, if the table has it.
    pub fn get(&self, name: &str) -> Option<(&'static Field, usize, &'a Item<'a>)> {
        let i = self.spec.fields.iter().position(|f| f.name == name);
        debug_assert!(i.is_some(), "{name} is not a key of {}", self.spec.name);
        let entry = self.slots[i?]?;
        Some((&self.spec.fields[i?], entry.key_span.start, &entry.item))
    }

    /// Report a bad value of key `name` at `at`: `label: name RAW fragment`.
    pub fn bad(&mut self, rep: &mut Report, name: &str, v: &Value, frag: &str) {
        let raw = rep.raw(Some(v.span.clone()));
        rep.error(
            v.span.start,
            format!("{}{name} {raw} {frag}", self.prefix()),
        );
        self.ok = false;
    }

    /// The plain value of a key (not a `[table]`), or a type error at the key.
    pub fn value(
        &mut self,
        rep: &mut Report,
        name: &str,
    ) -> Option<(&'static Field, &'a Value<'a>)> {
        let (field, key_at, item) = self.get(name)?;
        match item {
            Item::Value(v) => Some((field, v)),
            other => {
                let msg = format!(
                    "{}{name} is {}, expected {}",
                    self.prefix(),
                    item_desc(other),
                    field.kind.expected()
                );
                rep.error(key_at, msg);
                self.ok = false;
                None
            }
        }
    }

    /// A scalar parsed by `f`, with the offset of its value.
    pub fn scalar<T>(
        &mut self,
        rep: &mut Report,
        name: &str,
        f: impl FnOnce(&Kind, &Value) -> Result<T, String>,
    ) -> Option<Sp<T>> {
        let (field, v) = self.value(rep, name)?;
        match f(&field.kind, v) {
            Ok(t) => Some(Sp::new(t, v.span.start)),
            Err(frag) => {
                self.bad(rep, name, v, &frag);
                None
            }
        }
    }

    pub fn int(&mut self, rep: &mut Report, name: &str) -> Option<Sp<i64>> {
        self.scalar(rep, name, |kind, v| {
            let Kind::Int { min, max } = *kind else {
                unreachable!("{name} is not an Int")
            };
            let i = v
                .as_integer()
                .ok_or_else(|| format!("is {}, expected {}", type_desc(v), kind.expected()))?;
            match i {
                _ if (min..=max).contains(&i) => Ok(i),
                _ if min == max => Err(format!("is not supported (expected {min})")),
                _ => Err(format!("is out of range (expected {min}..={max})")),
            }
        })
    }

    pub fn bool(&mut self, rep: &mut Report, name: &str) -> Option<Sp<bool>> {
        self.scalar(rep, name, |kind, v| {
            v.as_bool()
                .ok_or_else(|| format!("is {}, expected {}", type_desc(v), kind.expected()))
        })
    }

    pub fn name(&mut self, rep: &mut Report, name: &str) -> Option<Sp<String>> {
        self.scalar(rep, name, |_, v| {
            // Not `want_str`: the name syntax itself explains a space in a name.
            let s = v
                .as_str()
                .ok_or_else(|| format!("is {}, expected a name string", type_desc(v)))?;
            values::name(s)?;
            Ok(s.to_string())
        })
    }

    /// One of the kind's enumerated strings (the canonical `&'static str`).
    pub fn choice(&mut self, rep: &mut Report, name: &str) -> Option<Sp<&'static str>> {
        self.scalar(rep, name, |kind, v| {
            let Kind::Enum(list) = *kind else {
                unreachable!("{name} is not an Enum")
            };
            let s = want_str(v, &kind.expected())?;
            list.iter().copied().find(|c| *c == s).ok_or_else(|| {
                format!(
                    "is not one of {}{}",
                    list.join(", "),
                    did_you_mean(s, list.iter().copied())
                )
            })
        })
    }

    pub fn duration(&mut self, rep: &mut Report, name: &str) -> Option<Sp<u64>> {
        self.scalar(rep, name, |kind, v| {
            let Kind::Duration { min, max } = *kind else {
                unreachable!("{name} is not a Duration")
            };
            let secs = match &v.kind {
                ValueKind::Integer(i) => values::duration_int(*i),
                ValueKind::String(s) => values::as_written(s).and_then(values::duration),
                _ => Err(format!("is {}, expected {}", type_desc(v), kind.expected())),
            }?;
            values::duration_in(secs, min, max)
        })
    }

    pub fn key(&mut self, rep: &mut Report, name: &str) -> Option<Sp<crate::model::PublicKey>> {
        self.scalar(rep, name, |kind, v| {
            values::public_key(want_str(v, &kind.expected())?)
        })
    }

    pub fn protocol(&mut self, rep: &mut Report, name: &str) -> Option<Sp<crate::model::Protocol>> {
        self.scalar(rep, name, |kind, v| match &v.kind {
            ValueKind::Integer(i) => values::protocol_number(*i),
            ValueKind::String(s) => values::as_written(s).and_then(values::protocol_name),
            _ => Err(format!("is {}, expected {}", type_desc(v), kind.expected())),
        })
    }
}

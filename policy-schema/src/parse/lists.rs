//! Getters for list-valued keys: each element is parsed on its own and a bad element is
//! reported at the element, so one typo in a 50-address list points at that address.

use super::endpoint::{endpoint, Known, NameSet};
use super::entries::{type_desc, want_str, Entries};
use super::tree::{Value, ValueKind};
use crate::fields::Kind;
use crate::model::{Endpoint, PortRange};
use crate::raw::Sp;
use crate::report::Report;
use crate::values;

/// Why an empty list is wrong, for the kinds that must not be empty.
fn empty_hint(kind: &Kind, required: bool) -> Option<&'static str> {
    match kind {
        Kind::Addresses => Some("expected at least one address"),
        Kind::Endpoints if required => Some("expected at least one endpoint, e.g. [\"any\"]"),
        Kind::Endpoints => Some("expected at least one endpoint (omit the key to mean any peer)"),
        Kind::Ports => Some("expected at least one port (omit the key to mean every port)"),
        Kind::Names if required => Some("expected at least one name"),
        Kind::Paths if required => Some("expected at least one file"),
        Kind::Identities => {
            Some("expected at least one pattern (omit the key to accept any identity)")
        }
        _ => None,
    }
}

/// A string taken as written, spaces included (paths and DN values may hold them).
fn text<'v>(v: &'v Value, expected: &str) -> Result<&'v str, String> {
    v.as_str()
        .ok_or_else(|| format!("is {}, expected {expected}", type_desc(v)))
}

impl Entries<'_> {
    /// A list whose elements `f` parses. `None` if the key is absent or not a list.
    pub fn list<T>(
        &mut self,
        rep: &mut Report,
        name: &str,
        f: impl Fn(&Value) -> Result<T, String>,
    ) -> Option<Sp<Vec<Sp<T>>>> {
        let (field, v) = self.value(rep, name)?;
        let at = v.span.start;
        let Some(arr) = v.as_array() else {
            let frag = format!("is {}, expected {}", type_desc(v), field.kind.expected());
            self.bad(rep, name, v, &frag);
            return None;
        };
        if arr.is_empty() {
            if let Some(hint) = empty_hint(&field.kind, field.required) {
                self.bad(rep, name, v, &format!("is empty, {hint}"));
            }
        }
        let mut out = Vec::with_capacity(arr.len());
        for el in arr.iter() {
            match f(el) {
                Ok(t) => out.push(Sp::new(t, el.span.start)),
                Err(frag) => self.bad(rep, name, el, &frag),
            }
        }
        Some(Sp::new(out, at))
    }

    pub fn addresses(&mut self, rep: &mut Report, name: &str) -> Vec<Sp<std::net::IpAddr>> {
        self.list(rep, name, |v| {
            values::address(want_str(v, "an address string such as \"10.0.0.1\"")?)
        })
        .map(|l| l.v)
        .unwrap_or_default()
    }

    pub fn prefixes(&mut self, rep: &mut Report, name: &str) -> Option<Sp<Vec<Sp<ipnet::IpNet>>>> {
        self.list(rep, name, |v| {
            values::prefix(want_str(v, "a prefix string such as \"10.0.0.0/24\"")?)
        })
    }

    /// Names that must be among `known` (a zone list, a host list); `what` says which.
    pub fn refs(
        &mut self,
        rep: &mut Report,
        name: &str,
        known: &NameSet,
        what: &str,
        table: &str,
    ) -> Vec<Sp<String>> {
        self.list(rep, name, |v| {
            let s = want_str(v, "a name string")?;
            if known.contains(s) {
                return Ok(s.to_string());
            }
            let hint = crate::suggest::did_you_mean(s, known.iter());
            Err(format!(
                "is not a defined {what}, expected one defined in {table}{hint}"
            ))
        })
        .map(|l| l.v)
        .unwrap_or_default()
    }

    pub fn endpoints(
        &mut self,
        rep: &mut Report,
        name: &str,
        known: &Known,
    ) -> Option<Sp<Vec<Sp<Endpoint>>>> {
        self.list(rep, name, |v| {
            endpoint(
                want_str(v, "an endpoint string such as \"any\" or \"zone:intranet\"")?,
                known,
            )
        })
    }

    /// Absolute file paths; the agent reads them (this crate does no I/O on them).
    pub fn paths(&mut self, rep: &mut Report, name: &str) -> Vec<Sp<std::path::PathBuf>> {
        self.list(rep, name, |v| {
            values::absolute_path(text(v, "a path string such as \"/etc/xfrm-agent/ca.pem\"")?)
        })
        .map(|l| l.v)
        .unwrap_or_default()
    }

    pub fn identities(
        &mut self,
        rep: &mut Report,
        name: &str,
    ) -> Option<Sp<Vec<Sp<crate::model::IdentityPattern>>>> {
        self.list(rep, name, |v| {
            crate::model::IdentityPattern::parse(text(
                v,
                "a pattern string such as \"dns:*.corp.example\"",
            )?)
        })
    }

    pub fn ports(&mut self, rep: &mut Report, name: &str) -> Option<Sp<Vec<Sp<PortRange>>>> {
        self.list(rep, name, |v| match &v.kind {
            ValueKind::Integer(i) => values::port(*i).map(PortRange::single),
            ValueKind::String(s) => values::as_written(s).and_then(values::port_range),
            _ => Err(format!(
                "is {}, expected a port number or a \"lo-hi\" string",
                type_desc(v)
            )),
        })
    }

    /// `[lo, hi]` of u32, each an integer or a "0x…" string, with lo <= hi.
    pub fn range32(&mut self, rep: &mut Report, name: &str) -> Option<Sp<(u32, u32)>> {
        let (field, v) = self.value(rep, name)?;
        let parts = match v.as_array() {
            Some(a) if a.len() == 2 => a,
            Some(a) => {
                let frag = format!("has {} elements, expected exactly two: [lo, hi]", a.len());
                self.bad(rep, name, v, &frag);
                return None;
            }
            None => {
                let frag = format!("is {}, expected {}", type_desc(v), field.kind.expected());
                self.bad(rep, name, v, &frag);
                return None;
            }
        };
        let mut bounds = [0u32; 2];
        let mut ok = true;
        for (slot, el) in bounds.iter_mut().zip(parts.iter()) {
            let parsed = match &el.kind {
                ValueKind::Integer(i) => values::u32_int(*i),
                ValueKind::String(s) => values::as_written(s).and_then(values::u32_hex),
                _ => Err(format!(
                    "is {}, expected an integer or a \"0x…\" string",
                    type_desc(el)
                )),
            };
            match parsed {
                Ok(n) => *slot = n,
                Err(frag) => {
                    self.bad(rep, name, el, &frag);
                    ok = false;
                }
            }
        }
        if ok && bounds[0] > bounds[1] {
            self.bad(
                rep,
                name,
                v,
                "is inverted (expected [lo, hi] with lo <= hi)",
            );
            return None;
        }
        ok.then(|| Sp::new((bounds[0], bounds[1]), v.span.start))
    }
}

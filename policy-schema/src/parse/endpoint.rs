//! Endpoints (`any`, `zone:NAME`, `host:NAME`, `cluster:NAME`, prefixes, addresses), parsed
//! with the names the file defines at hand so that a typo gets a suggestion.

use rustc_hash::FxHashSet as HashSet;
use std::net::IpAddr;

use super::tree::{Item, Table};
use super::Reuse;
use crate::model::Endpoint;
use crate::suggest::{closest, did_you_mean};
use crate::text::shown;
use crate::values;

/// The names the file defines, collected before the full parse (borrowed from the tree).
#[derive(Debug, Default)]
pub(crate) struct Known<'a> {
    pub zones: NameSet<'a>,
    pub hosts: NameSet<'a>,
    pub clusters: NameSet<'a>,
    pub authorities: NameSet<'a>,
}

/// Names in file order (for suggestions) with a hash set (for lookups: a 10k-host file
/// refers to hosts by name 10k times).
#[derive(Debug, Default)]
pub(crate) struct NameSet<'a> {
    names: Vec<&'a str>,
    set: HashSet<&'a str>,
}

impl<'a> NameSet<'a> {
    pub fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.names.iter().copied()
    }
}

impl<'a> FromIterator<&'a str> for NameSet<'a> {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let names: Vec<&str> = iter.into_iter().collect();
        let set = names.iter().copied().collect();
        NameSet { names, set }
    }
}

/// The `name` strings of an array of tables, however it is written; a reused table's
/// name comes from `reuse`.
fn names_in<'a>(item: Option<&'a Item<'a>>, reuse: &'a dyn Reuse) -> NameSet<'a> {
    let tables: Vec<&Table> = match item {
        Some(Item::ArrayOfTables(a)) => a.iter().collect(),
        Some(Item::Value(v)) => v
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_inline_table()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let name = |t: &&'a Table<'a>| {
        let at = t.span.as_ref().map(|s| s.start);
        match at.and_then(|at| reuse.name(at)) {
            Some(n) => Some(n),
            None => t.get("name")?.as_str(),
        }
    };
    tables.iter().filter_map(name).collect()
}

impl<'a> Known<'a> {
    pub fn scan(root: &'a Table<'a>, reuse: &'a dyn Reuse) -> Known<'a> {
        let zones = root
            .get("zones")
            .and_then(|z| z.as_table_like())
            .map(|z| z.iter().map(|e| &*e.key).collect())
            .unwrap_or_default();
        Known {
            zones,
            hosts: names_in(root.get("hosts"), reuse),
            clusters: names_in(root.get("clusters"), &super::NoReuse),
            authorities: names_in(root.get("authorities"), &super::NoReuse),
        }
    }

    /// Every reference the file could make, for suggestions on a bare word.
    fn all_refs(&self) -> Vec<String> {
        let mut out = vec!["any".to_string()];
        out.extend(self.zones.iter().map(|n| format!("zone:{n}")));
        out.extend(self.hosts.iter().map(|n| format!("host:{n}")));
        out.extend(self.clusters.iter().map(|n| format!("cluster:{n}")));
        out.extend(self.authorities.iter().map(|n| format!("ca:{n}")));
        out
    }
}

const ENDPOINT_EXPECTED: &str =
    "expected any, zone:NAME, host:NAME, cluster:NAME, ca:NAME, an address or a prefix";

fn looks_like_ip(s: &str) -> bool {
    s.split('/')
        .next()
        .is_some_and(|a| a.parse::<IpAddr>().is_ok())
}

pub(crate) fn endpoint(s: &str, known: &Known) -> Result<Endpoint, String> {
    if s == "any" {
        return Ok(Endpoint::Any);
    }
    if looks_like_ip(s) {
        return values::prefix(s).map(Endpoint::Prefix);
    }
    if let Some((kind, name)) = s.split_once(':') {
        if !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphabetic()) {
            return reference(kind, name, known);
        }
    }
    let kind_of = [
        (&known.zones, "zone"),
        (&known.hosts, "host"),
        (&known.clusters, "cluster"),
        (&known.authorities, "ca"),
    ];
    if let Some((_, kind)) = kind_of.iter().find(|(l, _)| l.contains(s)) {
        return Err(format!(
            "is not an endpoint ({ENDPOINT_EXPECTED}) (did you mean \"{kind}:{s}\"?)"
        ));
    }
    let all = known.all_refs();
    Err(format!(
        "is not an endpoint ({ENDPOINT_EXPECTED}){}",
        did_you_mean(s, all.iter().map(String::as_str))
    ))
}

fn reference(kind: &str, name: &str, known: &Known) -> Result<Endpoint, String> {
    let (list, table, make): (_, _, fn(String) -> Endpoint) = match kind {
        "zone" => (&known.zones, "[zones]", Endpoint::Zone),
        "host" => (&known.hosts, "[[hosts]]", Endpoint::Host),
        "cluster" => (&known.clusters, "[[clusters]]", Endpoint::Cluster),
        "ca" => (&known.authorities, "[[authorities]]", Endpoint::Authority),
        _ => {
            let name = shown(name);
            let fixed = closest(kind, ["zone", "host", "cluster", "ca"])
                .map(|k| format!(" (did you mean \"{k}:{name}\"?)"))
                .unwrap_or_default();
            return Err(format!(
                "has an unknown endpoint kind \"{}:\" ({ENDPOINT_EXPECTED}){fixed}",
                shown(kind)
            ));
        }
    };
    if list.contains(name) {
        return Ok(make(name.to_string()));
    }
    let fixed = closest(name, list.iter())
        .map(|n| format!(" (did you mean \"{kind}:{n}\"?)"))
        .unwrap_or_default();
    Err(format!(
        "refers to an unknown {kind}, expected one defined in {table}{fixed}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known<'static> {
        Known {
            zones: ["intranet", "dmz"].into_iter().collect(),
            hosts: ["site", "db"].into_iter().collect(),
            clusters: ["sql"].into_iter().collect(),
            authorities: ["corp"].into_iter().collect(),
        }
    }

    #[test]
    fn parses_every_form() {
        let k = known();
        assert_eq!(endpoint("any", &k), Ok(Endpoint::Any));
        assert_eq!(endpoint("zone:dmz", &k), Ok(Endpoint::Zone("dmz".into())));
        assert_eq!(endpoint("host:db", &k), Ok(Endpoint::Host("db".into())));
        assert_eq!(
            endpoint("cluster:sql", &k),
            Ok(Endpoint::Cluster("sql".into()))
        );
        assert_eq!(
            endpoint("ca:corp", &k),
            Ok(Endpoint::Authority("corp".into()))
        );
        assert_eq!(
            endpoint("10.0.0.0/8", &k),
            Ok(Endpoint::Prefix("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(
            endpoint("dead::beef", &k),
            Ok(Endpoint::Prefix("dead::beef/128".parse().unwrap()))
        );
    }

    #[test]
    fn explains_mistakes() {
        let k = known();
        let e = endpoint("zone:intranot", &k).unwrap_err();
        assert!(
            e.contains("unknown zone") && e.contains("\"zone:intranet\""),
            "{e}"
        );
        let e = endpoint("zones:dmz", &k).unwrap_err();
        assert!(e.contains("did you mean \"zone:dmz\""), "{e}");
        let e = endpoint("intranet", &k).unwrap_err();
        assert!(e.contains("did you mean \"zone:intranet\""), "{e}");
        let e = endpoint("anyy", &k).unwrap_err();
        assert!(e.contains("did you mean \"any\""), "{e}");
        assert!(endpoint("10.1.2.3/8", &k)
            .unwrap_err()
            .contains("10.0.0.0/8"));
        assert!(endpoint("host:nope", &k).is_err());
        let e = endpoint("ca:crop", &k).unwrap_err();
        assert!(e.contains("unknown ca") && e.contains("\"ca:corp\""), "{e}");
    }
}

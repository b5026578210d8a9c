//! Endpoints → prefixes over the raw policy (the same meaning as `Policy::resolve`).

use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{any_prefixes, Endpoint, Family};
use crate::raw::{RawPolicy, Sp};

/// Name → prefixes of every zone, host and cluster (the first of duplicate names wins;
/// the duplicate itself is reported elsewhere). Borrows the raw policy: a 10k-host file
/// resolves names 10k times per rule side and must not copy a list each time.
pub(crate) struct Resolver<'r> {
    zones: HashMap<&'r str, &'r [Sp<IpNet>]>,
    hosts: HashMap<&'r str, &'r [Sp<IpAddr>]>,
    clusters: HashMap<&'r str, &'r [Sp<IpAddr>]>,
}

fn insert<'r, T>(map: &mut HashMap<&'r str, &'r [T]>, name: &'r str, list: &'r [T]) {
    map.entry(name).or_insert(list);
}

impl<'r> Resolver<'r> {
    pub fn new(raw: &'r RawPolicy) -> Resolver<'r> {
        let mut r = Resolver {
            zones: HashMap::with_capacity_and_hasher(raw.zones.len(), Default::default()),
            hosts: HashMap::with_capacity_and_hasher(raw.hosts.len(), Default::default()),
            clusters: HashMap::with_capacity_and_hasher(raw.clusters.len(), Default::default()),
        };
        for z in &raw.zones {
            insert(&mut r.zones, &z.name.v, &z.prefixes);
        }
        for h in &raw.hosts {
            if let Some(n) = &h.name {
                insert(&mut r.hosts, &n.v, &h.addresses);
            }
        }
        for c in &raw.clusters {
            if let Some(n) = &c.name {
                insert(&mut r.clusters, &n.v, &c.addresses);
            }
        }
        r
    }

    /// Append the prefixes of `e` to `out`.
    pub fn resolve_into(&self, e: &Endpoint, out: &mut Vec<IpNet>) {
        let addrs = |m: &HashMap<&str, &[Sp<IpAddr>]>, n: &str, out: &mut Vec<IpNet>| {
            let list = m.get(n).copied().unwrap_or_default();
            out.extend(list.iter().map(|a| IpNet::from(a.v)));
        };
        match e {
            Endpoint::Any | Endpoint::Authority(_) => out.extend(any_prefixes()),
            Endpoint::Zone(n) => {
                let list = self.zones.get(n.as_str()).copied().unwrap_or_default();
                out.extend(list.iter().map(|p| p.v));
            }
            Endpoint::Host(n) => addrs(&self.hosts, n, out),
            Endpoint::Cluster(n) => addrs(&self.clusters, n, out),
            Endpoint::Prefix(p) => out.push(*p),
        }
    }

    pub fn resolve(&self, e: &Endpoint) -> Vec<IpNet> {
        let mut out = Vec::new();
        self.resolve_into(e, &mut out);
        out
    }

    pub fn resolve_all(&self, es: &[Sp<Endpoint>]) -> Vec<IpNet> {
        let mut out = Vec::with_capacity(es.len());
        for e in es {
            self.resolve_into(&e.v, &mut out);
        }
        out
    }
}

/// Each rule's `from` and `to`, resolved once for every check that needs them (a side
/// naming 10k hosts is 10k lookups).
pub(crate) type Sides = Vec<(Vec<IpNet>, Vec<IpNet>)>;

pub(crate) fn rule_sides(raw: &RawPolicy, res: &Resolver) -> Sides {
    let each = |r: &crate::raw::RawRule| (res.resolve_all(&r.from), res.resolve_all(&r.to));
    raw.rules.iter().map(each).collect()
}

/// The address families a list of prefixes covers.
pub(crate) fn families(nets: &[IpNet]) -> BTreeSet<Family> {
    nets.iter().map(Family::of_net).collect()
}

/// Every prefix of `inner` lies inside some prefix of `outer`.
pub(crate) fn covered(inner: &[IpNet], outer: &[IpNet]) -> bool {
    inner.iter().all(|p| outer.iter().any(|o| o.contains(p)))
}

pub(crate) fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

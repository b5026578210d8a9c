//! Endpoints → prefixes over the raw policy (the same meaning as `Policy::resolve`).

use std::collections::BTreeSet;
use std::collections::HashMap;

use ipnet::IpNet;

use crate::model::{any_prefixes, Endpoint, Family};
use crate::raw::{RawPolicy, Sp};

/// Name → prefixes of every zone, host and cluster (the first of duplicate names wins;
/// the duplicate itself is reported elsewhere).
pub(crate) struct Resolver {
    zones: HashMap<String, Vec<IpNet>>,
    hosts: HashMap<String, Vec<IpNet>>,
    clusters: HashMap<String, Vec<IpNet>>,
}

fn insert(map: &mut HashMap<String, Vec<IpNet>>, name: &str, nets: Vec<IpNet>) {
    map.entry(name.to_string()).or_insert(nets);
}

impl Resolver {
    pub fn new(raw: &RawPolicy) -> Resolver {
        let mut r = Resolver {
            zones: HashMap::new(),
            hosts: HashMap::new(),
            clusters: HashMap::new(),
        };
        for z in &raw.zones {
            insert(
                &mut r.zones,
                &z.name.v,
                z.prefixes.iter().map(|p| p.v).collect(),
            );
        }
        for h in &raw.hosts {
            if let Some(n) = &h.name {
                insert(
                    &mut r.hosts,
                    &n.v,
                    h.addresses.iter().map(|a| IpNet::from(a.v)).collect(),
                );
            }
        }
        for c in &raw.clusters {
            if let Some(n) = &c.name {
                insert(
                    &mut r.clusters,
                    &n.v,
                    c.addresses.iter().map(|a| IpNet::from(a.v)).collect(),
                );
            }
        }
        r
    }

    pub fn resolve(&self, e: &Endpoint) -> Vec<IpNet> {
        let get = |m: &HashMap<String, Vec<IpNet>>, n: &str| m.get(n).cloned().unwrap_or_default();
        match e {
            Endpoint::Any => any_prefixes(),
            Endpoint::Zone(n) => get(&self.zones, n),
            Endpoint::Host(n) => get(&self.hosts, n),
            Endpoint::Cluster(n) => get(&self.clusters, n),
            Endpoint::Prefix(p) => vec![*p],
        }
    }

    pub fn resolve_all(&self, es: &[Sp<Endpoint>]) -> Vec<IpNet> {
        es.iter().flat_map(|e| self.resolve(&e.v)).collect()
    }
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

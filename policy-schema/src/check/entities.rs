//! Zones, hosts and clusters among themselves: unique names, addresses and keys; host
//! addresses inside the zones the host claims; cluster members.

use rustc_hash::FxHashMap as HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use crate::model::PublicKey;
use crate::raw::{Origin, RawPolicy, Sp};
use crate::report::Report;

/// First occurrence of each value: where, and which entry.
struct Seen<'r, K> {
    first: HashMap<K, (usize, &'r str)>,
}

impl<'r, K: Hash + Eq> Seen<'r, K> {
    fn new() -> Self {
        Seen::with_capacity(0)
    }

    /// Sized for `n` values: a map regrown by doubling rehashes every key seen so far.
    fn with_capacity(n: usize) -> Self {
        Seen {
            first: HashMap::with_capacity_and_hasher(n, Default::default()),
        }
    }

    /// The earlier (offset, label) with the same value, or record this one.
    fn note(&mut self, k: K, at: usize, label: &'r str) -> Option<(usize, &'r str)> {
        match self.first.get(&k) {
            Some(prev) => Some(*prev),
            None => {
                self.first.insert(k, (at, label));
                None
            }
        }
    }
}

pub(crate) fn check(rep: &mut Report, raw: &RawPolicy) {
    duplicate_names(rep, raw);
    for z in &raw.zones {
        if z.complete && z.prefixes.is_empty() {
            rep.warn(
                z.name.at,
                format!(
                    "zones.{}: zone is empty, so endpoints naming it match nothing",
                    z.name.v
                ),
            );
        }
    }
    duplicate_addresses(rep, raw);
    duplicate_keys(rep, raw);
    host_zones(rep, raw);
    gateway_families(rep, raw);
    for c in &raw.clusters {
        let mut seen = Seen::new();
        for m in &c.members {
            if let Some((prev, _)) = seen.note(&m.v, m.at, "") {
                let msg = format!(
                    "{}: member \"{}\" is listed twice, first at {} (expected each member once)",
                    c.origin.label,
                    crate::text::shown(&m.v),
                    rep.pos(prev)
                );
                rep.error(m.at, msg);
            }
        }
    }
}

fn duplicate_names(rep: &mut Report, raw: &RawPolicy) {
    fn named<'r>(name: &'r Option<Sp<String>>, o: &'r Origin) -> Option<(&'r str, usize, &'r str)> {
        name.as_ref()
            .map(|n| (n.v.as_str(), n.at, o.label.as_str()))
    }
    let hosts = raw.hosts.iter().filter_map(|h| named(&h.name, &h.origin));
    unique_names(rep, "host", hosts);
    let clusters = raw
        .clusters
        .iter()
        .filter_map(|c| named(&c.name, &c.origin));
    unique_names(rep, "cluster", clusters);
    let authorities = raw.authorities.iter();
    unique_names(
        rep,
        "authority",
        authorities.filter_map(|a| named(&a.name, &a.origin)),
    );
    let exemptions = raw.exemptions.iter();
    unique_names(
        rep,
        "exemption",
        exemptions.filter_map(|x| named(&x.name, &x.origin)),
    );
    let rules = raw.rules.iter().filter_map(|r| named(&r.name, &r.origin));
    unique_names(rep, "rule", rules);
}

/// Names are unique within their kind (references say the kind: host:, cluster:).
fn unique_names<'r>(
    rep: &mut Report,
    kind: &str,
    entries: impl Iterator<Item = (&'r str, usize, &'r str)>,
) {
    let mut seen: Seen<&str> = Seen::with_capacity(entries.size_hint().1.unwrap_or(0));
    for (name, at, label) in entries {
        if let Some((prev, prev_label)) = seen.note(name, at, label) {
            let msg = format!(
                "{label}: duplicate {kind} name \"{name}\", already used by {prev_label} at {} (expected unique names)",
                rep.pos(prev)
            );
            rep.error(at, msg);
        }
    }
}

/// Every address belongs to one host or one cluster: the compiler keys SAs by address.
fn duplicate_addresses(rep: &mut Report, raw: &RawPolicy) {
    let hosts = raw
        .hosts
        .iter()
        .map(|h| (&h.addresses, h.origin.label.as_str()));
    let clusters = raw
        .clusters
        .iter()
        .map(|c| (&c.addresses, c.origin.label.as_str()));
    let hosts_n: usize = raw.hosts.iter().map(|h| h.addresses.len()).sum();
    let mut seen: Seen<IpAddr> = Seen::with_capacity(hosts_n + raw.clusters.len());
    for (addrs, label) in hosts.chain(clusters) {
        for a in addrs {
            if let Some((prev, prev_label)) = seen.note(a.v, a.at, label) {
                let msg = format!(
                    "{label}: address {} is already an address of {prev_label} at {} (expected each address in one host or cluster)",
                    a.v,
                    rep.pos(prev)
                );
                rep.error(a.at, msg);
            }
        }
    }
}

/// Pair keys are derived from both public keys: two entries with one key would share keys.
fn duplicate_keys(rep: &mut Report, raw: &RawPolicy) {
    let mut seen: Seen<PublicKey> = Seen::with_capacity(raw.hosts.len() + raw.clusters.len());
    let hosts = raw
        .hosts
        .iter()
        .map(|h| (&h.public_key, h.origin.label.as_str(), false));
    let clusters = raw
        .clusters
        .iter()
        .map(|c| (&c.public_key, c.origin.label.as_str(), true));
    for (key, label, is_cluster) in hosts.chain(clusters) {
        let Some(key) = key else { continue };
        let Some((prev, prev_label)) = seen.note(key.v, key.at, label) else {
            continue;
        };
        let prev_is_host = raw.hosts.iter().any(|h| h.origin.label == prev_label);
        let what = if is_cluster && prev_is_host {
            "a cluster needs a key of its own, not a member's or any host's"
        } else {
            "expected a distinct key per host and cluster"
        };
        let msg = format!(
            "{label}: public-key is already the key of {prev_label} at {} ({what})",
            rep.pos(prev)
        );
        rep.error(key.at, msg);
    }
}

/// A gateway tunnels a subnet from an address of the subnet's family: the compiler makes
/// no cross-family tunnels (an IPv6 subnet behind IPv4-only gateways got IPv6 policies
/// with IPv4 SAs whose selector never matched, so every packet was dropped unexplained).
fn gateway_families(rep: &mut Report, raw: &RawPolicy) {
    use crate::model::Family;
    for h in raw.hosts.iter().filter(|h| !h.addresses.is_empty()) {
        let has = |f: Family| h.addresses.iter().any(|a| Family::of(&a.v) == f);
        for g in h.gateway_for.iter().filter(|g| !has(Family::of_net(&g.v))) {
            let fam = super::resolve::family_name(Family::of_net(&g.v));
            let msg = format!(
                "{}: gateway-for {} is {fam}, but the host has no {fam} address to be its tunnel endpoint (expected an {fam} address in addresses: tunnels between address families are not supported)",
                h.origin.label, g.v
            );
            rep.error(g.at, msg);
        }
    }
}

/// A host that lists zones must have every address inside one of them.
fn host_zones(rep: &mut Report, raw: &RawPolicy) {
    let zones: HashMap<&str, &crate::raw::RawZone> = raw
        .zones
        .iter()
        .rev()
        .map(|z| (z.name.v.as_str(), z))
        .collect();
    for h in raw
        .hosts
        .iter()
        .filter(|h| h.origin.complete && !h.zones.is_empty())
    {
        let declared: Vec<_> = h
            .zones
            .iter()
            .filter_map(|z| zones.get(z.v.as_str()))
            .collect();
        if declared.iter().any(|z| !z.complete) {
            continue;
        }
        for a in &h.addresses {
            let inside = declared
                .iter()
                .any(|z| z.prefixes.iter().any(|p| p.v.contains(&a.v)));
            if !inside {
                let names: Vec<String> = h.zones.iter().map(|z| crate::text::shown(&z.v)).collect();
                let prefixes: Vec<String> = declared
                    .iter()
                    .flat_map(|z| z.prefixes.iter().map(|p| p.v.to_string()))
                    .take(6)
                    .collect();
                let msg = format!(
                    "{}: address {} is outside every zone the host declares ({}) (expected an address in {})",
                    h.origin.label,
                    a.v,
                    names.join(", "),
                    if prefixes.is_empty() { "a non-empty zone".to_string() } else { prefixes.join(", ") }
                );
                rep.error(a.at, msg);
            }
        }
    }
}

//! The raw policy, once it produced no error, as the typed [`Policy`]. The raw policy is
//! consumed: names and lists move into the model instead of being copied.

use crate::check::Resolver;
use crate::model::{
    Admission, Authority, Cluster, Defaults, Exemption, Host, Policy, Rule, Scope, Zone,
};
use crate::raw::{RawAuthority, RawCluster, RawExemption, RawHost, RawPolicy, RawRule, Sp};

fn vals<T>(l: Vec<Sp<T>>) -> Vec<T> {
    l.into_iter().map(|s| s.v).collect()
}

/// `f` of each element, or `None` at the first `None`, in a Vec of exactly that size:
/// collecting into `Option<Vec>` reused the raw Vec's larger allocation (or regrew by
/// doubling), which a loaded 10k-host policy then kept for its lifetime.
fn all<T, U>(l: Vec<T>, f: impl FnMut(T) -> Option<U>) -> Option<Vec<U>> {
    let mut out = Vec::with_capacity(l.len());
    for u in l.into_iter().map(f) {
        out.push(u?);
    }
    Some(out)
}

/// Each exemption's peers resolved to prefixes (deduplicated, in file order); taken before
/// [`build`] because the resolver borrows the raw policy that `build` consumes.
pub(crate) fn exemption_peers(raw: &RawPolicy, res: &Resolver) -> Vec<Vec<ipnet::IpNet>> {
    let dedup = |x: &RawExemption| {
        let mut peers = Vec::new();
        for p in res.resolve_all(&x.peers) {
            if !peers.contains(&p) {
                peers.push(p);
            }
        }
        peers
    };
    raw.exemptions.iter().map(dedup).collect()
}

/// `None` only if a required value is missing, which validation has already reported.
pub(crate) fn build(raw: RawPolicy, peers: Vec<Vec<ipnet::IpNet>>) -> Option<Policy> {
    let d = raw.defaults.values;
    let zones = raw.zones.into_iter().map(|z| Zone {
        name: z.name.v,
        prefixes: vals(z.prefixes),
    });
    let exemptions: Vec<_> = raw.exemptions.into_iter().zip(peers).collect();
    let authorities = all(raw.authorities, authority)?;
    let broad: Vec<&str> = authorities
        .iter()
        .filter(|a| a.scope == Scope::Any)
        .map(|a| a.name.as_str())
        .collect();
    let rules = all(raw.rules, |r| rule(r, &d, &broad))?;
    Some(Policy {
        version: 1,
        zones: zones.collect(),
        hosts: all(raw.hosts, host)?,
        clusters: all(raw.clusters, cluster)?,
        exemptions: all(exemptions, |(x, peers)| exemption(x, peers))?,
        rules,
        authorities,
        defaults: d,
        ownership: raw.ownership.values,
    })
}

fn host(h: RawHost) -> Option<Host> {
    Some(Host {
        name: h.name?.v,
        addresses: vals(h.addresses),
        public_key: h.public_key?.v,
        zones: vals(h.zones),
        encapsulation: h.encapsulation,
        gateway_for: vals(h.gateway_for),
    })
}

fn cluster(c: RawCluster) -> Option<Cluster> {
    Some(Cluster {
        name: c.name?.v,
        addresses: vals(c.addresses),
        public_key: c.public_key?.v,
        members: vals(c.members),
        encapsulation: c.encapsulation,
    })
}

fn exemption(x: RawExemption, peers: Vec<ipnet::IpNet>) -> Option<Exemption> {
    Some(Exemption {
        name: x.name?.v,
        protocol: x.protocol?.v,
        ports: vals(x.ports),
        direction: x.direction,
        peers,
    })
}

fn authority(a: RawAuthority) -> Option<Authority> {
    Some(Authority {
        name: a.name?.v,
        ca_certificates: vals(a.ca_certificates),
        crls: vals(a.crls),
        revocation: a.revocation,
        scope: a.scope,
        identities: vals(a.identities),
        crl_warning: (a.crl_warning.map(|w| w.v)).unwrap_or(crate::authority::CRL_WARNING_DEFAULT),
    })
}

/// Endpoints stay symbolic; mode, cipher and key exchange take [defaults] when the rule
/// names none; `broad` are the authorities with `scope = "any"`.
fn rule(r: RawRule, d: &Defaults, broad: &[&str]) -> Option<Rule> {
    let (from, to, action) = (vals(r.from), vals(r.to), r.action?.v);
    Some(Rule {
        name: r.name?.v,
        admits: Admission::of(&from, &to, action, broad),
        from,
        to,
        protocol: r.protocol.map(|p| p.v),
        ports: vals(r.ports),
        action,
        mode: r.mode.map_or(d.mode, |m| m.v),
        cipher: r.cipher.map_or(d.cipher, |c| c.v),
        key_exchange: r.key_exchange.map_or(d.key_exchange, |k| k.v),
        identities: vals(r.identities),
    })
}

//! The raw policy, once it produced no error, as the typed [`Policy`].

use crate::check::Resolver;
use crate::model::{Cluster, Defaults, Exemption, Host, Policy, Rule, Zone};
use crate::raw::{RawCluster, RawExemption, RawHost, RawPolicy, RawRule, Sp};

fn vals<T: Clone>(l: &[Sp<T>]) -> Vec<T> {
    l.iter().map(|s| s.v.clone()).collect()
}

/// `None` only if a required value is missing, which validation has already reported.
pub(crate) fn build(raw: &RawPolicy) -> Option<Policy> {
    let res = Resolver::new(raw);
    let d = &raw.defaults.values;
    let zones = raw.zones.iter().map(|z| Zone {
        name: z.name.v.clone(),
        prefixes: vals(&z.prefixes),
    });
    Some(Policy {
        version: 1,
        defaults: d.clone(),
        ownership: raw.ownership.values.clone(),
        zones: zones.collect(),
        hosts: raw.hosts.iter().map(host).collect::<Option<_>>()?,
        clusters: raw.clusters.iter().map(cluster).collect::<Option<_>>()?,
        exemptions: raw
            .exemptions
            .iter()
            .map(|x| exemption(x, &res))
            .collect::<Option<_>>()?,
        rules: raw
            .rules
            .iter()
            .map(|r| rule(r, d))
            .collect::<Option<_>>()?,
    })
}

fn host(h: &RawHost) -> Option<Host> {
    Some(Host {
        name: h.name.as_ref()?.v.clone(),
        addresses: vals(&h.addresses),
        public_key: h.public_key.as_ref()?.v,
        zones: vals(&h.zones),
        encapsulation: h.encapsulation,
        gateway_for: vals(&h.gateway_for),
    })
}

fn cluster(c: &RawCluster) -> Option<Cluster> {
    Some(Cluster {
        name: c.name.as_ref()?.v.clone(),
        addresses: vals(&c.addresses),
        public_key: c.public_key.as_ref()?.v,
        members: vals(&c.members),
        encapsulation: c.encapsulation,
    })
}

/// Peers are resolved to prefixes here (deduplicated, in file order).
fn exemption(x: &RawExemption, res: &Resolver) -> Option<Exemption> {
    let mut peers = Vec::new();
    for p in res.resolve_all(&x.peers) {
        if !peers.contains(&p) {
            peers.push(p);
        }
    }
    Some(Exemption {
        name: x.name.as_ref()?.v.clone(),
        protocol: x.protocol.as_ref()?.v,
        ports: vals(&x.ports),
        direction: x.direction,
        peers,
    })
}

/// Endpoints stay symbolic; mode and cipher take [defaults] when the rule names none.
fn rule(r: &RawRule, d: &Defaults) -> Option<Rule> {
    Some(Rule {
        name: r.name.as_ref()?.v.clone(),
        from: vals(&r.from),
        to: vals(&r.to),
        protocol: r.protocol.as_ref().map(|p| p.v),
        ports: vals(&r.ports),
        action: r.action.as_ref()?.v,
        mode: r.mode.as_ref().map_or(d.mode, |m| m.v),
        cipher: r.cipher.as_ref().map_or(d.cipher, |c| c.v),
    })
}

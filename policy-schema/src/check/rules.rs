//! Exemptions and rules one by one: ports need a port protocol, selectors must be able to
//! match (address families), tunnel-mode prefixes need a gateway; then which hosts no rule
//! gives SAs.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::resolve::{covered, families, family_name, Resolver, Sides};
use crate::model::{Direction, Endpoint, Family, Mode, Protocol};
use crate::raw::{RawPolicy, RawRule, Sp};
use crate::report::Report;

pub(crate) fn check(rep: &mut Report, raw: &RawPolicy, res: &Resolver, sides: &Sides) {
    for x in &raw.exemptions {
        let label = &x.origin.label;
        if let (Some(at), Some(p)) = (x.ports_at, &x.protocol) {
            ports_protocol(rep, label, at, Some(p.v));
        }
        if let (Some(at), Some(p)) = (x.direction_at, &x.protocol) {
            // Without ports nothing in a packet says who opened the exchange.
            if !p.v.has_ports() && x.direction != Direction::Both {
                rep.warn(
                    at,
                    format!("{label}: direction has no effect for protocol {}, which has no ports: both packet directions are exempted", p.v),
                );
            }
        }
        if let (Some(p), Some(_)) = (&x.protocol, x.peers_at) {
            if x.origin.complete {
                let fams = families(&res.resolve_all(&x.peers));
                protocol_family(rep, label, p, "every peer", &fams);
            }
        }
    }
    for (r, side) in raw.rules.iter().zip(sides) {
        if let Some(at) = r.ports_at {
            ports_protocol(rep, &r.origin.label, at, r.protocol.as_ref().map(|p| p.v));
        }
        if r.origin.complete {
            same_host(rep, r, side);
            rule_families(rep, r, side);
            let mode = r.mode.as_ref().map_or(raw.defaults.values.mode, |m| m.v);
            let esp = r.action.as_ref().is_some_and(|a| a.v.uses_esp());
            if mode == Mode::Tunnel && esp {
                tunnel_gateways(rep, raw, r, res);
            }
        }
    }
}

fn ports_protocol(rep: &mut Report, label: &str, at: usize, protocol: Option<Protocol>) {
    let fix = "expected protocol tcp, udp, 33 (dccp), 132 (sctp) or 136 (udplite) with ports";
    match protocol {
        None => rep.error(at, format!("{label}: ports are given without a protocol ({fix})")),
        Some(p) if !p.has_ports() => rep.error(
            at,
            format!("{label}: ports are given for protocol {p}, which has no ports ({fix}, or no ports)"),
        ),
        Some(_) => {}
    }
}

/// icmp only exists over IPv4 and icmpv6 only over IPv6.
fn protocol_family(
    rep: &mut Report,
    label: &str,
    p: &Sp<Protocol>,
    side: &str,
    fams: &BTreeSet<Family>,
) -> bool {
    let Some(need) = p.v.family() else {
        return true;
    };
    if fams.is_empty() || fams.contains(&need) {
        return true;
    }
    let other = if need == Family::V4 { "icmpv6" } else { "icmp" };
    rep.error(
        p.at,
        format!(
            "{label}: protocol {} is {}-only but {side} is {}, so it can never match (expected {other}, or {} endpoints)",
            p.v,
            family_name(need),
            fams.iter().map(|f| family_name(*f)).collect::<Vec<_>>().join("/"),
            family_name(need)
        ),
    );
    false
}

/// A rule whose two sides are the same addresses (one host, from and to) only matches a
/// host's traffic to itself, which never leaves it: almost certainly a slip. A warning:
/// the file stays valid, the rule just protects nothing.
fn same_host(rep: &mut Report, r: &RawRule, (from, to): &(Vec<IpNet>, Vec<IpNet>)) {
    let single = |n: &IpNet| n.prefix_len() == n.max_prefix_len();
    if from.is_empty() || !from.iter().all(single) {
        return;
    }
    let (f, t): (BTreeSet<&IpNet>, BTreeSet<&IpNet>) = (from.iter().collect(), to.iter().collect());
    if f != t {
        return;
    }
    let side = r.from.first().map(|e| e.v.to_string()).unwrap_or_default();
    rep.warn(
        r.to_at.unwrap_or(r.origin.at),
        format!(
            "{}: from and to are the same host ({}): its traffic to itself never leaves it, so the rule protects nothing (expected another endpoint on one side)",
            r.origin.label,
            crate::text::shown(&side)
        ),
    );
}

fn rule_families(rep: &mut Report, r: &RawRule, (from, to): &(Vec<IpNet>, Vec<IpNet>)) {
    let label = &r.origin.label;
    let (from, to) = (families(from), families(to));
    if from.is_empty() || to.is_empty() {
        return;
    }
    if from.is_disjoint(&to) {
        let name = |s: &BTreeSet<Family>| family_name(*s.iter().next().expect("non-empty"));
        rep.error(
            r.to_at.unwrap_or(r.origin.at),
            format!(
                "{label}: from is {}-only and to is {}-only, so the rule can never match (expected both sides to share an address family)",
                name(&from),
                name(&to)
            ),
        );
        return;
    }
    if let Some(p) = &r.protocol {
        // One message is enough when both sides are of the wrong family.
        if protocol_family(rep, label, p, "from", &from) {
            protocol_family(rep, label, p, "to", &to);
        }
    }
}

/// In tunnel mode every prefix needs a tunnel endpoint: a host whose gateway-for covers it
/// (the compiler builds tunnels between gateways only; a host that tunnels for itself lists
/// its own address in gateway-for).
fn tunnel_gateways(rep: &mut Report, raw: &RawPolicy, r: &RawRule, res: &Resolver) {
    let gateways: Vec<IpNet> = raw
        .hosts
        .iter()
        .flat_map(|h| h.gateway_for.iter().map(|g| g.v))
        .collect();
    // An authority endpoint in tunnel mode has its own error (check::authorities).
    let addressed = |e: &&Sp<Endpoint>| !matches!(e.v, Endpoint::Authority(_));
    for e in r.from.iter().chain(r.to.iter()).filter(addressed) {
        for p in res.resolve(&e.v) {
            if covered(&[p], &gateways) {
                continue;
            }
            let via = match &e.v {
                Endpoint::Prefix(_) => String::new(),
                other => format!(" (from {})", crate::text::shown(&other.to_string())),
            };
            rep.error(
                e.at,
                format!(
                    "{}: tunnel mode needs a gateway for {p}{via}, but no host's gateway-for covers it (expected a [[hosts]] entry with gateway-for containing {p}, or mode = \"transport\")",
                    r.origin.label
                ),
            );
        }
    }
}

/// Where an owner (host or cluster) can be an SA endpoint for one rule: its addresses, and
/// in tunnel mode also the subnets it is a gateway for.
struct Owner<'r> {
    addresses: &'r [Sp<std::net::IpAddr>],
    gateway_for: &'r [Sp<IpNet>],
}

/// A rule side's prefixes, indexed by length: "is this address inside the side" is a few
/// hash lookups instead of a scan (a side naming 10,000 hosts made validation quadratic).
struct Side<'a> {
    prefixes: &'a [IpNet],
    by_len: rustc_hash::FxHashSet<IpNet>,
    lens: BTreeSet<(bool, u8)>,
}

impl<'a> Side<'a> {
    fn new(prefixes: &'a [IpNet]) -> Side<'a> {
        Side {
            prefixes,
            by_len: prefixes.iter().map(IpNet::trunc).collect(),
            lens: prefixes
                .iter()
                .map(|p| (p.addr().is_ipv4(), p.prefix_len()))
                .collect(),
        }
    }

    /// Some prefix of the side contains `a`.
    fn covers(&self, a: &IpNet) -> bool {
        let v4 = a.addr().is_ipv4();
        self.lens
            .iter()
            .filter(|(f, len)| *f == v4 && *len <= a.prefix_len())
            .filter_map(|(_, len)| IpNet::new(a.addr(), *len).ok())
            .any(|n| self.by_len.contains(&n.trunc()))
    }
}

impl Owner<'_> {
    fn inside(&self, side: &Side<'_>, tunnel: bool) -> bool {
        let addr = self
            .addresses
            .iter()
            .any(|a| side.covers(&IpNet::from(a.v)));
        let side = side.prefixes;
        let gw = tunnel
            && self
                .gateway_for
                .iter()
                .any(|g| side.iter().any(|p| p.contains(&g.v) || g.v.contains(p)));
        addr || gw
    }
}

/// A host that no require/request rule pairs with another host or cluster gets no SAs: its
/// entry is probably a mistake (or a rule is). Skipped when a rule failed to parse: the
/// answer would be a guess.
pub(crate) fn check_coverage(rep: &mut Report, raw: &RawPolicy, sides: &Sides) {
    if raw.rules.iter().any(|r| !r.origin.complete) {
        return;
    }
    let paired = paired_owners(raw, sides);
    for (h, ok) in raw.hosts.iter().zip(&paired) {
        if !ok && h.origin.complete {
            let at = h.name.as_ref().map_or(h.origin.at, |n| n.at);
            rep.warn(
                at,
                format!(
                    "{}: no require or request rule pairs this host with another host or cluster, so it gets no SAs",
                    h.origin.label
                ),
            );
        }
    }
}

/// For hosts then clusters: does some ESP rule put it on one side and someone else on the
/// other. A paired cluster pairs its members (they hold its addresses).
fn paired_owners(raw: &RawPolicy, sides: &Sides) -> Vec<bool> {
    let hosts = raw.hosts.iter().map(|h| Owner {
        addresses: &h.addresses,
        gateway_for: &h.gateway_for,
    });
    let clusters = raw.clusters.iter().map(|c| Owner {
        addresses: &c.addresses,
        gateway_for: &[],
    });
    let owners: Vec<Owner> = hosts.chain(clusters).collect();
    let mut paired = vec![false; owners.len()];
    let esp = raw
        .rules
        .iter()
        .zip(sides)
        .filter(|(r, _)| r.action.as_ref().is_some_and(|a| a.v.uses_esp()));
    for (r, (from, to)) in esp {
        if paired.iter().all(|p| *p) {
            break;
        }
        let tunnel = r.mode.as_ref().map_or(raw.defaults.values.mode, |m| m.v) == Mode::Tunnel;
        let (from, to) = (Side::new(from), Side::new(to));
        // Two owners per side are enough to know whether a side has someone besides `i`.
        let two = |side: &Side<'_>| -> Vec<usize> {
            let mut inside = (0..owners.len()).filter(|&i| owners[i].inside(side, tunnel));
            inside.by_ref().take(2).collect()
        };
        let (f, t) = (two(&from), two(&to));
        if f.is_empty() || t.is_empty() {
            continue;
        }
        for (i, (owner, done)) in owners.iter().zip(paired.iter_mut()).enumerate() {
            let other = |side: &[usize]| side.iter().any(|&j| j != i);
            *done = *done
                || (other(&t) && owner.inside(&from, tunnel))
                || (other(&f) && owner.inside(&to, tunnel));
        }
    }
    pair_members(raw, &mut paired);
    paired
}

/// A paired cluster pairs its members. Hosts by name, first of duplicates (as a scan would
/// find), built only when there are clusters.
fn pair_members(raw: &RawPolicy, paired: &mut [bool]) {
    if raw.clusters.is_empty() {
        return;
    }
    let mut index: rustc_hash::FxHashMap<&str, usize> = Default::default();
    for (i, h) in raw.hosts.iter().enumerate() {
        if let Some(n) = &h.name {
            index.entry(n.v.as_str()).or_insert(i);
        }
    }
    for (ci, c) in raw.clusters.iter().enumerate() {
        if paired[raw.hosts.len() + ci] {
            for m in &c.members {
                if let Some(&hi) = index.get(m.v.as_str()) {
                    paired[hi] = true;
                }
            }
        }
    }
}

//! Tunnel-mode rules: which subnets this gateway protects towards which remote gateway.

use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::{Family, Host, Policy, Rule};

use super::net::intersect;
use super::ports::Side;

/// One (local subnet, remote subnet) pair carried between two gateways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelLink<'a> {
    pub peer: &'a Host,
    pub local_net: IpNet,
    pub remote_net: IpNet,
    /// Outer (tunnel endpoint) addresses.
    pub local_addr: IpAddr,
    pub peer_addr: IpAddr,
    /// The local subnet is on the rule's `to` side (its ports are ours).
    pub local_is_to: bool,
}

impl TunnelLink<'_> {
    pub(super) fn side(&self) -> Side {
        if self.local_is_to {
            Side::Server
        } else {
            Side::Client
        }
    }
}

/// The parts of `side` that lie behind `gateway_for`.
fn behind(side: &[IpNet], gateway_for: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = side
        .iter()
        .flat_map(|s| gateway_for.iter().filter_map(move |g| intersect(s, g)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Outer addresses of the same family as the inner traffic, else of any common family.
fn outer_pair(me: &Host, peer: &Host, inner: Family) -> Option<(IpAddr, IpAddr)> {
    let pick = |fam: Family| {
        let a = me.addresses.iter().find(|a| Family::of(a) == fam)?;
        let b = peer.addresses.iter().find(|b| Family::of(b) == fam)?;
        Some((*a, *b))
    };
    let other = match inner {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    };
    pick(inner).or_else(|| pick(other))
}

/// Every link of a tunnel-mode rule at gateway `me`, in a stable order.
pub fn tunnel_links<'a>(policy: &'a Policy, rule: &Rule, me: &Host) -> Vec<TunnelLink<'a>> {
    if me.gateway_for.is_empty() {
        return Vec::new();
    }
    let from = policy.resolve_all(&rule.from);
    let to = policy.resolve_all(&rule.to);
    let mut links = Vec::new();
    for (mine, theirs, local_is_to) in [(&to, &from, true), (&from, &to, false)] {
        let local_nets = behind(mine, &me.gateway_for);
        for peer in policy.hosts.iter().filter(|h| h.name != me.name) {
            let remote_nets = behind(theirs, &peer.gateway_for);
            for ln in &local_nets {
                for rn in &remote_nets {
                    let fam = Family::of_net(ln);
                    if fam != Family::of_net(rn) {
                        continue;
                    }
                    let Some((local_addr, peer_addr)) = outer_pair(me, peer, fam) else {
                        continue;
                    };
                    let link = TunnelLink {
                        peer,
                        local_net: *ln,
                        remote_net: *rn,
                        local_addr,
                        peer_addr,
                        local_is_to,
                    };
                    if !links.contains(&link) {
                        links.push(link);
                    }
                }
            }
        }
    }
    links
}

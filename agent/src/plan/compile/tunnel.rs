//! Tunnel-mode rules: which subnets this gateway protects towards which remote gateway.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::{Cipher, Family, Host, KeyExchange, Mode, Policy, Rule};

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

/// A gateway pair keyed over IKEv2: one tunnel-mode Child SA between the two outer
/// addresses, carrying every network pair of the tunnel rules with the cipher of the first
/// rule that says `key-exchange = "ikev2"` (the compiler makes no static SAs for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeTunnel {
    /// The first IKEv2 tunnel rule between the two gateways.
    pub rule: String,
    pub cipher: Cipher,
    /// Networks behind us and behind the peer gateway.
    pub local_nets: Vec<IpNet>,
    pub remote_nets: Vec<IpNet>,
}

/// ESP tunnel-mode rules, in file order.
fn esp_tunnel_rules(policy: &Policy) -> impl Iterator<Item = &Rule> {
    (policy.rules.iter()).filter(|r| r.mode == Mode::Tunnel && r.action.uses_esp())
}

/// The gateway pairs (our outer address, the peer's) of `me` that IKEv2 keys.
pub fn ike_tunnels(policy: &Policy, me: &Host) -> BTreeMap<(IpAddr, IpAddr), IkeTunnel> {
    let mut out: BTreeMap<(IpAddr, IpAddr), IkeTunnel> = BTreeMap::new();
    for rule in esp_tunnel_rules(policy).filter(|r| r.key_exchange == KeyExchange::Ikev2) {
        for link in tunnel_links(policy, rule, me) {
            (out.entry((link.local_addr, link.peer_addr))).or_insert_with(|| IkeTunnel {
                rule: rule.name.clone(),
                cipher: rule.cipher,
                local_nets: Vec::new(),
                remote_nets: Vec::new(),
            });
        }
    }
    for rule in esp_tunnel_rules(policy) {
        for link in tunnel_links(policy, rule, me) {
            let key = (link.local_addr, link.peer_addr);
            let Some(t) = out.get_mut(&key).filter(|t| t.cipher == rule.cipher) else {
                continue;
            };
            for (nets, n) in [
                (&mut t.local_nets, link.local_net),
                (&mut t.remote_nets, link.remote_net),
            ] {
                if !nets.contains(&n) {
                    nets.push(n);
                }
            }
        }
    }
    out
}

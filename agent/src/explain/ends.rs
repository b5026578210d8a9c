//! One end of a flow: who it is (a host, a cluster address, or an address without a key)
//! and which entry of the file decides its XFRM policy for the flow.

use std::net::IpAddr;

use policy_schema::{Action, Direction, Encapsulation, Exemption, Mode};
use serde::Serialize;

use super::{port_in, Flow, Model};

/// The entry that decides one end's packets of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Decider {
    /// No host or cluster of the file has this address: no key, no XFRM policy.
    NotMember,
    /// Loopback traffic: the kernel never applies XFRM to it.
    Loopback,
    /// An exemption (they come before every rule).
    Exemption {
        index: usize,
        name: String,
        /// `file:line` of the entry, when known.
        at: Option<String>,
    },
    /// The first rule that matches, in file order.
    Rule {
        index: usize,
        name: String,
        action: Action,
        at: Option<String>,
        /// The tunnel gateway that enforces it (tunnel mode), else the end itself.
        gateway: Option<String>,
    },
    /// A member, but no exemption or rule matches: no policy, clear.
    NoRule,
}

impl Decider {
    /// `rule web (policy.toml:40)`, `exemption icmp (policy.toml:30)`, `no rule`.
    pub fn describe(&self) -> String {
        let at = |a: &Option<String>| a.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
        match self {
            Decider::NotMember => "no key".into(),
            Decider::Loopback => "loopback".into(),
            Decider::Exemption { name, at: a, .. } => format!("exemption {name}{}", at(a)),
            Decider::Rule {
                name,
                action,
                at: a,
                gateway,
                ..
            } => {
                let gw = gateway
                    .as_ref()
                    .map(|g| format!(" at gateway {g}"))
                    .unwrap_or_default();
                format!("rule {name}{}: {}{gw}", at(a), action.as_str())
            }
            Decider::NoRule => "no rule matches".into(),
        }
    }

    /// `rule web`, `exemption icmp`: the entry without its place, for reasons.
    pub fn short(&self) -> String {
        match self {
            Decider::Exemption { name, .. } => format!("exemption {name}"),
            Decider::Rule { name, .. } => format!("rule {name}"),
            other => other.describe(),
        }
    }

    /// The rule's action, when a rule decides.
    pub fn action(&self) -> Option<Action> {
        match self {
            Decider::Rule { action, .. } => Some(*action),
            _ => None,
        }
    }
}

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct End {
    pub addr: IpAddr,
    /// The host name, or `cluster:NAME`, whose address this is; none: no key.
    pub party: Option<String>,
    /// The party's SAs are ESP-in-UDP (`encapsulation = "udp"`).
    pub encapsulation: bool,
    pub decider: Decider,
}

impl End {
    /// The initiator's end of `flow` (`initiator`), or the responder's.
    pub(super) fn of(m: &Model, flow: &Flow, initiator: bool) -> End {
        let (me, peer) = if initiator {
            (flow.src, flow.dst)
        } else {
            (flow.dst, flow.src)
        };
        let (party, encap) = party_of(m, &me).unzip();
        let decider = match party {
            None => Decider::NotMember,
            Some(_) => decide(m, flow, &peer, initiator),
        };
        End {
            addr: me,
            party,
            encapsulation: encap == Some(Encapsulation::Udp),
            decider,
        }
    }

    /// The host's name, else the address.
    pub fn label(&self) -> String {
        self.party.clone().unwrap_or_else(|| self.addr.to_string())
    }
}

/// The host or cluster holding `addr`, with its encapsulation.
pub(super) fn party_of(m: &Model, addr: &IpAddr) -> Option<(String, Encapsulation)> {
    let p = m.policy;
    if let Some(h) = p.hosts.iter().find(|h| h.addresses.contains(addr)) {
        return Some((h.name.clone(), h.encapsulation));
    }
    let c = p.clusters.iter().find(|c| c.addresses.contains(addr))?;
    Some((format!("cluster:{}", c.name), c.encapsulation))
}

/// A member's first match: exemptions in file order, then transport rules in file order
/// (tunnel rules make policies only for the subnets behind gateways).
fn decide(m: &Model, flow: &Flow, peer: &IpAddr, initiator: bool) -> Decider {
    let p = m.policy;
    if let Some((i, x)) =
        (p.exemptions.iter().enumerate()).find(|(_, x)| exempts(x, flow, peer, initiator))
    {
        return Decider::Exemption {
            index: i,
            name: x.name.clone(),
            at: m.locs.exemption(i),
        };
    }
    let rule = (0..p.rules.len())
        .filter(|&j| p.rules[j].mode == Mode::Transport)
        .find(|&j| m.rule_matches(j, flow));
    match rule {
        Some(j) => Decider::Rule {
            index: j,
            name: p.rules[j].name.clone(),
            action: p.rules[j].action,
            at: m.locs.rule(j),
            gateway: None,
        },
        None => Decider::NoRule,
    }
}

/// Whether exemption `x` covers the flow at this end.
///
/// The compiler installs, per direction side, a selector pair: `in` (peers connect to our
/// ports: their packets' destination port, our replies' source port) and `out` (we connect
/// to theirs). The initiator's service port is the responder's, so a port list matches at
/// the initiator on the `out` side and at the responder on the `in` side. An exemption
/// without ports matches every packet of its protocol on either side.
fn exempts(x: &Exemption, flow: &Flow, peer: &IpAddr, initiator: bool) -> bool {
    if x.protocol.number() != flow.proto {
        return false;
    }
    if !(x.peers.is_empty() || x.peers.iter().any(|n| n.contains(peer))) {
        return false;
    }
    if x.ports.is_empty() {
        return true;
    }
    let side_ok = match (x.direction, initiator) {
        (Direction::Both, _) => true,
        (Direction::Out, true) | (Direction::In, false) => true,
        (Direction::Out, false) | (Direction::In, true) => false,
    };
    side_ok && port_in(&x.ports, flow.port)
}

//! The test oracle: what should happen to a flow, derived from the policy file on its own.
//!
//! This deliberately does not call the agent's compiler: it reads the validated `Policy` and
//! evaluates it the way an administrator reads the file — exemptions first, then rules in
//! file order (first match wins, mirrored), each end on its own — and then applies the
//! network's facts (who has a key, ESP-in-UDP, the firewall's protocol-50 drop).
//!
//! Reading of the policy that the oracle commits to (connection level):
//! - A flow is initiated by `src` towards `dst`'s service `port`.
//! - An exemption applies at the initiator when its direction is `out`/`both`, at the
//!   responder when `in`/`both`; its ports are the responder's service ports; its peers
//!   are the remote end's prefixes. Without ports the direction cannot narrow it (no port
//!   tells who opened the exchange): it applies at both ends.
//! - A rule matches when src ∈ from, dst ∈ to and the port is one of its ports, or (mirrored)
//!   src ∈ to and dst ∈ from when the rule has no ports.
//! - ESP needs both ends to be members (hosts of the file, with a key and an agent) that both
//!   want ESP for the flow. A `require` end facing anything else drops the flow.
//! - The pair is ESP-in-UDP when either host says `encapsulation = "udp"`.

use std::fmt;
use std::net::IpAddr;

use policy_schema::{Action, Direction, Encapsulation, Exemption, Policy, Rule};

use crate::topology::Topology;

/// The transport protocols the matrix probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// Echo request/reply (ICMP for IPv4, ICMPv6 for IPv6).
    Icmp,
    Tcp,
    Udp,
}

/// One flow: `src` opens a connection (or pings) to `dst`'s `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: Proto,
    /// 0 for ICMP.
    pub port: u16,
}

impl Flow {
    /// The IP protocol number on the wire (ICMP is 1 in IPv4, 58 in IPv6).
    pub fn ip_proto(&self) -> u8 {
        match (self.proto, self.src.is_ipv6()) {
            (Proto::Icmp, false) => 1,
            (Proto::Icmp, true) => 58,
            (Proto::Tcp, _) => 6,
            (Proto::Udp, _) => 17,
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            Proto::Icmp => write!(f, "{} -> {} icmp", self.src, self.dst),
            Proto::Tcp => write!(f, "{} -> {} tcp/{}", self.src, self.dst, self.port),
            Proto::Udp => write!(f, "{} -> {} udp/{}", self.src, self.dst, self.port),
        }
    }
}

/// What happens to a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// ESP, IP protocol 50.
    Esp,
    /// ESP in UDP port 4500 (RFC 3948).
    EspUdp,
    /// Plain packets, the connection works.
    Clear,
    /// The connection fails.
    Dropped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Esp => "esp",
            Outcome::EspUdp => "esp-udp",
            Outcome::Clear => "clear",
            Outcome::Dropped => "dropped",
        }
    }
}

/// How one end treats a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stance {
    /// Not a member: no XFRM policy at all.
    Outside,
    /// An exemption: clear, whatever the rules say.
    Exempt,
    /// The first matching rule's action.
    Rule(Action),
    /// No rule matches: no policy, clear.
    NoRule,
}

impl Stance {
    fn wants_esp(self) -> bool {
        matches!(self, Stance::Rule(a) if a.uses_esp())
    }
    /// This end never sends the flow in clear.
    pub fn requires_esp(self) -> bool {
        self == Stance::Rule(Action::Require)
    }
}

/// The oracle's answer for one flow, with the reasoning kept for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub outcome: Outcome,
    pub src: Stance,
    pub dst: Stance,
    /// ESP would be used but a firewall on the path drops protocol 50.
    pub esp_blocked_by_firewall: bool,
}

/// Evaluate `flow` against the policy and the network.
pub fn expect(policy: &Policy, topo: &Topology, flow: &Flow) -> Expectation {
    let src = stance(policy, flow, End::Initiator);
    let dst = stance(policy, flow, End::Responder);
    let mut e = Expectation {
        outcome: Outcome::Clear,
        src,
        dst,
        esp_blocked_by_firewall: false,
    };
    if src == Stance::Rule(Action::Block) || dst == Stance::Rule(Action::Block) {
        e.outcome = Outcome::Dropped;
    } else if src.wants_esp() && dst.wants_esp() {
        e.outcome = if udp_encapsulated(policy, flow) {
            Outcome::EspUdp
        } else {
            Outcome::Esp
        };
        if e.outcome == Outcome::Esp && topo.esp_dropped_between(&flow.src, &flow.dst) {
            e.outcome = Outcome::Dropped;
            e.esp_blocked_by_firewall = true;
        }
    } else if src.requires_esp() || dst.requires_esp() {
        e.outcome = Outcome::Dropped;
    }
    e
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Initiator,
    Responder,
}

fn stance(policy: &Policy, flow: &Flow, end: End) -> Stance {
    let (me, peer) = match end {
        End::Initiator => (flow.src, flow.dst),
        End::Responder => (flow.dst, flow.src),
    };
    if !is_member(policy, &me) {
        return Stance::Outside;
    }
    if policy
        .exemptions
        .iter()
        .any(|x| exempts(x, flow, end, &peer))
    {
        return Stance::Exempt;
    }
    match policy.rules.iter().find(|r| rule_matches(policy, r, flow)) {
        Some(r) => Stance::Rule(r.action),
        None => Stance::NoRule,
    }
}

/// A host of the file (it has a key, so the lab runs an agent for it).
fn is_member(policy: &Policy, addr: &IpAddr) -> bool {
    policy.hosts.iter().any(|h| h.addresses.contains(addr))
}

fn udp_encapsulated(policy: &Policy, flow: &Flow) -> bool {
    [flow.src, flow.dst].iter().any(|a| {
        policy
            .hosts
            .iter()
            .any(|h| h.addresses.contains(a) && h.encapsulation == Encapsulation::Udp)
    })
}

fn exempts(x: &Exemption, flow: &Flow, end: End, peer: &IpAddr) -> bool {
    // Without ports nothing in a packet says who opened the exchange (its service port is
    // any port), so a direction cannot narrow it: both sides are exempt, as for ICMP.
    let direction_ok = x.ports.is_empty()
        || match end {
            End::Initiator => matches!(x.direction, Direction::Out | Direction::Both),
            End::Responder => matches!(x.direction, Direction::In | Direction::Both),
        };
    direction_ok
        && x.protocol.number() == flow.ip_proto()
        && port_in(&x.ports, flow)
        && (x.peers.is_empty() || x.peers.iter().any(|p| p.contains(peer)))
}

fn port_in(ports: &[policy_schema::PortRange], flow: &Flow) -> bool {
    ports.is_empty() || ports.iter().any(|r| r.lo <= flow.port && flow.port <= r.hi)
}

fn rule_matches(policy: &Policy, r: &Rule, flow: &Flow) -> bool {
    if r.protocol.is_some_and(|p| p.number() != flow.ip_proto()) {
        return false;
    }
    let from = policy.resolve_all(&r.from);
    let to = policy.resolve_all(&r.to);
    let has = |nets: &[ipnet::IpNet], a: &IpAddr| nets.iter().any(|n| n.contains(a));
    let forward = has(&from, &flow.src) && has(&to, &flow.dst) && port_in(&r.ports, flow);
    let mirrored = r.ports.is_empty() && has(&to, &flow.src) && has(&from, &flow.dst);
    forward || mirrored
}

#[cfg(test)]
#[path = "oracle_tests.rs"]
mod tests;

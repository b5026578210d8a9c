//! Reading a policy without the lab: what happens to one flow, and to every pair of hosts.
//!
//! Pure: the validated [`Policy`] in, an [`Explanation`] out, no kernel and no root. It
//! follows what the compiler (`plan/`) installs, packet by packet, at each end:
//! - an end whose address belongs to no host or cluster of the file has no key and no XFRM
//!   policy: it sends and accepts clear packets only;
//! - a member's first match, by XFRM priority, is an exemption (file order), then a
//!   transport rule (file order, mirrored; `ports` are the `to` side's service ports);
//! - an ESP rule has an SA for the pair exactly when it decides the flow at the sender
//!   (the compiler makes SAs for every pair an ESP rule pairs, up to the first rule without
//!   a protocol), so `require` towards an address without a key drops;
//! - ESP is ESP-in-UDP when either party says `encapsulation = "udp"`;
//! - an ESP leg names its keying ([`Keying`]): static keys, or IKEv2 and the authorities
//!   whose certificates the ends present.
//!
//! The initiator's source port is taken as an ephemeral one that no `ports` list names.
//! Tunnel-mode rules are decided at the gateways: see [`tunnel`].

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::{Action, Policy, PortRange};
use serde::Serialize;

mod ends;
pub mod html;
mod keying;
mod legs;
pub mod locate;
pub mod matrix;
mod service;
pub mod table;
mod tunnel;

pub use ends::{Decider, End};
pub use keying::Keying;
pub use legs::Leg;
pub use locate::Locations;

/// IP protocol numbers the explanation names.
pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMPV6: u8 = 58;

/// One connection: `src` opens it (or pings) towards `dst`'s service `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The IP protocol number on the wire (1 or 58 for an echo).
    pub proto: u8,
    /// The responder's port; 0 for a protocol without ports.
    pub port: u16,
}

impl Flow {
    /// An ICMP echo in the family of `src` (ICMPv6 for IPv6).
    pub fn echo(src: IpAddr, dst: IpAddr) -> Flow {
        let proto = if src.is_ipv6() { ICMPV6 } else { ICMP };
        Flow {
            src,
            dst,
            proto,
            port: 0,
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {}",
            self.src,
            self.dst,
            service_label(self.proto, self.port)
        )
    }
}

/// `icmp`, `tcp/443`, `udp/53`, `132/5000`, `47`.
pub fn service_label(proto: u8, port: u16) -> String {
    let name = match proto {
        ICMP => "icmp".to_string(),
        ICMPV6 => "icmpv6".to_string(),
        TCP => "tcp".to_string(),
        UDP => "udp".to_string(),
        n => n.to_string(),
    };
    if port == 0 {
        name
    } else {
        format!("{name}/{port}")
    }
}

/// How a flow (or one direction of it) goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// ESP, IP protocol 50.
    Esp,
    /// ESP in UDP port 4500 (RFC 3948).
    EspInUdp,
    /// Plain packets.
    Clear,
    /// Dropped by one end.
    Dropped,
}

impl Transport {
    /// The word the output uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Esp => "esp",
            Transport::EspInUdp => "esp-in-udp",
            Transport::Clear => "clear",
            Transport::Dropped => "dropped",
        }
    }
}

/// What happens to one connection, both directions, with the deciding entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub flow: Flow,
    /// How the connection as a whole goes: dropped if either direction is, clear if
    /// either is clear (part of it is unprotected), else ESP.
    pub outcome: Transport,
    /// The initiator (the flow's source) and what decides there.
    pub src: End,
    /// The responder and what decides there.
    pub dst: End,
    /// The initiator's packets towards the responder.
    pub forward: Leg,
    /// The responder's replies.
    pub reply: Leg,
}

/// Explain `flow` under `policy`; `locs` places the deciding entries in the file.
pub fn explain(policy: &Policy, locs: &Locations, flow: &Flow) -> Explanation {
    Model::new(policy, locs).explain(flow)
}

/// The policy with every rule's `from` and `to` resolved once, for many explanations.
pub struct Model<'a> {
    pub policy: &'a Policy,
    pub locs: &'a Locations,
    /// (from, to) of each rule, in file order.
    nets: Vec<(Vec<IpNet>, Vec<IpNet>)>,
}

impl<'a> Model<'a> {
    pub fn new(policy: &'a Policy, locs: &'a Locations) -> Model<'a> {
        let nets = (policy.rules.iter())
            .map(|r| (policy.resolve_all(&r.from), policy.resolve_all(&r.to)))
            .collect();
        Model { policy, locs, nets }
    }

    /// What happens to `flow`, both directions.
    pub fn explain(&self, flow: &Flow) -> Explanation {
        if flow.src.is_loopback() || flow.dst.is_loopback() {
            return loopback(flow, "loopback traffic is never touched by XFRM".into());
        }
        if let Some(me) = self.same_host(flow) {
            let why = format!("both addresses are {me}'s: local traffic goes over lo, never XFRM");
            return loopback(flow, why);
        }
        if let Some(t) = tunnel::explain(self, flow) {
            return t;
        }
        let src = End::of(self, flow, true);
        let dst = End::of(self, flow, false);
        let forward = legs::leg(&src, &dst, || keying::transport(self, flow.src, flow.dst));
        let reply = legs::leg(&dst, &src, || keying::transport(self, flow.dst, flow.src));
        Explanation {
            flow: *flow,
            outcome: combine(forward.transport, reply.transport),
            src,
            dst,
            forward,
            reply,
        }
    }

    /// The host both addresses of `flow` belong to, if one does.
    fn same_host(&self, flow: &Flow) -> Option<&str> {
        let h = (self.policy.hosts.iter()).find(|h| h.addresses.contains(&flow.src))?;
        h.addresses.contains(&flow.dst).then_some(h.name.as_str())
    }

    /// Whether rule `j` matches `flow` by addresses, protocol and port (mirrored when it
    /// names no ports: a rule with ports matches connections to its `to` side's ports).
    fn rule_matches(&self, j: usize, flow: &Flow) -> bool {
        let r = &self.policy.rules[j];
        if r.protocol.is_some_and(|p| p.number() != flow.proto) {
            return false;
        }
        let (from, to) = &self.nets[j];
        let has = |nets: &[IpNet], a: &IpAddr| nets.iter().any(|n| n.contains(a));
        let forward = has(from, &flow.src) && has(to, &flow.dst) && port_in(&r.ports, flow.port);
        let mirrored = r.ports.is_empty() && has(to, &flow.src) && has(from, &flow.dst);
        forward || mirrored
    }
}

/// `port` is one of `ports` (an empty list is every port).
fn port_in(ports: &[PortRange], port: u16) -> bool {
    ports.is_empty() || ports.iter().any(|r| r.lo <= port && port <= r.hi)
}

/// The connection's outcome from its two directions.
pub fn combine(forward: Transport, reply: Transport) -> Transport {
    use Transport::*;
    match (forward, reply) {
        (Dropped, _) | (_, Dropped) => Dropped,
        (Clear, _) | (_, Clear) => Clear,
        (EspInUdp, _) | (_, EspInUdp) => EspInUdp,
        (Esp, Esp) => Esp,
    }
}

/// The kernel never applies XFRM to traffic over the loopback device.
fn loopback(flow: &Flow, reason: String) -> Explanation {
    let end = |addr| End {
        addr,
        party: None,
        encapsulation: false,
        decider: Decider::Loopback,
    };
    let leg = |from, to| Leg {
        from,
        to,
        transport: Transport::Clear,
        reason: reason.clone(),
        keying: None,
    };
    Explanation {
        flow: *flow,
        outcome: Transport::Clear,
        src: end(flow.src),
        dst: end(flow.dst),
        forward: leg(flow.src, flow.dst),
        reply: leg(flow.dst, flow.src),
    }
}

/// The short word for an action, for reasons ("requires ESP", "blocks").
pub(crate) fn action_verb(a: Action) -> &'static str {
    match a {
        Action::Require => "requires ESP",
        Action::Request => "requests ESP",
        Action::Permit => "permits it in clear",
        Action::Block => "blocks it",
    }
}

#[cfg(test)]
mod against_plan;
#[cfg(test)]
mod keying_tests;
#[cfg(test)]
mod tests;

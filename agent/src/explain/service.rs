//! The services a matrix probes: ICMP echo, a TCP and a UDP port no list names, and the
//! ports the rules and exemptions name.

use std::fmt;
use std::net::IpAddr;

use policy_schema::{Policy, PortRange, Protocol};
use serde::Serialize;

use super::{service_label, Flow, ICMP, ICMPV6, TCP, UDP};

/// One protocol (and port) to try between every pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service {
    /// IP protocol number; ICMP (1) means an echo in the pair's family (ICMPv6 on IPv6).
    pub proto: u8,
    /// The responder's port; 0 for a protocol without ports.
    pub port: u16,
}

impl Service {
    /// ICMP echo (ICMPv6 echo between IPv6 addresses).
    pub const ECHO: Service = Service {
        proto: ICMP,
        port: 0,
    };

    /// `icmp`, `icmpv6`, `tcp/443`, `udp/53`, `132/5000`, `47`.
    pub fn parse(s: &str) -> Result<Service, String> {
        let (proto, port) = match s.split_once('/') {
            Some((p, port)) => (p, Some(port)),
            None => (s, None),
        };
        let port = port
            .map(|p| p.parse::<u16>().ok().filter(|&n| n > 0))
            .map(|p| p.ok_or_else(|| format!("{s:?}: the port is not 1-65535")))
            .transpose()?;
        Service::from_parts(proto, port)
    }

    /// A protocol name or number and an optional port; a protocol with ports needs one.
    pub fn from_parts(proto: &str, port: Option<u16>) -> Result<Service, String> {
        let number = match proto.to_ascii_lowercase().as_str() {
            "icmp" | "ping" => ICMP,
            "icmpv6" => ICMPV6,
            "tcp" => TCP,
            "udp" => UDP,
            n => n.parse::<u8>().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("protocol {proto:?} is not icmp, icmpv6, tcp, udp or a number 1-255")
            })?,
        };
        let with_ports = Protocol::Number(number).has_ports();
        match (with_ports, port) {
            (true, Some(port)) => Ok(Service {
                proto: number,
                port,
            }),
            (true, None) => Err(format!(
                "protocol {proto} has ports: give one (e.g. {proto}/443 or --port 443)"
            )),
            (false, Some(_)) if matches!(number, ICMP | ICMPV6) => Err(format!(
                "protocol {proto} has no ports (an echo request and its reply are explained)"
            )),
            (false, Some(_)) => Err(format!("protocol {proto} has no ports")),
            (false, None) if number == ICMPV6 => Ok(Service::ECHO),
            (false, None) => Ok(Service {
                proto: number,
                port: 0,
            }),
        }
    }

    /// The flow of this service from `src` to `dst`.
    pub fn flow(self, src: IpAddr, dst: IpAddr) -> Flow {
        if self.proto == ICMP {
            Flow::echo(src, dst)
        } else {
            Flow {
                src,
                dst,
                proto: self.proto,
                port: self.port,
            }
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&service_label(self.proto, self.port))
    }
}

impl Serialize for Service {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// ICMP echo; a TCP and a UDP port no rule or exemption names (the common case for any
/// service); then the first port of each range a rule names and of each exemption.
pub fn default_services(p: &Policy) -> Vec<Service> {
    let named = |proto: u8, port: u16| {
        let hit = |prot: Option<Protocol>, ports: &[PortRange]| {
            prot.is_some_and(|x| x.number() == proto)
                && ports.iter().any(|r| r.lo <= port && port <= r.hi)
        };
        p.rules.iter().any(|r| hit(r.protocol, &r.ports))
            || p.exemptions.iter().any(|x| hit(Some(x.protocol), &x.ports))
    };
    let unnamed = |proto: u8, candidates: &[u16]| {
        let port = (candidates.iter().copied())
            .chain(49152..=65535)
            .find(|&port| !named(proto, port))
            .unwrap_or(candidates[0]);
        Service { proto, port }
    };
    let mut out = vec![
        Service::ECHO,
        unnamed(TCP, &[443, 80, 22, 8443, 8080]),
        unnamed(UDP, &[53, 123, 514, 161]),
    ];
    let rule_ports = p.rules.iter().filter_map(|r| Some((r.protocol?, &r.ports)));
    for (proto, ports) in rule_ports {
        out.extend(ports.iter().map(|r| Service {
            proto: proto.number(),
            port: r.lo,
        }));
    }
    for x in &p.exemptions {
        if let Some(r) = x.ports.first() {
            out.push(Service {
                proto: x.protocol.number(),
                port: r.lo,
            });
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|s| seen.insert(*s));
    out
}

/// What the file says about a service's port: `exemption ike-nat-t`, `rule web`, or
/// `no list names it` (the rules without ports decide).
pub fn service_note(p: &Policy, svc: Service) -> String {
    if svc.port == 0 {
        return String::new();
    }
    let names = |prot: Option<Protocol>, ports: &[PortRange]| {
        prot.is_some_and(|x| x.number() == svc.proto)
            && ports.iter().any(|r| r.lo <= svc.port && svc.port <= r.hi)
    };
    let exemptions = (p.exemptions.iter())
        .filter(|x| names(Some(x.protocol), &x.ports))
        .map(|x| format!("exemption {}", x.name));
    let rules = (p.rules.iter())
        .filter(|r| names(r.protocol, &r.ports))
        .map(|r| format!("rule {}", r.name));
    let all: Vec<String> = exemptions.chain(rules).collect();
    if all.is_empty() {
        "no ports list names it".into()
    } else {
        all.join(", ")
    }
}

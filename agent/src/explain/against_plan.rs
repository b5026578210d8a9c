//! Explanations checked against what the compiler installs: at every member end, the
//! deciding entry must be the origin of the highest-precedence XFRM policy that matches
//! the packet, and every ESP direction must have its outbound SA — on the seed, a varied
//! seed, and random policies.

use std::collections::BTreeSet;
use std::net::IpAddr;

use policy_schema::{Action, Direction, Endpoint, Policy, PortRange, Protocol};
use proptest::prelude::*;

use super::matrix::Service;
use super::{Explanation, Flow, Locations, Model, Transport, ICMP, ICMPV6};
use crate::model::{Desired, Dir, Origin, PortMatch, Selector};
use crate::plan::testkit::{exemption, identity, net, rule, seed};
use crate::plan::{desired, Timestamp};
use policy_schema::testkit::endpoint;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The seed with port rules, a request rule and one-way and peer-limited exemptions.
fn varied() -> Policy {
    let mut p = seed();
    let mut web = rule(
        "web",
        vec![Endpoint::Any],
        vec![Endpoint::Host("site".into())],
        Action::Permit,
    );
    web.protocol = Some(Protocol::Tcp);
    web.ports = vec![PortRange::single(8080)];
    let mut block = web.clone();
    block.name = "no-db-web".into();
    block.to = vec![Endpoint::Host("db".into())];
    block.ports = vec![PortRange::single(80)];
    block.action = Action::Block;
    let dmz = rule(
        "dmz",
        vec![Endpoint::Zone("dmz".into())],
        vec![Endpoint::Any],
        Action::Request,
    );
    p.rules.splice(0..0, [web, block]);
    p.rules.push(dmz);
    p.exemptions[3].direction = Direction::In;
    let mut ssh = exemption("ssh-from-admin", Protocol::Tcp, &[(22, 22)]);
    ssh.direction = Direction::In;
    ssh.peers = vec![net("10.10.0.11/32")];
    p.exemptions.push(ssh);
    let mut all_udp_out = exemption("udp-out", Protocol::Udp, &[]);
    all_udp_out.direction = Direction::Out;
    all_udp_out.peers = vec![net("10.20.0.0/24")];
    p.exemptions.push(all_udp_out);
    p
}

/// Does the XFRM selector match the packet (ICMP type in the source port field)?
fn matches(s: &Selector, src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> bool {
    let port = |m: &PortMatch, p: u16| p & m.mask == m.port & m.mask;
    s.src.contains(&src)
        && s.dst.contains(&dst)
        && (s.proto == 0 || s.proto == proto)
        && port(&s.sport, sport)
        && port(&s.dport, dport)
}

/// The origin of the first policy (by priority) the packet meets in `dir`, as a decider name.
fn installed(d: &Desired, dir: Dir, pkt: (IpAddr, IpAddr, u8, u16, u16)) -> String {
    let (src, dst, proto, sport, dport) = pkt;
    let first = (d.policies.iter())
        .filter(|(k, _)| k.dir == dir && matches(&k.sel, src, dst, proto, sport, dport))
        .min_by_key(|(_, v)| v.spec.priority);
    match first.map(|(_, v)| &v.origin) {
        Some(Origin::Exemption(n)) => format!("exemption {n}"),
        Some(Origin::Rule(n)) => format!("rule {n}"),
        Some(o) => o.to_string(),
        None => "no rule matches".into(),
    }
}

/// An outbound SA from `src` to `dst` exists, and whether it is UDP-encapsulated.
fn out_sa(d: &Desired, src: IpAddr, dst: IpAddr) -> Option<bool> {
    (d.states.iter())
        .find(|(k, v)| k.dst == dst && v.spec.src == src)
        .map(|(_, v)| v.spec.encap.is_some())
}

/// Each seed member's compiled plan, by its addresses.
type Compiled = Vec<(Vec<IpAddr>, Desired)>;

fn compile_members(p: &Policy) -> Compiled {
    let now = Timestamp::from_secs(1_000_000_000);
    [("site", 1), ("db", 2), ("mp", 3)]
        .iter()
        .map(|(name, k)| {
            let d = desired(p, &identity(p, *k), &BTreeSet::new(), now).unwrap();
            (p.host(name).unwrap().addresses.clone(), d)
        })
        .collect()
}

/// The packets of a flow: the request and the reply (ICMP echo types in the source port
/// field, as the kernel's selector sees them; 40000 as the initiator's ephemeral port).
type Packet = (IpAddr, IpAddr, u8, u16, u16);

fn packets(f: &Flow) -> (Packet, Packet) {
    let (req, rep) = match (f.proto, f.src.is_ipv4()) {
        (ICMP, _) => ((8, 0), (0, 0)),
        (ICMPV6, _) => ((128, 0), (129, 0)),
        _ => ((40000, f.port), (f.port, 40000)),
    };
    (
        (f.src, f.dst, f.proto, req.0, req.1),
        (f.dst, f.src, f.proto, rep.0, rep.1),
    )
}

/// Every end's decider is the installed policy's origin; every ESP leg has its SA.
fn check_against_plans(e: &Explanation, compiled: &Compiled) {
    let of = |a: &IpAddr| {
        compiled
            .iter()
            .find(|(addrs, _)| addrs.contains(a))
            .map(|c| &c.1)
    };
    let f = e.flow;
    let (fwd, back) = packets(&f);
    for (end, pkts) in [
        (&e.src, [(Dir::Out, fwd), (Dir::In, back)]),
        (&e.dst, [(Dir::In, fwd), (Dir::Out, back)]),
    ] {
        let Some(plan) = of(&end.addr) else { continue };
        for (dir, pkt) in pkts {
            let want = installed(plan, dir, pkt);
            assert_eq!(end.decider.short(), want, "{f} at {} {dir:?}", end.addr);
        }
    }
    for leg in [&e.forward, &e.reply] {
        if matches!(leg.transport, Transport::Esp | Transport::EspInUdp) {
            let sa = of(&leg.from).and_then(|d| out_sa(d, leg.from, leg.to));
            let udp = leg.transport == Transport::EspInUdp;
            assert_eq!(sa, Some(udp), "{f}: SA of {leg:?}");
        }
    }
}

const ADDRS: [&str; 7] = [
    "10.10.0.10",
    "10.10.0.11",
    "10.20.0.20",
    "10.30.0.30",
    "fd00:10::10",
    "fd00:20::20",
    "fd00:30::30",
];

const SERVICES: [&str; 8] = [
    "icmp",
    "tcp/443",
    "tcp/80",
    "tcp/8080",
    "tcp/22",
    "tcp/16992",
    "udp/53",
    "udp/500",
];

/// Every ordered pair of [`ADDRS`] in one family, every service of [`SERVICES`].
fn check_every_pair(p: &Policy) {
    let compiled = compile_members(p);
    let locs = Locations::none();
    let m = Model::new(p, &locs);
    let services = SERVICES.map(|s| Service::parse(s).unwrap());
    for (s, d) in ADDRS
        .iter()
        .flat_map(|s| ADDRS.iter().map(move |d| (ip(s), ip(d))))
    {
        if s == d || s.is_ipv4() != d.is_ipv4() {
            continue;
        }
        for svc in services {
            check_against_plans(&m.explain(&svc.flow(s, d)), &compiled);
        }
    }
}

#[test]
fn explain_names_what_the_compiler_installs_at_each_member() {
    check_every_pair(&seed());
    check_every_pair(&varied());
}

/// A protocol and a ports list that fits it.
fn proto_ports() -> impl Strategy<Value = (Option<Protocol>, Vec<PortRange>)> {
    let ports = prop_oneof![
        Just(vec![]),
        Just(vec![PortRange::single(443)]),
        Just(vec![PortRange { lo: 20, hi: 80 }]),
        Just(vec![PortRange::single(53), PortRange::single(16992)]),
    ];
    prop_oneof![
        Just((None, vec![])),
        Just((Some(Protocol::Icmp), vec![])),
        Just((Some(Protocol::Icmpv6), vec![])),
        (prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)], ports)
            .prop_map(|(p, v)| (Some(p), v)),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Require),
        Just(Action::Request),
        Just(Action::Permit),
        Just(Action::Block),
    ]
}

fn random_rule() -> impl Strategy<Value = policy_schema::Rule> {
    let sides = (
        prop::collection::vec(endpoint(), 1..3),
        prop::collection::vec(endpoint(), 1..3),
    );
    (sides, proto_ports(), action()).prop_map(|((from, to), (protocol, ports), a)| {
        let mut r = rule("r", from, to, a);
        (r.protocol, r.ports) = (protocol, ports);
        r
    })
}

fn random_exemption() -> impl Strategy<Value = policy_schema::Exemption> {
    let direction = prop_oneof![
        Just(Direction::In),
        Just(Direction::Out),
        Just(Direction::Both)
    ];
    let peers = prop_oneof![
        Just(vec![]),
        Just(vec![net("10.30.0.0/24"), net("fd00:30::/64")]),
        Just(vec![net("10.10.0.11/32")]),
    ];
    (proto_ports(), direction, peers).prop_map(|((protocol, ports), direction, peers)| {
        let mut x = exemption("x", protocol.unwrap_or(Protocol::Udp), &[]);
        (x.ports, x.direction, x.peers) = (ports, direction, peers);
        x
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random rules and exemptions over the seed's hosts: explain still names what each
    /// member's compiled plan matches first, and ESP always has its SA.
    #[test]
    fn explain_follows_the_compiler_on_random_policies(
        rules in prop::collection::vec(random_rule(), 1..5),
        exemptions in prop::collection::vec(random_exemption(), 0..3),
    ) {
        let mut p = seed();
        p.rules = rules.into_iter().enumerate().map(|(j, mut r)| {
            r.name = format!("r{j}");
            r
        }).collect();
        p.exemptions = exemptions.into_iter().enumerate().map(|(i, mut x)| {
            x.name = format!("x{i}");
            x
        }).collect();
        check_every_pair(&p);
    }
}

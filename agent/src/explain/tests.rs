//! Explanations of policies built in code, and a cross-check against what the compiler
//! installs: at every member end, the deciding entry must be the origin of the
//! highest-precedence XFRM policy that matches the packet, and ESP must have an SA.

use std::collections::BTreeSet;

use policy_schema::{Direction, Encapsulation, Endpoint, Mode, PortRange, Protocol};

use super::matrix::{policy_endpoints, Matrix, Service};
use super::*;
use crate::model::{Desired, Dir, Origin, PortMatch, Selector};
use crate::plan::testkit::{exemption, host, identity, net, rule, seed};
use crate::plan::{desired, Timestamp};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, port: u16) -> Flow {
    Flow {
        src: ip(src),
        dst: ip(dst),
        proto: TCP,
        port,
    }
}

fn out(p: &Policy, f: Flow) -> Explanation {
    explain(p, &Locations::none(), &f)
}

#[test]
fn members_use_esp_and_mp_esp_in_udp() {
    let p = seed();
    let e = out(&p, tcp("10.10.0.10", "10.10.0.11", 443));
    assert_eq!(e.outcome, Transport::Esp, "{e:#?}");
    assert_eq!(e.src.decider.action(), Some(Action::Require));
    let e = out(&p, tcp("fd00:20::20", "fd00:10::11", 443));
    assert_eq!(e.outcome, Transport::EspInUdp);
    assert!(
        e.forward.reason.contains("encapsulation"),
        "{}",
        e.forward.reason
    );
}

#[test]
fn a_host_without_a_key_is_dropped_by_the_intranet_and_told_why() {
    let p = seed();
    let e = out(&p, tcp("10.30.0.30", "10.10.0.10", 443));
    assert_eq!(e.outcome, Transport::Dropped);
    assert_eq!(e.src.decider, Decider::NotMember);
    assert_eq!(
        e.forward.reason,
        "site requires ESP (rule intranet-isolation), drops clear: 10.30.0.30 has no key"
    );
    assert_eq!(
        e.reply.reason,
        "site requires ESP (rule intranet-isolation) and has no SA: 10.30.0.30 has no key"
    );
    // The DMZ is not isolated: the client talks to mp in clear.
    let e = out(&p, tcp("10.30.0.30", "10.20.0.20", 443));
    assert_eq!(e.outcome, Transport::Clear);
}

#[test]
fn exemptions_win_over_rules() {
    let p = seed();
    let e = out(&p, Flow::echo(ip("10.30.0.30"), ip("10.10.0.10")));
    assert_eq!(e.outcome, Transport::Clear);
    assert!(matches!(&e.dst.decider, Decider::Exemption { name, .. } if name == "icmp"));
    let e = out(&p, Flow::echo(ip("fd00:10::10"), ip("fd00:10::11")));
    assert!(matches!(&e.src.decider, Decider::Exemption { name, .. } if name == "icmpv6"));
    assert_eq!(e.forward.reason, "exempt: icmpv6");
    let udp500 = Flow {
        proto: UDP,
        port: 500,
        ..tcp("10.10.0.10", "10.10.0.11", 0)
    };
    assert_eq!(out(&p, udp500).outcome, Transport::Clear);
}

#[test]
fn a_one_way_exemption_leaves_the_other_end_requiring_esp() {
    let mut p = seed();
    p.exemptions[3].direction = Direction::In; // amt: consoles connect to us
                                               // client → site:16992: site answers as the exempt server.
    assert_eq!(
        out(&p, tcp("10.30.0.30", "10.10.0.10", 16992)).outcome,
        Transport::Clear
    );
    // site → db:16992: db's reply is exempt and clear, site requires ESP: dropped.
    let e = out(&p, tcp("10.10.0.10", "10.10.0.11", 16992));
    assert_eq!(e.outcome, Transport::Dropped);
    assert_eq!(e.forward.transport, Transport::Esp);
    assert_eq!(e.reply.transport, Transport::Dropped);
}

#[test]
fn first_rule_wins_ports_are_the_to_side_and_block_drops() {
    let mut p = seed();
    let mut block = rule(
        "no-db-web",
        vec![Endpoint::Any],
        vec![Endpoint::Host("db".into())],
        Action::Block,
    );
    block.protocol = Some(Protocol::Tcp);
    block.ports = vec![PortRange::single(80)];
    p.rules.insert(0, block);
    assert_eq!(
        out(&p, tcp("10.10.0.10", "10.10.0.11", 80)).outcome,
        Transport::Dropped
    );
    // db opening to site:80 is not a connection to db's port 80.
    assert_eq!(
        out(&p, tcp("10.10.0.11", "10.10.0.10", 80)).outcome,
        Transport::Esp
    );
}

#[test]
fn request_falls_back_to_clear_towards_an_address_without_a_key() {
    let mut p = seed();
    p.rules[0].action = Action::Request;
    let e = out(&p, tcp("10.30.0.30", "10.10.0.10", 443));
    assert_eq!(e.outcome, Transport::Clear);
    assert!(e.reply.reason.contains("has no key"), "{}", e.reply.reason);
    assert_eq!(
        out(&p, tcp("10.10.0.10", "10.10.0.11", 443)).outcome,
        Transport::Esp
    );
}

#[test]
fn tunnel_rules_are_decided_by_the_gateways() {
    let mut p = seed();
    let mut east = host("gw-east", &["198.51.100.1"], 8);
    east.gateway_for = vec![net("10.1.0.0/16")];
    let mut west = host("gw-west", &["203.0.113.1"], 9);
    west.gateway_for = vec![net("10.2.0.0/16")];
    west.encapsulation = Encapsulation::Udp;
    p.hosts.extend([east, west]);
    let mut r = rule(
        "east-west",
        vec![Endpoint::Prefix(net("10.1.0.0/16"))],
        vec![Endpoint::Prefix(net("10.2.0.0/16"))],
        Action::Require,
    );
    r.mode = Mode::Tunnel;
    p.rules.insert(0, r);
    let e = out(&p, tcp("10.1.0.5", "10.2.0.7", 22));
    assert_eq!(e.outcome, Transport::EspInUdp, "{e:#?}");
    assert!(e.forward.reason.contains("gw-east and gw-west"));
}

#[test]
fn loopback_is_never_touched_and_locations_are_named() {
    let p = seed();
    let e = out(&p, tcp("127.0.0.1", "127.0.0.1", 443));
    assert_eq!(e.outcome, Transport::Clear);
    let e = out(&p, tcp("10.10.0.10", "10.10.0.10", 443));
    assert_eq!(e.src.decider, Decider::Loopback);
    assert!(e.forward.reason.starts_with("both addresses are site's"));
    let text = "[[rules]]\nname = \"intranet-isolation\"\n";
    let locs = Locations::scan("p.toml", text, &p);
    let e = explain(&p, &locs, &tcp("10.10.0.10", "10.10.0.11", 443));
    assert!(e.src.decider.describe().contains("(p.toml:2)"));
}

#[test]
fn the_matrix_marks_mixed_zone_cells_and_skips_the_diagonal() {
    let p = seed();
    let locs = Locations::none();
    let svcs = [
        Service::ECHO,
        Service {
            proto: TCP,
            port: 443,
        },
    ];
    let m = Matrix::build(&Model::new(&p, &locs), &policy_endpoints(&p), &svcs);
    assert_eq!(m.hosts.names, ["site", "db", "mp"]);
    assert!(m.hosts.cell(0, 0, 1).samples.is_empty());
    assert_eq!(m.hosts.cell(0, 1, 1).summary(), "esp");
    assert_eq!(m.hosts.cell(2, 0, 1).summary(), "esp-in-udp");
    // The intranet's members talk ESP; its other addresses have no key: dropped.
    assert_eq!(m.zones.names, ["intranet", "dmz", "elsewhere"]);
    assert_eq!(m.zones.cell(0, 0, 1).summary(), "esp/dropped");
    assert_eq!(m.zones.cell(2, 1, 0).summary(), "clear");
}

#[test]
fn a_cluster_address_is_a_party_with_its_own_encapsulation() {
    let mut p = seed();
    p.clusters.push(policy_schema::Cluster {
        name: "sqlvip".into(),
        addresses: vec![ip("10.10.0.100")],
        public_key: crate::plan::testkit::key(7).public(),
        members: vec!["site".into(), "db".into()],
        encapsulation: Encapsulation::None,
    });
    let e = out(&p, tcp("10.20.0.20", "10.10.0.100", 5432));
    assert_eq!(e.dst.party.as_deref(), Some("cluster:sqlvip"));
    assert_eq!(e.outcome, Transport::EspInUdp, "{e:#?}");
    let e = out(&p, tcp("10.30.0.30", "10.10.0.100", 5432));
    assert_eq!(e.outcome, Transport::Dropped);
    assert!(e.forward.reason.starts_with("cluster:sqlvip requires ESP"));
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

#[test]
fn explain_names_what_the_compiler_installs_at_each_member() {
    let addrs = [
        "10.10.0.10",
        "10.10.0.11",
        "10.20.0.20",
        "10.30.0.30",
        "fd00:10::10",
        "fd00:20::20",
        "fd00:30::30",
    ];
    let services = [
        "icmp",
        "tcp/443",
        "tcp/80",
        "tcp/8080",
        "tcp/22",
        "tcp/16992",
        "udp/53",
        "udp/500",
    ]
    .map(|s| Service::parse(s).unwrap());
    for p in [seed(), varied()] {
        let compiled = compile_members(&p);
        let locs = Locations::none();
        let m = Model::new(&p, &locs);
        for (s, d) in addrs
            .iter()
            .flat_map(|s| addrs.iter().map(move |d| (ip(s), ip(d))))
        {
            if s == d || s.is_ipv4() != d.is_ipv4() {
                continue;
            }
            for svc in services {
                check_against_plans(&m.explain(&svc.flow(s, d)), &compiled);
            }
        }
    }
}

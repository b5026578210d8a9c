//! The oracle on a seed policy built in code (independent of the parser), and on variants.

use super::*;
use policy_schema::testkit::{self, net};
use policy_schema::{
    Cipher, Defaults, Endpoint, Host, Mode, Ownership, PortRange, Protocol, PublicKey,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn host(name: &str, addrs: &[&str], encap: Encapsulation, key: u8) -> Host {
    let mut h = testkit::host(name, addrs, PublicKey([key; 32]));
    h.encapsulation = encap;
    h
}

fn exemption(name: &str, protocol: Protocol, ports: &[(u16, u16)]) -> Exemption {
    testkit::exemption(name, protocol, ports, Direction::Both)
}

/// The seed policy's content, written as the model (what examples/seed-site-dmz.toml says).
pub(crate) fn seed() -> Policy {
    Policy {
        version: 1,
        defaults: Defaults::default(),
        ownership: Ownership::default(),
        zones: vec![
            policy_schema::Zone {
                name: "intranet".into(),
                prefixes: vec![net("10.10.0.0/24"), net("fd00:10::/64")],
            },
            policy_schema::Zone {
                name: "dmz".into(),
                prefixes: vec![net("10.20.0.0/24"), net("fd00:20::/64")],
            },
        ],
        hosts: vec![
            host(
                "site",
                &["10.10.0.10", "fd00:10::10"],
                Encapsulation::None,
                1,
            ),
            host("db", &["10.10.0.11", "fd00:10::11"], Encapsulation::None, 2),
            host("mp", &["10.20.0.20", "fd00:20::20"], Encapsulation::Udp, 3),
        ],
        clusters: vec![],
        authorities: vec![],
        exemptions: vec![
            exemption("icmp", Protocol::Icmp, &[]),
            exemption("icmpv6", Protocol::Icmpv6, &[]),
            exemption("ike", Protocol::Udp, &[(500, 500), (4500, 4500)]),
            exemption("dhcp", Protocol::Udp, &[(67, 68)]),
            exemption("amt", Protocol::Tcp, &[(16992, 16995)]),
        ],
        rules: vec![Rule {
            name: "intranet".into(),
            from: vec![Endpoint::Any],
            to: vec![Endpoint::Zone("intranet".into())],
            protocol: None,
            ports: vec![],
            action: Action::Require,
            mode: Mode::Transport,
            cipher: Cipher::AesGcm128,
            key_exchange: Default::default(),
            identities: vec![],
            admits: Default::default(),
        }],
    }
}

fn topo() -> Topology {
    Topology::load(&Topology::default_path()).unwrap()
}

fn outcome(p: &Policy, src: &str, dst: &str, proto: Proto, port: u16) -> Outcome {
    expect(
        p,
        &topo(),
        &Flow {
            src: ip(src),
            dst: ip(dst),
            proto,
            port,
        },
    )
    .outcome
}

#[test]
fn seed_cells_from_the_brief() {
    let p = seed();
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.10.0.11", Proto::Tcp, 443),
        Outcome::Esp
    );
    assert_eq!(
        outcome(&p, "fd00:10::11", "fd00:10::10", Proto::Udp, 53),
        Outcome::Esp
    );
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.20.0.20", Proto::Tcp, 80),
        Outcome::EspUdp
    );
    assert_eq!(
        outcome(&p, "fd00:20::20", "fd00:10::11", Proto::Tcp, 443),
        Outcome::EspUdp
    );
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.20.0.20", Proto::Tcp, 443),
        Outcome::Clear
    );
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.10.0.10", Proto::Tcp, 443),
        Outcome::Dropped
    );
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.30.0.30", Proto::Udp, 53),
        Outcome::Dropped
    );
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.10.0.10", Proto::Icmp, 0),
        Outcome::Clear
    );
    assert_eq!(
        outcome(&p, "fd00:30::30", "fd00:10::10", Proto::Icmp, 0),
        Outcome::Clear
    );
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.10.0.11", Proto::Tcp, 16992),
        Outcome::Clear
    );
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.10.0.11", Proto::Tcp, 16992),
        Outcome::Clear
    );
}

#[test]
fn non_member_inside_the_zone_is_dropped() {
    // fw's intranet address is in zone intranet but fw has no key.
    let p = seed();
    assert_eq!(
        outcome(&p, "10.10.0.1", "10.10.0.10", Proto::Tcp, 80),
        Outcome::Dropped
    );
    let e = expect(
        &p,
        &topo(),
        &Flow {
            src: ip("10.10.0.1"),
            dst: ip("10.10.0.10"),
            proto: Proto::Tcp,
            port: 80,
        },
    );
    assert_eq!(e.src, Stance::Outside);
    assert!(e.dst.requires_esp());
}

#[test]
fn plain_esp_across_the_firewall_is_dropped() {
    let mut p = seed();
    p.hosts[2].encapsulation = Encapsulation::None;
    let e = expect(
        &p,
        &topo(),
        &Flow {
            src: ip("10.10.0.10"),
            dst: ip("10.20.0.20"),
            proto: Proto::Tcp,
            port: 443,
        },
    );
    assert_eq!(e.outcome, Outcome::Dropped);
    assert!(e.esp_blocked_by_firewall);
}

#[test]
fn first_matching_rule_wins_and_block_drops() {
    let mut p = seed();
    let mut permit_web = p.rules[0].clone();
    permit_web.name = "web".into();
    permit_web.to = vec![Endpoint::Host("site".into())];
    permit_web.protocol = Some(Protocol::Tcp);
    permit_web.ports = vec![PortRange::single(80)];
    permit_web.action = Action::Permit;
    let mut block_db = permit_web.clone();
    block_db.to = vec![Endpoint::Host("db".into())];
    block_db.action = Action::Block;
    p.rules.insert(0, permit_web);
    p.rules.insert(1, block_db);
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.10.0.10", Proto::Tcp, 80),
        Outcome::Clear
    );
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.10.0.10", Proto::Tcp, 443),
        Outcome::Dropped
    );
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.10.0.11", Proto::Tcp, 80),
        Outcome::Dropped
    );
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.10.0.11", Proto::Tcp, 81),
        Outcome::Esp
    );
}

#[test]
fn request_falls_back_to_clear_without_a_peer_key() {
    let mut p = seed();
    p.rules[0].action = Action::Request;
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.10.0.10", Proto::Tcp, 443),
        Outcome::Clear
    );
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.10.0.11", Proto::Tcp, 443),
        Outcome::Esp
    );
}

#[test]
fn one_way_exemption_only_helps_the_listed_direction() {
    let mut p = seed();
    p.exemptions.push(Exemption {
        name: "web-in".into(),
        protocol: Protocol::Tcp,
        ports: vec![PortRange::single(443)],
        direction: Direction::In,
        peers: vec![net("10.30.0.0/24")],
    });
    // client (no key) to site:443: site exempts it as a responder.
    assert_eq!(
        outcome(&p, "10.30.0.30", "10.10.0.10", Proto::Tcp, 443),
        Outcome::Clear
    );
    // site opening to client:443 is not covered (direction in, and client is not site's peer list's responder).
    assert_eq!(
        outcome(&p, "10.10.0.10", "10.30.0.30", Proto::Tcp, 443),
        Outcome::Dropped
    );
    // db is not in the peers list.
    assert_eq!(
        outcome(&p, "10.10.0.11", "10.10.0.10", Proto::Tcp, 443),
        Outcome::Esp
    );
}

#[test]
fn a_direction_without_ports_exempts_both_ends() {
    // `direction = "out"` on all of UDP: no port tells who opened a datagram exchange, so
    // both ends are exempt (what the agent's compiler installs: selectors with any port).
    let mut p = seed();
    let mut udp_out = exemption("udp-out", Protocol::Udp, &[]);
    udp_out.direction = Direction::Out;
    p.exemptions.push(udp_out);
    let e = expect(
        &p,
        &topo(),
        &Flow {
            src: ip("10.30.0.30"),
            dst: ip("10.10.0.10"),
            proto: Proto::Udp,
            port: 53,
        },
    );
    assert_eq!((e.dst, e.outcome), (Stance::Exempt, Outcome::Clear));
}

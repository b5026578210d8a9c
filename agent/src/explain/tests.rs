//! Explanations of policies built in code, and a cross-check against what the compiler
//! installs: at every member end, the deciding entry must be the origin of the
//! highest-precedence XFRM policy that matches the packet, and ESP must have an SA.

use policy_schema::{Direction, Encapsulation, Endpoint, Mode, PortRange, Protocol};

use super::matrix::{policy_endpoints, Matrix, Service};
use super::*;
use crate::plan::testkit::{host, net, rule, seed};

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

/// The seed with gateways gw-east (10.1.0.0/16) and gw-west (10.2.0.0/16) and a
/// tunnel-mode rule `east-west` between their networks, first.
pub(super) fn east_west() -> Policy {
    let mut p = seed();
    let mut east = host("gw-east", &["198.51.100.1"], 8);
    east.gateway_for = vec![net("10.1.0.0/16")];
    let mut west = host("gw-west", &["203.0.113.1"], 9);
    west.gateway_for = vec![net("10.2.0.0/16")];
    p.hosts.extend([east, west]);
    let mut r = rule(
        "east-west",
        vec![Endpoint::Prefix(net("10.1.0.0/16"))],
        vec![Endpoint::Prefix(net("10.2.0.0/16"))],
        Action::Require,
    );
    r.mode = Mode::Tunnel;
    p.rules.insert(0, r);
    p
}

#[test]
fn tunnel_rules_are_decided_by_the_gateways() {
    let mut p = east_west();
    p.hosts.last_mut().unwrap().encapsulation = Encapsulation::Udp;
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

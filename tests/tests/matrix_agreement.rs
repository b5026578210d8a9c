//! The lab's oracle (`e2e::oracle`) and `xfrm-agent matrix` (`agent::explain`) agree on
//! every cell of the lab's flow matrix: every ordered pair of the six lab hosts × the lab's
//! services × IPv4 and IPv6, for both lab policies. No root, no lab: a plain `cargo test`.
//!
//! The two are independent implementations of the same reading of the file: the oracle
//! evaluates the policy per end and connection; the agent's explanation follows the XFRM
//! policies its compiler installs, packet by packet (and is checked against the compiler
//! in agent's own unit tests). Neither calls the other. What the oracle knows and a policy
//! alone cannot — the lab firewall drops IP protocol 50 between the DMZ and the intranet —
//! is the one fact translated: an oracle `dropped` that is only the firewall's drop of
//! plain ESP is the agent's `esp`. In both lab policies mp, the only host behind that
//! firewall, says `encapsulation = "udp"`, so no cell needs it; the test checks that too.

use agent::explain::matrix::{Endpoint, Matrix, Service};
use agent::explain::{Locations, Model, Transport};
use e2e::matrix::{cells, Cell, SERVICES};
use e2e::oracle::{Outcome, Proto};
use e2e::topology::{Family, Host, Topology};
use policy_schema::Policy;

const LAB_POLICIES: [&str; 2] = ["examples/dual-stack.toml", "examples/seed-site-dmz.toml"];

fn load(file: &str) -> Policy {
    let path = e2e::repo_root().join(file);
    match policy_schema::load_path(&path) {
        Ok(l) => l.policy,
        Err(d) => panic!("{file} does not load:\n{d}"),
    }
}

fn service(proto: Proto, port: u16) -> Service {
    match proto {
        Proto::Icmp => Service::ECHO,
        Proto::Tcp => Service { proto: 6, port },
        Proto::Udp => Service { proto: 17, port },
    }
}

fn transport(o: Outcome) -> Transport {
    match o {
        Outcome::Esp => Transport::Esp,
        Outcome::EspUdp => Transport::EspInUdp,
        Outcome::Clear => Transport::Clear,
        Outcome::Dropped => Transport::Dropped,
    }
}

/// The agent's matrix of the lab hosts (each with its lab addresses) for the lab services.
fn agent_matrix(policy: &Policy, hosts: &[&Host]) -> Matrix {
    let endpoints: Vec<Endpoint> = hosts
        .iter()
        .map(|h| Endpoint {
            name: h.name.clone(),
            addrs: vec![h.addr(Family::V4), h.addr(Family::V6)],
        })
        .collect();
    let services: Vec<Service> = SERVICES.iter().map(|&(p, n)| service(p, n)).collect();
    let locs = Locations::none();
    Matrix::build(&Model::new(policy, &locs), &endpoints, &services)
}

/// Every cell where the oracle and the matrix disagree, as one line each; and how many
/// cells needed the firewall translation.
fn disagreements(cells: &[Cell], m: &Matrix, hosts: &[&Host]) -> (Vec<String>, usize) {
    let at = |name: &str| hosts.iter().position(|h| h.name == name).expect("lab host");
    let mut bad = Vec::new();
    let mut firewall = 0;
    for c in cells {
        let k = (SERVICES.iter())
            .position(|&(p, n)| (p, n) == (c.flow.proto, c.flow.port))
            .expect("lab service");
        let cell = m.hosts.cell(at(&c.src), at(&c.dst), k);
        let family = if c.family == Family::V4 { "v4" } else { "v6" };
        let Some(sample) = cell.samples.iter().find(|s| s.family == family) else {
            bad.push(format!(
                "{} {}: no {family} sample in the matrix",
                c.flow, c.src
            ));
            continue;
        };
        let mut want = transport(c.expect.outcome);
        if c.expect.esp_blocked_by_firewall {
            firewall += 1;
            want = Transport::Esp;
        }
        if (sample.src_addr, sample.dst_addr) != (c.flow.src, c.flow.dst) || sample.outcome != want
        {
            bad.push(format!(
                "{} ({} -> {}): oracle {} ({:?} / {:?}), matrix {} ({})",
                c.flow,
                c.src,
                c.dst,
                c.expect.outcome.as_str(),
                c.expect.src,
                c.expect.dst,
                sample.outcome.as_str(),
                sample.reason
            ));
        }
    }
    (bad, firewall)
}

#[test]
fn oracle_and_matrix_agree_on_every_cell_of_the_lab() {
    let topo = Topology::load(&Topology::default_path()).expect("topology");
    let hosts: Vec<&Host> = topo.standard_hosts().collect();
    for file in LAB_POLICIES {
        let policy = load(file);
        let cells = cells(&policy, &topo, &hosts);
        assert_eq!(
            cells.len(),
            6 * 5 * SERVICES.len() * 2,
            "{file}: the lab's 300 cells"
        );
        let (bad, firewall) = disagreements(&cells, &agent_matrix(&policy, &hosts), &hosts);
        assert!(
            bad.is_empty(),
            "{file}: {} of {} cells disagree:\n{}",
            bad.len(),
            cells.len(),
            bad.join("\n")
        );
        assert_eq!(
            firewall, 0,
            "{file}: every ESP path across the firewall is in UDP"
        );
    }
}

#[test]
fn the_comparison_fails_when_the_matrix_reads_another_policy() {
    // The test above must be able to fail: the matrix of a policy where the intranet only
    // requests ESP disagrees with the oracle's cells of the real one (no-key hosts get
    // through in clear), and the comparison reports those cells.
    let topo = Topology::load(&Topology::default_path()).expect("topology");
    let hosts: Vec<&Host> = topo.standard_hosts().collect();
    let policy = load(LAB_POLICIES[0]);
    let mut other = policy.clone();
    other.rules[0].action = policy_schema::Action::Request;
    let cells = cells(&policy, &topo, &hosts);
    let (bad, _) = disagreements(&cells, &agent_matrix(&other, &hosts), &hosts);
    assert!(!bad.is_empty());
    assert!(
        bad.iter()
            .all(|l| l.contains("oracle dropped") && l.contains("matrix clear")),
        "{bad:#?}"
    );
}

/// Variants of the dual-stack lab policy that exercise what the lab's two files do not:
/// request, first-match port rules, block, one-way and peer-limited exemptions, plain ESP
/// across the firewall.
fn variants() -> Vec<(&'static str, Policy)> {
    use policy_schema::{Action, Direction, Encapsulation, Endpoint, PortRange, Protocol};
    let base = load(LAB_POLICIES[0]);
    let mut out = Vec::new();
    let mut p = base.clone();
    p.rules[0].action = Action::Request;
    out.push(("request", p));
    let mut p = base.clone();
    let mut web = p.rules[0].clone();
    web.name = "web".into();
    web.to = vec![Endpoint::Host("site".into())];
    web.protocol = Some(Protocol::Tcp);
    web.ports = vec![PortRange::single(80)];
    web.action = Action::Permit;
    let mut block = web.clone();
    block.name = "no-db-web".into();
    block.to = vec![Endpoint::Host("db".into())];
    block.action = Action::Block;
    p.rules.splice(0..0, [web, block]);
    out.push(("port rules", p));
    let mut p = base.clone();
    let amt = p.exemptions.iter_mut().find(|x| x.name == "intel-amt");
    amt.expect("amt").direction = Direction::In;
    let mut https_in = p.exemptions[0].clone();
    https_in.name = "https-in".into();
    https_in.protocol = Protocol::Tcp;
    https_in.ports = vec![PortRange::single(443)];
    https_in.direction = Direction::In;
    https_in.peers = vec!["10.30.0.0/24".parse().unwrap()];
    p.exemptions.push(https_in);
    out.push(("one-way exemptions", p));
    let mut p = base.clone();
    let mut udp_out = p.exemptions[0].clone();
    udp_out.name = "udp-out".into();
    udp_out.protocol = Protocol::Udp;
    udp_out.direction = Direction::Out;
    p.exemptions.push(udp_out);
    out.push(("one-way exemption without ports", p));
    let mut p = base;
    p.hosts
        .iter_mut()
        .for_each(|h| h.encapsulation = Encapsulation::None);
    out.push(("plain ESP across the firewall", p));
    out
}

#[test]
fn oracle_and_matrix_agree_on_variants_of_the_lab_policy() {
    let topo = Topology::load(&Topology::default_path()).expect("topology");
    let hosts: Vec<&Host> = topo.standard_hosts().collect();
    let mut firewall_cells = 0;
    for (name, policy) in variants() {
        let cells = cells(&policy, &topo, &hosts);
        let (bad, firewall) = disagreements(&cells, &agent_matrix(&policy, &hosts), &hosts);
        assert!(
            bad.is_empty(),
            "{name}: {} cells disagree:\n{}",
            bad.len(),
            bad.join("\n")
        );
        firewall_cells += firewall;
    }
    // mp's ESP with site and db: 2 peers × 2 directions × 3 services (tcp/443, tcp/80,
    // udp/53; ICMP and AMT are exempt) × 2 families.
    assert_eq!(firewall_cells, 24, "the firewall translation was exercised");
}

mod random {
    //! Random rules and exemptions over the lab hosts: the two readings still agree on all
    //! 300 cells (a search for the next disagreement like the one the variants found).

    use super::*;
    use policy_schema::testkit::endpoint;
    use policy_schema::{Action, Direction, Exemption, PortRange, Protocol, Rule};
    use proptest::prelude::*;

    fn proto_ports() -> impl Strategy<Value = (Option<Protocol>, Vec<PortRange>)> {
        let ports = prop_oneof![
            Just(vec![]),
            Just(vec![PortRange::single(443)]),
            Just(vec![PortRange { lo: 53, hi: 80 }]),
            Just(vec![PortRange {
                lo: 16992,
                hi: 16995
            }]),
        ];
        let with_ports = (prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)], ports);
        prop_oneof![
            Just((None, vec![])),
            Just((Some(Protocol::Icmp), vec![])),
            Just((Some(Protocol::Icmpv6), vec![])),
            with_ports.prop_map(|(p, v)| (Some(p), v)),
        ]
    }

    fn rule(base: Rule) -> impl Strategy<Value = Rule> {
        let sides = (
            prop::collection::vec(endpoint(), 1..3),
            prop::collection::vec(endpoint(), 1..3),
        );
        let action = prop_oneof![
            Just(Action::Require),
            Just(Action::Request),
            Just(Action::Permit),
            Just(Action::Block),
        ];
        (sides, proto_ports(), action).prop_map(move |((from, to), (protocol, ports), action)| {
            Rule {
                from,
                to,
                protocol,
                ports,
                action,
                ..base.clone()
            }
        })
    }

    fn exemption(base: Exemption) -> impl Strategy<Value = Exemption> {
        let direction = prop_oneof![
            Just(Direction::In),
            Just(Direction::Out),
            Just(Direction::Both)
        ];
        let peers = prop_oneof![
            Just(vec![]),
            Just(vec!["10.30.0.0/24".parse().unwrap()]),
            Just(vec!["10.10.0.11/32".parse().unwrap()]),
        ];
        (proto_ports(), direction, peers).prop_map(move |((protocol, ports), direction, peers)| {
            Exemption {
                protocol: protocol.unwrap_or(Protocol::Udp),
                ports,
                direction,
                peers,
                ..base.clone()
            }
        })
    }

    fn policy() -> impl Strategy<Value = Policy> {
        let base = load(LAB_POLICIES[0]);
        let rules = prop::collection::vec(rule(base.rules[0].clone()), 1..4);
        let exemptions = prop::collection::vec(exemption(base.exemptions[0].clone()), 0..3);
        (rules, exemptions).prop_map(move |(rules, exemptions)| {
            let mut p = base.clone();
            p.rules = rules
                .into_iter()
                .enumerate()
                .map(|(j, r)| Rule {
                    name: format!("r{j}"),
                    ..r
                })
                .collect();
            p.exemptions = exemptions
                .into_iter()
                .enumerate()
                .map(|(i, x)| Exemption {
                    name: format!("x{i}"),
                    ..x
                })
                .collect();
            p
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn oracle_and_matrix_agree_on_random_policies(p in policy()) {
            let topo = Topology::load(&Topology::default_path()).expect("topology");
            let hosts: Vec<&Host> = topo.standard_hosts().collect();
            let cells = cells(&p, &topo, &hosts);
            let (bad, _) = disagreements(&cells, &agent_matrix(&p, &hosts), &hosts);
            prop_assert!(bad.is_empty(), "{} cells disagree:\n{}", bad.len(), bad.join("\n"));
        }
    }
}

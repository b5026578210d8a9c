//! The flow matrix in the namespace lab: every ordered pair of hosts, five services, both
//! families, expected outcomes from the oracle, observed outcomes from echoes and captures.
//!
//! Run with `scripts/lab test` (these are #[ignore] for a plain `cargo test`: they need root
//! and an ESP kernel, which scripts/lab provides by booting UML).

use e2e::lab::{Lab, UpOptions};
use e2e::matrix::{self, Options, Verdict};
use e2e::oracle::Outcome;
use e2e::report;
use e2e::require_lab;
use e2e::topology::Topology;
use policy_schema::Policy;

/// The policy file the lab runs (a copy in its state directory).
fn seed_policy(lab: &Lab) -> Policy {
    let text = std::fs::read_to_string(&lab.policy).expect("policy file");
    match policy_schema::load("policy.toml", &text) {
        Ok(l) => l.policy,
        Err(d) => panic!("the lab's policy does not load:\n{d}"),
    }
}

fn run_matrix(lab: &Lab, policy: &Policy, o: &Options) -> Vec<Verdict> {
    let hosts: Vec<_> = lab.topo.standard_hosts().collect();
    let cells = matrix::cells(policy, &lab.topo, &hosts);
    let t0 = std::time::Instant::now();
    let obs = matrix::run(&lab.exec, &lab.topo, &cells, o).expect("matrix run");
    let verdicts: Vec<_> = cells
        .iter()
        .zip(&obs)
        .map(|(c, ob)| matrix::verdict(c, ob))
        .collect();
    println!("{}", report::render(&cells, &obs, &verdicts));
    println!("matrix took {:.1} s", t0.elapsed().as_secs_f64());
    verdicts
}

/// The harness checks itself: without agents every cell is clear (a policy with no hosts),
/// so probes, servers, captures and classification work before anything is protected.
#[test]
#[ignore = "needs the lab: scripts/lab test"]
fn harness_sees_every_cell_clear_without_agents() {
    require_lab!();
    let lab = Lab::up(&UpOptions {
        no_agents: true,
        ..Default::default()
    })
    .expect("lab up");
    let empty = Policy {
        version: 1,
        defaults: Default::default(),
        ownership: Default::default(),
        zones: vec![],
        hosts: vec![],
        clusters: vec![],
        authorities: vec![],
        exemptions: vec![],
        rules: vec![],
    };
    let verdicts = run_matrix(&lab, &empty, &Options::default());
    lab.down().expect("clean tear-down");
    let fails = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Fail(_)))
        .count();
    assert_eq!(fails, 0, "cells failed without any agent");
}

#[test]
#[ignore = "needs the lab: scripts/lab test"]
fn flow_matrix_matches_the_policy() {
    require_lab!();
    let lab = Lab::up(&UpOptions::default()).expect("lab up");
    let policy = seed_policy(&lab);
    let verdicts = run_matrix(&lab, &policy, &Options::default());
    lab.down().expect("clean tear-down");
    let fails = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Fail(_)))
        .count();
    assert_eq!(fails, 0, "{fails} matrix cells failed (table above)");
}

#[test]
fn the_seed_expectations_cover_every_outcome() {
    // Runs without the lab: the oracle on the stand-in topology must produce the outcomes
    // the brief names (a matrix that only ever says "clear" would prove little).
    let topo = Topology::load(&Topology::default_path()).unwrap();
    let text = std::fs::read_to_string(seed_path()).unwrap();
    let loaded = policy_schema::load("seed", &text)
        .unwrap_or_else(|d| panic!("the seed policy does not load:\n{d}"));
    let hosts: Vec<_> = topo.standard_hosts().collect();
    let cells = matrix::cells(&loaded.policy, &topo, &hosts);
    for o in [
        Outcome::Esp,
        Outcome::EspUdp,
        Outcome::Clear,
        Outcome::Dropped,
    ] {
        assert!(
            cells.iter().any(|c| c.expect.outcome == o),
            "no cell expects {o:?}"
        );
    }
}

/// The policy the lab runs by default: the seed scenario with its IPv6 addresses.
fn seed_path() -> std::path::PathBuf {
    e2e::repo_root().join("examples/dual-stack.toml")
}

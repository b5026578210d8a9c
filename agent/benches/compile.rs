//! Compiler benchmark: the plan for one host in an inventory of 1,000 and 10,000 hosts with
//! 50 rules. It must stay O(peers + rules): the 10k/1k ratio should be ≈10, not ≈100.
//!
//! "cold" includes the X25519 operation per peer (first compile after start); "warm" is
//! every later recompile (reload, rotation), when the per-pair secrets are cached.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use agent::keys::{Identity, PrivateKey};
use agent::plan::{desired, Timestamp};
use criterion::{criterion_group, Criterion};
use policy_schema::{
    Action, Cipher, Defaults, Encapsulation, Endpoint, Host, Mode, Ownership, Policy, PortRange,
    Protocol, Rule, Zone,
};

fn key(i: u32) -> PrivateKey {
    let mut b = [9u8; 32];
    b[..4].copy_from_slice(&i.to_be_bytes());
    PrivateKey::from_bytes(b)
}

/// `n` hosts spread over ten /16 zones; 49 port rules between zones, then any ↔ zone 0.
fn inventory(n: u32) -> Policy {
    let zones = (0..10)
        .map(|z| Zone {
            name: format!("z{z}"),
            prefixes: vec![format!("10.{z}.0.0/16").parse().unwrap()],
        })
        .collect();
    let hosts = (0..n)
        .map(|i| Host {
            name: format!("h{i}"),
            addresses: vec![IpAddr::V4(Ipv4Addr::new(
                10,
                (i % 10) as u8,
                (i / 250 % 250) as u8,
                (i % 250 + 1) as u8,
            ))],
            public_key: key(i).public(),
            zones: vec![],
            encapsulation: if i % 7 == 0 {
                Encapsulation::Udp
            } else {
                Encapsulation::None
            },
            gateway_for: vec![],
        })
        .collect();
    let mut rules: Vec<Rule> = (0..49)
        .map(|r| Rule {
            name: format!("r{r}"),
            from: vec![Endpoint::Zone(format!("z{}", r % 10))],
            to: vec![Endpoint::Zone(format!("z{}", (r + 3) % 10))],
            protocol: Some(Protocol::Tcp),
            ports: vec![PortRange::single(1000 + r as u16)],
            action: if r % 2 == 0 {
                Action::Require
            } else {
                Action::Permit
            },
            mode: Mode::Transport,
            cipher: Cipher::AesGcm256,
            key_exchange: Default::default(),
            identities: vec![],
            admits: Default::default(),
        })
        .collect();
    rules.push(Rule {
        name: "isolation".into(),
        from: vec![Endpoint::Any],
        to: vec![Endpoint::Zone("z0".into())],
        protocol: None,
        ports: vec![],
        action: Action::Require,
        mode: Mode::Transport,
        cipher: Cipher::AesGcm128,
        key_exchange: Default::default(),
        identities: vec![],
        admits: Default::default(),
    });
    let ownership = Ownership {
        spi: (0x1000_0000, 0x7fff_ffff),
        ..Ownership::default()
    };
    Policy {
        version: 1,
        defaults: Defaults::default(),
        ownership,
        zones,
        hosts,
        clusters: vec![],
        authorities: vec![],
        exemptions: vec![],
        rules,
    }
}

const NOW: u64 = 1_800_001_800;

fn compile(p: &Policy, id: &Identity) -> usize {
    let d = desired(p, id, &BTreeSet::new(), Timestamp::from_secs(NOW)).unwrap();
    d.states.len() + d.policies.len()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    for n in [1_000u32, 10_000] {
        let p = inventory(n);
        let id = Identity::resolve(&p, key(0), None).unwrap();
        compile(&p, &id);
        g.bench_function(format!("warm/{n}"), |b| b.iter(|| compile(&p, &id)));
    }
    g.finish();
}

/// Median times and the ratios the issue asks for, printed after criterion's output.
fn summary() {
    println!("\ncompiler summary (median of 7, one host's plan, 50 rules):");
    let mut warm = Vec::new();
    for n in [1_000u32, 10_000] {
        let p = inventory(n);
        let cold = median(
            (0..3)
                .map(|_| {
                    let id = Identity::resolve(&p, key(0), None).unwrap();
                    let t = Instant::now();
                    compile(&p, &id);
                    t.elapsed()
                })
                .collect(),
        );
        let id = Identity::resolve(&p, key(0), None).unwrap();
        let objects = compile(&p, &id);
        let w = median(
            (0..7)
                .map(|_| {
                    let t = Instant::now();
                    compile(&p, &id);
                    t.elapsed()
                })
                .collect(),
        );
        println!("  {n:>6} hosts: {objects:>6} objects, warm {:>8.2} ms, cold (incl. X25519 per peer) {:>8.2} ms",
            w.as_secs_f64() * 1e3, cold.as_secs_f64() * 1e3);
        warm.push(w);
    }
    println!(
        "  ratio 10k/1k (warm): {:.1}  (O(peers) => ~10; target < 50 ms at 10k)",
        warm[1].as_secs_f64() / warm[0].as_secs_f64()
    );
}

#[inline(never)]
fn profile_section(p: &Policy, id: &Identity) {
    for _ in 0..5 {
        compile(p, id);
    }
}

criterion_group!(benches, bench);

fn main() {
    // COMPILE_PROFILE=N: only N hosts, warm, 5 compiles (for callgrind/perf).
    if let Some(n) = std::env::var("COMPILE_PROFILE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let p = inventory(n);
        let id = Identity::resolve(&p, key(0), None).unwrap();
        compile(&p, &id);
        profile_section(&p, &id);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}

//! Properties of the diff over random desired/observed pairs:
//! - applying the plan (in memory, with the kernel's EEXIST/ENOENT rules) converges: the
//!   diff of desired against the result is empty, and foreign objects are never written;
//! - at no step of the op sequence is a flow that is protected in both desired and
//!   observed matched by a permissive policy (or by none).

mod support;

use std::net::IpAddr;

use agent::model::*;
use agent::plan::diff::diff;
use policy_schema::Ownership;
use proptest::prelude::*;
use support::*;

const NETS: [&str; 5] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "0.0.0.0/0",
];

/// Candidate policy keys: every (dir, src, dst) plus a TCP/22 variant of a few.
fn keys() -> Vec<PolicyKey> {
    let mut out = Vec::new();
    for dir in [Dir::In, Dir::Out] {
        for (i, s) in NETS.iter().enumerate() {
            for (j, d) in NETS.iter().enumerate() {
                if (i + j) % 2 == 1 {
                    continue; // keep the universe small but overlapping
                }
                let mut sel = Selector::between(s.parse().unwrap(), d.parse().unwrap());
                out.push(PolicyKey {
                    dir,
                    sel,
                    mark: None,
                });
                if i == j {
                    sel.proto = 6;
                    sel.dport = PortMatch::exact(22);
                    out.push(PolicyKey {
                        dir,
                        sel,
                        mark: None,
                    });
                }
            }
        }
    }
    out
}

fn action(a: u8) -> PolicyAction {
    let t = |level| {
        PolicyAction::Protect(
            vec![Template {
                mode: Mode::Transport,
                reqid: REQID,
                level,
                tunnel: None,
            }]
            .into(),
        )
    };
    match a % 4 {
        0 => PolicyAction::Allow,
        1 => PolicyAction::Block,
        2 => t(Level::Required),
        _ => t(Level::Use),
    }
}

/// Priorities are distinct per (key, variant) so no two policies that may coexist tie,
/// and a variant change moves a policy across the others (so guards are exercised).
fn spec(key_index: usize, variant: u8, a: u8) -> PolicySpec {
    assert!(key_index < 64);
    PolicySpec {
        priority: 0x10001 + u32::from(variant % 4) * 64 + key_index as u32,
        action: action(a),
    }
}

fn sa(spi: u32, dir: SaDir, life: u64, keyb: u8) -> (SaKey, DesiredSa) {
    let (me, peer): (IpAddr, IpAddr) = ("10.1.2.3".parse().unwrap(), "10.1.2.4".parse().unwrap());
    let (src, dst) = match dir {
        SaDir::In => (peer, me),
        SaDir::Out => (me, peer),
    };
    let spec = SaSpec {
        src,
        reqid: REQID,
        mode: Mode::Transport,
        sel: Selector::between(src.into(), dst.into()),
        alg: alg("gcm", keyb),
        replay_window: 1024,
        esn: true,
        encap: None,
        lifetime: Lifetime {
            soft_secs: life,
            hard_secs: life + 100,
        },
    };
    let meta = SaMeta {
        peer: "b".into(),
        dir,
        epoch: 1,
        initial_seq: 0,
    };
    (SaKey { dst, spi }, DesiredSa { spec, meta })
}

/// Per candidate: (in desired?, variant, action), (in observed?, variant, action, foreign?).
type PolicyGen = ((bool, u8, u8), (bool, u8, u8, bool));
/// Per SA slot: desired? (life, key), observed? (life, key), foreign?
type SaGen = (Option<(u8, u8)>, Option<(u8, u8)>, bool);

fn build(pgen: &[PolicyGen], sgen: &[SaGen]) -> (Desired, Observed) {
    let mut d = Desired::default();
    let mut o = Observed::default();
    for (i, (k, ((din, dv, da), (oin, ov, oa, foreign)))) in
        keys().into_iter().zip(pgen).enumerate()
    {
        if *din {
            let spec = spec(i, *dv, *da);
            let origin = Origin::Rule(format!("r{i}").into());
            d.policies.insert(k, DesiredPolicy { spec, origin });
        }
        if *foreign {
            o.foreign_policies.insert(k);
        } else if *oin {
            o.policies.insert(k, spec(i, *ov, *oa));
        }
    }
    for (i, (ds, os, foreign)) in sgen.iter().enumerate() {
        let dir = if i % 2 == 0 { SaDir::In } else { SaDir::Out };
        let spi = 0x4000_0000 + i as u32;
        if let Some((life, keyb)) = ds {
            let (k, v) = sa(spi, dir, 100 + u64::from(life % 2), keyb % 2);
            d.states.insert(k, v);
        }
        if *foreign {
            o.foreign_states.insert(sa(spi, dir, 0, 0).0);
        } else if let Some((life, keyb)) = os {
            let (k, v) = sa(spi, dir, 100 + u64::from(life % 2), keyb % 2);
            o.states.insert(
                k,
                ObservedSa {
                    spec: v.spec,
                    stats: SaStats::default(),
                },
            );
        }
    }
    (d, o)
}

fn flows() -> Vec<Flow> {
    let addrs = ["10.1.2.3", "10.1.2.4", "10.1.9.9", "10.9.9.9", "192.0.2.1"];
    let mut out = Vec::new();
    for dir in [Dir::In, Dir::Out] {
        for s in addrs {
            for d in addrs {
                for (proto, dport) in [(6, 22), (17, 53)] {
                    for mark in [0, 1] {
                        out.push(Flow {
                            dir,
                            src: s.parse().unwrap(),
                            dst: d.parse().unwrap(),
                            proto,
                            sport: 40000,
                            dport,
                            mark,
                        });
                    }
                }
            }
        }
    }
    out
}

fn check(d: &Desired, o: &Observed) -> Result<(), TestCaseError> {
    let own = Ownership::default();
    let plan = diff(d, o, &own);
    let after = apply_in_memory(o, &plan.ops).map_err(TestCaseError::fail)?;
    let again = diff(d, &after, &own);
    prop_assert!(
        again.ops.is_empty(),
        "not converged:\n{}",
        render_plan(&again)
    );
    // What we can reach: keys held by foreign objects are never written (conflicts).
    let mut dspd = desired_spd(d);
    dspd.retain(|k, _| !o.foreign_policies.contains(k));
    let both: Vec<Flow> = flows()
        .into_iter()
        .filter(|f| protected(&dspd, f) && protected(&o.policies, f))
        .collect();
    let mut state = o.clone();
    for (step, op) in plan.ops.iter().enumerate() {
        apply_one(&mut state, op).map_err(TestCaseError::fail)?;
        for f in &both {
            let hit: Option<&PolicySpec> = lookup(&state.policies, f);
            prop_assert!(
                hit.is_some_and(|s| s.action.is_protective()),
                "step {step} ({op}): flow {f:?} protected before and after is now {hit:?}\n{}",
                render_plan(&plan)
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn plan_converges_and_never_exposes(
        pgen in proptest::collection::vec(
            ((any::<bool>(), 0u8..4, 0u8..4), (any::<bool>(), 0u8..4, 0u8..4, prop::bool::weighted(0.05))),
            keys().len()),
        sgen in proptest::collection::vec(
            (proptest::option::of((0u8..2, 0u8..2)), proptest::option::of((0u8..2, 0u8..2)), prop::bool::weighted(0.1)),
            6),
    ) {
        let (d, o) = build(&pgen, &sgen);
        check(&d, &o)?;
    }
}

#[test]
fn weakened_protective_policy_is_guarded() {
    // k: required at high precedence → required at low precedence; a stale permissive
    // catch-all sits between the two priorities until it is deleted.
    let ks = keys();
    let k = ks[0];
    let catch_all = *ks
        .iter()
        .find(|c| {
            c.dir == k.dir
                && c.sel.src.prefix_len() == 0
                && c.sel.dst.prefix_len() == 0
                && c.sel.proto == 0
        })
        .expect("catch-all key");
    let mut o = Observed::default();
    o.policies.insert(k, spec(0, 0, 2));
    o.policies.insert(catch_all, spec(1, 1, 0));
    let mut d = Desired::default();
    d.policies.insert(
        k,
        DesiredPolicy {
            spec: spec(0, 3, 2),
            origin: Origin::Rule("r".into()),
        },
    );
    let plan = diff(&d, &o, &Ownership::default());
    assert_eq!(
        plan.ops.first().map(|o| o.kind.sign()),
        Some('+'),
        "{}",
        render_plan(&plan)
    );
    check(&d, &o).unwrap();
}

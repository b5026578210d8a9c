//! Reading and reconciling only the keys a change touched (the daemon's reload path), on
//! this machine's kernel in a throw-away network namespace: the batched GETs see what a
//! dump sees of those keys (owned, foreign, absent), and a reconcile of the touched keys
//! leaves the kernel exactly where a full one would. Policies only (no ESP here). Skipped
//! with a one-line reason when not root.

mod support;

use std::collections::BTreeSet;

use agent::engine::{reconcile, reconcile_with, Options};
use agent::kernel;
use agent::model::*;
use agent::plan::diff::diff;
use agent::plan::Touched;
use policy_schema::Ownership;
use support::ns::{privileged, TestNetns};
use support::*;

fn own() -> Ownership {
    Ownership::default()
}

/// The two versions of the sample set, and the keys the change touched.
fn two_versions() -> (Desired, Desired, Touched) {
    let (d1, d2, keys) = support::two_versions();
    let touched = Touched {
        policies: keys.into(),
        states: BTreeSet::new(),
    };
    (d1, d2, touched)
}

#[test]
fn reading_touched_keys_sees_what_a_dump_sees_of_them() {
    if !privileged("reading_touched_keys_sees_what_a_dump_sees_of_them") {
        return;
    }
    let ns = TestNetns::new("tk");
    // A foreign policy (priority outside our band) under a key the change touches.
    let foreign =
        "xfrm policy add dir out src 10.0.0.0/24 dst 10.44.0.0/16 priority 100 action allow";
    ns.ip(&foreign.split(' ').collect::<Vec<_>>());
    let (d1, _, touched) = two_versions();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        reconcile(&mut sock, &d1, &own(), false).unwrap();
        let all = kernel::observe(&mut sock, &own()).unwrap();
        let keys = touched.policy_keys();
        let some = kernel::observe_keys(&mut sock, &own(), &keys, touched.sa_keys()).unwrap();
        let want: Vec<_> = (all.policies.iter())
            .filter(|(k, _)| keys.contains(k))
            .collect();
        assert_eq!(some.policies.iter().collect::<Vec<_>>(), want);
        let foreign: BTreeSet<_> = (all.foreign_policies.iter())
            .filter(|k| keys.contains(k))
            .collect();
        assert_eq!(
            foreign.len(),
            1,
            "the foreign policy is under a touched key"
        );
        assert_eq!(
            some.foreign_policies.iter().collect::<BTreeSet<_>>(),
            foreign
        );
        // Two of the three touched keys are ours, the new one is foreign; guard keys absent.
        assert_eq!(some.policies.len(), 2);
    });
}

#[test]
fn reconciling_touched_keys_ends_where_a_full_reconcile_does() {
    if !privileged("reconciling_touched_keys_ends_where_a_full_reconcile_does") {
        return;
    }
    let ns = TestNetns::new("tr");
    let (d1, d2, touched) = two_versions();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        let first = reconcile(&mut sock, &d1, &own(), false).unwrap();
        assert!(first.verified);
        let before = kernel::observe(&mut sock, &own()).unwrap();
        let counts = (before.policies.len(), before.states.len());
        let full_plan = diff(&d2, &before, &own());
        let blocked = BTreeSet::new();
        let opts = Options {
            dry_run: false,
            verify: false,
            blocked: &blocked,
            only: Some((&touched, counts)),
            count_packets: &BTreeSet::new(),
        };
        let out = reconcile_with(&mut sock, &d2, &own(), &opts).unwrap();
        assert_eq!(out.plan, full_plan, "the same plan as the full diff");
        assert_eq!(out.plan.ops.len(), 3, "{}", render_plan(&out.plan));
        assert!(out.acknowledged && out.verified);
        let after = kernel::observe(&mut sock, &own()).unwrap();
        assert!(
            diff(&d2, &after, &own()).ops.is_empty(),
            "the kernel holds d2"
        );
        assert_eq!(out.installed, (after.policies.len(), after.states.len()));
    });
}

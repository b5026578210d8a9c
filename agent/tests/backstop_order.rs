//! Backstops and the diff's order, on compiled plans: after every single op of an install,
//! a flush, a rule change that renumbers, and a `require` that becomes a `permit`, each
//! protective outbound policy in the (in-memory) kernel has both halves of its backstop.
//! Plain `cargo test`: no privileges.

mod support;

use agent::keys::Identity;
use agent::model::{Desired, Observed};
use agent::plan::diff::diff;
use agent::plan::{backstop_keys, needs_backstop};
use agent::plan::{desired, LocalAddrs, Timestamp};
use policy_schema::{Action, Ownership, Policy};
use support::apply_one;
use support::policy::{key, varied};

fn compile(p: &Policy) -> Desired {
    let id = Identity::resolve(p, key(0), None).unwrap();
    let mut d = desired(
        p,
        &id,
        &LocalAddrs::new(),
        Timestamp::from_secs(1_800_000_000),
    )
    .unwrap();
    d.states.clear(); // policies are what this is about
    d
}

/// Goes from `from` to `to` one op at a time, checking the backstops after each; returns
/// the final kernel.
fn walk(from: &Observed, to: &Desired) -> Observed {
    let plan = diff(to, from, &Ownership::default());
    let mut kernel = from.clone();
    for (i, op) in plan.ops.iter().enumerate() {
        apply_one(&mut kernel, op).unwrap();
        for (k, spec) in &kernel.policies {
            if !needs_backstop(k, spec) {
                continue;
            }
            for b in backstop_keys(k) {
                assert!(
                    kernel.policies.contains_key(&b),
                    "after op {i} ({}): {k} without its backstop {b}",
                    op.kind.sign()
                );
            }
        }
    }
    assert!(diff(to, &kernel, &Ownership::default()).ops.is_empty());
    kernel
}

fn installed(d: &Desired) -> Observed {
    walk(&Observed::default(), d)
}

#[test]
fn install_and_flush_never_leave_a_protective_policy_without_its_backstop() {
    let d = compile(&varied());
    let backstops = d.policies.keys().filter(|k| k.mark.is_some()).count();
    assert!(
        backstops >= 4,
        "varied has require and block rules: {backstops}"
    );
    let kernel = installed(&d);
    let flushed = walk(&kernel, &Desired::default());
    assert!(flushed.policies.is_empty());
}

#[test]
fn rule_changes_never_leave_a_protective_policy_without_its_backstop() {
    let p = varied();
    let kernel = installed(&compile(&p));
    // A rule inserted first: every rule (and backstop) moves down two priorities.
    let mut inserted = p.clone();
    let mut first = inserted.rules[0].clone();
    first.name = "new-first".into();
    inserted.rules.insert(0, first);
    walk(&kernel, &compile(&inserted));
    // Every require becomes a permit: the backstops go, after the policies they covered.
    let mut permits = p.clone();
    for r in &mut permits.rules {
        if r.action == Action::Require {
            r.action = Action::Permit;
        }
    }
    let relaxed = walk(&kernel, &compile(&permits));
    // And back: the backstops come in first.
    walk(&relaxed, &compile(&p));
}

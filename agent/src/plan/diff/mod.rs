//! `diff(desired, observed) -> Plan`: minimal, safely ordered kernel writes.
//!
//! Identity is the key (PolicyKey, SaKey); a changed spec under the same key is an update
//! (UPDPOLICY for any policy change; UPDSA only where the kernel can change it in place:
//! lifetimes and encapsulation — xfrm_state_update() copies nothing else), otherwise the SA
//! is deleted and re-added. Order, so that no protected flow ever goes out in clear:
//! 1. SA adds/updates, inbound before outbound (the peer must be able to receive first);
//! 2. backstop adds/updates (`plan/compile/backstop.rs`), then policy adds/updates that
//!    protect, then those that let clear through;
//! 3. policy deletes, permissive first, then protective, then backstops: a protective
//!    outbound policy never exists without the block under it;
//! 4. SA deletes, outbound before inbound — policies go before the SAs they use.
//!
//! Transition guard: an update that makes a protective policy permissive or lowers its
//! precedence can, between two writes, let a flow fall through to a permissive policy that
//! is deleted later. Then temporary `block` policies at the top of our band cover each such
//! selector for the whole plan (a brief drop, never clear text).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use policy_schema::Ownership;
use serde::Serialize;

use super::is_backstop;
use crate::model::{
    Desired, DesiredSa, Mark, Observed, Op, OpKind, Origin, PolicyAction, PolicyKey, PolicySpec,
    SaDir, SaKey, SaMeta, SaSpec,
};

mod merge_join;
mod touched;

use merge_join::{join, Pair};
pub use touched::diff_touched;

/// A class of SA as far as kernel support goes: the address family (IPv6?) and the
/// algorithm. A kernel without ESP for a family, or without an algorithm, refuses every SA
/// of the class alike.
pub type SaClass = (bool, String);

/// The class of one SA.
pub fn sa_class(k: &SaKey, sa: &SaSpec) -> SaClass {
    (k.dst.is_ipv6(), sa.alg.display_name())
}

/// Whether an SA is of `class` (no allocation: asked for every SA while one is blocked).
pub fn in_class(k: &SaKey, sa: &SaSpec, class: &SaClass) -> bool {
    class.0 == k.dst.is_ipv6() && sa.alg.is_named(&class.1)
}

/// The writes that make the kernel match, and the desired objects we may not write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub conflicts: Vec<Conflict>,
}

/// A desired object whose key a foreign (not owned) kernel object already holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The key, e.g. `policy out 10.0.0.0/24 -> 0.0.0.0/0`.
    pub object: String,
    /// What wanted it (rule, exemption, peer).
    pub label: String,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.ops)
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) is held by a foreign object (outside our priority band, reqid or SPI \
             range); not touched",
            self.object, self.label
        )
    }
}

/// The two marks of a transition guard: together they match every packet, and neither
/// equals the absent mark of the policy it covers (the kernel's policy identity includes
/// the mark, so a guard with no mark would *be* that policy).
pub const GUARD_MARKS: [Mark; 2] = [Mark { value: 0, mask: 1 }, Mark { value: 1, mask: 1 }];

/// The keys of the transition guards of the policy at `k`: its selector and direction
/// with each of the [`GUARD_MARKS`].
pub fn guard_keys(k: &PolicyKey) -> impl Iterator<Item = PolicyKey> + '_ {
    GUARD_MARKS.iter().map(|m| PolicyKey {
        mark: Some(*m),
        ..*k
    })
}

/// Counts of ops per kind, for the one-line summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub added_states: usize,
    pub updated_states: usize,
    pub deleted_states: usize,
    pub added_policies: usize,
    pub updated_policies: usize,
    pub deleted_policies: usize,
}

impl Summary {
    pub fn of(ops: &[Op]) -> Summary {
        let mut s = Summary::default();
        for op in ops {
            let n = match op.kind {
                OpKind::AddSa(..) => &mut s.added_states,
                OpKind::UpdateSa(..) => &mut s.updated_states,
                OpKind::DelSa(..) => &mut s.deleted_states,
                OpKind::AddPolicy(..) => &mut s.added_policies,
                OpKind::UpdatePolicy(..) => &mut s.updated_policies,
                OpKind::DelPolicy(..) => &mut s.deleted_policies,
            };
            *n += 1;
        }
        s
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ('+', self.added_states, "state"),
            ('~', self.updated_states, "state"),
            ('-', self.deleted_states, "state"),
            ('+', self.added_policies, "policy"),
            ('~', self.updated_policies, "policy"),
            ('-', self.deleted_policies, "policy"),
        ];
        let words: Vec<String> = parts
            .iter()
            .filter(|p| p.1 > 0)
            .map(|(sign, n, what)| {
                let plural = match (n, *what) {
                    (1, w) => w.to_string(),
                    (_, "policy") => "policies".to_string(),
                    (_, w) => format!("{w}s"),
                };
                format!("{sign}{n} {plural}")
            })
            .collect();
        if words.is_empty() {
            f.write_str("no changes")
        } else {
            f.write_str(&words.join(", "))
        }
    }
}

/// Label of an SA op: `peer NAME in|out epoch N`.
pub fn sa_label(m: &SaMeta) -> String {
    let dir = match m.dir {
        SaDir::In => "in",
        SaDir::Out => "out",
    };
    format!("peer {} {dir} epoch {}", m.peer, m.epoch)
}

const STALE: &str = "stale: owned but not desired";

fn op(kind: OpKind, label: impl Into<String>) -> Op {
    Op {
        kind,
        label: label.into(),
    }
}

/// What the kernel can change in place with UPDSA: lifetimes and encapsulation.
fn updatable_in_place(old: &SaSpec, new: &SaSpec) -> bool {
    let mut o = old.clone();
    o.lifetime = new.lifetime;
    o.encap = new.encap;
    &o == new
}

#[derive(Default)]
struct Phases {
    guard_adds: Vec<Op>,
    sa_in: Vec<Op>,
    sa_out: Vec<Op>,
    backstops: Vec<Op>,
    protective: Vec<Op>,
    permissive: Vec<Op>,
    del_permissive: Vec<Op>,
    del_protective: Vec<Op>,
    del_backstops: Vec<Op>,
    sa_del_out: Vec<Op>,
    sa_del_in: Vec<Op>,
    guard_dels: Vec<Op>,
}

impl Phases {
    fn into_ops(self) -> Vec<Op> {
        [
            self.guard_adds,
            self.sa_in,
            self.sa_out,
            self.backstops,
            self.protective,
            self.permissive,
            self.del_permissive,
            self.del_protective,
            self.del_backstops,
            self.sa_del_out,
            self.sa_del_in,
            self.guard_dels,
        ]
        .concat()
    }
}

/// Compute the plan against the kernel as dumped. `own.priority.0` is where transition
/// guards go (the compiler keeps that one priority free for them).
pub fn diff(desired: &Desired, installed: &Observed, own: &Ownership) -> Plan {
    diff_with(desired, installed, own, &|_, _| true)
}

/// `diff`, with the adds and updates of SAs that `writable` rejects left out (SAs the
/// kernel lacks a feature for: no ESP in one family, an algorithm not built): those owned
/// SAs in the kernel stay as they are, including one that would have been replaced (a
/// delete then an add); stale ones are still deleted.
pub fn diff_with(
    desired: &Desired,
    installed: &Observed,
    own: &Ownership,
    writable: &dyn Fn(&SaKey, &DesiredSa) -> bool,
) -> Plan {
    diff_in(desired, desired, installed, own, writable)
}

/// The diff of `desired` (part of `whole`) against `installed`. What a key's op depends on
/// beyond its own two objects is read from `whole`: which addresses are ours (where a
/// stale SA's delete goes) and which guard keys are desired.
pub(super) fn diff_in(
    desired: &Desired,
    whole: &Desired,
    installed: &Observed,
    own: &Ownership,
    writable: &dyn Fn(&SaKey, &DesiredSa) -> bool,
) -> Plan {
    let mut ph = Phases::default();
    let mut conflicts = Vec::new();
    diff_states(desired, whole, installed, writable, &mut ph, &mut conflicts);
    let guarded = diff_policies(desired, installed, &mut ph, &mut conflicts);
    add_guards(&guarded, whole, installed, own, &mut ph, &mut conflicts);
    Plan {
        ops: ph.into_ops(),
        conflicts,
    }
}

fn diff_states(
    d: &Desired,
    whole: &Desired,
    o: &Observed,
    writable: &dyn Fn(&SaKey, &DesiredSa) -> bool,
    ph: &mut Phases,
    conflicts: &mut Vec<Conflict>,
) {
    let mut stale = Vec::new();
    for pair in join(d.states.iter(), o.state_specs()) {
        let (k, want, have) = match pair {
            Pair::Have(k, _) => {
                stale.push(*k);
                continue;
            }
            Pair::Want(k, want) => (k, want, None),
            Pair::Both(k, want, have) => (k, want, Some(have)),
        };
        if !writable(k, want) {
            continue;
        }
        // Labels are built only for ops: a no-op diff of 10k objects allocates nothing.
        let label = || sa_label(&want.meta);
        if o.foreign_state(k) {
            conflicts.push(Conflict {
                object: k.to_string(),
                label: label(),
            });
            continue;
        }
        let (bucket, seq) = match want.meta.dir {
            SaDir::In => (&mut ph.sa_in, 0),
            SaDir::Out => (&mut ph.sa_out, want.meta.initial_seq),
        };
        match have {
            None => bucket.push(op(OpKind::AddSa(*k, want.spec.clone(), seq), label())),
            Some(have) if *have == want.spec => {}
            Some(have) if updatable_in_place(have, &want.spec) => {
                bucket.push(op(OpKind::UpdateSa(*k, want.spec.clone()), label()))
            }
            Some(_) => {
                // Keys, algorithm, selector, reqid, mode or replay changed: the kernel
                // cannot update those in place, so replace (the one listed exception to
                // deletes-last; it is the same SA).
                bucket.push(op(OpKind::DelSa(*k), format!("{} (replace)", label())));
                bucket.push(op(OpKind::AddSa(*k, want.spec.clone(), seq), label()));
            }
        }
    }
    if stale.is_empty() {
        return;
    }
    // Our addresses as the desired SAs show them, to tell stale inbound from outbound.
    let local: BTreeSet<IpAddr> = whole
        .states
        .iter()
        .map(|(k, s)| match s.meta.dir {
            SaDir::In => k.dst,
            SaDir::Out => s.spec.src,
        })
        .collect();
    for k in stale {
        let bucket = if local.contains(&k.dst) {
            &mut ph.sa_del_in
        } else {
            &mut ph.sa_del_out
        };
        bucket.push(op(OpKind::DelSa(k), STALE));
    }
}

/// Returns the keys whose update needs a transition guard.
fn diff_policies(
    d: &Desired,
    o: &Observed,
    ph: &mut Phases,
    conflicts: &mut Vec<Conflict>,
) -> Vec<PolicyKey> {
    let mut guarded = Vec::new();
    for pair in join(d.policies.iter(), o.policy_specs()) {
        let (k, want, have) = match pair {
            Pair::Have(k, have) => {
                let bucket = if is_backstop(k) {
                    &mut ph.del_backstops
                } else if have.action.is_protective() {
                    &mut ph.del_protective
                } else {
                    &mut ph.del_permissive
                };
                bucket.push(op(OpKind::DelPolicy(*k), STALE));
                continue;
            }
            Pair::Want(k, want) => (k, want, None),
            Pair::Both(k, want, have) => (k, want, Some(have)),
        };
        let label = || want.origin.to_string();
        if o.foreign_policy(k) {
            conflicts.push(Conflict {
                object: k.to_string(),
                label: label(),
            });
            continue;
        }
        let bucket = if is_backstop(k) {
            &mut ph.backstops
        } else if want.spec.action.is_protective() {
            &mut ph.protective
        } else {
            &mut ph.permissive
        };
        match have {
            None => bucket.push(op(OpKind::AddPolicy(*k, want.spec.clone()), label())),
            Some(have) if *have == want.spec => {}
            Some(have) => {
                if weakens(have, &want.spec) {
                    guarded.push(*k);
                }
                bucket.push(op(OpKind::UpdatePolicy(*k, want.spec.clone()), label()));
            }
        }
    }
    guarded
}

/// Whether moving from `old` to `new` can expose a flow `old` protected.
fn weakens(old: &PolicySpec, new: &PolicySpec) -> bool {
    old.action.is_protective() && (!new.action.is_protective() || new.priority > old.priority)
}

fn add_guards(
    guarded: &[PolicyKey],
    d: &Desired,
    o: &Observed,
    own: &Ownership,
    ph: &mut Phases,
    conflicts: &mut Vec<Conflict>,
) {
    let spec = PolicySpec {
        priority: own.priority.0,
        action: PolicyAction::Block,
    };
    let mut keys = BTreeMap::new();
    for k in guarded {
        for g in guard_keys(k) {
            if g != *k && !d.policies.contains_key(&g) {
                keys.insert(g, format!("{} for {}", Origin::Guard, k));
            }
        }
    }
    for (g, label) in keys {
        if o.foreign_policy(&g) {
            conflicts.push(Conflict {
                object: g.to_string(),
                label,
            });
            continue;
        }
        if o.policy(&g).is_some() {
            // Left behind by an interrupted apply: it is removed at the end, not before.
            for list in [&mut ph.del_protective, &mut ph.del_permissive] {
                list.retain(|x| x.kind != OpKind::DelPolicy(g));
            }
        }
        match o.policy(&g) {
            Some(have) if *have == spec => {}
            Some(_) => ph
                .guard_adds
                .push(op(OpKind::UpdatePolicy(g, spec.clone()), label.clone())),
            None => ph
                .guard_adds
                .push(op(OpKind::AddPolicy(g, spec.clone()), label.clone())),
        }
        ph.guard_dels.push(op(OpKind::DelPolicy(g), label));
    }
}

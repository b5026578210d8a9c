//! What the daemon may assume the kernel holds between dumps. After a reconcile whose
//! every write was acknowledged, the kernel holds the desired set; until a foreign change
//! is notified (or events are lost), the next reload, address change or rotation diffs
//! against that instead of dumping 20,000 policies first. Everything about the kernel
//! itself (start, drift, expiry, acquires, resync, retry) still reads it.

use super::worker::Cause;
use crate::engine::{Foreign, Outcome, Start};
use crate::model::Desired;
use crate::plan::installed::Assumed;

/// The kernel as our last reconcile left it: every owned policy of the last desired set,
/// and its SAs (`states`) or none of ours (a kernel without ESP), plus the foreign keys of
/// the last dump.
#[derive(Debug, PartialEq, Eq)]
pub struct Base {
    pub foreign: Foreign,
    pub states: bool,
}

/// Where a reconcile for `cause` starts, given the base and the last desired set.
pub fn starting_point<'a>(
    base: Option<&'a Base>,
    last: Option<&'a Desired>,
    cause: Cause,
) -> Start<'a> {
    let trusting = matches!(cause, Cause::Reload | Cause::Addresses | Cause::Rotation);
    match (base, last) {
        (Some(b), Some(last)) if trusting => Start::Assume(Assumed {
            desired: last,
            states: b.states,
            foreign_policies: &b.foreign.0,
            foreign_states: &b.foreign.1,
        }),
        _ => Start::Observe,
    }
}

/// The base after `out` (a reconcile of the desired set that becomes the last one); the
/// foreign keys carry over from `prev` when `out` dumped nothing.
pub fn next(prev: Option<Base>, out: &mut Outcome, sa_writes: bool) -> Option<Base> {
    let no_states = out.installed.1 == 0;
    let states = if out.acknowledged {
        // Every write landed: the kernel holds the desired policies, and the desired SAs
        // too unless SA writes were left out (then it must hold none of ours).
        match (sa_writes, no_states) {
            (true, _) => true,
            (false, true) => false,
            (false, false) => return None,
        }
    } else if no_states && out.remaining.iter().all(|o| o.kind.is_state()) {
        // Read back: every policy is in place and no SA could be written (no ESP).
        false
    } else {
        return None;
    };
    let foreign = match (out.foreign.take(), prev) {
        (Some(f), _) => f,
        (None, Some(b)) => b.foreign,
        (None, None) => return None,
    };
    Some(Base { foreign, states })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Op, OpKind, SaKey};

    fn outcome(acknowledged: bool, states: usize, remaining: Vec<Op>, dumped: bool) -> Outcome {
        Outcome {
            acknowledged,
            installed: (3, states),
            remaining,
            foreign: dumped.then(Foreign::default),
            ..Outcome::default()
        }
    }

    fn some_sa() -> (SaKey, crate::model::SaSpec) {
        use crate::plan::{self, testkit, LocalAddrs, Timestamp};
        let p = testkit::seed();
        let id = testkit::identity(&p, 1);
        let now = Timestamp::from_secs(1_000_000_000);
        let d = plan::desired(&p, &id, &LocalAddrs::new(), now).expect("desired");
        let (k, s) = d.states.iter().next().expect("the seed host has SAs");
        (*k, s.spec.clone())
    }

    fn op(kind: OpKind) -> Op {
        Op {
            kind,
            label: String::new(),
        }
    }

    #[test]
    fn acknowledged_writes_are_trusted_failures_are_not() {
        let b = || {
            Some(Base {
                foreign: Foreign::default(),
                states: true,
            })
        };
        let yes = |states| {
            Some(Base {
                foreign: Foreign::default(),
                states,
            })
        };
        assert_eq!(
            next(None, &mut outcome(true, 4, vec![], true), true),
            yes(true)
        );
        assert_eq!(
            next(b(), &mut outcome(true, 4, vec![], false), true),
            yes(true)
        );
        // Nothing dumped, no earlier base: the foreign keys are unknown.
        assert_eq!(next(None, &mut outcome(true, 4, vec![], false), true), None);
        // SA writes left out: trusted only when the kernel holds none of ours.
        assert_eq!(
            next(b(), &mut outcome(true, 0, vec![], false), false),
            yes(false)
        );
        assert_eq!(next(b(), &mut outcome(true, 2, vec![], false), false), None);
        // A kernel without ESP: policies read back in place, every SA still missing.
        let (sa, spec) = some_sa();
        let add = || op(OpKind::AddSa(sa, spec.clone(), 0));
        assert_eq!(
            next(b(), &mut outcome(false, 0, vec![add()], true), true),
            yes(false)
        );
        // Anything else left over: read the kernel next time.
        let del = op(OpKind::DelSa(sa));
        assert_eq!(
            next(b(), &mut outcome(false, 1, vec![del], true), true),
            None
        );
    }

    #[test]
    fn only_wanted_changes_start_from_the_base() {
        let b = Base {
            foreign: Foreign::default(),
            states: true,
        };
        let d = Desired::default();
        for (cause, assumes) in [
            (Cause::Reload, true),
            (Cause::Addresses, true),
            (Cause::Rotation, true),
            (Cause::Start, false),
            (Cause::Drift, false),
            (Cause::SoftExpire, false),
            (Cause::Acquire, false),
            (Cause::Resync, false),
            (Cause::Retry, false),
        ] {
            let s = starting_point(Some(&b), Some(&d), cause);
            assert_eq!(matches!(s, Start::Assume(_)), assumes, "{cause:?}");
        }
        assert!(matches!(
            starting_point(None, Some(&d), Cause::Reload),
            Start::Observe
        ));
    }
}

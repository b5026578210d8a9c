//! Fail-closed backstops: a `block` policy under every protective outbound policy.
//!
//! Each protected flow hangs on one outbound policy. When someone deletes it (a script, an
//! admin, another agent's mistake), the kernel finds no policy and sends the flow in clear
//! until the daemon puts it back (1–3 ms in the lab's chaos run: two clear datagrams per
//! run). A backstop is the same selector, direction and action `block` one priority below
//! the policy it covers (each rule has two priorities: `Layout::rule`), so it is never
//! used while that policy exists, and takes over — dropping, never sending clear — when it
//! goes. It sits above every later rule, so a later `permit` cannot catch the flow either.
//!
//! The kernel's policy identity is (direction, selector, mark), not the priority: a block
//! with the same selector and no mark would *be* the policy it covers. So a backstop is two
//! policies, with the [`BACKSTOP_MARKS`] (bit 1 clear / set: together every packet, and
//! distinct from the transition guards' bit 0).
//!
//! Outbound only: an outbound gap leaks our traffic to anyone who listens; an inbound or
//! forward gap accepts clear packets only from an attacker who injects them within the
//! same milliseconds, while ESP from the peers is still accepted (docs/design.md).

use std::sync::Arc;

use crate::model::{DesiredPolicy, Dir, Mark, Origin, PolicyAction, PolicyKey, PolicySpec};

/// The two marks of a backstop: together they match every packet, and neither is the
/// absent mark of the policy it covers nor a transition guard's mark.
pub const BACKSTOP_MARKS: [Mark; 2] = [Mark { value: 0, mask: 2 }, Mark { value: 2, mask: 2 }];

/// Whether the policy at `k` gets a backstop: an unmarked outbound policy that protects
/// (`block`, or `required` templates).
pub fn needs_backstop(k: &PolicyKey, spec: &PolicySpec) -> bool {
    k.dir == Dir::Out && k.mark.is_none() && spec.action.is_protective()
}

/// Whether `k` is a backstop's key.
pub fn is_backstop(k: &PolicyKey) -> bool {
    k.mark.is_some_and(|m| BACKSTOP_MARKS.contains(&m))
}

/// The keys of the backstop of the policy at `k`.
pub fn backstop_keys(k: &PolicyKey) -> impl Iterator<Item = PolicyKey> + '_ {
    BACKSTOP_MARKS.iter().map(|m| PolicyKey {
        mark: Some(*m),
        ..*k
    })
}

/// The backstop policy (one for both keys) under `p`, if `k` needs one.
pub fn backstop_of(k: &PolicyKey, p: &DesiredPolicy) -> Option<DesiredPolicy> {
    if !needs_backstop(k, &p.spec) {
        return None;
    }
    let name: Arc<str> = match &p.origin {
        Origin::Rule(n) | Origin::Exemption(n) | Origin::Builtin(n) => Arc::clone(n),
        Origin::Guard | Origin::Backstop(_) => return None,
    };
    Some(DesiredPolicy {
        spec: PolicySpec {
            priority: p.spec.priority + 1,
            action: PolicyAction::Block,
        },
        origin: Origin::Backstop(name),
    })
}

/// `policies` (sorted by key, unique, unmarked) with each one's backstop right after it:
/// still sorted, since no unmarked key lies between a key and its marked variants.
pub fn with_backstops(
    policies: Vec<(PolicyKey, DesiredPolicy)>,
) -> Vec<(PolicyKey, DesiredPolicy)> {
    let extra = policies
        .iter()
        .filter(|(k, p)| needs_backstop(k, &p.spec))
        .count();
    let mut out = Vec::with_capacity(policies.len() + 2 * extra);
    for (k, p) in policies {
        let b = backstop_of(&k, &p);
        out.push((k, p));
        if let Some(b) = b {
            out.extend(backstop_keys(&k).map(|bk| (bk, b.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Level, Selector, Template};
    use policy_schema::Mode;

    fn key(dir: Dir, dst: &str) -> PolicyKey {
        PolicyKey {
            dir,
            sel: Selector::between("10.0.0.1/32".parse().unwrap(), dst.parse().unwrap()),
            mark: None,
        }
    }

    fn policy(action: PolicyAction) -> DesiredPolicy {
        DesiredPolicy {
            spec: PolicySpec {
                priority: 0x10100,
                action,
            },
            origin: Origin::Rule("r".into()),
        }
    }

    fn esp(level: Level) -> PolicyAction {
        PolicyAction::Protect(Arc::new([Template {
            mode: Mode::Transport,
            reqid: 1,
            level,
            tunnel: None,
        }]))
    }

    #[test]
    fn protective_outbound_policies_get_a_block_one_below_with_both_marks() {
        let list = vec![
            (key(Dir::In, "10.0.0.2/32"), policy(esp(Level::Required))),
            (key(Dir::Out, "10.0.0.2/32"), policy(esp(Level::Required))),
            (key(Dir::Out, "10.0.0.3/32"), policy(esp(Level::Use))),
            (key(Dir::Out, "10.0.0.4/32"), policy(PolicyAction::Allow)),
            (key(Dir::Out, "10.0.0.5/32"), policy(PolicyAction::Block)),
        ];
        let out = with_backstops(list);
        let backstops: Vec<_> = out.iter().filter(|(k, _)| is_backstop(k)).collect();
        assert_eq!(backstops.len(), 4, "{out:#?}");
        for (k, b) in &backstops {
            assert_eq!(k.dir, Dir::Out);
            assert_eq!(b.spec.action, PolicyAction::Block);
            assert_eq!(b.spec.priority, 0x10101);
            assert_eq!(b.origin.to_string(), "backstop of rule r");
        }
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "sorted and unique");
    }

    #[test]
    fn the_two_marks_cover_every_packet_and_differ_from_the_guards() {
        for mark in [0u32, 1, 2, 3, 0xffff_ffff, 0x8000_0002] {
            let hits = BACKSTOP_MARKS
                .iter()
                .filter(|m| mark & m.mask == m.value)
                .count();
            assert_eq!(hits, 1, "mark {mark:#x}");
        }
        for g in crate::plan::diff::GUARD_MARKS {
            assert!(!BACKSTOP_MARKS.contains(&g));
        }
    }
}

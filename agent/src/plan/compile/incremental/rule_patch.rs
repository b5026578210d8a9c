//! The policies of the rule prefixes that changed, recomputed; all others kept.
//!
//! A transport rule's policies for one local address are the selectors towards each
//! remote prefix, pruned. Pruning only ever drops a selector contained in another one of
//! the same direction, whose remote prefix then contains its own; so when a changed
//! prefix neither contains nor lies inside any other prefix of the rule, its selectors are
//! pruned among themselves alone, and recomputing them is exact. Their keys must also
//! come from no other rule or exemption (the first writer of a key wins): checked too.
//! A protective outbound policy comes and goes with its backstop.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::{Mode, Policy};

use super::super::backstop::{backstop_keys, backstop_of, needs_backstop};
use super::super::net::any_contains;
use super::super::policies::{rule_policy, rule_selectors, RuleSides};
use super::super::{Layout, RuleNets};
use crate::model::{DesiredPolicy, PolicyKey};

/// Policies to take out and to put in.
#[derive(Default)]
pub(super) struct RulePatch {
    remove: Vec<PolicyKey>,
    add: Vec<(PolicyKey, DesiredPolicy)>,
}

/// The policy changes of `changes`, for the local addresses `local`; an error says why
/// they cannot be worked out alone.
pub(super) fn rule_patch(
    policy: &Policy,
    layout: &Layout,
    local: &[IpAddr],
    (old, new): (&RuleNets, &RuleNets),
    changes: &[(usize, Vec<IpNet>)],
) -> Result<RulePatch, &'static str> {
    let mut patch = RulePatch::default();
    for (j, ds) in changes {
        let rule = &policy.rules[*j];
        if rule.mode != Mode::Transport {
            return Err("a tunnel rule's prefixes changed");
        }
        // The sides differ only in changed prefixes: where none holds a local address,
        // the address is on the same sides before and after.
        if ds.iter().any(|d| local.iter().any(|a| d.contains(a))) {
            return Err("a rule's change concerns this host's own addresses");
        }
        let (of, ot) = &old.0[*j];
        let (nf, nt) = &new.0[*j];
        let member = membership(ds, [of, ot, nf, nt])?;
        for d in ds {
            only_rule(d, *j, policy, old, new)?;
        }
        let value = rule_policy(rule, *j, layout);
        let key = |(dir, sel)| PolicyKey {
            dir,
            sel,
            mark: None,
        };
        for a in local {
            let sides = RuleSides {
                a: *a,
                in_to: any_contains(nt, a),
                in_from: any_contains(nf, a),
            };
            for (d, m) in ds.iter().zip(&member) {
                let only = |k: usize| if m[k] { vec![*d] } else { vec![] };
                let gone = rule_selectors(rule, &sides, &only(0), &only(1));
                let put = rule_selectors(rule, &sides, &only(2), &only(3));
                for k in gone.into_iter().map(key) {
                    patch.remove.push(k);
                    if needs_backstop(&k, &value.spec) {
                        patch.remove.extend(backstop_keys(&k));
                    }
                }
                for k in put.into_iter().map(key) {
                    patch.add.push((k, value.clone()));
                    if let Some(b) = backstop_of(&k, &value) {
                        patch
                            .add
                            .extend(backstop_keys(&k).map(|bk| (bk, b.clone())));
                    }
                }
            }
        }
    }
    Ok(patch)
}

/// For each of `ds`, whether each of `sides` holds it; an error when one overlaps
/// another prefix of the sides (contains it or lies inside it).
fn membership(ds: &[IpNet], sides: [&Vec<IpNet>; 4]) -> Result<Vec<[bool; 4]>, &'static str> {
    let mut member = vec![[false; 4]; ds.len()];
    for (k, side) in sides.iter().enumerate() {
        for p in side.iter() {
            for (d, m) in ds.iter().zip(member.iter_mut()) {
                if p == d {
                    m[k] = true;
                } else if overlap(p, d) {
                    return Err("a changed prefix overlaps another of its rule");
                }
            }
        }
    }
    Ok(member)
}

/// Two different prefixes of which one contains the other: the shorter one, or either
/// when they are one network written with different host bits.
fn overlap(p: &IpNet, d: &IpNet) -> bool {
    let host = |n: &IpNet| n.prefix_len() == n.max_prefix_len();
    if host(p) && host(d) {
        false // two different host prefixes (the usual case, checked fast)
    } else if p.prefix_len() <= d.prefix_len() {
        p.contains(d)
    } else {
        d.contains(p)
    }
}

/// No other rule, no exemption and no built-in makes a selector towards `d`.
fn only_rule(
    d: &IpNet,
    j: usize,
    policy: &Policy,
    old: &RuleNets,
    new: &RuleNets,
) -> Result<(), &'static str> {
    let elsewhere = |nets: &RuleNets| {
        nets.iter()
            .enumerate()
            .any(|(k, (f, t))| k != j && (f.contains(d) || t.contains(d)))
    };
    if d.prefix_len() == 0
        || elsewhere(old)
        || elsewhere(new)
        || policy.exemptions.iter().any(|e| e.peers.contains(d))
    {
        return Err("a changed prefix is also used by another rule or exemption");
    }
    Ok(())
}

impl RulePatch {
    /// Apply to `map`; an error (a key to take out is missing or one to put in is taken)
    /// leaves it half done, to be compiled in full.
    pub(super) fn apply(
        self,
        map: &mut BTreeMap<PolicyKey, DesiredPolicy>,
        touched: &mut BTreeSet<PolicyKey>,
    ) -> Result<(), &'static str> {
        for k in &self.remove {
            map.remove(k).ok_or("a policy to replace was missing")?;
            touched.insert(*k);
        }
        for (k, v) in self.add {
            touched.insert(k);
            match map.entry(k) {
                Entry::Vacant(e) => {
                    e.insert(v);
                }
                Entry::Occupied(_) => return Err("a new policy's key was taken"),
            }
        }
        Ok(())
    }
}

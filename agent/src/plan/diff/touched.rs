//! The diff of a patch: only the keys a [`Compiler`](crate::plan::Compiler) patch changed, against
//! what the kernel holds under those keys (read one by one, not dumped).
//!
//! When the kernel held the last desired set (the last reconcile's writes were all
//! acknowledged), every key the patch did not touch already matches: the full diff has no
//! op for it. Its ops for touched keys depend on their own two objects plus two things
//! read from the whole desired set (which addresses are ours, which guard keys are
//! desired), so [`diff_touched`] gives exactly the full diff's plan (the property test in
//! `incremental/tests.rs` compares them) while reading a handful of kernel objects instead
//! of dumping tens of thousands.

use std::collections::BTreeSet;

use policy_schema::Ownership;

use super::{diff_in, guard_keys, Plan};
use crate::model::{Desired, DesiredSa, Observed, PolicyKey, SaKey};
use crate::plan::Touched;

impl Touched {
    /// Every policy key the diff of these keys reads in the kernel: the touched ones and
    /// their transition guards' keys.
    pub fn policy_keys(&self) -> BTreeSet<PolicyKey> {
        let mut keys = self.policies.clone();
        keys.extend(self.policies.iter().flat_map(guard_keys));
        keys
    }

    /// Every SA key the diff of these keys reads in the kernel.
    pub fn sa_keys(&self) -> &BTreeSet<SaKey> {
        &self.states
    }
}

/// The plan for the keys `touched` names: `desired` is the whole desired set, `installed`
/// what the kernel holds under [`Touched::policy_keys`] and [`Touched::sa_keys`] (anything
/// else in it is ignored, never deleted).
pub fn diff_touched(
    desired: &Desired,
    touched: &Touched,
    installed: &Observed,
    own: &Ownership,
    writable: &dyn Fn(&SaKey, &DesiredSa) -> bool,
) -> Plan {
    let pkeys = touched.policy_keys();
    let skeys = touched.sa_keys();
    let sub = Desired {
        policies: (pkeys.iter())
            .filter_map(|k| desired.policies.get_key_value(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        states: (skeys.iter())
            .filter_map(|k| desired.states.get_key_value(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        ..Desired::default()
    };
    let seen = Observed {
        policies: (installed.policies.iter())
            .filter(|(k, _)| pkeys.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        states: (installed.states.iter())
            .filter(|(k, _)| skeys.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        foreign_policies: (installed.foreign_policies.iter())
            .filter(|k| pkeys.contains(k))
            .copied()
            .collect(),
        foreign_states: (installed.foreign_states.iter())
            .filter(|k| skeys.contains(k))
            .copied()
            .collect(),
    };
    diff_in(&sub, desired, &seen, own, writable)
}

//! The SAs negotiated over IKEv2, as the reconciler holds them: merged into the compiled
//! desired set before every diff, so apply, verify, drift repair, flush and status cover
//! them like static SAs (they are owned: the rule's reqid, an SPI in the owned range).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::waiting::Waiting;
use super::Reconciler;
use crate::daemon::ike::Negotiated;
use crate::ike_setup::{ike_setup, IkeSetup};
use crate::keying::{Admission, StaticSpis};
use crate::model::{Desired, PolicyKey, SaDir, SaKey};
use crate::plan::SpiTable;
use crate::plan::Touched;

/// What the reconciler keeps of IKEv2 keying.
#[derive(Default)]
pub(super) struct IkeState {
    /// The negotiated SAs keying last reported.
    pub(super) negotiated: Negotiated,
    /// The last desired set with them merged (None: there were none).
    pub(super) merged: Option<Desired>,
    /// Which pairs the policy in force keys over IKEv2 (None: IKE is not running).
    pub(super) admission: Option<Arc<dyn Admission>>,
    /// The IKE sockets hold UDP 4500 (with ESP-in-UDP decapsulation): the reconciler
    /// opens none of its own.
    pub(super) holds_natt: bool,
    /// A new policy came into force since keying last took its admission.
    pub(super) policy_changed: bool,
    /// Keys of negotiated SAs added, removed or changed since the last reconcile: a
    /// keying reconcile reads and diffs only these when the kernel held the last set.
    pub(super) touched: BTreeSet<SaKey>,
    /// Packet counters of negotiated inbound SAs as reconciles read them, for keying's
    /// liveness (traffic from a peer proves it alive).
    pub(super) packets: BTreeMap<SaKey, u64>,
    /// Outbound policies whose queue may hold packets for a peer being keyed.
    pub(super) waiting: Waiting,
}

impl IkeState {
    /// The negotiated inbound SAs, whose packet counters tell keying the peer is alive.
    pub(super) fn inbound_keys(&self) -> BTreeSet<SaKey> {
        (self.negotiated.iter())
            .filter(|(_, s)| s.meta.dir == SaDir::In)
            .map(|(k, _)| *k)
            .collect()
    }

    /// `compiler`'s touched keys with the negotiated ones changed since the last reconcile.
    pub(super) fn touched_with<'a>(&self, compiler: &'a Touched) -> Cow<'a, Touched> {
        if self.touched.is_empty() {
            return Cow::Borrowed(compiler);
        }
        let mut t = compiler.clone();
        t.states.extend(self.touched.iter().copied());
        Cow::Owned(t)
    }
}

/// The keys whose SA differs between `old` and `new` (added, removed or changed).
pub fn changed_keys(old: &Negotiated, new: &Negotiated) -> BTreeSet<SaKey> {
    let gone = old.keys().filter(|k| !new.contains_key(*k));
    let differ = new
        .iter()
        .filter(|(k, s)| old.get(*k) != Some(*s))
        .map(|(k, _)| k);
    gone.chain(differ).copied().collect()
}

/// `compiled` with `negotiated` added (a compiled SA keeps its key: the SPI slots make a
/// collision impossible, and the static one would be the one to keep).
pub fn merge(compiled: &Desired, negotiated: &Negotiated) -> Desired {
    let mut d = compiled.clone();
    for (k, s) in negotiated.iter() {
        d.states.entry(*k).or_insert_with(|| s.clone());
    }
    d
}

impl Reconciler {
    /// IKEv2 runs: acquires for pairs `admission` keys go to keying, and UDP 4500 is the
    /// IKE sockets'.
    pub fn start_ike(&mut self, admission: Arc<dyn Admission>) {
        self.ike.admission = Some(admission);
        self.ike.holds_natt = true;
        self.ike.policy_changed = false;
    }

    /// The IKE sockets are about to take UDP 4500: the reconciler's own ESP-in-UDP sockets
    /// close now (the next reconcile opens none while IKE holds the port).
    pub fn release_natt(&mut self) {
        self.ike.holds_natt = true;
        self.sync_encap(&Desired::default());
    }

    /// IKEv2 stopped (a reload turned it off, or its sockets could not open): no pair is
    /// keyed over IKEv2, the negotiated SAs leave the desired set, UDP 4500 is the
    /// reconciler's again; the next reconcile applies it.
    pub fn stop_ike(&mut self) {
        self.set_negotiated(Negotiated::default());
        self.ike.admission = None;
        self.ike.holds_natt = false;
        self.view.ike = None;
    }

    /// Keying's negotiated SAs changed: the next reconcile installs exactly these.
    pub fn set_negotiated(&mut self, states: Negotiated) {
        let changed = changed_keys(&self.ike.negotiated, &states);
        self.ike.touched.extend(changed);
        self.ike.negotiated = states;
    }

    /// Whether traffic from `local` to `remote` is keyed over IKEv2 (its acquires start
    /// an exchange instead of being counted as an unknown peer's).
    pub fn ike_keys(&self, local: IpAddr, remote: IpAddr) -> bool {
        (self.ike.admission.as_ref()).is_some_and(|a| a.terms(local, remote).is_some())
    }

    /// Whether the kernel SA `key` is one keying negotiated (its lifetimes are keying's).
    pub fn negotiated_sa(&self, key: &SaKey) -> bool {
        self.ike.negotiated.contains_key(key)
    }

    /// The packet counters of negotiated inbound SAs read since the last call.
    pub fn take_negotiated_packets(&mut self) -> BTreeMap<SaKey, u64> {
        std::mem::take(&mut self.ike.packets)
    }

    /// An acquire keying takes: its packet may wait in `policy`'s queue for the SA.
    pub fn note_waiting(&mut self, remote: IpAddr, policy: PolicyKey) {
        tracing::debug!(%policy, peer = %remote, "packets to a peer being keyed may wait in this policy's queue");
        self.ike
            .waiting
            .note(remote, policy, std::time::Instant::now());
    }

    /// Rewrite the policies whose queued packets now have an SA (see `waiting`): they
    /// leave at once instead of at the kernel's next queue timer. A failure only delays
    /// them to that timer.
    pub(super) fn release_waiting(&mut self, desired: &Desired) {
        if self.ike.waiting.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let ops = self
            .ike
            .waiting
            .releases(&self.ike.negotiated, desired, now);
        if ops.is_empty() {
            return;
        }
        match crate::kernel::apply(&mut self.sock, &ops) {
            Ok(acks) => {
                for (op, ack) in ops.iter().zip(acks) {
                    match ack {
                        Ok(()) => {
                            tracing::debug!(op = %op.label, "rewrote the policy holding them")
                        }
                        Err(e) => {
                            tracing::warn!(op = %op.label, error = %e, "could not rewrite the policy; the kernel's queue timer releases them")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not rewrite policies holding packets; the kernel's queue timer releases them")
            }
        }
    }

    /// The IKE setup of the policy in force.
    pub fn ike_setup(&self) -> anyhow::Result<Option<IkeSetup>> {
        let ctx = &self.loaded.ctx;
        ike_setup(&ctx.policy, &ctx.identity.host, &self.args)
    }

    /// The policy in force.
    pub fn policy(&self) -> &policy_schema::Policy {
        &self.loaded.ctx.policy
    }

    /// The static SAs' SPI slots under the policy in force.
    pub fn static_spis(&self) -> Arc<StaticSpis> {
        let p = &self.loaded.ctx.policy;
        let addrs = (p.hosts.iter()).flat_map(|h| h.addresses.iter());
        let addrs = addrs.chain(p.clusters.iter().flat_map(|c| c.addresses.iter()));
        let table = SpiTable::reuse_or_build(p, None);
        Arc::new(StaticSpis::new(&table, p.ownership.spi, addrs))
    }

    /// Whether a new policy came into force since the last call (keying then takes its
    /// admission and SPI slots).
    pub fn take_policy_change(&mut self) -> bool {
        std::mem::take(&mut self.ike.policy_changed)
    }

    /// The admission keying runs with now (after a reload).
    pub fn set_ike_admission(&mut self, admission: Arc<dyn Admission>) {
        self.ike.admission = Some(admission);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiated_states_join_and_never_replace_compiled_ones() {
        let d = crate::daemon::ike::seed_desired();
        let (k, s) = d.states.iter().next().expect("site has SAs");
        let mut theirs = s.clone();
        theirs.meta.peer = "ike:other".into();
        let new_key = crate::model::SaKey {
            spi: 0x7a00_1234,
            ..*k
        };
        let neg = Negotiated::new(BTreeMap::from([
            (*k, theirs.clone()),
            (new_key, theirs.clone()),
        ]));
        let m = merge(&d, &neg);
        assert_eq!(m.states.len(), d.states.len() + 1);
        assert_eq!(m.states[k], *s, "the compiled SA stays");
        assert_eq!(m.states[&new_key], theirs);
        assert_eq!(m.policies, d.policies);
    }

    #[test]
    fn changed_keys_are_the_added_removed_and_rekeyed() {
        let d = crate::daemon::ike::seed_desired();
        let mut it = d.states.iter().map(|(k, s)| (*k, s.clone()));
        let (a, b, c) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let old = Negotiated::new(BTreeMap::from([a.clone(), b.clone()]));
        let mut b2 = b.clone();
        b2.1.spec.replay_window += 1;
        let new = Negotiated::new(BTreeMap::from([b2, c.clone()]));
        assert_eq!(changed_keys(&old, &new), BTreeSet::from([a.0, b.0, c.0]));
        assert!(changed_keys(&new, &new).is_empty());
    }
}

//! Recompiling after a small change: the previous result, patched where its inputs
//! changed, always equal to [`desired`](super::desired) for the same inputs.
//!
//! A reload usually changes one host of thousands, and most reconciles (rotation steps
//! aside, which change the epochs and compile in full) change nothing. What a host entry
//! reaches is known: the SAs with that peer, the policies of the rule prefixes it resolves
//! to, and the SPI slots linear probing moved. Everything else is reused. Whatever cannot
//! be shown to stay unchanged — settings, rules, exemptions, clusters, this host's own
//! entry or keys, the epochs in force, held cluster addresses, tunnel rules, a prefix that
//! overlaps another, SPI slots shared — is compiled in full ([`Compiled::Full`] says why).
//!
//! Exactness is tested, not assumed: a property test (tests.rs) compares the result after
//! every edit of random edit sequences with a fresh [`desired`](super::desired), and debug builds assert
//! the patched rule prefixes and the SAs taken out against their definitions.
//!
//! Usage (the daemon's loop): keep one `Compiler`, call [`Compiler::desired`] on every
//! reconcile with the current `Arc<Policy>`, and use the `&Desired` it returns (it is also
//! [`Compiler::last`]). `Compiled::Patched { peers: 0, prefixes: 0 }` means the same
//! objects as the last compile (only outbound initial sequence numbers moved).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use policy_schema::{Host, Policy, PublicKey};

use super::carry::Carry;
use super::epoch::{EpochView, Timeline};
use super::spi::SpiTable;
use super::{desired_with, find_me, LocalAddrs, PlanError, RuleNets, Timestamp};
use crate::keys::Identity;
use crate::model::{Desired, DesiredSa, SaDir, SaKey};

mod hosts;
mod nets;
mod patch;
mod rule_patch;
#[cfg(test)]
mod tests;

/// Compiles the desired set again and again, reusing the last result where it can.
///
/// It owns the last result (the daemon's "last desired"): patching it in place is what
/// makes a one-host change cost a few milliseconds, and keeps only one desired set alive.
/// It also holds the last policy (shared): a policy the caller has let go of is freed
/// when the next compile replaces it, and the pair secrets, expanded SA keys and SPI
/// slots, which full compiles reuse too (a reload with unchanged keys redoes no X25519).
#[derive(Default)]
pub struct Compiler {
    memo: Option<Memo>,
    carry: Carry,
    how: Option<Compiled>,
    /// The keys the last patch took out or put in (None after a full compile).
    touched: Option<Touched>,
}

/// The kernel objects a patch can have changed: every key it took out of the last result
/// or put in. Every other key maps to the same object as before (outbound SAs' initial
/// sequence numbers aside, which only matter when an SA is added). A diff over these keys
/// (and what the kernel holds under them) is the diff of the whole sets when the kernel
/// held the last result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub policies: std::collections::BTreeSet<crate::model::PolicyKey>,
    pub states: std::collections::BTreeSet<SaKey>,
}

/// How the last compile was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// From scratch, and why the last result could not be reused.
    Full(&'static str),
    /// The last result patched: the SAs with `peers` peers and the policies of `prefixes`
    /// rule prefixes were recomputed (both zero: nothing but sequence numbers changed).
    Patched { peers: usize, prefixes: usize },
}

/// The last result and what it was compiled from.
struct Memo {
    desired: Desired,
    /// The policy it was compiled from (shared with the caller: no copy).
    policy: Arc<Policy>,
    identity: (String, PublicKey, Vec<(String, PublicKey)>),
    view: EpochView,
    /// The clusters whose addresses we held, with those addresses.
    held: Vec<(String, Vec<IpAddr>)>,
    nets: RuleNets,
    /// Where each endpoint's part of `nets` ends (None: host names repeat).
    ends: Option<nets::Ends>,
    spis: Arc<SpiTable>,
    /// The initial sequence number of every outbound SA (one epoch, one moment).
    initial_seq: u64,
}

/// The inputs of one compile.
#[derive(Clone, Copy)]
pub(super) struct Inputs<'a> {
    pub shared: &'a Arc<Policy>,
    pub policy: &'a Policy,
    pub id: &'a Identity,
    pub me: &'a Host,
    pub local: &'a LocalAddrs,
    pub now: Timestamp,
    pub carry: &'a RefCell<Carry>,
}

impl Compiler {
    pub fn new() -> Compiler {
        Compiler::default()
    }

    /// The XFRM policies and SAs this host needs at `now`: exactly [`desired`](super::desired) of the
    /// same inputs, computed from the last result where the inputs allow.
    ///
    /// The policy is shared, not copied: the next compile tells what changed by comparing
    /// with it (the same `Arc` again: nothing did). On error the last result is kept.
    pub fn desired(
        &mut self,
        shared: &Arc<Policy>,
        id: &Identity,
        local: &LocalAddrs,
        now: Timestamp,
    ) -> Result<&Desired, PlanError> {
        let policy = &**shared;
        let me = find_me(policy, id)?;
        let carry = RefCell::new(std::mem::take(&mut self.carry));
        let inputs = Inputs {
            shared,
            policy,
            id,
            me,
            local,
            now,
            carry: &carry,
        };
        let compiled = self.compile(&inputs);
        self.carry = carry.into_inner();
        compiled?;
        Ok(&self.memo.as_ref().expect("just compiled").desired)
    }

    /// Patch the last result to `inputs`, or compile in full.
    fn compile(&mut self, inputs: &Inputs) -> Result<(), PlanError> {
        self.touched = None;
        let patched = match self.memo.as_mut() {
            Some(memo) => patch::patch(memo, inputs),
            None => Err("first compile"),
        };
        let how = match patched {
            Ok((how, touched)) => {
                self.touched = Some(touched);
                how
            }
            Err(why) => {
                // Free the old set first: two full sets at once would double the peak.
                self.memo = None;
                self.memo = Some(full(inputs)?);
                Compiled::Full(why)
            }
        };
        self.how = Some(how);
        Ok(())
    }

    /// Make the next compile a full one, keeping the pair secrets, SA keys and SPI slots:
    /// a full compile as the daemon makes one (benchmarks time it).
    pub fn full_next(&mut self) {
        self.memo = None;
        self.how = None;
        self.touched = None;
    }

    /// The last result, if any.
    pub fn last(&self) -> Option<&Desired> {
        self.memo.as_ref().map(|m| &m.desired)
    }

    /// How the last result was made.
    pub fn how(&self) -> Option<&Compiled> {
        self.how.as_ref()
    }

    /// What the last compile changed, when it patched (None: compiled in full, or failed).
    pub fn touched(&self) -> Option<&Touched> {
        self.touched.as_ref()
    }
}

/// A full compile, remembered with what the next patch needs.
fn full(x: &Inputs) -> Result<Memo, PlanError> {
    let nets = RuleNets::new(x.policy);
    let desired = desired_with(x.policy, x.id, x.local, x.now, &nets, x.carry)?;
    let job = x.job(&nets);
    let (timeline, view) = job.timeline();
    Ok(Memo {
        desired,
        policy: Arc::clone(x.shared),
        identity: x.id.fingerprint(),
        initial_seq: timeline.initial_seq(view.outbound, x.now.nanos()),
        view,
        held: held_key(&job),
        spis: job.spi_table(),
        ends: nets::Ends::of(x.policy, &nets),
        nets,
    })
}

fn held_key(job: &super::SaJob) -> Vec<(String, Vec<IpAddr>)> {
    job.held()
        .into_iter()
        .map(|(c, a)| (c.name.clone(), a))
        .collect()
}

/// The keys of the SAs with a peer at addresses `peer`: outbound to them, and inbound to
/// our addresses `mine` in their SPI slots (as `spis` placed them).
fn sa_keys(
    states: &BTreeMap<SaKey, DesiredSa>,
    spis: &SpiTable,
    mine: &[IpAddr],
    peer: &[IpAddr],
) -> Vec<SaKey> {
    let mut keys = Vec::new();
    let mut take = |dst: IpAddr, spis: RangeInclusive<u32>| {
        let (lo, hi) = (
            SaKey {
                dst,
                spi: *spis.start(),
            },
            SaKey {
                dst,
                spi: *spis.end(),
            },
        );
        keys.extend(states.range(lo..=hi).map(|(k, _)| *k));
    };
    for b in peer {
        take(*b, 0..=u32::MAX);
        if let Some(r) = spis.slot_spis(b) {
            for a in mine {
                take(*a, r.clone());
            }
        }
    }
    keys
}

/// Outbound SAs start at a sequence number that grows with time: the one thing a
/// compile at another moment of the same epochs changes in every SA.
fn set_initial_seq(memo: &mut Memo, timeline: &Timeline, now: Timestamp) {
    let seq = timeline.initial_seq(memo.view.outbound, now.nanos());
    if seq == memo.initial_seq {
        return;
    }
    for sa in memo.desired.states.values_mut() {
        if sa.meta.dir == SaDir::Out {
            sa.meta.initial_seq = seq;
        }
    }
    memo.initial_seq = seq;
}

impl<'a> Inputs<'a> {
    fn job(&self, nets: &'a RuleNets) -> super::SaJob<'a> {
        super::SaJob::new(
            self.policy,
            self.id,
            self.me,
            self.local,
            self.now,
            nets,
            self.carry,
        )
    }
}

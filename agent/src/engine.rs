//! The one-shot reconcile: observe → diff → apply (batched) → observe again → verify.
//! Used by `apply`, `flush` and the daemon's `Reconciler`.

use std::collections::{BTreeMap, BTreeSet};

use policy_schema::Ownership;
use serde::Serialize;

use crate::kernel::{self, ErrorKind, KernelError, NlSocket};
use crate::model::{Desired, DesiredSa, Op, OpKind, SaDir, SaKey};
use crate::plan::diff::diff_touched;
use crate::plan::diff::{diff_with, in_class, sa_class, Plan, SaClass};
use crate::plan::Touched;

/// One op the kernel refused.
#[derive(Debug)]
pub struct Failure {
    pub op: Op,
    pub error: KernelError,
}

/// A missing kernel feature, reported once however many ops it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingFeature {
    pub feature: String,
    pub error: String,
    pub ops: usize,
}

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub plan: Plan,
    /// Ops the kernel acknowledged (both rounds).
    pub applied: usize,
    pub failed: Vec<Failure>,
    /// The kernel, read back, matches the desired set (no ops left, no conflicts).
    pub verified: bool,
    /// What the read-back diff still wants (empty when verified or on dry runs' plan).
    pub remaining: Vec<Op>,
    /// Owned policies and states in the kernel at the last observation (or, when every
    /// write was acknowledged and not verified, as the writes left them).
    pub installed: (usize, usize),
    /// Every write was acknowledged (no failure, nothing retried).
    pub acknowledged: bool,
    /// How many keys were read one by one ([`Options::only`]); None: the kernel was dumped.
    pub keys_read: Option<usize>,
    /// Packet counters of the SAs in [`Options::count_packets`] that were read (all of
    /// them on a dump, the touched ones otherwise), at the first observation.
    pub packets: BTreeMap<SaKey, u64>,
}

impl Outcome {
    /// Failures that mean "this kernel lacks X", grouped by X.
    pub fn missing_features(&self) -> Vec<MissingFeature> {
        let mut by: BTreeMap<String, MissingFeature> = BTreeMap::new();
        for f in &self.failed {
            if let ErrorKind::MissingFeature(feat) = f.error.kind() {
                by.entry(feat.clone())
                    .or_insert_with(|| MissingFeature {
                        feature: feat,
                        error: f.error.to_string(),
                        ops: 0,
                    })
                    .ops += 1;
            }
        }
        by.into_values().collect()
    }
    /// The SA classes refused for a missing feature, each with that feature.
    pub fn blocked(&self) -> BTreeMap<SaClass, String> {
        let mut out = BTreeMap::new();
        for f in &self.failed {
            if let (
                ErrorKind::MissingFeature(feat),
                OpKind::AddSa(k, spec, _) | OpKind::UpdateSa(k, spec),
            ) = (f.error.kind(), &f.op.kind)
            {
                out.entry(sa_class(k, spec)).or_insert(feat);
            }
        }
        out
    }
    /// The kernel holds the desired set, except SAs of the classes it refused for a
    /// missing feature (which later reconciles leave out alike): nothing else failed, is
    /// left to do or is held by a foreign object.
    pub fn holds_desired(&self) -> bool {
        let blocked = self.blocked();
        let refused = |op: &Op| match &op.kind {
            OpKind::AddSa(k, spec, _) | OpKind::UpdateSa(k, spec) => {
                blocked.contains_key(&sa_class(k, spec))
            }
            _ => false,
        };
        self.plan.conflicts.is_empty()
            && self.other_failures().next().is_none()
            && self.remaining.iter().all(refused)
    }
    /// Failures other than missing features, one per op.
    pub fn other_failures(&self) -> impl Iterator<Item = &Failure> {
        self.failed
            .iter()
            .filter(|f| !matches!(f.error.kind(), ErrorKind::MissingFeature(_)))
    }
}

/// The object an op writes, to match a retry with its first attempt.
fn target(op: &OpKind) -> String {
    match op {
        OpKind::AddSa(k, ..) | OpKind::UpdateSa(k, _) | OpKind::DelSa(k) => k.to_string(),
        OpKind::AddPolicy(k, _) | OpKind::UpdatePolicy(k, _) | OpKind::DelPolicy(k) => {
            k.to_string()
        }
    }
}

/// Execute `ops`; returns (acknowledged count, failures).
fn run_ops(sock: &mut NlSocket, ops: &[Op]) -> Result<(usize, Vec<Failure>), KernelError> {
    let results = kernel::apply(sock, ops)?;
    let mut ok = 0;
    let mut failed = Vec::new();
    for (op, r) in ops.iter().zip(results) {
        match r {
            Ok(()) => {
                ok += 1;
                tracing::info!(op = %op, "applied");
            }
            Err(error) => {
                // A missing feature fails every SA write alike: reported once, by the caller.
                if matches!(error.kind(), ErrorKind::MissingFeature(_)) {
                    tracing::debug!(op = %op, %error, "kernel refused");
                } else {
                    tracing::warn!(op = %op, %error, "kernel refused");
                }
                failed.push(Failure {
                    op: op.clone(),
                    error,
                });
            }
        }
    }
    Ok((ok, failed))
}

/// How a reconcile runs.
pub struct Options<'a> {
    /// Compute the plan only.
    pub dry_run: bool,
    /// Dump again after writing even when every write was acknowledged (the one-shot
    /// commands do; the daemon relies on acknowledgements, events and its periodic resync).
    pub verify: bool,
    /// SA classes not to write (the kernel is known to lack what they need: policies are
    /// still installed, fail-closed, and owned SAs of the class already there are left
    /// alone). Other SAs — another algorithm, the other family — are written as usual.
    pub blocked: &'a BTreeSet<SaClass>,
    /// Read and diff only these keys, not the whole kernel: the caller knows the kernel
    /// held its last desired set (every write acknowledged since, no foreign change
    /// notified) and that `desired` differs from it only there. With the owned counts
    /// then installed.
    pub only: Option<(&'a Touched, (usize, usize))>,
    /// SAs whose packet counters the caller wants (e.g. negotiated inbound SAs, whose
    /// traffic proves the peer alive): returned in [`Outcome::packets`].
    pub count_packets: &'a BTreeSet<SaKey>,
}

impl Options<'_> {
    /// Whether an SA may be written.
    fn writable(&self) -> impl Fn(&SaKey, &DesiredSa) -> bool + '_ {
        |k, sa| !self.blocked.iter().any(|c| in_class(k, &sa.spec, c))
    }
}

/// Make the kernel (this socket's namespace) match `desired` for the objects `own` covers.
/// Foreign objects are never written. With `dry_run`, only the plan is computed.
pub fn reconcile(
    sock: &mut NlSocket,
    desired: &Desired,
    own: &Ownership,
    dry_run: bool,
) -> Result<Outcome, KernelError> {
    let opts = Options {
        dry_run,
        verify: true,
        blocked: &BTreeSet::new(),
        only: None,
        count_packets: &BTreeSet::new(),
    };
    reconcile_with(sock, desired, own, &opts)
}

/// `reconcile` with the verification and SA writes chosen by the caller.
pub fn reconcile_with(
    sock: &mut NlSocket,
    desired: &Desired,
    own: &Ownership,
    opts: &Options,
) -> Result<Outcome, KernelError> {
    let t0 = std::time::Instant::now();
    let (observed, installed, keys_read) = match opts.only {
        None => {
            let observed = kernel::observe(sock, own)?;
            let installed = (observed.policies.len(), observed.states.len());
            (observed, installed, None)
        }
        Some((touched, installed)) => {
            let (pkeys, skeys) = (touched.policy_keys(), touched.sa_keys());
            let read = pkeys.len() + skeys.len();
            let observed = kernel::observe_keys(sock, own, &pkeys, skeys)?;
            (observed, installed, Some(read))
        }
    };
    let t1 = std::time::Instant::now();
    let plan = match opts.only {
        None => diff_with(desired, &observed, own, &opts.writable()),
        Some((touched, _)) => diff_touched(desired, touched, &observed, own, &opts.writable()),
    };
    let packets: BTreeMap<SaKey, u64> = (opts.count_packets.iter())
        .filter_map(|k| Some((*k, observed.states.get(k)?.stats.packets)))
        .collect();
    drop(observed);
    tracing::debug!(
        observe_ms = ms(t1 - t0),
        diff_ms = ms(t1.elapsed()),
        keys_read,
        ops = plan.ops.len(),
        "observed and diffed"
    );
    if opts.dry_run || plan.ops.is_empty() {
        // Nothing to write: the observation just made is the verification.
        let remaining = if opts.dry_run {
            plan.ops.clone()
        } else {
            vec![]
        };
        return Ok(Outcome {
            verified: remaining.is_empty() && plan.conflicts.is_empty(),
            acknowledged: true,
            plan,
            remaining,
            installed,
            keys_read,
            packets,
            ..Outcome::default()
        });
    }
    let (mut applied, first) = run_ops(sock, &plan.ops)?;
    let (retry, mut failed): (Vec<Failure>, Vec<Failure>) =
        first.into_iter().partition(|f| f.error.can_retry());
    if !retry.is_empty() {
        // EEXIST / ENOENT / ENOBUFS: the kernel changed under us. Observe again and redo
        // only what concerns those objects (the rest either worked or failed for good).
        let keys: BTreeSet<String> = retry.iter().map(|f| target(&f.op.kind)).collect();
        let again = diff_with(desired, &kernel::observe(sock, own)?, own, &opts.writable());
        let ops: Vec<Op> = again
            .ops
            .into_iter()
            .filter(|o| keys.contains(&target(&o.kind)))
            .collect();
        let (ok, f2) = run_ops(sock, &ops)?;
        applied += ok;
        failed.extend(f2);
    }
    let acknowledged = retry.is_empty() && failed.is_empty();
    if acknowledged && !opts.verify {
        return Ok(Outcome {
            verified: plan.conflicts.is_empty(),
            installed: after_ops(installed, &plan.ops),
            plan,
            applied,
            acknowledged,
            keys_read,
            packets,
            ..Outcome::default()
        });
    }
    let after = kernel::observe(sock, own)?;
    let remaining = diff_with(desired, &after, own, &opts.writable()).ops;
    Ok(Outcome {
        verified: remaining.is_empty() && plan.conflicts.is_empty(),
        plan,
        applied,
        failed,
        remaining,
        acknowledged,
        installed: (after.policies.len(), after.states.len()),
        keys_read,
        packets,
    })
}

/// Which of the `blocked` SA classes the kernel still refuses: one desired SA of each is
/// written (a success stays: it is wanted anyway). Retrying every SA of a blocked class
/// at each resync would send tens of thousands of writes the kernel refuses. A class no
/// desired SA has any more is not blocked.
pub fn still_blocked(
    sock: &mut NlSocket,
    desired: &Desired,
    blocked: &BTreeSet<SaClass>,
) -> Result<BTreeSet<SaClass>, KernelError> {
    let mut probes: BTreeMap<SaClass, Op> = BTreeMap::new();
    for (k, sa) in &desired.states {
        // Classes are compared without building them for every SA.
        let unprobed = blocked
            .iter()
            .find(|c| !probes.contains_key(*c) && in_class(k, &sa.spec, c));
        if let Some(class) = unprobed {
            let seq = match sa.meta.dir {
                SaDir::In => 0,
                SaDir::Out => sa.meta.initial_seq,
            };
            let op = Op {
                kind: OpKind::AddSa(*k, sa.spec.clone(), seq),
                label: "probe: can this kernel take these SAs now?".into(),
            };
            probes.insert(class.clone(), op);
            if probes.len() == blocked.len() {
                break;
            }
        }
    }
    let (classes, ops): (Vec<SaClass>, Vec<Op>) = probes.into_iter().unzip();
    let results = kernel::apply(sock, &ops)?;
    Ok(classes
        .into_iter()
        .zip(results)
        .filter(|(_, r)| matches!(r, Err(e) if matches!(e.kind(), ErrorKind::MissingFeature(_))))
        .map(|(c, _)| c)
        .collect())
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Owned counts after every op of a plan was acknowledged.
fn after_ops((mut policies, mut states): (usize, usize), ops: &[Op]) -> (usize, usize) {
    for op in ops {
        match op.kind {
            OpKind::AddPolicy(..) => policies += 1,
            OpKind::DelPolicy(..) => policies = policies.saturating_sub(1),
            OpKind::AddSa(..) => states += 1,
            OpKind::DelSa(..) => states = states.saturating_sub(1),
            OpKind::UpdatePolicy(..) | OpKind::UpdateSa(..) => {}
        }
    }
    (policies, states)
}

/// Remove every owned object (ranges from `own`) and nothing else.
pub fn flush(sock: &mut NlSocket, own: &Ownership, dry_run: bool) -> Result<Outcome, KernelError> {
    reconcile(sock, &Desired::default(), own, dry_run)
}

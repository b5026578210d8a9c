//! The daemon's I/O half: the last good policy, the XFRM socket, the ESP-in-UDP sockets,
//! and one reconcile (load → desired → observe → diff → apply → verify) per trigger.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use anyhow::Context as _;

use super::metrics::Metrics;
use super::view::{DaemonView, ReconcileInfo, ReloadInfo};
use crate::engine;
use crate::kernel::{self, NlSocket};
use crate::load::{self, PolicyFiles};
use crate::model::Desired;
use crate::plan::diff::SaClass;
use crate::plan::{Compiled, Compiler};
use encap::EncapSockets;
use negotiated::IkeState;
use reload::{read_and_load, Loaded};
use sync::KernelSync;

mod announce;
mod cause;
mod encap;
mod guard;
mod negotiated;
mod reload;
mod sync;
mod waiting;

pub use cause::{Cause, Turn};
pub use reload::Reloaded;

/// The daemon's state that touches the outside world.
pub struct Reconciler {
    args: PolicyFiles,
    sock: NlSocket,
    loaded: Loaded,
    /// The sha256 and key fingerprint of the last rejected load (not retried until either
    /// changes, or SIGHUP).
    rejected: Option<String>,
    /// Compiles the desired set, patching the last one where the inputs allow; holds it.
    compiler: Compiler,
    /// What the last reconcile left the kernel holding.
    sync: KernelSync,
    /// The policy a reload replaced, dropped after the next reconcile (not in its way),
    /// or put back when the new one does not compile.
    retired: Option<Loaded>,
    /// The sha256/keys of a policy loaded but not yet compiled (not yet in force).
    fresh: Option<String>,
    /// The last panic caught compiling the policy in force (logged once, not per retry).
    last_panic: Option<String>,
    /// The daemon's debounce: how soon a file caught mid-write is read again (and, × 10,
    /// how long it must be unchanged before a failure to load it is reported).
    debounce: std::time::Duration,
    /// When the policy file was last written in place (an inotify event, not a rename).
    last_write: Option<Instant>,
    /// `--announce-cluster-addresses`, and the cluster addresses held at the last reconcile.
    announce: bool,
    held: BTreeSet<IpAddr>,
    encap: EncapSockets,
    /// SA classes (family, algorithm) the kernel refused for a missing feature, with that
    /// feature: their writes are left out until a resync's probe gets one through.
    blocked: BTreeMap<SaClass, String>,
    /// What the last load kept to make the next one cheaper (unchanged entries reused).
    reloader: policy_schema::Reloader,
    /// IKEv2: the negotiated SAs, the admission of acquires.
    ike: IkeState,
    pub view: DaemonView,
    pub metrics: Metrics,
}

/// A reload attempt now: good, or rejected with `error`.
fn reload_info(error: Option<String>) -> ReloadInfo {
    ReloadInfo {
        unix: crate::clock::now(),
        ok: error.is_none(),
        error,
    }
}

/// Hand freed heap back to the kernel. A reload parses the whole file into a syntax tree
/// and drops it; glibc keeps that memory in its arenas, so an idle daemon would sit at its
/// peak (tens of MB at 10,000 peers) instead of what it holds.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Reconciler {
    /// Load the policy and key; an invalid file here is fatal (there is nothing to keep).
    pub fn start(
        args: &PolicyFiles,
        sock: NlSocket,
        o: &super::Options,
    ) -> anyhow::Result<Reconciler> {
        let mut reloader = policy_schema::Reloader::new();
        let loaded = read_and_load(args, &mut reloader)?;
        load::print_warnings(&loaded.ctx.warnings);
        let view = DaemonView {
            pid: std::process::id(),
            host: loaded.ctx.identity.host.clone(),
            config: args.config.display().to_string(),
            policy_sha256: loaded.sha256.clone(),
            started_unix: crate::clock::now(),
            last_reload: reload_info(None),
            ..DaemonView::default()
        };
        Ok(Reconciler {
            args: args.clone(),
            sock,
            loaded,
            rejected: None,
            compiler: Compiler::new(),
            sync: KernelSync::Unknown,
            retired: None,
            fresh: None,
            last_panic: None,
            debounce: o.debounce,
            last_write: None,
            announce: o.announce,
            held: BTreeSet::new(),
            encap: EncapSockets::default(),
            blocked: BTreeMap::new(),
            reloader,
            ike: IkeState::default(),
            view,
            metrics: Metrics::default(),
        })
    }

    /// The XFRM socket's port id (to ignore the notifications our own writes cause).
    pub fn port_id(&self) -> u32 {
        self.sock.port_id()
    }

    /// Whether `ip` belongs to a host or cluster of the inventory.
    pub fn known(&self, ip: IpAddr) -> bool {
        let p = &self.loaded.ctx.policy;
        p.hosts.iter().any(|h| h.addresses.contains(&ip))
            || p.clusters.iter().any(|c| c.addresses.contains(&ip))
    }

    /// The desired set of the last reconcile, negotiated SAs included (None before the
    /// first).
    pub fn last_desired(&self) -> Option<&Desired> {
        self.ike.merged.as_ref().or(self.compiler.last())
    }

    /// One reconcile. Kernel errors are returned (the loop retries); everything else is
    /// accounted in the view and metrics.
    /// With `sweep`, the whole kernel is read whatever the cause.
    pub fn reconcile(&mut self, cause: Cause, sweep: bool) -> anyhow::Result<()> {
        // The compiler holds the desired set the rest reads while it changes the reconciler:
        // out for the duration, back whatever happens.
        let mut compiler = std::mem::take(&mut self.compiler);
        let r = self.reconcile_with(&mut compiler, cause, sweep);
        self.compiler = compiler;
        if r.is_err() {
            self.sync = KernelSync::Failed;
        }
        // The policy a reload replaced is dropped here, once the new one compiled.
        if self.fresh.is_none() {
            self.retired = None;
        }
        r
    }

    fn reconcile_with(
        &mut self,
        compiler: &mut Compiler,
        cause: Cause,
        sweep: bool,
    ) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let local = kernel::addrs::local_addrs().context("reading local addresses")?;
        let t_addrs = t0.elapsed();
        if let Err(e) = self.compile(compiler, &local) {
            // A fresh policy that does not compile is rejected like an invalid file, and
            // the last good one compiled again (once: it is no longer fresh).
            return match self.reject_fresh(e) {
                Ok(()) => self.reconcile_with(compiler, cause, true),
                Err(e) => Err(e),
            };
        }
        self.accept_fresh();
        tracing::debug!(addrs = ?t_addrs, compile = ?(t0.elapsed() - t_addrs), how = ?compiler.how(), "compiled");
        let compiled = compiler.last().expect("just compiled");
        // Negotiated SAs join the compiled ones: one diff owns both.
        let merged = (!self.ike.negotiated.is_empty())
            .then(|| negotiated::merge(compiled, &self.ike.negotiated));
        let full = merged.as_ref().unwrap_or(compiled);
        // Same objects as the last compile (only sequence numbers re-stamped): writes now
        // repair someone else's change.
        let same = matches!(
            compiler.how(),
            Some(Compiled::Patched {
                peers: 0,
                prefixes: 0
            })
        );
        self.sync_encap(full);
        // After a kernel refused a class of SAs for a missing feature, only the resync
        // tries that class again, and only when a probe write of one of them gets through.
        let mut blocked: BTreeSet<SaClass> = self.blocked.keys().cloned().collect();
        if !blocked.is_empty() && cause == Cause::Resync {
            let still = engine::still_blocked(&mut self.sock, full, &blocked)?;
            self.blocked.retain(|c, _| still.contains(c));
            if still.len() < blocked.len() {
                tracing::info!(still_missing = ?self.blocked.values().collect::<BTreeSet<_>>(),
                    "the kernel takes SAs it refused before; installing them");
            }
            blocked = still;
        }
        // A reload or address change the compiler patched changed only the keys it names;
        // when the kernel held the last set, those are all there is to read and diff
        // (a foreign change elsewhere is notified and repaired by its own reconcile).
        let before = std::mem::take(&mut self.sync);
        // So does a keying change: the negotiated SAs it added, removed or changed.
        let touched = compiler.touched().map(|t| self.ike.touched_with(t));
        let only = match (cause, before.held(), touched.as_deref()) {
            (Cause::Reload | Cause::Addresses | Cause::Keying, Some(counts), Some(t)) if !sweep => {
                Some((t, counts))
            }
            _ => None,
        };
        let count_packets = self.ike.inbound_keys();
        let opts = engine::Options {
            dry_run: false,
            verify: false,
            blocked: &blocked,
            only,
            count_packets: &count_packets,
        };
        let own = &self.loaded.ctx.policy.ownership;
        let out = engine::reconcile_with(&mut self.sock, full, own, &opts)?;
        self.ike.packets.extend(&out.packets);
        if out.holds_desired() {
            self.sync = KernelSync::Held(out.installed.0, out.installed.1);
        }
        let secs = t0.elapsed().as_secs_f64();
        // Writes after a failed reconcile finish what it started; they are not drift.
        let repair = same && before != KernelSync::Failed;
        self.account(cause, &out, full, repair, secs);
        self.announce_new_holdings(&local);
        self.release_waiting(full);
        self.ike.merged = merged;
        self.ike.touched.clear();
        Ok(())
    }

    /// Compile the loaded policy into `compiler`, panics caught (the compiler is then
    /// replaced: it may be half-patched). A panic is logged here, once per message.
    fn compile(
        &mut self,
        compiler: &mut Compiler,
        local: &crate::plan::LocalAddrs,
    ) -> anyhow::Result<()> {
        let ctx = &self.loaded.ctx;
        let inject = self.loaded.inject_compile_panic;
        let r = guard::catch(|| {
            if inject {
                panic!("injected panic (XFRM_AGENT_INJECT_PANIC)");
            }
            compiler
                .desired(&ctx.policy, &ctx.identity, local, crate::clock::now())
                .map(|_| ())
                .map_err(anyhow::Error::from)
        });
        match r {
            Ok(r) => r,
            Err(panic) => {
                *compiler = Compiler::new();
                self.sync.forget();
                let e = guard::panic_error(&self.args.config, "compiling", &panic);
                if self.fresh.is_none() && self.last_panic.as_deref() != Some(panic.as_str()) {
                    tracing::error!(error = %format!("{e:#}"), "compiling the policy in force failed; the kernel is left as it is; retrying");
                }
                self.last_panic = Some(panic);
                Err(e)
            }
        }
    }

    /// Log and count what a reconcile did; `repair`: the same objects as the last compile,
    /// which the last reconcile put in place.
    fn account(
        &mut self,
        cause: Cause,
        out: &engine::Outcome,
        full: &Desired,
        repair: bool,
        secs: f64,
    ) {
        let new: BTreeMap<SaClass, String> = out
            .blocked()
            .into_iter()
            .filter(|(c, _)| !self.blocked.contains_key(c))
            .collect();
        if !new.is_empty() {
            tracing::error!(features = ?new.values().collect::<BTreeSet<_>>(),
                classes = ?new.keys().collect::<Vec<_>>(),
                "this kernel lacks what these SAs need; their policies stay installed (their traffic is held, fail-closed), other SAs are installed as usual; retrying at each resync");
            self.blocked.extend(new);
        }
        for f in out.other_failures() {
            tracing::warn!(op = %f.op, error = %f.error, "kernel refused");
        }
        let applied = out.applied;
        if applied > 0 {
            // Writes while wanting the same objects as last time repaired someone else's
            // change. (Reloads, address changes and rotations want new objects.)
            let wanted_change = matches!(
                cause,
                Cause::Reload | Cause::Addresses | Cause::Rotation | Cause::Keying
            );
            let drift = !wanted_change && repair;
            if drift {
                self.view.drift_repairs += 1;
                let ops: Vec<String> = out.plan.ops.iter().take(8).map(|o| o.to_string()).collect();
                tracing::warn!(cause = cause.as_str(), ops = applied, first = ?ops,
                    "repaired drift: owned objects were changed or removed by someone else");
            } else if cause == Cause::Rotation {
                self.view.rotations += 1;
            }
        }
        tracing::info!(
            cause = cause.as_str(),
            ops = applied,
            failed = out.failed.len(),
            verified = out.verified,
            ms = (secs * 1e4).round() / 10.0,
            "reconciled"
        );
        self.metrics.reconcile_seconds.observe(secs);
        self.view.reconciles += 1;
        self.view.last_reconcile = ReconcileInfo {
            unix: crate::clock::now(),
            cause: cause.as_str().into(),
            ops: applied,
            failed: out.failed.len(),
            duration_ms: secs * 1e3,
            verified: out.verified,
            read: out
                .keys_read
                .map_or_else(|| "dump".to_string(), |n| format!("{n} keys")),
        };
        self.view.missing_features = self
            .blocked
            .values()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        self.view.note_desired(full);
        (self.view.owned_policies, self.view.owned_states) = out.installed;
    }

    /// Remove every owned object (exit with --flush-on-exit).
    pub fn flush(&mut self) -> anyhow::Result<usize> {
        let out = engine::flush(&mut self.sock, &self.loaded.ctx.policy.ownership, false)?;
        Ok(out.applied)
    }

    /// The owned objects in the kernel now, joined with the last desired set (per-peer
    /// metrics). Kernel counters are left empty: the caller reads them once.
    pub fn peer_status(&mut self) -> anyhow::Result<crate::report::peers::Status> {
        let observed = kernel::observe(&mut self.sock, &self.loaded.ctx.policy.ownership)?;
        let empty = Desired::default();
        let d = self.last_desired().unwrap_or(&empty);
        Ok(crate::report::peers::build(
            d,
            &observed,
            Default::default(),
        ))
    }
}

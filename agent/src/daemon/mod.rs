//! `xfrm-agent run`: one reconcile loop. Every trigger — the policy file, SIGHUP, a local
//! address change, an XFRM event someone else caused, the compiler's `next_change`, the
//! periodic resync — leads to the same load → desired → observe → diff → apply → verify.
//!
//! One current-thread tokio runtime drives everything, so every socket is opened on the
//! thread that entered `--netns`, and the loop needs no locks. Idle, it sleeps in epoll
//! until an event or the next timer: no polling.

pub mod control;
pub mod debounce;
pub mod first_packets;
pub mod ike;
pub mod metrics;
pub mod rate_limit;
pub mod reaction;
pub mod reconciler;
mod sources;
mod systemd;
mod timers;
pub mod view;
pub mod watch;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sd_notify::NotifyState;
use tokio::time::{sleep_until, Instant};

use reconciler::{Cause, Reconciler, Reloaded, Turn};
use sources::{
    Addresses, ControlSocket, Cx, Ike, MetricsEndpoint, PolicyFile, Signals, Source, Sources, Xfrm,
};
use timers::{due, instant_of, Pending, Timers};

use crate::kernel;

/// After a failed reconcile (kernel I/O error), try again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Quiet time after a reconcile before freed heap is returned to the kernel.
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// What `run` needs beyond the policy arguments.
#[derive(Clone, Debug)]
pub struct Options {
    pub flush_on_exit: bool,
    pub metrics: Option<SocketAddr>,
    pub resync: Duration,
    pub debounce: Duration,
    /// Announce a cluster address when this host starts holding it.
    pub announce: bool,
    /// With IKEv2: queue the first packets to a peer being keyed, or leave the sysctl.
    pub first_packets: first_packets::FirstPackets,
}

/// Enter the namespace, build the runtime and run until SIGTERM/SIGINT.
pub fn run(
    policy: &crate::load::PolicyFiles,
    netns: Option<&str>,
    o: &Options,
) -> anyhow::Result<ExitCode> {
    kernel::netns::enter_opt(netns)?;
    one_heap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(policy, o))
}

/// One malloc arena for the whole process. A large compile runs on a second thread for a
/// moment (plan::desired); glibc would give that thread an arena of its own, and an idle
/// daemon at 10,000 peers would hold two fragmented heaps (+5 MB RSS, measured).
fn one_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; no other thread allocates yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

async fn serve(policy: &crate::load::PolicyFiles, o: &Options) -> anyhow::Result<ExitCode> {
    let control = ControlSocket::bind()?;
    let signals = Signals::open()?;
    let sock = kernel::open().context("opening the XFRM netlink socket")?;
    let mut rec = Reconciler::start(policy, sock, o)?;
    let (ftx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sources = Sources {
        xfrm: Xfrm::open(rec.port_id())?,
        addresses: Addresses::open()?,
        policy_file: PolicyFile {
            rx,
            _watcher: watch::watch(policy, ftx).context("watching the policy and key files")?,
        },
        metrics: MetricsEndpoint::bind(o.metrics).await?,
        control,
        signals,
        ike: open_ike(&mut rec)?,
    };
    let larval = match sources.ike {
        Some(_) => {
            let (l, shown) = first_packets::Larval::start(o.first_packets);
            rec.view.first_packets = Some(shown.into());
            l
        }
        None => first_packets::Larval::default(),
    };

    // Subscribed before the first reconcile: nothing that happens after it is missed.
    if let Err(e) = rec.reconcile(Cause::Start, true) {
        tracing::error!(error = %format!("{e:#}"), "first reconcile failed; retrying");
    }
    let rotate_at = rec.view.next_rotation_unix.map(instant_of);
    let mut timers = Timers::new(o, Instant::now(), rotate_at, sd_notify::watchdog_enabled());
    systemd::notify(&[NotifyState::Ready]);
    tracing::info!(host = %rec.view.host, config = %rec.view.config, "running");

    while turn(&mut sources, &mut rec, &mut timers)
        .await?
        .is_continue()
    {}

    systemd::notify(&[NotifyState::Stopping]);
    if let Some(ike) = sources.ike.as_mut() {
        ike.shutdown();
    }
    drop(larval);
    if o.flush_on_exit {
        let n = rec.flush()?;
        tracing::info!(removed = n, "flushed every owned object (--flush-on-exit)");
    } else {
        tracing::info!("exiting; kernel state left in place (protection persists, fail-closed)");
    }
    Ok(ExitCode::SUCCESS)
}

/// The IKE source when the policy uses IKEv2 (None: no socket is opened). IPv6 sockets
/// too when the host can have them.
fn open_ike(rec: &mut Reconciler) -> anyhow::Result<Option<Ike>> {
    let Some(setup) = rec.ike_setup()? else {
        return Ok(None);
    };
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    Ike::open(setup, v6, rec).map(Some)
}

/// One turn of the loop: wait for the first source event or timer, handle it, then what
/// has fired by now, and reconcile once for all of it. `Break`: stop the daemon.
async fn turn(
    s: &mut Sources,
    rec: &mut Reconciler,
    timers: &mut Timers,
) -> anyhow::Result<ControlFlow<()>> {
    let wake = s
        .next_deadline()
        .map_or(timers.next_wake(), |d| d.min(timers.next_wake()));
    let mut turn = Turn::default();
    let mut cx = Cx {
        rec,
        timers,
        turn: &mut turn,
    };
    let flow = tokio::select! {
        ev = s.signals.next() => s.signals.on_event(ev?, &mut cx),
        ev = s.policy_file.next() => s.policy_file.on_event(ev?, &mut cx),
        ev = s.xfrm.next() => s.xfrm.on_event(ev?, &mut cx),
        ev = s.addresses.next() => s.addresses.on_event(ev?, &mut cx),
        ev = s.control.next() => s.control.on_event(ev?, &mut cx),
        ev = s.metrics.next() => s.metrics.on_event(ev?, &mut cx),
        ev = next_ike(&mut s.ike), if s.ike.is_some() => match s.ike.as_mut() {
            Some(ike) => ike.on_event(ev?, &mut cx),
            None => ControlFlow::Continue(()),
        },
        _ = sleep_until(wake) => ControlFlow::Continue(()),
    };
    if flow.is_break() {
        return Ok(flow);
    }
    let acquires = std::mem::take(&mut cx.turn.acquires);
    let expires = std::mem::take(&mut cx.turn.expires);
    if let Some(ike) = s.ike.as_mut() {
        ike.on_acquires(&acquires, &mut cx);
        ike.on_expires(&expires, &mut cx);
    }
    let now = Instant::now();
    let fired = due(cx.timers, now);
    cx.timers.rearm(&fired, now);
    on_timers(fired, now, &mut cx);
    s.on_deadlines(now, &mut cx);
    if let Some(c) = turn.cause {
        reconcile(rec, timers, c, turn.sweep);
    }
    after_reconcile(s, rec, timers);
    Ok(ControlFlow::Continue(()))
}

/// IKEv2 after the turn's reconcile: keying takes a new policy; a reload that turns IKEv2
/// on opens the IKE source, one that turns it off closes it and reconciles the negotiated
/// SAs away (the static SAs the reload brought are in the kernel by then: no gap).
fn after_reconcile(s: &mut Sources, rec: &mut Reconciler, timers: &mut Timers) {
    if let Some(ike) = s.ike.as_mut() {
        let stop = ike.after_reconcile(rec).is_break();
        if let Some(ike) = s.ike.take_if(|_| stop) {
            ike.close(rec);
            reconcile(rec, timers, Cause::Keying, false);
        }
        return;
    }
    if !rec.take_policy_change() {
        return;
    }
    match open_ike(rec) {
        Ok(Some(ike)) => {
            s.ike = Some(ike);
            // The reconciler's ESP-in-UDP sockets made way: reconcile with IKE's.
            reconcile(rec, timers, Cause::Keying, false);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the new policy uses IKEv2, but keying could not start; pairs it keys get no SA until the next reload");
            reconcile(rec, timers, Cause::Keying, false);
        }
    }
}

/// The IKE source's next datagram (never ready without one).
async fn next_ike(ike: &mut Option<Ike>) -> anyhow::Result<sources::IkeInput> {
    match ike {
        Some(ike) => ike.next().await,
        None => std::future::pending().await,
    }
}

/// Act on the loop's own timers that fired at `now`: causes for the turn's reconcile,
/// and the housekeeping that needs none.
fn on_timers(fired: Pending, now: Instant, cx: &mut Cx<'_>) {
    if fired.reload {
        let r = cx.rec.reload(false);
        cx.timers.reread(r, now);
        if r == Reloaded::New {
            systemd::reloading();
            cx.turn.add(Cause::Reload);
        }
    }
    if fired.rotation {
        cx.turn.add(Cause::Rotation);
    }
    if fired.retry {
        cx.turn.add(Cause::Retry);
    }
    if fired.resync {
        // A resync re-reads the file too: a lost inotify event must not leave an edit unapplied.
        let r = cx.rec.reload(false);
        cx.timers.reread(r, now);
        if r == Reloaded::New {
            cx.turn.name(Cause::Reload);
        }
        cx.turn.add(Cause::Resync);
    }
    if fired.trim {
        reconciler::release_free_memory();
    }
    if fired.watchdog {
        systemd::notify(&[NotifyState::Watchdog]);
    }
}

/// The turn's one reconcile, and the timers it sets: retry on failure, the next rotation,
/// the memory trim.
fn reconcile(rec: &mut Reconciler, t: &mut Timers, c: Cause, sweep: bool) {
    match rec.reconcile(c, sweep) {
        Ok(()) => t.retry_at = None,
        Err(e) => {
            tracing::error!(cause = ?c, error = %format!("{e:#}"), "reconcile failed; retrying in 1 s");
            t.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
    }
    t.rotate_at = rec.view.next_rotation_unix.map(instant_of);
    // Not after every reconcile: a burst of edits would fault the same pages in again
    // each time. Once things are quiet, idle RSS is what the daemon holds.
    t.trim_at = Some(Instant::now() + TRIM_AFTER);
    if c == Cause::Reload {
        systemd::notify(&[NotifyState::Ready]);
    }
}

//! `xfrm-agent run`: one reconcile loop. Every trigger — the policy file, SIGHUP, a local
//! address change, an XFRM event someone else caused, the compiler's `next_change`, the
//! periodic resync — leads to the same load → desired → observe → diff → apply → verify.
//!
//! One current-thread tokio runtime drives everything, so every socket is opened on the
//! thread that entered `--netns`, and the loop needs no locks. Idle, it sleeps in epoll
//! until an event or the next timer: no polling.

pub mod book;
pub mod control;
pub mod metrics;
mod timers;
pub mod watch;
pub mod worker;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep_until, Instant};

use book::{Debounce, RateLimiter, Reaction};
use timers::{instant_of, Timers};
use worker::{Cause, Pending, Reloaded, Worker};

use crate::kernel::{self, addrs::AddrEvents, events::XfrmEvents};

/// Unknown-peer acquires are logged once per address per this interval.
const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(60);
/// Acquires for known peers trigger a reconcile at most this often per address.
const ACQUIRE_EVERY: Duration = Duration::from_secs(1);
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
}

fn sd(states: &[sd_notify::NotifyState]) {
    // Not under systemd (no NOTIFY_SOCKET) this is a no-op.
    let _ = sd_notify::notify(states);
}

fn sd_reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(m) => sd(&[sd_notify::NotifyState::Reloading, m]),
        Err(_) => sd(&[sd_notify::NotifyState::Reloading]),
    }
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
    let control = match control::bind() {
        Ok(l) => tokio::net::UnixListener::from_std(l)?,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            anyhow::bail!("another xfrm-agent is already running in this network namespace")
        }
        Err(e) => return Err(e).context("binding the control socket @xfrm-agent"),
    };
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let sock = kernel::open().context("opening the XFRM netlink socket")?;
    let mut w = Worker::start(policy, sock, o)?;
    let mut xev = XfrmEvents::open().context("subscribing to XFRM events")?;
    xev.ignore_sender(w.port_id());
    let aev = AddrEvents::open().context("subscribing to address events")?;
    // SAFETY: both types own their socket fd for their whole life and close it only on
    // drop, which AsyncFd runs after deregistering.
    let mut xfd = unsafe { AsyncFd::register(xev) }?;
    let mut afd = unsafe { AsyncFd::register(aev) }?;
    let (ftx, mut frx) = tokio::sync::mpsc::unbounded_channel();
    let _watcher = watch::watch(policy, ftx).context("watching the policy and key files")?;
    let metrics = match o.metrics {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the metrics address {a}"))?,
        ),
        None => None,
    };

    // Subscribed before the first reconcile: nothing that happens after it is missed.
    if let Err(e) = w.reconcile(Cause::Start, true) {
        tracing::error!(error = %format!("{e:#}"), "first reconcile failed; retrying");
    }
    let now = Instant::now();
    let mut t = Timers {
        debounce: Debounce::new(o.debounce),
        resync_at: now + o.resync,
        retry_at: None,
        rotate_at: w.view.next_rotation_unix.map(instant_of),
        watchdog: sd_notify::watchdog_enabled().map(|d| (d / 2, now)),
        trim_at: Some(now),
        origin: now,
    };
    sd(&[sd_notify::NotifyState::Ready]);
    tracing::info!(host = %w.view.host, config = %w.view.config, "running");
    let mut unknown = RateLimiter::default();
    let mut acquires = RateLimiter::default();

    loop {
        let mut turn = Pending::default();
        tokio::select! {
            _ = sighup.recv() => {
                sd_reloading();
                let r = w.reload(true);
                t.reread(r, Instant::now());
                // An operator's explicit reload also reads the whole kernel.
                turn.add(Cause::Reload);
                turn.sweep = true;
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            Some(k) = frx.recv() => {
                let now = t.since_origin(Instant::now());
                for k in std::iter::once(k).chain(std::iter::from_fn(|| frx.try_recv().ok())) {
                    t.debounce.event(k, now);
                    if k == book::FileEvent::Writing {
                        w.note_write();
                    }
                }
            }
            g = xfd.readable_mut() => {
                let mut g = g?;
                let evs = g.get_inner_mut().poll();
                g.clear_ready();
                match evs {
                    Ok(evs) => {
                        let empty = crate::model::Desired::default();
                        let d = w.last_desired().unwrap_or(&empty);
                        let reactions: Vec<Reaction> =
                            evs.iter().map(|ev| book::react(ev, d, &|a| w.known(a))).collect();
                        let now = t.since_origin(Instant::now());
                        for (ev, r) in evs.iter().zip(reactions) {
                            if let Some(c) = answer(&mut w, ev, r, now, &mut unknown, &mut acquires) {
                                turn.add(c);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading XFRM events failed; resyncing");
                        turn.add(Cause::Resync);
                    }
                }
            }
            g = afd.readable_mut() => {
                let mut g = g?;
                let evs = g.get_inner_mut().poll();
                g.clear_ready();
                match evs {
                    Ok(evs) if evs.is_empty() => {}
                    Ok(evs) => {
                        tracing::info!(events = ?evs, "local addresses changed");
                        turn.add(Cause::Addresses);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading address events failed; resyncing");
                        turn.add(Cause::Resync);
                    }
                }
            }
            c = control.accept() => {
                if let Ok((mut s, _)) = c {
                    // The view names hosts, paths and errors: root and our own user only.
                    let me = geteuid();
                    let body = match s.peer_cred() {
                        Ok(c) if c.uid() == 0 || c.uid() == me => serde_json::to_string(&w.view).unwrap_or_default(),
                        _ => r#"{"error":"the daemon's view is for root (or the daemon's user) only"}"#.to_string(),
                    };
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(body.as_bytes())).await;
                    });
                }
            }
            c = accept_opt(metrics.as_ref()) => {
                if let Ok((s, _)) = c {
                    let kernel = w.peer_status().map_err(|e| tracing::warn!(error = %e, "metrics: kernel dump failed")).ok();
                    let stat = crate::report::peers::read_xfrm_stat_all();
                    let body = metrics::render(&w.metrics, &w.view, kernel.as_ref(), &stat);
                    tokio::spawn(respond_http(s, body));
                }
            }
            _ = sleep_until(t.next_wake()) => {}
        }

        let now = Instant::now();
        if t.debounce.fire(t.since_origin(now)) {
            let r = w.reload(false);
            t.reread(r, now);
            if r == Reloaded::New {
                sd_reloading();
                turn.add(Cause::Reload);
            }
        }
        if t.rotate_at.is_some_and(|r| r <= now) {
            turn.add(Cause::Rotation);
        }
        if t.retry_at.is_some_and(|r| r <= now) {
            turn.add(Cause::Retry);
        }
        if t.resync_at <= now {
            t.resync_at = now + o.resync;
            // A resync re-reads the file too: a lost inotify event must not leave an edit unapplied.
            let r = w.reload(false);
            t.reread(r, now);
            if r == Reloaded::New {
                turn.name(Cause::Reload);
            }
            turn.add(Cause::Resync);
        }
        if t.trim_at.is_some_and(|at| at <= now) {
            t.trim_at = None;
            worker::release_free_memory();
        }
        if let Some((every, at)) = t.watchdog {
            if at <= now {
                sd(&[sd_notify::NotifyState::Watchdog]);
                t.watchdog = Some((every, now + every));
            }
        }
        if let Some(c) = turn.cause {
            match w.reconcile(c, turn.sweep) {
                Ok(()) => t.retry_at = None,
                Err(e) => {
                    tracing::error!(cause = ?c, error = %format!("{e:#}"), "reconcile failed; retrying in 1 s");
                    t.retry_at = Some(Instant::now() + RETRY_AFTER);
                }
            }
            t.rotate_at = w.view.next_rotation_unix.map(instant_of);
            // Not after every reconcile: a burst of edits would fault the same pages in
            // again each time. Once things are quiet, idle RSS is what the daemon holds.
            t.trim_at = Some(Instant::now() + TRIM_AFTER);
            if c == Cause::Reload {
                sd(&[sd_notify::NotifyState::Ready]);
            }
        }
    }

    sd(&[sd_notify::NotifyState::Stopping]);
    if o.flush_on_exit {
        let n = w.flush()?;
        tracing::info!(removed = n, "flushed every owned object (--flush-on-exit)");
    } else {
        tracing::info!("exiting; kernel state left in place (protection persists, fail-closed)");
    }
    Ok(ExitCode::SUCCESS)
}

/// The loop's answer to one reacted-to event: the reconcile cause, if any; counts and
/// logs on the way.
fn answer(
    w: &mut Worker,
    ev: &crate::kernel::events::XfrmEvent,
    r: Reaction,
    now: Duration,
    unknown: &mut RateLimiter,
    acquires: &mut RateLimiter,
) -> Option<Cause> {
    match r {
        Reaction::Ignore => None,
        Reaction::Drift => Some(Cause::Drift),
        Reaction::Resync => Some(Cause::Resync),
        Reaction::SoftExpire => {
            w.view.soft_expires += 1;
            tracing::warn!(event = ?ev, "an owned SA reached its soft lifetime: the rotation schedule was missed; reconciling now");
            Some(Cause::SoftExpire)
        }
        Reaction::KnownAcquire(a) => acquires
            .allow(a, now, ACQUIRE_EVERY)
            .then_some(Cause::Acquire),
        Reaction::UnknownAcquire(a) => {
            w.view.unknown_peer_acquires += 1;
            if unknown.allow(a, now, UNKNOWN_LOG_EVERY) {
                tracing::warn!(address = %a, "traffic to an address outside the inventory hit a protecting policy (dropped); logged once a minute per address");
            }
            None
        }
    }
}

fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

async fn accept_opt(
    l: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Answer one HTTP request: the metrics on GET /metrics, 404 otherwise.
async fn respond_http(mut s: tokio::net::TcpStream, body: String) {
    let io = async {
        let mut buf = vec![0u8; 2048];
        let mut n = 0;
        while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            let k = s.read(&mut buf[n..]).await?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let head = String::from_utf8_lossy(&buf[..n]);
        let path = head.split_whitespace().nth(1).unwrap_or("");
        let resp = if path == "/metrics" || path.starts_with("/metrics?") {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        };
        s.write_all(resp.as_bytes()).await?;
        s.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), io).await;
}

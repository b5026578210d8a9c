//! XFRM events someone else caused (our own writes are filtered by port id): drift, soft
//! expires, acquires, lost notifications.

use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::{read_when_ready, Cx, Source};
use crate::daemon::rate_limit::RateLimiter;
use crate::daemon::reaction::{self, Reaction};
use crate::daemon::reconciler::Cause;
use crate::kernel::events::{XfrmEvent, XfrmEvents};
use crate::kernel::KernelError;
use crate::keying::Acquire;
use crate::model::Selector;
use crate::plan::host_net as host;

/// Unknown-peer acquires are logged once per address per this interval.
const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(60);
/// Acquires for known peers trigger a reconcile at most this often per address.
const ACQUIRE_EVERY: Duration = Duration::from_secs(1);

/// The XFRM event subscription and the per-address limits on what acquires may cause.
pub(in crate::daemon) struct Xfrm {
    fd: AsyncFd<XfrmEvents>,
    unknown: RateLimiter,
    acquires: RateLimiter,
}

impl Xfrm {
    /// Subscribe, ignoring the notifications of writes from netlink port `own_port`.
    pub(in crate::daemon) fn open(own_port: u32) -> anyhow::Result<Xfrm> {
        let mut ev = XfrmEvents::open().context("subscribing to XFRM events")?;
        ev.ignore_sender(own_port);
        // SAFETY: XfrmEvents owns its socket fd for its whole life and closes it only on
        // drop, which AsyncFd runs after deregistering.
        let fd = unsafe { AsyncFd::register(ev) }?;
        Ok(Xfrm {
            fd,
            unknown: RateLimiter::default(),
            acquires: RateLimiter::default(),
        })
    }

    /// The cause an event asks a reconcile for, if any; counts and logs on the way.
    fn answer(
        &mut self,
        ev: &XfrmEvent,
        r: Reaction,
        now: Duration,
        cx: &mut Cx<'_>,
    ) -> Option<Cause> {
        match r {
            Reaction::Ignore => None,
            Reaction::Drift => Some(Cause::Drift),
            Reaction::Resync => Some(Cause::Resync),
            Reaction::SoftExpire => {
                cx.rec.view.soft_expires += 1;
                tracing::warn!(event = ?ev, "an owned SA reached its soft lifetime: the rotation schedule was missed; reconciling now");
                Some(Cause::SoftExpire)
            }
            Reaction::KnownAcquire(a) => self
                .acquires
                .allow(a, now, ACQUIRE_EVERY)
                .then_some(Cause::Acquire),
            Reaction::UnknownAcquire(a) => {
                cx.rec.view.unknown_peer_acquires += 1;
                if self.unknown.allow(a, now, UNKNOWN_LOG_EVERY) {
                    tracing::warn!(address = %a, "traffic to an address outside the inventory hit a protecting policy (dropped); logged once a minute per address");
                }
                None
            }
        }
    }
}

/// An acquire as keying takes it. The kernel replaces its larval state with the first SA
/// whose (daddr, saddr, reqid, mode, proto) match it (net/xfrm/xfrm_state.c,
/// `xfrm_state_add` → `__find_acq_core`), which negotiated SAs do, so no sequence number is
/// needed to install over it.
fn ike_acquire(ev: &XfrmEvent) -> Option<Acquire> {
    let XfrmEvent::Acquire { src, dst, sel, .. } = ev else {
        return None;
    };
    let sel = sel.unwrap_or_else(|| Selector::between(host(*src), host(*dst)));
    Some(Acquire {
        local: *src,
        remote: *dst,
        sel,
        seq: 0,
    })
}

impl Source for Xfrm {
    type Event = Result<Vec<XfrmEvent>, KernelError>;

    async fn next(&mut self) -> anyhow::Result<Self::Event> {
        Ok(read_when_ready(&mut self.fd, |ev| ev.poll()).await?)
    }

    fn on_event(&mut self, evs: Self::Event, cx: &mut Cx<'_>) -> ControlFlow<()> {
        let evs = match evs {
            Ok(evs) => evs,
            Err(e) => {
                tracing::warn!(error = %e, "reading XFRM events failed; resyncing");
                cx.turn.add(Cause::Resync);
                return ControlFlow::Continue(());
            }
        };
        let (evs, ike): (Vec<_>, Vec<_>) = evs.into_iter().partition(|ev| match ev {
            XfrmEvent::Acquire { src, dst, .. } => !cx.rec.ike_keys(*src, *dst),
            _ => true,
        });
        // Pairs keyed over IKEv2: keying starts (or merges into) an exchange.
        for ev in &ike {
            if let XfrmEvent::Acquire {
                dst,
                policy: Some(p),
                ..
            } = ev
            {
                cx.rec.note_waiting(*dst, *p);
            } else if let XfrmEvent::Acquire { dst, .. } = ev {
                tracing::warn!(peer = %dst, "an acquire without its policy: packets queued for this peer leave at the kernel's timer");
            }
        }
        cx.turn.acquires.extend(ike.iter().filter_map(ike_acquire));
        let empty = crate::model::Desired::default();
        let d = cx.rec.last_desired().unwrap_or(&empty);
        let reactions: Vec<Reaction> = evs
            .iter()
            .map(|ev| reaction::react(ev, d, &|a| cx.rec.known(a)))
            .collect();
        let now = cx.timers.since_origin(Instant::now());
        for (ev, r) in evs.iter().zip(reactions) {
            if let Some(c) = self.answer(ev, r, now, cx) {
                cx.turn.add(c);
            }
        }
        ControlFlow::Continue(())
    }
}

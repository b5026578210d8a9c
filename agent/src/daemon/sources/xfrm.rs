//! XFRM events someone else caused (our own writes are filtered by port id): drift, soft
//! expires, acquires, lost notifications.

use std::net::IpAddr;
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
use crate::model::{PolicyKey, SaKey, Selector};
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

/// XFRM events split between the static path and keying.
#[derive(Debug, Default, PartialEq)]
struct Routed {
    static_path: Vec<XfrmEvent>,
    /// Acquires of pairs keyed over IKEv2: keying starts (or merges into) an exchange.
    acquires: Vec<Acquire>,
    /// Their peers and the policies whose queues may hold their packets meanwhile.
    waiting: Vec<(IpAddr, Option<PolicyKey>)>,
    /// Soft and hard expires of negotiated SAs: keying rekeys their Child SA (no static
    /// rotation was missed, so none is counted).
    expires: Vec<(SaKey, bool)>,
}

/// Routes each event to keying when it is about a pair keyed over IKEv2 (`ike_keys`) or
/// an SA keying negotiated (`negotiated`), else to the static path.
fn route(
    evs: Vec<XfrmEvent>,
    ike_keys: impl Fn(IpAddr, IpAddr) -> bool,
    negotiated: impl Fn(&SaKey) -> bool,
) -> Routed {
    let mut r = Routed::default();
    for ev in evs {
        match ev {
            XfrmEvent::Acquire {
                src, dst, policy, ..
            } if ike_keys(src, dst) => {
                r.waiting.push((dst, policy));
                r.acquires.extend(ike_acquire(&ev));
            }
            XfrmEvent::Expire { key, hard } if negotiated(&key) => r.expires.push((key, hard)),
            ev => r.static_path.push(ev),
        }
    }
    r
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
        let rec = &*cx.rec;
        let routed = route(evs, |s, d| rec.ike_keys(s, d), |k| rec.negotiated_sa(k));
        let evs = routed.static_path;
        for (peer, policy) in routed.waiting {
            match policy {
                Some(p) => cx.rec.note_waiting(peer, p),
                None => {
                    tracing::warn!(%peer, "an acquire without its policy: packets queued for this peer leave at the kernel's timer")
                }
            }
        }
        cx.turn.acquires.extend(routed.acquires);
        cx.turn.expires.extend(routed.expires);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lifetimes_and_acquires_of_negotiated_sas_go_to_keying_and_the_rest_stays_static() {
        let negotiated = SaKey {
            dst: ip("10.0.0.1"),
            spi: 0x7a00_0001,
        };
        let compiled = SaKey {
            spi: 0x0100_0001,
            ..negotiated
        };
        let expire = |key, hard| XfrmEvent::Expire { key, hard };
        let acquire = |dst: &str| XfrmEvent::Acquire {
            src: ip("10.0.0.1"),
            dst: ip(dst),
            sel: None,
            policy: None,
        };
        let evs = vec![
            expire(negotiated, false),
            expire(compiled, false),
            expire(negotiated, true),
            acquire("10.0.0.2"),
            acquire("10.0.0.3"),
            XfrmEvent::SaFlushed,
        ];
        let r = route(evs, |_, dst| dst == ip("10.0.0.2"), |k| *k == negotiated);
        assert_eq!(r.expires, vec![(negotiated, false), (negotiated, true)]);
        assert_eq!(r.acquires.len(), 1);
        assert_eq!(r.acquires[0].remote, ip("10.0.0.2"));
        assert_eq!(r.waiting, vec![(ip("10.0.0.2"), None)]);
        assert_eq!(
            r.static_path,
            vec![
                expire(compiled, false),
                acquire("10.0.0.3"),
                XfrmEvent::SaFlushed
            ]
        );
    }
}

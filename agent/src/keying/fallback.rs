//! `request` peers that do not answer IKE: give the exchange up, try again later.
//!
//! A `request` rule's templates are optional (`level use`): while no SA exists the kernel
//! sends the traffic clear and still raises an acquire (net/xfrm/xfrm_policy.c,
//! `xfrm_tmpl_resolve_one`), so nothing waits on keying. What keying bounds is its own
//! effort: an exchange it started for such a peer is abandoned when IKE_SA_INIT has no
//! answer within the rule's `request-timeout`, and no new one starts for [`FIRST_BACKOFF`],
//! doubling per failure up to [`MAX_BACKOFF`]; a peer that answers later (it initiates,
//! or the next try) clears the backoff.

use std::time::{Duration, Instant};

use super::{Keying, Pair, Terms};

/// The wait before the first retry of a peer that did not answer.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// One peer's fallback state.
#[derive(Debug, Default)]
pub(super) struct Fallback {
    /// When the running exchange is abandoned if IKE_SA_INIT is still unanswered.
    pub(super) give_up_at: Option<Instant>,
    /// No exchange starts on an acquire before this.
    retry_at: Option<Instant>,
    /// The current wait between tries.
    backoff: Duration,
}

impl Fallback {
    /// An exchange starts now; `timeout` is the pair's terms' fallback.
    pub(super) fn started(&mut self, now: Instant, timeout: Option<Duration>) {
        self.give_up_at = timeout.map(|t| now + t);
    }

    /// Whether an acquire now must not start an exchange.
    pub(super) fn waiting(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    /// The exchange failed: the next one waits, longer each time.
    fn back_off(&mut self, now: Instant) {
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        self.retry_at = Some(now + self.backoff);
        self.give_up_at = None;
    }
}

impl Keying {
    /// An acquire for `pair` under `terms`: whether it must wait (a `request` peer that
    /// did not answer, within its backoff); else the exchange about to start is timed.
    pub(super) fn fallback_acquire(&mut self, now: Instant, pair: Pair, terms: &Terms) -> bool {
        let Some(timeout) = terms.fallback else {
            return false;
        };
        let f = self.fallbacks.entry(pair).or_default();
        if f.waiting(now) {
            return true;
        }
        f.started(now, Some(timeout));
        false
    }

    /// Abandon the exchanges of `request` peers whose time ran out (the IKE SA fails with
    /// `timeout`) and start their backoff; forget backoffs long past.
    pub(super) fn fallback_timers(&mut self, now: Instant) {
        self.fallbacks.retain(|_, f| {
            f.give_up_at.is_some() || f.retry_at.is_some_and(|t| now < t + MAX_BACKOFF)
        });
        let due: Vec<Pair> = (self.fallbacks.iter())
            .filter(|(_, f)| f.give_up_at.is_some_and(|t| t <= now))
            .map(|(pair, _)| *pair)
            .collect();
        for pair in due {
            if let Some(f) = self.fallbacks.get_mut(&pair) {
                f.give_up_at = None;
            }
            let Some(peer) = self.peers.get(&pair) else {
                continue;
            };
            let pending: Vec<_> = (peer.ikes.iter())
                .filter(|i| i.initiator && !i.up)
                .map(|i| i.id)
                .collect();
            for id in pending {
                if let Some(events) = self.endpoint.abandon(now, id) {
                    tracing::info!(local = %pair.0, peer = %pair.1, "IKEv2 peer did not answer in time: its traffic stays clear (request)");
                    self.on_events(now, events);
                }
            }
        }
    }

    /// An IKE SA with the peer of `pair` failed: a `request` peer we tried, with no IKE
    /// SA up, backs off.
    pub(super) fn fallback_failed(&mut self, now: Instant, pair: Pair) {
        let up = (self.peers.get(&pair)).is_some_and(|p| p.ikes.iter().any(|i| i.up));
        let Some(f) = self.fallbacks.get_mut(&pair) else {
            return;
        };
        if !up {
            f.back_off(now);
            tracing::info!(local = %pair.0, peer = %pair.1, retry_in = ?f.backoff, "IKEv2 with a request peer failed: its traffic stays clear; trying again later");
        }
    }

    /// `request` peers that did not answer and are not tried again before their backoff
    /// ends: their traffic flows clear.
    pub fn clear_peers(&self, now: Instant) -> impl Iterator<Item = &Pair> {
        (self.fallbacks.iter())
            .filter(move |(_, f)| f.waiting(now))
            .map(|(pair, _)| pair)
    }

    /// When [`Keying::fallback_timers`] must next run.
    pub(super) fn fallback_timeout(&self) -> Option<Instant> {
        self.fallbacks.values().filter_map(|f| f.give_up_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_to_the_longest() {
        let t0 = Instant::now();
        let mut f = Fallback::default();
        let mut waits = Vec::new();
        for _ in 0..7 {
            f.back_off(t0);
            waits.push(f.backoff.as_secs());
        }
        assert_eq!(waits, vec![30, 60, 120, 240, 480, 600, 600]);
        assert!(f.waiting(t0 + Duration::from_secs(599)));
        assert!(!f.waiting(t0 + MAX_BACKOFF));
    }
}

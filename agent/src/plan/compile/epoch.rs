//! Key epochs and the make-before-break timeline.
//!
//! `epoch = floor(t / interval)`; epoch e starts at `T(e) = e * interval`. With a tolerated
//! clock skew `s` between any two hosts and a grace period `g`:
//!
//! ```text
//!            T(e+1)-L        T(e+1)   T(e+1)+s      T(e+1)+2s+g
//! inbound  : e ───── +e+1 ──────────────────────────── -e ──────
//! outbound : e ──────────────────────── e+1 ────────────────────
//! ```
//! - the inbound SA of the next epoch is installed a lead `L` before the boundary: at least
//!   `s`, so a peer whose clock runs up to `s` ahead can already use it, and a quarter of
//!   the interval (at most a minute) when that is more, so that a daemon stalled for a few
//!   seconds still has it in place when its peers switch ([`Timeline::lead`]);
//! - outbound switches `s` after the boundary, when every peer (clock up to `s` behind) has
//!   installed the inbound side;
//! - the old inbound SA stays until every peer (clock up to `s` behind) has switched, plus
//!   `g` for packets in flight.
//!
//! Validation guarantees `interval >= 2 * (2s + g)`, so at most three inbound epochs overlap,
//! and bounds every duration (interval at most a day, skew and grace at most an hour), so
//! the quantities here stay small; the arithmetic still saturates, so no input can wrap
//! or panic.

use policy_schema::Defaults;

/// The highest initial sequence number: the peer's ESN logic still infers the high half.
const MAX_INITIAL_SEQ: u64 = (1 << 32) - (1 << 20);

/// Which epochs this host's SAs belong to at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochView {
    /// The epoch of the time itself.
    pub current: u64,
    /// The epoch outbound SAs use.
    pub outbound: u64,
    /// Epochs with an inbound SA installed (ascending).
    pub inbound: Vec<u64>,
    /// Unix second at which this view changes next.
    pub next_change: u64,
}

/// The timeline parameters, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub interval: u64,
    pub skew: u64,
    pub grace: u64,
}

impl Timeline {
    pub fn from_defaults(d: &Defaults) -> Timeline {
        Timeline {
            interval: d.rekey_interval.max(1),
            skew: d.clock_skew,
            grace: d.grace,
        }
    }

    /// Start of epoch `e`, in Unix seconds.
    pub fn start(&self, e: u64) -> u64 {
        e.saturating_mul(self.interval)
    }

    /// The epochs in force at Unix second `t`.
    pub fn view(&self, t: u64) -> EpochView {
        let Timeline {
            interval,
            skew,
            grace,
        } = *self;
        let e = t / interval.max(1);
        let start = self.start(e);
        let next = self.start(e.saturating_add(1));
        let switched = start.saturating_add(skew);
        let old_gone = switched.saturating_add(skew).saturating_add(grace);
        let mut inbound = Vec::with_capacity(3);
        if e > 0 && t < old_gone {
            inbound.push(e - 1);
        }
        inbound.push(e);
        if t.saturating_add(self.lead()) >= next && e < u64::MAX {
            inbound.push(e + 1);
        }
        let outbound = if t >= switched || e == 0 { e } else { e - 1 };
        let last = next.saturating_add(skew);
        let next_change = [switched, old_gone, next.saturating_sub(self.lead()), last]
            .into_iter()
            .filter(|&c| c > t)
            .min()
            .unwrap_or(last);
        EpochView {
            current: e,
            outbound,
            inbound,
            next_change,
        }
    }

    /// How long before its epoch starts an inbound SA is installed: at least the skew (a
    /// peer whose clock runs ahead may use it that early), and more when the interval
    /// allows — a quarter of it, at most a minute — so that a daemon stalled for a few
    /// seconds around a boundary (a loaded machine) still has the inbound side in place
    /// when its peers switch. Validation (`interval >= 2 * (2s + g)`) keeps it after the
    /// epoch before last has gone: at most two inbound epochs besides the grace overlap.
    pub fn lead(&self) -> u64 {
        self.skew.max((self.interval / 4).min(60))
    }

    /// Seconds an SA may live in the kernel before it hard-expires: well beyond its planned
    /// life (at most `interval + 3s + g`), so it only fires if the agent stopped rotating —
    /// then traffic is dropped (the policies stay), never sent in clear.
    pub fn hard_lifetime(&self) -> u64 {
        self.lifetime(self.interval.saturating_mul(2))
    }

    /// Soft expiry: the kernel warns (and we rotate) before the hard limit.
    pub fn soft_lifetime(&self) -> u64 {
        // floor(1.5 × interval) without the overflow of 3 × interval.
        let base = (self.interval / 2).saturating_mul(3);
        self.lifetime(base.saturating_add(self.interval % 2 * 3 / 2))
    }

    /// `base + 4s + 2g`, saturating.
    fn lifetime(&self, base: u64) -> u64 {
        base.saturating_add(self.skew.saturating_mul(4))
            .saturating_add(self.grace.saturating_mul(2))
    }

    /// The first outbound ESN sequence number for an SA of `epoch` installed at `now_ns`.
    ///
    /// It grows with time at `rate` numbers per second, where `rate` is chosen so that an SA
    /// installed as late as its hard lifetime still starts below 2^32 - 2^20: the peer's ESN
    /// logic then infers the right high half and the SA's whole life fits. A re-installed SA
    /// (restart, drift repair, failover to another holder of a cluster address) therefore
    /// starts above every number the previous one used, as long as that one sent fewer than
    /// `rate` packets per second on average — no replay-window drops at the peer.
    pub fn initial_seq(&self, epoch: u64, now_ns: u64) -> u64 {
        let base_ns = (self.start(epoch).saturating_sub(self.skew)).saturating_mul(1_000_000_000);
        let elapsed_ns = now_ns.saturating_sub(base_ns);
        let rate = self.seq_rate();
        let seq = u128::from(elapsed_ns) * u128::from(rate) / 1_000_000_000;
        // Sequence number 0 is never sent; start at 1 at the earliest.
        seq.clamp(1, u128::from(MAX_INITIAL_SEQ)) as u64
    }

    /// Sequence numbers per second handed out by [`Timeline::initial_seq`].
    pub fn seq_rate(&self) -> u64 {
        ((1u64 << 32) - (1 << 21)) / self.hard_lifetime().saturating_add(self.skew).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl() -> Timeline {
        Timeline {
            interval: 100,
            skew: 5,
            grace: 10,
        }
    }

    #[test]
    fn steps_of_one_epoch() {
        let t = tl();
        // Mid-epoch 3: one inbound, outbound 3.
        let v = t.view(350);
        assert_eq!((v.outbound, v.inbound.clone()), (3, vec![3]));
        assert_eq!(v.next_change, 375);
        // 375 (a quarter of the interval ahead, more than the skew): next inbound appears.
        assert_eq!(t.lead(), 25);
        assert_eq!(t.view(374).inbound, vec![3]);
        assert_eq!(t.view(375).inbound, vec![3, 4]);
        assert_eq!(t.view(375).next_change, 405);
        // 400..405: epoch 4 but still sending on 3.
        assert_eq!(t.view(400).outbound, 3);
        assert_eq!(t.view(400).inbound, vec![3, 4]);
        // 405: switch outbound; 420: old inbound gone.
        assert_eq!(t.view(405).outbound, 4);
        assert_eq!(t.view(405).next_change, 420);
        assert_eq!(t.view(419).inbound, vec![3, 4]);
        assert_eq!(t.view(420).inbound, vec![4]);
        assert_eq!(t.view(420).next_change, 475);
    }

    #[test]
    fn the_lead_is_the_skew_at_least_and_a_minute_at_most() {
        let lead = |interval, skew| {
            Timeline {
                interval,
                skew,
                grace: 0,
            }
            .lead()
        };
        assert_eq!(lead(10, 1), 2);
        assert_eq!(lead(10, 3), 3);
        assert_eq!(lead(3600, 30), 60);
        assert_eq!(lead(3600, 90), 90);
    }

    #[test]
    fn epoch_zero_has_no_previous() {
        let v = tl().view(0);
        assert_eq!(v.inbound, vec![0]);
        assert_eq!(v.outbound, 0);
    }

    #[test]
    fn initial_seq_grows_with_time_and_stays_in_range() {
        let t = tl();
        let a = t.initial_seq(4, 400 * 1_000_000_000);
        let b = t.initial_seq(4, 400 * 1_000_000_000 + 1_000_000);
        assert!(b > a);
        let late = t.initial_seq(4, (400 + t.hard_lifetime()) * 1_000_000_000);
        assert!(late < (1 << 32) - (1 << 20));
    }

    /// The issue's rekey-interval (3 × it overflows u64) and other extremes: no panic, no
    /// wrap — lifetimes saturate, the view stays ordered (validation refuses them anyway).
    #[test]
    fn extreme_durations_neither_panic_nor_wrap() {
        let huge = 6_148_914_691_236_517_206;
        for (interval, skew, grace) in [(huge, 10, 30), (u64::MAX, u64::MAX, u64::MAX), (0, 0, 0)] {
            let t = Timeline {
                interval,
                skew,
                grace,
            };
            assert!(t.hard_lifetime() >= t.soft_lifetime(), "{t:?}");
            assert!(t.hard_lifetime() >= interval.min(u64::MAX / 2), "{t:?}");
            for now in [0, 1_800_000_000, u64::MAX / 1_000_000_000, u64::MAX] {
                let v = t.view(now);
                assert!(v.inbound.contains(&v.outbound) || v.outbound + 1 == v.inbound[0]);
                let seq = t.initial_seq(v.outbound, now.saturating_mul(1_000_000_000));
                assert!((1..=MAX_INITIAL_SEQ).contains(&seq));
            }
        }
    }

    /// The longest interval validation accepts still gives a useful ESN start rate.
    #[test]
    fn the_longest_interval_keeps_a_meaningful_seq_rate() {
        let day = Timeline {
            interval: 86_400,
            skew: 10,
            grace: 30,
        };
        assert!(day.seq_rate() > 20_000, "{}", day.seq_rate());
        let worst = Timeline {
            interval: 86_400,
            skew: 3_600,
            grace: 3_600,
        };
        assert!(worst.seq_rate() > 20_000, "{}", worst.seq_rate());
    }

    proptest::proptest! {
        /// A peer whose clock is off by up to `skew` only ever sends on an epoch we receive.
        #[test]
        fn peers_within_skew_always_hit_an_inbound_sa(t in 0u64..100_000, d in -5i64..=5) {
            let tl = tl();
            let peer_t = (t as i64 + d).max(0) as u64;
            let peer_out = tl.view(peer_t).outbound;
            proptest::prop_assert!(tl.view(t).inbound.contains(&peer_out),
                "t={t} peer_t={peer_t} out={peer_out} in={:?}", tl.view(t).inbound);
        }

        /// Nothing changes strictly between now and next_change.
        #[test]
        fn view_is_constant_until_next_change(t in 0u64..100_000, k in 0u64..200) {
            let tl = tl();
            let v = tl.view(t);
            let u = (t + k).min(v.next_change - 1);
            let w = tl.view(u);
            proptest::prop_assert_eq!((v.outbound, &v.inbound), (w.outbound, &w.inbound));
            proptest::prop_assert!(v.next_change > t);
        }
    }
}

//! The loop's timers: everything it waits on besides sockets, and the instant of a Unix
//! time (the compiler's next change).

use std::time::Duration;

use tokio::time::Instant;

use super::debounce::Debounce;
use super::reconciler;
use crate::clock;
use crate::plan::Timestamp;

/// Instant of a wall-clock time (the compiler's next_change), a millisecond late so the
/// compiler, asked then, is past the boundary. At most [`MAX_AHEAD`] away: a time past
/// that (validation keeps next_change within a day) must not overflow an Instant.
pub(super) fn instant_of(t: Timestamp) -> Instant {
    let ahead = Duration::from_nanos(t.nanos().saturating_sub(clock::now().nanos()));
    Instant::now() + (ahead + Duration::from_millis(1)).min(MAX_AHEAD)
}

/// The farthest ahead a compiler's next change is waited for in one sleep (then it asks
/// again): twice the longest key epoch the policy file accepts.
const MAX_AHEAD: Duration = Duration::from_secs(2 * 86_400);

/// The loop's own timers: everything it waits on besides sockets and the sources' timers.
pub(super) struct Timers {
    pub(super) debounce: Debounce,
    pub(super) resync_at: Instant,
    pub(super) resync_every: Duration,
    pub(super) retry_at: Option<Instant>,
    pub(super) rotate_at: Option<Instant>,
    pub(super) watchdog: Option<(Duration, Instant)>,
    /// When to hand freed heap back to the kernel (a moment after the last reconcile).
    pub(super) trim_at: Option<Instant>,
    pub(super) origin: Instant,
}

/// Which of the loop's timers have fired at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Pending {
    /// The debounced policy file change (or a re-read a reload asked for).
    pub(super) reload: bool,
    /// The compiler's next change (a key epoch boundary).
    pub(super) rotation: bool,
    /// The retry after a failed reconcile.
    pub(super) retry: bool,
    /// The periodic full resync.
    pub(super) resync: bool,
    /// Returning freed heap to the kernel.
    pub(super) trim: bool,
    /// The systemd watchdog ping.
    pub(super) watchdog: bool,
}

/// What has fired at `now`. Pure: reads no clock and changes nothing ([`Timers::rearm`]
/// does, for what fired).
pub(super) fn due(t: &Timers, now: Instant) -> Pending {
    let at = |x: Option<Instant>| x.is_some_and(|x| x <= now);
    Pending {
        reload: at(t.debounce.due().map(|d| t.origin + d)),
        rotation: at(t.rotate_at),
        retry: at(t.retry_at),
        resync: t.resync_at <= now,
        trim: at(t.trim_at),
        watchdog: at(t.watchdog.map(|w| w.1)),
    }
}

impl Timers {
    /// Timers at start: resync a period from now, memory trimmed at once, the watchdog
    /// (when systemd asks for one) pinged at half its interval.
    pub(super) fn new(
        o: &super::Options,
        now: Instant,
        rotate_at: Option<Instant>,
        watchdog: Option<Duration>,
    ) -> Timers {
        Timers {
            debounce: Debounce::new(o.debounce),
            resync_at: now + o.resync,
            resync_every: o.resync,
            retry_at: None,
            rotate_at,
            watchdog: watchdog.map(|d| (d / 2, now)),
            trim_at: Some(now),
            origin: now,
        }
    }

    pub(super) fn since_origin(&self, t: Instant) -> Duration {
        t.duration_since(self.origin)
    }

    /// Re-arm or disarm the periodic and one-shot timers that fired at `now`. Rotation and
    /// retry stay until the reconcile they ask for sets them again.
    pub(super) fn rearm(&mut self, fired: &Pending, now: Instant) {
        if fired.reload {
            self.debounce.fire(self.since_origin(now));
        }
        if fired.resync {
            self.resync_at = now + self.resync_every;
        }
        if fired.trim {
            self.trim_at = None;
        }
        if let (true, Some((every, _))) = (fired.watchdog, self.watchdog) {
            self.watchdog = Some((every, now + every));
        }
    }

    /// A reload caught the file mid-write: read it again when it asked to.
    pub(super) fn reread(&mut self, r: reconciler::Reloaded, now: Instant) {
        if let reconciler::Reloaded::Unsettled(after) = r {
            let now = self.since_origin(now);
            self.debounce.again(now + after, now);
        }
    }

    /// The earliest instant any of these timers fires.
    pub(super) fn next_wake(&self) -> Instant {
        let mut t = self.resync_at;
        let debounce = self.debounce.due().map(|d| self.origin + d);
        for x in [
            debounce,
            self.retry_at,
            self.rotate_at,
            self.watchdog.map(|w| w.1),
            self.trim_at,
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(x);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::debounce::FileEvent;
    use tokio::time::sleep_until;

    fn timers(now: Instant) -> Timers {
        Timers {
            debounce: Debounce::new(Duration::from_millis(100)),
            resync_at: now + Duration::from_secs(60),
            resync_every: Duration::from_secs(60),
            retry_at: None,
            rotate_at: Some(now + Duration::from_secs(10)),
            watchdog: None,
            trim_at: None,
            origin: now,
        }
    }

    /// The loop sleeps until the earliest of its timers, and a burst of changes reloads once,
    /// after the quiet period — checked on tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn sleeps_until_the_earliest_timer_and_debounces_writes() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        assert_eq!(
            t.next_wake(),
            t0 + Duration::from_secs(10),
            "rotation first"
        );
        for _ in 0..5 {
            t.debounce
                .event(FileEvent::Changed, t.since_origin(Instant::now()));
            tokio::time::advance(Duration::from_millis(20)).await;
        }
        // Last write at 80 ms: due at 180 ms.
        assert_eq!(t.next_wake(), t0 + Duration::from_millis(180));
        sleep_until(t.next_wake()).await;
        assert!(t.debounce.fire(t.since_origin(Instant::now())));
        assert!(!t.debounce.fire(t.since_origin(Instant::now())), "once");
        assert_eq!(t.next_wake(), t0 + Duration::from_secs(10));
        t.watchdog = Some((Duration::from_secs(15), t0 + Duration::from_secs(5)));
        assert_eq!(t.next_wake(), t0 + Duration::from_secs(5), "watchdog ping");
        t.trim_at = Some(t0 + Duration::from_secs(1));
        assert_eq!(t.next_wake(), t0 + Duration::from_secs(1), "memory release");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotation_instant_is_just_past_the_boundary() {
        let now = clock::now();
        let at = instant_of(Timestamp::from_secs(now.secs() + 6));
        let ahead = at.duration_since(Instant::now()).as_secs_f64();
        assert!(ahead > 5.0 - 1.0 && ahead <= 6.0 + 0.01, "{ahead}");
        // A boundary in the past fires now (plus the millisecond).
        let past = instant_of(Timestamp::from_secs(1));
        assert!(past.duration_since(Instant::now()) <= Duration::from_millis(2));
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Sleep until the loop would wake, then take what is due and re-arm it, as a turn does.
    async fn turn(t: &mut Timers) -> Pending {
        sleep_until(t.next_wake()).await;
        let now = Instant::now();
        let fired = due(t, now);
        t.rearm(&fired, now);
        fired
    }

    /// Nothing is due before its instant, and `due` alone changes nothing.
    #[tokio::test(start_paused = true)]
    async fn nothing_fires_early_and_due_is_pure() {
        let t0 = Instant::now();
        let t = timers(t0);
        assert_eq!(due(&t, Instant::now()), Pending::default());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(due(&t, Instant::now()), Pending::default());
        tokio::time::advance(Duration::from_millis(1)).await;
        let p = due(&t, Instant::now());
        assert_eq!(p, due(&t, Instant::now()), "asking twice answers the same");
        assert_eq!(
            p,
            Pending {
                rotation: true,
                ..Pending::default()
            }
        );
    }

    /// The resync is periodic; the trim fires once; the watchdog keeps its interval.
    #[tokio::test(start_paused = true)]
    async fn periodic_timers_rearm_and_one_shots_do_not() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        t.rotate_at = None;
        t.trim_at = Some(t0 + secs(1));
        t.watchdog = Some((secs(25), t0 + secs(25)));
        let trim = Pending {
            trim: true,
            ..Pending::default()
        };
        assert_eq!(turn(&mut t).await, trim);
        assert_eq!(t.trim_at, None);
        let ping = Pending {
            watchdog: true,
            ..Pending::default()
        };
        assert_eq!(turn(&mut t).await, ping);
        assert_eq!(Instant::now(), t0 + secs(25));
        assert_eq!(turn(&mut t).await, ping);
        assert_eq!(Instant::now(), t0 + secs(50));
        let resync = Pending {
            resync: true,
            ..Pending::default()
        };
        assert_eq!(turn(&mut t).await, resync);
        assert_eq!(Instant::now(), t0 + secs(60));
        assert_eq!(t.resync_at, t0 + secs(120), "one period later");
        assert_eq!(turn(&mut t).await, ping);
        assert_eq!(Instant::now(), t0 + secs(75));
    }

    /// A burst of file changes fires one reload after the quiet period; timers due at the
    /// same instant fire in the same turn (one reconcile for all of them).
    #[tokio::test(start_paused = true)]
    async fn a_debounced_reload_fires_once_with_whatever_else_is_due() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        t.retry_at = Some(t0 + Duration::from_millis(150));
        for _ in 0..3 {
            t.debounce
                .event(FileEvent::Changed, t.since_origin(Instant::now()));
            tokio::time::advance(Duration::from_millis(25)).await;
        }
        // Last change at 50 ms: quiet until 150 ms, when the retry is due too.
        let p = turn(&mut t).await;
        assert_eq!(Instant::now(), t0 + Duration::from_millis(150));
        assert_eq!(
            p,
            Pending {
                reload: true,
                retry: true,
                ..Pending::default()
            }
        );
        // The retry stays armed until a reconcile clears it; the reload does not repeat.
        let again = due(&t, Instant::now());
        assert!(again.retry && !again.reload, "{again:?}");
        t.retry_at = None;
        assert!(turn(&mut t).await.rotation);
        assert_eq!(Instant::now(), t0 + secs(10));
    }
}

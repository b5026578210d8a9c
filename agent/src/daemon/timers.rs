//! The loop's timers: everything it waits on besides sockets, and the instant of a Unix
//! time (the compiler's next change).

use std::time::Duration;

use tokio::time::Instant;

use super::book::Debounce;
use super::worker;
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

/// Everything the loop waits on besides sockets.
pub(super) struct Timers {
    pub(super) debounce: Debounce,
    pub(super) resync_at: Instant,
    pub(super) retry_at: Option<Instant>,
    pub(super) rotate_at: Option<Instant>,
    pub(super) watchdog: Option<(Duration, Instant)>,
    /// When to hand freed heap back to the kernel (a moment after the last reconcile).
    pub(super) trim_at: Option<Instant>,
    pub(super) origin: Instant,
}

impl Timers {
    pub(super) fn since_origin(&self, t: Instant) -> Duration {
        t.duration_since(self.origin)
    }
    /// A reload caught the file mid-write: read it again when it asked to.
    pub(super) fn reread(&mut self, r: worker::Reloaded, now: Instant) {
        if let worker::Reloaded::Unsettled(after) = r {
            let now = self.since_origin(now);
            self.debounce.again(now + after, now);
        }
    }
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
    use crate::daemon::book::FileEvent;
    use tokio::time::sleep_until;

    fn timers(now: Instant) -> Timers {
        Timers {
            debounce: Debounce::new(Duration::from_millis(100)),
            resync_at: now + Duration::from_secs(60),
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
}

//! The daemon's bookkeeping, without I/O: how a kernel event is answered, how file events
//! are debounced, the unknown-peer log limiter, and the view `status` shows. Time comes in
//! as arguments, so all of it is unit-tested without root, sockets or clocks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kernel::events::XfrmEvent;
use crate::model::Desired;
use crate::plan::Timestamp;

/// What a kernel event asks the loop to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing of ours is concerned.
    Ignore,
    /// Someone else changed or removed an owned object (or flushed): reconcile now.
    Drift,
    /// An owned SA reached its soft lifetime: the schedule was missed (clock step, agent
    /// stopped); reconcile now, which moves to the current epoch.
    SoftExpire,
    /// Traffic to a peer we know has no SA (e.g. just flushed): reconcile now.
    KnownAcquire(IpAddr),
    /// Traffic to an address outside the inventory hit a `require` policy.
    UnknownAcquire(IpAddr),
    /// Notifications were lost: observe everything again.
    Resync,
}

/// Decide how to answer one event (our own writes are filtered before this).
///
/// Larval states (SPI 0) made by the kernel for an acquire are never ours: their expire
/// events are ignored, so they never count as drift.
pub fn react(ev: &XfrmEvent, desired: &Desired, known: &dyn Fn(IpAddr) -> bool) -> Reaction {
    match ev {
        XfrmEvent::SaFlushed | XfrmEvent::PolicyFlushed => Reaction::Drift,
        XfrmEvent::SaAdded(k) | XfrmEvent::SaUpdated(k) | XfrmEvent::SaDeleted(k) => {
            if desired.states.contains_key(k) {
                Reaction::Drift
            } else {
                Reaction::Ignore
            }
        }
        XfrmEvent::PolicyAdded(k) | XfrmEvent::PolicyUpdated(k) | XfrmEvent::PolicyDeleted(k) => {
            if desired.policies.contains_key(k) {
                Reaction::Drift
            } else {
                Reaction::Ignore
            }
        }
        XfrmEvent::Expire { key, .. } if key.spi == 0 => Reaction::Ignore,
        XfrmEvent::Expire { key, hard } => match (desired.states.contains_key(key), hard) {
            (false, _) => Reaction::Ignore,
            (true, false) => Reaction::SoftExpire,
            (true, true) => Reaction::Drift,
        },
        XfrmEvent::Acquire { dst, .. } if known(*dst) => Reaction::KnownAcquire(*dst),
        XfrmEvent::Acquire { dst, .. } => Reaction::UnknownAcquire(*dst),
        XfrmEvent::Resync => Reaction::Resync,
    }
}

/// "Log once per address per interval": answers whether this sighting should be logged.
#[derive(Debug, Default)]
pub struct RateLimiter {
    last: HashMap<IpAddr, Duration>,
}

impl RateLimiter {
    /// `now` is any monotonic clock reading; returns true at most once per `every`.
    pub fn allow(&mut self, addr: IpAddr, now: Duration, every: Duration) -> bool {
        if self.last.len() > 4096 {
            // Bound memory under a scan of many addresses: forget the old sightings.
            self.last.retain(|_, t| now.saturating_sub(*t) < every);
        }
        match self.last.get(&addr) {
            Some(t) if now.saturating_sub(*t) < every => false,
            _ => {
                self.last.insert(addr, now);
                true
            }
        }
    }
}

/// Kinds of file event, as far as reloading cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileEvent {
    /// The file is complete now: a rename into place, a symlink swap, a writer closing it.
    Complete,
    /// The file's content changed under an open writer (truncate, write): its close will
    /// say when it is complete. Waits for that, up to the debounce's maximum wait — a
    /// writer descheduled between truncating and writing must not get its empty file
    /// rejected (a loaded machine does that for longer than any quiet period).
    Writing,
    /// Something changed that no close will follow (a removal, new attributes): reload
    /// once it has been quiet for a while.
    Changed,
}

/// Debounce for file events. A complete file reloads at once; a file being written waits
/// for its writer to close it; any other change reloads after `quiet` without further
/// events. Never later than `max_wait` after the first event (a writer that keeps the file
/// open must not starve reloads).
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max_wait: Duration,
    first: Option<Duration>,
    due: Option<Duration>,
}

impl Debounce {
    pub fn new(quiet: Duration) -> Debounce {
        Debounce {
            quiet,
            max_wait: quiet * 10,
            first: None,
            due: None,
        }
    }

    /// Note an event at `now`.
    pub fn event(&mut self, kind: FileEvent, now: Duration) {
        let first = *self.first.get_or_insert(now);
        let due = match kind {
            FileEvent::Complete => now,
            FileEvent::Writing => first + self.max_wait,
            FileEvent::Changed => (now + self.quiet).min(first + self.max_wait),
        };
        // A complete event wins over a pending wait; a later change extends it.
        self.due = Some(match (self.due, kind) {
            (Some(d), FileEvent::Writing | FileEvent::Changed) if d <= now => d,
            _ => due,
        });
    }

    /// Reload at `at` at the latest (a file caught mid-write, read again); noted `now`.
    pub fn again(&mut self, at: Duration, now: Duration) {
        self.first.get_or_insert(now);
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
    }

    /// When the reload is due (None: nothing pending).
    pub fn due(&self) -> Option<Duration> {
        self.due
    }

    /// True (and reset) when a reload is due at `now`.
    pub fn fire(&mut self, now: Duration) -> bool {
        match self.due {
            Some(d) if d <= now => {
                self.due = None;
                self.first = None;
                true
            }
            _ => false,
        }
    }
}

/// The last reload attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadInfo {
    #[serde(with = "crate::clock::unix_secs_f64")]
    pub unix: Timestamp,
    pub ok: bool,
    pub error: Option<String>,
}

/// The last reconcile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileInfo {
    #[serde(with = "crate::clock::unix_secs_f64")]
    pub unix: Timestamp,
    pub cause: String,
    pub ops: usize,
    pub failed: usize,
    pub duration_ms: f64,
    pub verified: bool,
    /// How the kernel was read: "dump" (every owned object), or "N keys" (a patched
    /// reload read only the keys it changed).
    pub read: String,
}

/// What `status` shows of a running daemon (also the source of most metrics). In JSON,
/// times are Unix seconds: `*_unix`/`unix` with a fraction, `next_rotation_unix` whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonView {
    pub pid: u32,
    pub host: String,
    pub config: String,
    pub policy_sha256: String,
    #[serde(with = "crate::clock::unix_secs_f64")]
    pub started_unix: Timestamp,
    pub last_reload: ReloadInfo,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The located errors of the last rejected file; cleared by the next good load.
    pub last_error: Option<String>,
    /// The last rejected load, kept after a good one (a rejection that was quickly
    /// followed by a good file, e.g. a half-written file, stays visible here).
    pub last_rejected: Option<ReloadInfo>,
    /// The newest epoch among outbound SAs (the one traffic is sent with).
    pub epoch: Option<u64>,
    #[serde(with = "crate::clock::opt_unix_secs")]
    pub next_rotation_unix: Option<Timestamp>,
    pub reconciles: u64,
    pub last_reconcile: ReconcileInfo,
    pub drift_repairs: u64,
    pub rotations: u64,
    pub unknown_peer_acquires: u64,
    pub soft_expires: u64,
    /// Owned objects in the kernel after the last reconcile (not what the policy wants).
    pub owned_policies: usize,
    pub owned_states: usize,
    /// Kernel features missing (e.g. ESP): SAs are not installed, policies hold traffic.
    pub missing_features: Vec<String>,
    pub encap_sockets: usize,
}

impl DaemonView {
    /// Take the desired set's facts (epoch, next rotation); the owned counts are set from
    /// the kernel by the caller.
    pub fn note_desired(&mut self, d: &Desired) {
        self.epoch = d
            .states
            .values()
            .filter(|s| s.meta.dir == crate::model::SaDir::Out)
            .map(|s| s.meta.epoch)
            .max();
        self.next_rotation_unix = d.next_change;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SaKey;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn complete_file_reloads_at_once_changes_wait_for_quiet() {
        let mut d = Debounce::new(ms(100));
        d.event(FileEvent::Changed, ms(0));
        assert!(!d.fire(ms(50)));
        d.event(FileEvent::Changed, ms(60));
        assert_eq!(d.due(), Some(ms(160)));
        d.event(FileEvent::Complete, ms(70));
        assert!(d.fire(ms(70)));
        assert_eq!(d.due(), None);
    }

    #[test]
    fn a_stalled_writer_is_waited_for_until_it_closes() {
        let mut d = Debounce::new(ms(100));
        // Truncated, then nothing for far longer than the quiet period.
        d.event(FileEvent::Writing, ms(0));
        assert!(!d.fire(ms(500)));
        d.event(FileEvent::Writing, ms(600));
        assert!(!d.fire(ms(700)));
        d.event(FileEvent::Complete, ms(700));
        assert!(d.fire(ms(700)));
        // A writer that never closes is read at the maximum wait.
        d.event(FileEvent::Writing, ms(2000));
        assert!(!d.fire(ms(2999)));
        assert!(d.fire(ms(3000)));
    }

    #[test]
    fn endless_writer_does_not_starve_reload() {
        let mut d = Debounce::new(ms(100));
        let mut fired = None;
        for t in (0..3000).step_by(50) {
            d.event(FileEvent::Changed, ms(t));
            if d.fire(ms(t)) {
                fired = Some(t);
                break;
            }
        }
        assert_eq!(fired, Some(1000), "max wait is 10 × quiet");
    }

    #[test]
    fn write_after_due_does_not_postpone() {
        let mut d = Debounce::new(ms(100));
        d.event(FileEvent::Complete, ms(10));
        d.event(FileEvent::Writing, ms(20));
        d.event(FileEvent::Changed, ms(20));
        assert!(d.fire(ms(20)));
    }

    #[test]
    fn a_file_caught_mid_write_is_read_again_no_later_than_asked() {
        let mut d = Debounce::new(ms(100));
        d.again(ms(900), ms(0));
        assert!(!d.fire(ms(899)));
        assert!(d.fire(ms(900)));
        // A sooner reload already due stays; an earlier re-read wins over a later one.
        d.event(FileEvent::Complete, ms(1000));
        d.again(ms(1500), ms(1000));
        assert!(d.fire(ms(1000)));
        d.again(ms(2500), ms(2000));
        d.again(ms(2100), ms(2000));
        assert_eq!(d.due(), Some(ms(2100)));
    }

    #[test]
    fn limiter_logs_once_per_interval_per_address() {
        let mut l = RateLimiter::default();
        let a: IpAddr = "192.0.2.9".parse().unwrap();
        let b: IpAddr = "192.0.2.10".parse().unwrap();
        let every = Duration::from_secs(60);
        assert!(l.allow(a, ms(0), every));
        assert!(!l.allow(a, ms(59_000), every));
        assert!(l.allow(b, ms(59_000), every));
        assert!(l.allow(a, ms(60_000), every));
    }

    #[test]
    fn larval_and_foreign_events_are_not_drift() {
        use crate::plan::{self, testkit, LocalAddrs, Timestamp};
        let p = testkit::seed();
        let id = testkit::identity(&p, 1);
        let d = plan::desired(
            &p,
            &id,
            &LocalAddrs::new(),
            Timestamp::from_secs(1e9 as u64),
        )
        .expect("desired");
        let ours = *d.states.keys().next().expect("site has SAs");
        let known = |a: IpAddr| a == ours.dst;
        let larval = SaKey { spi: 0, ..ours };
        let foreign = SaKey {
            spi: 0x1234,
            ..ours
        };
        let r = |e| react(&e, &d, &known);
        assert_eq!(
            r(XfrmEvent::Expire {
                key: larval,
                hard: true
            }),
            Reaction::Ignore
        );
        assert_eq!(r(XfrmEvent::SaDeleted(foreign)), Reaction::Ignore);
        assert_eq!(r(XfrmEvent::SaDeleted(ours)), Reaction::Drift);
        assert_eq!(r(XfrmEvent::SaFlushed), Reaction::Drift);
        assert_eq!(
            r(XfrmEvent::Expire {
                key: ours,
                hard: false
            }),
            Reaction::SoftExpire
        );
        let unknown: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            r(XfrmEvent::Acquire {
                src: "10.0.0.1".parse().unwrap(),
                dst: unknown,
                sel: None
            }),
            Reaction::UnknownAcquire(unknown)
        );
    }
}

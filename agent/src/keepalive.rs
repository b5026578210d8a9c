//! When to send NAT keepalives (RFC 3948 §2.3): one byte 0xFF from our NAT-T port to the
//! peer's, on each path behind a NAT, whenever nothing else was sent on it for an
//! interval, so the NAT's UDP mapping does not expire. Pure: time comes in as arguments;
//! the daemon sends (`IkeSockets::send_keepalive`) and sleeps until `next_deadline`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// strongSwan's default (`charon.keep_alive`), well under common NAT UDP timeouts.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(20);
/// Shorter intervals are raised to this: a keepalive loop must not spin.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// One NAT-T path: our address and port, the peer's address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NatPath {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// The paths that need keepalives and when each is next due.
#[derive(Debug)]
pub struct KeepaliveSchedule {
    interval: Duration,
    due: BTreeMap<NatPath, Instant>,
}

impl Default for KeepaliveSchedule {
    fn default() -> KeepaliveSchedule {
        KeepaliveSchedule::new(DEFAULT_INTERVAL)
    }
}

impl KeepaliveSchedule {
    /// A schedule sending every `interval` (at least [`MIN_INTERVAL`]).
    pub fn new(interval: Duration) -> KeepaliveSchedule {
        KeepaliveSchedule {
            interval: interval.max(MIN_INTERVAL),
            due: BTreeMap::new(),
        }
    }

    /// The interval in force.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Start keeping `path` alive (e.g. a NAT was detected on it); the first keepalive is
    /// due one interval from `now`. A path already kept keeps its deadline.
    pub fn keep(&mut self, path: NatPath, now: Instant) {
        self.due.entry(path).or_insert(now + self.interval);
    }

    /// Stop keeping `path` alive (its IKE SA is gone).
    pub fn forget(&mut self, path: &NatPath) {
        self.due.remove(path);
    }

    /// Something else was sent on `path` at `now`: that refreshed the mapping too.
    pub fn sent(&mut self, path: &NatPath, now: Instant) {
        if let Some(at) = self.due.get_mut(path) {
            *at = (*at).max(now + self.interval);
        }
    }

    /// The paths due at `now`, each rescheduled one interval later (from `now`, so a
    /// late wake-up does not cause a burst).
    pub fn due(&mut self, now: Instant) -> Vec<NatPath> {
        let mut out = Vec::new();
        for (path, at) in self.due.iter_mut().filter(|(_, at)| **at <= now) {
            *at = now + self.interval;
            out.push(*path);
        }
        out
    }

    /// When the next keepalive is due, if any path is kept.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// How many paths are kept.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether no path is kept.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(n: u8) -> NatPath {
        NatPath {
            local: "192.0.2.1:4500".parse().unwrap(),
            remote: SocketAddr::new([198, 51, 100, n].into(), 4500),
        }
    }

    #[test]
    fn a_kept_path_is_due_every_interval() {
        let t0 = Instant::now();
        let s20 = Duration::from_secs(20);
        let mut s = KeepaliveSchedule::default();
        assert_eq!(s.next_deadline(), None);
        s.keep(path(1), t0);
        assert_eq!(s.next_deadline(), Some(t0 + s20));
        assert!(s.due(t0 + s20 - Duration::from_millis(1)).is_empty());
        assert_eq!(s.due(t0 + s20), vec![path(1)]);
        assert!(s.due(t0 + s20).is_empty(), "sent once per interval");
        assert_eq!(s.next_deadline(), Some(t0 + 2 * s20));
        s.keep(path(1), t0 + s20);
        assert_eq!(
            s.next_deadline(),
            Some(t0 + 2 * s20),
            "keep again: unchanged"
        );
    }

    #[test]
    fn other_traffic_postpones_and_forget_stops() {
        let t0 = Instant::now();
        let mut s = KeepaliveSchedule::new(Duration::from_secs(10));
        s.keep(path(1), t0);
        s.keep(path(2), t0 + Duration::from_secs(5));
        s.sent(&path(1), t0 + Duration::from_secs(8));
        let at = |n| t0 + Duration::from_secs(n);
        assert_eq!(s.due(at(15)), vec![path(2)]);
        assert_eq!(s.due(at(18)), vec![path(1)]);
        s.forget(&path(1));
        s.sent(&path(1), at(19));
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_deadline(), Some(at(25)));
    }

    #[test]
    fn a_late_wake_up_sends_once_and_a_zero_interval_does_not_spin() {
        let t0 = Instant::now();
        let mut s = KeepaliveSchedule::new(Duration::ZERO);
        assert_eq!(s.interval(), MIN_INTERVAL);
        s.keep(path(1), t0);
        let late = t0 + Duration::from_secs(100);
        assert_eq!(s.due(late), vec![path(1)]);
        assert_eq!(s.next_deadline(), Some(late + MIN_INTERVAL));
    }
}

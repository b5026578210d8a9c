//! A per-address rate limit for logs and acquire-triggered reconciles; time comes in as an
//! argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
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
}

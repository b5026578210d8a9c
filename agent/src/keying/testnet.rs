//! Two [`Keying`] values on a simulated network (loss, duplication, reordering, a link that
//! can be cut) with an explicit clock, and an invariant checked after every step.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ike::cert::testpki::{now as wall_now, Pki};
use ike::rng::SeededRng;
use ike::sa::Config;
use ike::testnet::Channel;

use super::{lifetime, Admission, Keying, Settings, Terms};

pub(super) const A: &str = "10.0.0.1";
pub(super) const B: &str = "10.0.0.2";
pub(super) const REQID: u32 = 0x7a00_0010;

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Admission from a table: the pairs keyed over IKEv2, and whether authenticated peers
/// are admitted.
pub(super) struct Table {
    pub(super) pairs: Vec<(IpAddr, IpAddr)>,
    pub(super) admit: bool,
}

impl Admission for Table {
    fn terms(&self, local: IpAddr, remote: IpAddr) -> Option<Terms> {
        self.pairs
            .contains(&(local, remote))
            .then(|| Terms::transport(REQID, 1024, lifetime(Duration::from_secs(60))))
    }
    fn admit(&self, _: &ike::sa::Admission<'_>) -> bool {
        self.admit
    }
}

/// The table admitting the pair seen from `local`.
pub(super) fn table(local: &str, remote: &str, admit: bool) -> Arc<Table> {
    Arc::new(Table {
        pairs: vec![(ip(local), ip(remote))],
        admit,
    })
}

/// A config for the host at `addr`, certified by `pki`, giving up after 5 sends.
fn config(pki: &Pki, addr: &str, key_seed: u8) -> Config {
    let mut c = ike::cert::testpki::config(pki, pki, addr, key_seed);
    c.retransmit.max_tries = 5;
    c
}

pub(super) use ike::testnet::Faults;

pub(super) const CLEAN: Faults = Faults::NONE;

pub(super) const ROUGH: Faults = Faults {
    loss: 20,
    duplicate: 20,
    jitter: Duration::from_millis(200),
};

pub(super) struct Net {
    pub(super) a: Keying,
    pub(super) b: Keying,
    pub(super) now: Instant,
    /// Datagrams to `b` are dropped (the peer vanished).
    pub(super) b_gone: bool,
    channel: Channel,
}

impl Net {
    /// A at 10.0.0.1 and B at 10.0.0.2, certified by one CA, each admitting the other.
    pub(super) fn new(settings: Settings, faults: Faults, seed: u64) -> Net {
        Net::new_with(settings, faults, seed, |_, _, _| ())
    }

    /// [`Net::new`] with the configs of A and B changed by `edit` (given the CA).
    pub(super) fn new_with(
        settings: Settings,
        faults: Faults,
        seed: u64,
        edit: impl FnOnce(&Pki, &mut Config, &mut Config),
    ) -> Net {
        let admissions: [Arc<dyn Admission>; 2] = [table(A, B, true), table(B, A, true)];
        Net::admitted(settings, faults, seed, edit, admissions)
    }

    /// [`Net::new_with`] with A's and B's admission.
    pub(super) fn admitted(
        settings: Settings,
        faults: Faults,
        seed: u64,
        edit: impl FnOnce(&Pki, &mut Config, &mut Config),
        [admit_a, admit_b]: [Arc<dyn Admission>; 2],
    ) -> Net {
        let pki = Pki::new("Corp CA", 1);
        let (mut ca, mut cb) = (config(&pki, A, 21), config(&pki, B, 22));
        edit(&pki, &mut ca, &mut cb);
        let start = Instant::now();
        let keying = |config, admission, rng: u64| {
            Keying::new(
                config,
                Box::new(SeededRng::new(rng)),
                (start, wall_now()),
                settings,
                admission,
            )
        };
        Net {
            a: keying(ca, admit_a, seed * 2),
            b: keying(cb, admit_b, seed * 2 + 1),
            now: start,
            b_gone: false,
            channel: Channel::new(faults, seed),
        }
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit(self.now) {
            self.channel.send(self.now, t);
        }
        while let Some(t) = self.b.poll_transmit(self.now) {
            self.channel.send(self.now, t);
        }
    }

    /// Runs until `done` or `limit` of simulated time; `check` runs after every step.
    pub(super) fn run_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&Net) -> bool,
        check: impl Fn(&Net),
    ) -> bool {
        let end = self.now + limit;
        loop {
            check(self);
            if done(self) {
                return true;
            }
            self.collect();
            let packets = self.channel.next_arrival();
            let next = [packets, self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                self.now = end;
                return done(self);
            };
            self.now = self.now.max(next);
            self.deliver_due();
            check(self);
            if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
                self.a.handle_timeout(self.now);
            }
            if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
                self.b.handle_timeout(self.now);
            }
        }
    }

    /// Runs for `d` (checking `check` after every step).
    pub(super) fn run_for(&mut self, d: Duration, check: impl Fn(&Net)) {
        self.run_until(d, |_| false, check);
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        for t in self.channel.arrivals(now) {
            if t.to.ip() == ip(A) {
                self.a.handle(now, t.from, t.to, &t.payload);
            } else if t.to.ip() == ip(B) && !self.b_gone {
                self.b.handle(now, t.from, t.to, &t.payload);
            }
        }
    }
}

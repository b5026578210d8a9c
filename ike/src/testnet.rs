//! A simulated wire for tests (this crate's, and the agent's through the `testkit`
//! feature): datagrams are lost, duplicated and delayed as [`Faults`] say, deterministically.

use std::time::{Duration, Instant};

use crate::rng::{Rng, SeededRng};
use crate::sa::Transmit;

/// Network behaviour: loss and duplication in percent, and reordering delay.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Datagrams lost, in percent.
    pub loss: u32,
    /// Datagrams delivered twice, in percent.
    pub duplicate: u32,
    /// Extra random delay up to this, which reorders packets.
    pub jitter: Duration,
}

impl Faults {
    /// A perfect network.
    pub const NONE: Faults = Faults {
        loss: 0,
        duplicate: 0,
        jitter: Duration::ZERO,
    };
}

/// Every datagram's delay before jitter.
pub const BASE_DELAY: Duration = Duration::from_millis(20);

/// Datagrams in flight.
pub struct Channel {
    faults: Faults,
    rng: SeededRng,
    in_flight: Vec<(Instant, Transmit)>,
}

impl Channel {
    /// A channel with `faults`, its randomness from `seed`.
    pub fn new(faults: Faults, seed: u64) -> Channel {
        Channel {
            faults,
            rng: SeededRng::new(seed ^ 0x5eed),
            in_flight: Vec::new(),
        }
    }

    /// Changes the network's behaviour from now on.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    fn percent(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.rng.fill(&mut b);
        u32::from_be_bytes(b) % 100
    }

    /// Puts a datagram sent at `now` on the wire.
    pub fn send(&mut self, now: Instant, t: Transmit) {
        let copies = if self.percent() < self.faults.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.percent() < self.faults.loss {
                continue;
            }
            let jitter_ms = u64::try_from(self.faults.jitter.as_millis()).unwrap_or(0);
            let extra = if jitter_ms == 0 {
                0
            } else {
                u64::from(self.percent()) * jitter_ms / 100
            };
            let at = now + BASE_DELAY + Duration::from_millis(extra);
            self.in_flight.push((at, t.clone()));
        }
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.iter().map(|(at, _)| *at).min()
    }

    /// The datagrams that have arrived by `now`, in sending order.
    pub fn arrivals(&mut self, now: Instant) -> Vec<Transmit> {
        let (due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|(at, _)| *at <= now);
        self.in_flight = later;
        due.into_iter().map(|(_, t)| t).collect()
    }
}

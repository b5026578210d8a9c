//! Kernel lifetimes of negotiated SAs: a soft expire asks for the Child SA's rekey now (the
//! kernel's safety net fired before keying's own schedule, e.g. a byte limit or a clock
//! jump); a hard expire means the kernel removed the SA, so it leaves the desired set (it
//! must not be installed again with the same keys) and the Child SA is rekeyed at once.

use std::time::Instant;

use super::{Keying, Pair};
use crate::model::SaKey;

/// What a kernel expire was about, as keying saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A live Child SA's SA: its rekey starts now (or is already running).
    Rekey,
    /// The inbound SA of a replaced Child SA in its grace period: dropped (hard) or left
    /// to retire (soft).
    Retiring,
    /// No SA keying holds.
    Unknown,
}

impl Keying {
    /// The kernel reports that the SA `key` reached its soft (`hard` false) or hard
    /// lifetime.
    pub fn expire(&mut self, now: Instant, key: SaKey, hard: bool) -> Expiry {
        let Some((pair, spi_in)) = self.child_of(key) else {
            return self.retiring_expired(key, hard);
        };
        self.counters.kernel_expires += 1;
        let peer = self.peers.get_mut(&pair).expect("found above");
        let child = (peer.children.iter_mut())
            .find(|c| c.sa.spi_in == spi_in)
            .expect("found above");
        // Rekeyed at the next timer run, unless a rekey already runs (its rekey_at is None
        // then, and the new Child SA replaces this one anyway).
        let running = child.rekey_at.is_none();
        if !running {
            child.rekey_at = Some(now);
        }
        if hard {
            child.expired = true;
        }
        tracing::info!(peer = %pair.1, spi = key.spi, hard, rekey_running = running,
            "a negotiated SA reached its kernel lifetime: rekeying its Child SA now");
        Expiry::Rekey
    }

    /// The pair and inbound SPI of the live Child SA that owns the kernel SA `key`.
    fn child_of(&self, key: SaKey) -> Option<(Pair, u32)> {
        self.peers.iter().find_map(|(pair, peer)| {
            peer.children.iter().find_map(|c| {
                let inbound = key.dst == pair.0 && key.spi == c.sa.spi_in;
                let outbound = key.dst == pair.1 && key.spi == c.sa.spi_out;
                (inbound || outbound).then_some((*pair, c.sa.spi_in))
            })
        })
    }

    fn retiring_expired(&mut self, key: SaKey, hard: bool) -> Expiry {
        for (pair, peer) in self.peers.iter_mut() {
            let matches =
                |r: &(ike::sa::ChildSa, u64, Instant)| key.dst == pair.0 && key.spi == r.0.spi_in;
            if !peer.retiring.iter().any(matches) {
                continue;
            }
            if hard {
                peer.retiring.retain(|r| !matches(r));
            }
            return Expiry::Retiring;
        }
        Expiry::Unknown
    }
}

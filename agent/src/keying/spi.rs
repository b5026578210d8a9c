//! Inbound SPIs for negotiated SAs that can never collide with a static SA's SPI.
//!
//! Static SAs take their SPIs from the owned range in slots of 256, one slot per inventory
//! address, the SPIs arriving at a destination all from the senders' slots
//! (`plan/compile/spi/`). Validation keeps that table at most half full, so at least half the
//! slots belong to no address: a negotiated inbound SPI drawn from a free slot is in the
//! owned range (so the reconcile owns its SA) and no static SA towards any address of
//! ours can ever use it. A policy reload that gives a free slot to a new address is
//! followed by [`super::Keying::set_spis`], which rekeys the Child SAs caught in it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use crate::plan::{SpiTable, SLOT_SIZE};

/// The slots that static SAs use, and the owned range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticSpis {
    range: (u32, u32),
    taken: BTreeSet<u32>,
}

impl StaticSpis {
    /// The slots of every inventory address `addrs` in `table`, within `range` (the
    /// policy's `ownership.spi`).
    pub fn new<'a>(
        table: &SpiTable,
        range: (u32, u32),
        addrs: impl IntoIterator<Item = &'a IpAddr>,
    ) -> StaticSpis {
        let taken = addrs
            .into_iter()
            .filter_map(|a| table.slot_spis(a))
            .map(|r| *r.start())
            .collect();
        StaticSpis { range, taken }
    }

    /// A table whose static slots start at `taken` (tests).
    #[cfg(test)]
    pub(super) fn with_taken(
        range: (u32, u32),
        taken: impl IntoIterator<Item = u32>,
    ) -> StaticSpis {
        let taken = taken
            .into_iter()
            .map(|spi| range.0 + (spi - range.0) / SLOT_SIZE * SLOT_SIZE)
            .collect();
        StaticSpis { range, taken }
    }

    /// Whether a negotiated inbound SA may use `spi`: in the owned range, in a whole slot
    /// that no static SA uses.
    pub fn is_free(&self, spi: u32) -> bool {
        let (lo, hi) = self.range;
        if spi < lo.max(256) || spi > hi {
            return false;
        }
        let start = lo + (spi - lo) / SLOT_SIZE * SLOT_SIZE;
        // A partial slot at the end of the range is never a static slot either.
        !self.taken.contains(&start)
    }

    /// The filter the ike crate draws inbound SPIs with.
    pub fn filter(self: &Arc<Self>) -> ike::sa::SpiFilter {
        let me = self.clone();
        Arc::new(move |spi| me.is_free(spi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_slots_and_foreign_spis_are_refused() {
        let mut p = crate::plan::testkit::seed();
        p.ownership.spi = (0x4000_0000, 0x4000_0000 + 64 * SLOT_SIZE - 1);
        let table = SpiTable::build(&p);
        let addrs: Vec<IpAddr> = p.hosts.iter().flat_map(|h| h.addresses.clone()).collect();
        let spis = StaticSpis::new(&table, p.ownership.spi, &addrs);
        for a in &addrs {
            for spi in table.slot_spis(a).unwrap() {
                assert!(!spis.is_free(spi), "{spi:#x} is {a}'s");
            }
        }
        assert!(!spis.is_free(0x3fff_ffff));
        assert!(!spis.is_free(p.ownership.spi.1 + 1));
        let free = (p.ownership.spi.0..=p.ownership.spi.1).filter(|s| spis.is_free(*s));
        assert!(free.count() >= (64 - addrs.len()) * SLOT_SIZE as usize);
    }
}

//! ESP counters as proof of life: packets that arrived on a peer's inbound SA came from
//! the peer (they passed ESP's integrity check), so no liveness check is sent while they
//! keep coming. The daemon reads the counters when it reconciles (at least at every
//! periodic resync); between two reads keying falls back to its own `dpd_idle` timer.

use std::time::Instant;

use super::Keying;
use crate::model::SaKey;

impl Keying {
    /// The kernel's packet counter of the SA `key` reads `packets` at `now`: if it is a
    /// live Child SA's inbound SA and the count grew, the peer is alive.
    pub fn note_packets(&mut self, now: Instant, key: SaKey, packets: u64) {
        let grew = self.peers.iter_mut().find_map(|(pair, peer)| {
            let child =
                (peer.children.iter_mut()).find(|c| key.dst == pair.0 && key.spi == c.sa.spi_in)?;
            let grew = packets > child.packets_in;
            child.packets_in = packets;
            Some((*pair, grew))
        });
        if let Some((pair, true)) = grew {
            self.note_traffic(now, pair);
        }
    }
}

//! Duplicate IKE SAs: both hosts got traffic for each other at the same instant, both
//! initiated, and each exchange completed (neither sent INITIAL_CONTACT, which would have
//! made the other end drop a good IKE SA). Both IKE SAs work, but one is enough.
//!
//! Rule (both ends can apply it without talking): the host with the higher address keeps
//! the IKE SA it initiated and, once that one is up, deletes the ones the peer initiated;
//! the host with the lower address keeps both and lets the other delete. Before the Delete
//! leaves, the outbound SA moves to the survivor's Child SA, which the peer surely has (it
//! installed it before answering our IKE_AUTH), so no packet goes out on an SA about to
//! go, and the peer's outbound moves there when the Delete arrives. strongSwan instead
//! keeps duplicates until one is deleted, or replaces by identity (`unique`).

use std::time::Instant;

use ike::sa::SaId;

use super::{Keying, Pair};

impl Keying {
    /// Deletes the redundant IKE SAs with the peer of `pair`, if we are the end that does.
    pub(super) fn drop_duplicate_ikes(&mut self, now: Instant, pair: Pair) {
        if pair.0 <= pair.1 {
            return;
        }
        let Some(peer) = self.peers.get_mut(&pair) else {
            return;
        };
        if !peer.ikes.iter().any(|i| i.up && i.initiator) {
            return;
        }
        let doomed: Vec<SaId> = (peer.ikes.iter())
            .filter(|i| i.up && !i.initiator)
            .map(|i| i.id)
            .collect();
        let survivor = (peer.children.iter())
            .filter(|c| !doomed.contains(&c.sa.sa) && c.out_ready && !c.expired)
            .max_by_key(|c| c.generation)
            .map(|c| c.sa.spi_in);
        if doomed.is_empty() || survivor.is_none() {
            return;
        }
        peer.out = survivor;
        for id in doomed {
            // Busy (window 1): tried again at the next timer run.
            if let Some(events) = self.endpoint.delete(now, id) {
                tracing::info!(peer = %pair.1, sa = id.0, "deleting a duplicate IKE SA (both ends initiated at once)");
                self.on_events(now, events);
            }
        }
    }
}

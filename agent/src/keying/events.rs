//! What the endpoint reports, turned into per-peer state; and the timers keying runs itself
//! (Child SA and IKE SA rekeys, liveness checks, retirement of replaced inbound SAs).

use std::time::{Duration, Instant};

use ike::cert::display_id;
use ike::sa::{ChildSa, Event, SaId};

use super::status::{FailureKind, PeerStatus};
use super::validity::Credential;
use super::{child, push_exact, Child, Ike, Keying, Pair, Peer};

impl Keying {
    pub(super) fn on_events(&mut self, now: Instant, events: Vec<Event>) {
        for event in events {
            self.on_event(now, event);
        }
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::PeerAuthenticated {
                sa,
                peer_id,
                authority,
                subject,
                not_after,
                certificates,
            } => {
                let status = PeerStatus {
                    identity: display_id(&peer_id),
                    authority,
                    subject,
                    not_after,
                    ..PeerStatus::default()
                };
                let credential = Credential {
                    certificates,
                    peer_id,
                    not_after,
                };
                self.authenticated.insert(sa, (status, credential));
            }
            Event::ChildSaReady(c) => self.on_child(now, *c),
            Event::ChildDeleted { sa, spi_in, .. } => self.on_child_deleted(now, sa, spi_in),
            Event::ChildRefused { sa, notify } => {
                self.counters.children_refused += 1;
                tracing::warn!(sa = sa.0, notify, "peer refused a Child SA");
                let retry = now + self.settings.retry.max(Duration::from_secs(1));
                if let Some(peer) = self.peer_of(sa) {
                    for c in peer.children.iter_mut().filter(|c| c.sa.sa == sa) {
                        c.rekey_at = c.rekey_at.or(Some(retry));
                    }
                }
            }
            Event::Failed { sa, reason } => {
                let kind = FailureKind::of(&reason);
                self.counters.fail(kind);
                let pair = self.by_sa.get(&sa).copied();
                tracing::warn!(peer = ?pair.map(|p| p.1), reason = %reason, kind = kind.as_str(), "IKE SA failed");
                self.drop_ike(sa);
                if let Some(pair) = pair {
                    self.fallback_failed(now, pair);
                }
            }
            Event::Deleted { sa } => self.drop_ike(sa),
            Event::IkeRekeyed { old, new } => self.on_ike_rekeyed(now, old, new),
        }
    }

    fn peer_of(&mut self, sa: SaId) -> Option<&mut Peer> {
        let pair = self.by_sa.get(&sa)?;
        self.peers.get_mut(pair).map(|p| &mut **p)
    }

    fn on_child(&mut self, now: Instant, c: ChildSa) {
        let pair = (c.local.ip(), c.remote.ip());
        let Some(terms) = self.admission.terms(pair.0, pair.1) else {
            // Admitted by its certificate, but no rule keys this pair: nothing to own it.
            self.counters.fail(FailureKind::NotAdmitted);
            let events = self.endpoint.delete(now, c.sa).unwrap_or_default();
            return self.on_events(now, events);
        };
        self.by_sa.insert(c.sa, pair);
        let settings = self.settings;
        let auth = self.authenticated.remove(&c.sa);
        let peer = self
            .peers
            .entry(pair)
            .or_insert_with(|| Box::new(Peer::new(terms)));
        let ike = match peer.ikes.iter().position(|i| i.id == c.sa) {
            Some(at) => &mut peer.ikes[at],
            None => {
                push_exact(&mut peer.ikes, Ike::new(c.sa, false, now));
                peer.ikes.last_mut().expect("pushed")
            }
        };
        let initiator = ike.initiator;
        if !ike.up {
            ike.up = true;
            ike.rekey_at = Some(
                now + rekey_delay(
                    &settings,
                    initiator,
                    settings.ike_rekey_after,
                    c.sa.0 as u32,
                ),
            );
            peer.status.established = Some(now);
            // The peer answers: a `request` backoff is over.
            self.fallbacks.remove(&pair);
        }
        if let Some((auth, credential)) = auth {
            peer.status = PeerStatus {
                established: peer.status.established,
                ..auth
            };
            peer.credential = Some(credential);
        }
        peer.status.local = Some(pair.0);
        peer.status.address = Some(pair.1);
        peer.status.suite = child::suite_name(c.cipher);
        // A replacement waits for its predecessor's deletion to carry traffic out; a
        // first Child SA (or one whose predecessor is already gone) carries it at once.
        let replaces_live = c
            .rekeyed
            .is_some_and(|old| peer.children.iter().any(|o| o.sa.spi_in == old));
        if let Some(old) = c.rekeyed {
            peer.status.rekeyed = Some(now);
            peer.status.rekeys += 1;
            // Replaced (by either end's rekey): rekeying it too would only be refused
            // (CHILD_SA_NOT_FOUND) once the old one's Delete is through.
            for o in peer.children.iter_mut().filter(|o| o.sa.spi_in == old) {
                o.rekey_at = None;
            }
        }
        peer.generations += 1;
        let rekey_at = now + rekey_delay(&settings, initiator, settings.rekey_after, c.spi_in);
        tracing::info!(local = %pair.0, peer = %pair.1, spi_in = c.spi_in, spi_out = c.spi_out, rekey = c.rekeyed.is_some(), "Child SA ready");
        // A first Child SA carries traffic out unless another one already does (a second
        // IKE SA with the peer: both ends initiated at once); that one stays in use.
        if !replaces_live && peer.out.is_none() {
            peer.out = Some(c.spi_in);
        }
        push_exact(
            &mut peer.children,
            Child {
                sa: c,
                generation: peer.generations,
                rekey_at: Some(rekey_at),
                out_ready: !replaces_live,
                expired: false,
                packets_in: 0,
            },
        );
        self.drop_duplicate_ikes(now, pair);
    }

    fn on_child_deleted(&mut self, now: Instant, sa: SaId, spi_in: u32) {
        let grace = self.settings.grace;
        let Some(peer) = self.peer_of(sa) else {
            return;
        };
        let Some(at) = peer.children.iter().position(|c| c.sa.spi_in == spi_in) else {
            return;
        };
        let old = peer.children.remove(at);
        // Its replacements: the peer deleted (or we deleted, after the peer answered) the
        // old Child SA, so the peer has their inbound side.
        for c in peer.children.iter_mut() {
            if c.sa.rekeyed == Some(spi_in) {
                c.out_ready = true;
            }
        }
        if peer.out == Some(spi_in) || peer.out.is_none() {
            peer.out = (peer.children.iter().filter(|c| c.out_ready))
                .max_by_key(|c| c.generation)
                .map(|c| c.sa.spi_in);
        }
        tracing::info!(
            spi_in,
            "Child SA retired; inbound kept for the grace period"
        );
        push_exact(&mut peer.retiring, (old.sa, old.generation, now + grace));
    }

    fn on_ike_rekeyed(&mut self, now: Instant, old: SaId, new: SaId) {
        let settings = self.settings;
        let Some(pair) = self.by_sa.get(&old).copied() else {
            return;
        };
        self.by_sa.insert(new, pair);
        let Some(peer) = self.peers.get_mut(&pair) else {
            return;
        };
        for ike in peer.ikes.iter_mut().filter(|i| i.id == old) {
            ike.id = new;
            ike.rekey_at = Some(
                now + rekey_delay(
                    &settings,
                    ike.initiator,
                    settings.ike_rekey_after,
                    new.0 as u32,
                ),
            );
            peer.status.established = Some(now);
        }
        for c in peer.children.iter_mut().filter(|c| c.sa.sa == old) {
            c.sa.sa = new;
        }
        tracing::info!(peer = %pair.1, "IKE SA rekeyed");
    }

    /// An IKE SA is gone (deleted, failed, or replaced by a rekey): its Child SAs' kernel
    /// SAs go at once; the peer goes with its last IKE SA.
    fn drop_ike(&mut self, sa: SaId) {
        self.authenticated.remove(&sa);
        let Some(pair) = self.by_sa.remove(&sa) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&pair) else {
            return;
        };
        peer.ikes.retain(|i| i.id != sa);
        peer.children.retain(|c| c.sa.sa != sa);
        peer.retiring.retain(|c| c.0.sa != sa);
        if peer.ikes.is_empty() {
            self.peers.remove(&pair);
            return;
        }
        if !peer
            .out
            .is_some_and(|o| peer.children.iter().any(|c| c.sa.spi_in == o))
        {
            peer.out = (peer.children.iter().filter(|c| c.out_ready))
                .max_by_key(|c| c.generation)
                .map(|c| c.sa.spi_in);
        }
    }

    pub(super) fn run_timers(&mut self, now: Instant) {
        self.expire_certificates(now);
        let pairs: Vec<Pair> = self.peers.keys().copied().collect();
        for pair in pairs {
            self.drop_duplicate_ikes(now, pair);
            self.rekey_children(now, pair);
            self.ike_timers(now, pair);
            if let Some(peer) = self.peers.get_mut(&pair) {
                peer.retiring.retain(|r| r.2 > now);
            }
        }
    }

    fn rekey_children(&mut self, now: Instant, pair: Pair) {
        let retry = now + self.settings.retry;
        let Some(peer) = self.peers.get(&pair) else {
            return;
        };
        let due: Vec<(SaId, u32)> = (peer.children.iter())
            .filter(|c| c.rekey_at.is_some_and(|t| t <= now))
            .map(|c| (c.sa.sa, c.sa.spi_in))
            .collect();
        for (sa, spi_in) in due {
            let started = self.endpoint.rekey_child(now, sa, spi_in);
            let next = if started.is_some() { None } else { Some(retry) };
            if let Some(c) = (self.peers.get_mut(&pair))
                .and_then(|p| p.children.iter_mut().find(|c| c.sa.spi_in == spi_in))
            {
                c.rekey_at = next;
            }
            self.on_events(now, started.unwrap_or_default());
        }
    }

    fn ike_timers(&mut self, now: Instant, pair: Pair) {
        let (retry, dpd_idle) = (now + self.settings.retry, self.settings.dpd_idle);
        let Some(peer) = self.peers.get(&pair) else {
            return;
        };
        let ids: Vec<SaId> = peer.ikes.iter().filter(|i| i.up).map(|i| i.id).collect();
        for id in ids {
            let Some(ike) = self
                .peers
                .get(&pair)
                .and_then(|p| p.ikes.iter().find(|i| i.id == id))
            else {
                continue;
            };
            let (rekey_due, dpd_due) = (
                ike.rekey_at.is_some_and(|t| t <= now),
                !ike.probing && ike.last_heard + dpd_idle <= now,
            );
            let mut events = Vec::new();
            let mut rekey_at = ike.rekey_at;
            let mut probing = ike.probing;
            if rekey_due {
                let started = self.endpoint.rekey_ike(now, id);
                rekey_at = if started.is_some() { None } else { Some(retry) };
                events.extend(started.unwrap_or_default());
            } else if dpd_due {
                // Busy (window 1): whatever runs proves liveness or fails by itself.
                let started = self.endpoint.check_liveness(now, id);
                probing = true;
                events.extend(started.unwrap_or_default());
            }
            if let Some(ike) =
                (self.peers.get_mut(&pair)).and_then(|p| p.ikes.iter_mut().find(|i| i.id == id))
            {
                ike.rekey_at = rekey_at;
                ike.probing = probing;
            }
            self.on_events(now, events);
        }
    }
}

/// When to rekey something made now: the initiator `after` minus up to `jitter` (spread by
/// `spread`, e.g. an SPI), the responder a tenth of `after` later, as a fallback.
fn rekey_delay(s: &super::Settings, initiator: bool, after: Duration, spread: u32) -> Duration {
    let jitter = s.rekey_jitter.mul_f64(f64::from(spread % 1000) / 1000.0);
    let base = after.saturating_sub(jitter);
    if initiator {
        base
    } else {
        base + after / 10 + s.rekey_jitter
    }
}

//! Certificates outlive nothing: an established peer is checked again whenever the
//! authorities change (a new CRL, an anchor removed), and its SAs go at its certificate's
//! notAfter; at our own certificate's notAfter every IKE SA goes and new exchanges are
//! refused until a valid certificate is loaded.
//!
//! Only a definite answer cuts an established peer: its certificate revoked, expired, no
//! longer chaining to any anchor, or its signature no longer verifying. An answer that says
//! nothing about the peer (a strict authority whose CRL is past nextUpdate, or that has no
//! CRL any more) refuses new exchanges but leaves established ones alone: an outdated CRL
//! is not a revocation, and cutting every peer for it would be the silent lock-out that the
//! nextUpdate warning exists to prevent. Those peers are checked again at the next change
//! of the authorities, and re-authenticate at their next exchange.

use std::time::{Duration, Instant, SystemTime};

use ike::cert::CertError;
use ike::codec::Id;

use super::{FailureKind, Keying, Pair};

/// What a peer proved at authentication, kept to check it again.
#[derive(Clone, Debug)]
pub(super) struct Credential {
    /// Its certificates (DER), end entity first.
    pub(super) certificates: Vec<Vec<u8>>,
    /// The identity it authenticated as.
    pub(super) peer_id: Id,
    /// Its certificate's notAfter (Unix seconds).
    pub(super) not_after: i64,
}

/// Why an established peer is cut, if the verifier's answer is definite.
fn cut_reason(e: &CertError) -> Option<FailureKind> {
    match e {
        CertError::Revoked => Some(FailureKind::Revoked),
        CertError::Expired | CertError::NotYetValid => Some(FailureKind::Expired),
        CertError::UnknownIssuer | CertError::BadSignature => Some(FailureKind::AuthFailed),
        _ => None,
    }
}

fn unix(t: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0).unsigned_abs())
}

impl Keying {
    /// Checks every established peer against the verifier in force at `now`; deletes
    /// (Delete sent, SAs gone from [`Keying::desired_states`]) those it now refuses.
    pub(super) fn recheck_peers(&mut self, now: Instant) {
        let wall = self.endpoint.wall_time(now);
        let verifier = &self.endpoint.config().verifier;
        let cut: Vec<(Pair, FailureKind, CertError)> = (self.peers.iter())
            .filter_map(|(pair, p)| {
                let c = p.credential.as_ref()?;
                let (ee, chain) = c.certificates.split_first()?;
                let e = verifier.verify(ee, chain, &c.peer_id, wall).err()?;
                match cut_reason(&e) {
                    Some(kind) => Some((*pair, kind, e)),
                    None => {
                        tracing::warn!(peer = %pair.1, reason = %e, "IKE peer kept: the new authorities say nothing definite about its certificate; new exchanges with it are refused");
                        None
                    }
                }
            })
            .collect();
        for (pair, kind, e) in cut {
            tracing::warn!(peer = %pair.1, identity = %self.peers[&pair].status.identity, reason = %e, "IKE peer's certificate no longer valid: deleting its IKE and Child SAs");
            self.counters.fail(kind);
            self.counters.peers_cut += 1;
            self.delete_peer(now, pair);
        }
    }

    /// Our certificate's notAfter has passed at `now`.
    pub fn own_certificate_expired(&self, now: Instant) -> bool {
        self.own_not_after
            .is_some_and(|t| self.endpoint.wall_time(now) >= unix(t))
    }

    /// The earliest certificate expiry to act on: a peer's, or ours until it was acted on.
    pub(super) fn expiry_deadline(&self) -> Option<Instant> {
        let peers = (self.peers.values())
            .filter_map(|p| p.credential.as_ref())
            .map(|c| c.not_after);
        let own = self.own_not_after.filter(|_| !self.own_expiry_handled);
        (peers.chain(own).min()).map(|t| self.endpoint.instant_at(unix(t)))
    }

    /// Deletes peers whose certificate expired by `now`, and every peer once ours has.
    pub(super) fn expire_certificates(&mut self, now: Instant) {
        let wall = self.endpoint.wall_time(now);
        if self.own_certificate_expired(now) {
            if !self.own_expiry_handled {
                self.own_expiry_handled = true;
                tracing::error!(peers = self.peers.len(), "our IKE certificate expired: every IKE SA deleted, new exchanges refused until a valid certificate is loaded");
            }
            let pairs: Vec<Pair> = self.peers.keys().copied().collect();
            for pair in pairs {
                self.delete_peer(now, pair);
            }
            return;
        }
        let expired: Vec<Pair> = (self.peers.iter())
            .filter(|(_, p)| (p.credential.as_ref()).is_some_and(|c| unix(c.not_after) <= wall))
            .map(|(pair, _)| *pair)
            .collect();
        for pair in expired {
            tracing::warn!(peer = %pair.1, identity = %self.peers[&pair].status.identity, "IKE peer's certificate expired: deleting its IKE and Child SAs");
            self.counters.fail(FailureKind::Expired);
            self.counters.peers_cut += 1;
            self.delete_peer(now, pair);
        }
    }
}

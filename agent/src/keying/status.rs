//! What keying reports for `status` and metrics: one record per peer, failures by reason.

use std::net::IpAddr;
use std::time::Instant;

use ike::cert::CertError;
use ike::sa::FailReason;
use serde::Serialize;

/// One peer keyed over IKEv2, as `status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// Our address towards it.
    pub local: Option<IpAddr>,
    /// Its address.
    pub address: Option<IpAddr>,
    /// The identity its certificate carries (empty until authenticated).
    pub identity: String,
    /// The authority whose anchor its chain ends in.
    pub authority: String,
    /// Its certificate's subject.
    pub subject: String,
    /// Its certificate's notAfter (Unix seconds).
    pub not_after: i64,
    /// ESP suite of the current Child SA.
    pub suite: String,
    /// When the IKE SA (the current one, after IKE rekeys) was established.
    pub established: Option<Instant>,
    /// When the Child SA was last rekeyed.
    pub rekeyed: Option<Instant>,
    /// Child SA rekeys so far.
    pub rekeys: u64,
}

/// Why keying with a peer failed, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    AuthFailed,
    NoProposal,
    Timeout,
    Revoked,
    Expired,
    NotAdmitted,
    Protocol,
}

impl FailureKind {
    /// The reason an IKE SA failed, as counted.
    pub fn of(reason: &FailReason) -> FailureKind {
        match reason {
            FailReason::Timeout => FailureKind::Timeout,
            FailReason::NoProposalChosen => FailureKind::NoProposal,
            FailReason::Certificate(CertError::Revoked) => FailureKind::Revoked,
            FailReason::Certificate(CertError::Expired | CertError::NotYetValid) => {
                FailureKind::Expired
            }
            FailReason::Certificate(_) | FailReason::Auth(_) => FailureKind::AuthFailed,
            FailReason::UnexpectedIdentity(_) => FailureKind::AuthFailed,
            FailReason::NotAdmitted(_) => FailureKind::NotAdmitted,
            // AUTHENTICATION_FAILED (24) and NO_PROPOSAL_CHOSEN (14) from the peer.
            FailReason::PeerError(24) => FailureKind::AuthFailed,
            FailReason::PeerError(14) => FailureKind::NoProposal,
            FailReason::PeerError(_) | FailReason::Protocol(_) => FailureKind::Protocol,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::AuthFailed => "auth-failed",
            FailureKind::NoProposal => "no-proposal",
            FailureKind::Timeout => "timeout",
            FailureKind::Revoked => "revoked",
            FailureKind::Expired => "expired",
            FailureKind::NotAdmitted => "not-admitted",
            FailureKind::Protocol => "protocol",
        }
    }
}

/// Counters of keying outcomes, as plain data for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Failed IKE SAs by reason.
    pub failures: std::collections::BTreeMap<FailureKind, u64>,
    /// Acquires for pairs no rule keys over IKEv2 (left to the static path's counters).
    pub acquires_not_admitted: u64,
    /// Acquires for a peer whose exchange was already running (de-duplicated).
    pub acquires_merged: u64,
    /// Acquires for a `request` peer that did not answer, within its backoff (clear).
    pub acquires_in_backoff: u64,
    /// Child SAs refused by the peer.
    pub children_refused: u64,
    /// Negotiated SAs that reached a kernel lifetime (soft or hard) before keying rekeyed
    /// them: each made keying rekey their Child SA at once.
    pub kernel_expires: u64,
    /// Established peers deleted because their certificate was revoked, expired or no
    /// longer chains to an anchor.
    pub peers_cut: u64,
    /// Exchanges refused (acquires and datagrams) because our certificate expired.
    pub refused_own_expired: u64,
}

impl Counters {
    pub(super) fn fail(&mut self, kind: FailureKind) {
        *self.failures.entry(kind).or_default() += 1;
    }

    /// Failures of one kind.
    pub fn failures_of(&self, kind: FailureKind) -> u64 {
        self.failures.get(&kind).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ike::auth::AuthError;

    #[test]
    fn a_peer_with_a_pre_shared_key_or_no_certificate_counts_as_auth_failed() {
        let psk = FailReason::Auth(AuthError::UnsupportedMethod(2));
        let no_cert = FailReason::Certificate(CertError::Malformed("no certificate".into()));
        for reason in [psk, no_cert, FailReason::PeerError(24)] {
            assert_eq!(
                FailureKind::of(&reason),
                FailureKind::AuthFailed,
                "{reason}"
            );
        }
        assert_eq!(
            FailureKind::of(&FailReason::Protocol("no AUTH payload")),
            FailureKind::Protocol
        );
    }
}

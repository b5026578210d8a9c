//! What `status --daemon` and the metrics show of IKEv2 keying: peers, failures by
//! reason, our certificate's expiry. Plain data, built from [`Keying`] without I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::keying::Keying;

/// One peer keyed over IKEv2.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IkePeerView {
    /// The identity its certificate carries (empty until authenticated).
    pub identity: String,
    /// The authority whose anchor its chain ends in.
    pub authority: String,
    pub subject: String,
    pub local: Option<IpAddr>,
    pub address: Option<IpAddr>,
    /// ESP suite of the current Child SA.
    pub suite: String,
    /// Unix seconds.
    pub established_unix: Option<u64>,
    pub rekeyed_unix: Option<u64>,
    pub rekeys: u64,
    /// Its certificate's notAfter (Unix seconds).
    pub certificate_not_after: i64,
}

/// IKEv2 keying as a running daemon reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IkeView {
    pub peers: Vec<IkePeerView>,
    /// IKE SAs held, in any state (half-open ones included).
    pub ike_sas: usize,
    /// Failed IKE SAs by reason (`auth-failed`, `no-proposal`, `timeout`, `revoked`, …).
    pub failures: BTreeMap<String, u64>,
    /// Acquires merged into an exchange already running for that peer.
    pub acquires_merged: u64,
    /// Acquires for `request` peers that did not answer IKE, within their backoff.
    #[serde(default)]
    pub acquires_in_backoff: u64,
    /// `request` peers that did not answer IKE: their traffic flows clear until the retry.
    #[serde(default)]
    pub clear_peers: Vec<std::net::IpAddr>,
    pub children_refused: u64,
    /// Our own certificate's notAfter (Unix seconds), when it parses.
    pub certificate_not_after: Option<i64>,
}

/// The view of `keying` at `now` (monotonic), which is `wall` Unix seconds.
pub fn build(keying: &Keying, now: Instant, wall: u64, own_not_after: Option<i64>) -> IkeView {
    let unix = |t: Instant| wall.saturating_sub(now.saturating_duration_since(t).as_secs());
    let peers = keying
        .peers()
        .map(|(_, s)| IkePeerView {
            identity: s.identity.clone(),
            authority: s.authority.clone(),
            subject: s.subject.clone(),
            local: s.local,
            address: s.address,
            suite: s.suite.clone(),
            established_unix: s.established.map(unix),
            rekeyed_unix: s.rekeyed.map(unix),
            rekeys: s.rekeys,
            certificate_not_after: s.not_after,
        })
        .collect();
    let c = keying.counters();
    IkeView {
        peers,
        ike_sas: keying.ike_sa_count(),
        failures: (c.failures.iter())
            .map(|(k, n)| (k.as_str().to_string(), *n))
            .collect(),
        acquires_merged: c.acquires_merged,
        acquires_in_backoff: c.acquires_in_backoff,
        clear_peers: keying.clear_peers(now).map(|p| p.1).collect(),
        children_refused: c.children_refused,
        certificate_not_after: own_not_after,
    }
}

/// The notAfter (Unix seconds) of our certificate `der`.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

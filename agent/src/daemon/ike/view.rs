//! What `status --daemon` and the metrics show of IKEv2 keying: peers, failures by
//! reason, our certificate's expiry. Plain data, built from [`Keying`] without I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::crls::{CrlTracker, CrlView};
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
#[serde(default)]
pub struct IkeView {
    pub peers: Vec<IkePeerView>,
    /// IKE SAs held, in any state (half-open ones included).
    pub ike_sas: usize,
    /// Responder IKE SAs waiting for IKE_AUTH.
    #[serde(default)]
    pub half_open: usize,
    /// New IKE_SA_INITs refused by the responder's defences, by reason (`cookie-sent`,
    /// `cookie-invalid`, `ike-sa-limit`, `half-open-limit`, `half-open-per-source-limit`),
    /// fragments over the reassembly bounds (`reassembly-limit`), and half-open SAs
    /// expired without IKE_AUTH (`half-open-expired`).
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Failed IKE SAs by reason (`auth-failed`, `no-proposal`, `timeout`, `revoked`, …).
    pub failures: BTreeMap<String, u64>,
    /// Acquires merged into an exchange already running for that peer.
    pub acquires_merged: u64,
    /// Negotiated SAs that reached a kernel lifetime (each rekeyed its Child SA at once).
    pub kernel_expires: u64,
    /// Acquires for `request` peers that did not answer IKE, within their backoff.
    #[serde(default)]
    pub acquires_in_backoff: u64,
    /// `request` peers that did not answer IKE: their traffic flows clear until the retry.
    #[serde(default)]
    pub clear_peers: Vec<std::net::IpAddr>,
    pub children_refused: u64,
    /// Our own certificate's notAfter (Unix seconds), when it parses.
    pub certificate_not_after: Option<i64>,
    /// Our certificate has expired: no IKE SA, new exchanges refused.
    pub certificate_expired: bool,
    /// Exchanges refused because our certificate expired.
    pub refused_own_expired: u64,
    /// Established peers deleted because their certificate was revoked, expired or no
    /// longer chains to an anchor.
    pub peers_cut: u64,
    /// The authorities' CRLs in force, with their distance to nextUpdate.
    pub crls: Vec<CrlView>,
    /// Why the last load of the authority files was refused (file named), until one
    /// succeeds; the files in force stay.
    pub authority_error: Option<String>,
    /// Loads of authority files refused.
    pub authority_errors: u64,
}

/// The view of `keying` at `now` (monotonic), which is `wall` Unix seconds.
pub fn build(
    keying: &Keying,
    now: Instant,
    wall: u64,
    own_not_after: Option<i64>,
    crls: &CrlTracker,
) -> IkeView {
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
        half_open: keying.half_open_count(),
        refused: refused(&keying.dos_counters()),
        failures: (c.failures.iter())
            .map(|(k, n)| (k.as_str().to_string(), *n))
            .collect(),
        acquires_merged: c.acquires_merged,
        kernel_expires: c.kernel_expires,
        acquires_in_backoff: c.acquires_in_backoff,
        clear_peers: keying.clear_peers(now).map(|p| p.1).collect(),
        children_refused: c.children_refused,
        certificate_not_after: own_not_after,
        certificate_expired: keying.own_certificate_expired(now),
        refused_own_expired: c.refused_own_expired,
        peers_cut: c.peers_cut,
        crls: crls.views(keying.verifier(), i64::try_from(wall).unwrap_or(i64::MAX)),
        authority_error: crls.error.clone(),
        authority_errors: crls.errors,
    }
}

/// The responder's defence counters by reason, for status and the metrics.
fn refused(d: &ike::sa::DosCounters) -> BTreeMap<String, u64> {
    [
        ("cookie-sent", d.cookies_sent),
        ("cookie-invalid", d.cookies_invalid),
        ("ike-sa-limit", d.refused_ike_sa_limit),
        ("half-open-limit", d.refused_half_open),
        ("half-open-per-source-limit", d.refused_half_open_per_source),
        ("reassembly-limit", d.reassembly_refused),
        ("half-open-expired", d.half_open_expired),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect()
}

/// The notAfter (Unix seconds) of our certificate `der`.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

//! The IKE SA state machine, sans I/O: IKE_SA_INIT and IKE_AUTH in both roles with one
//! transport- or tunnel-mode Child SA ([`Config::tunnel`]), message IDs, window size 1, retransmission with backoff,
//! cached responses, INVALID_KE_PAYLOAD and COOKIE retries, Deletes and liveness checks.
//!
//! The caller owns sockets and clocks: it feeds datagrams to [`Endpoint::handle`], calls
//! [`Endpoint::handle_timeout`] at [`Endpoint::poll_timeout`], and sends what
//! [`Endpoint::poll_transmit`] returns. Results come back as [`Event`]s.

#[cfg(test)]
mod admission_tests;
mod child_ts;
#[cfg(test)]
mod collision_tests;
mod dos;
#[cfg(test)]
mod dos_tests;
mod endpoint;
mod fragment;
#[cfg(test)]
mod fragment_tests;
mod ike_auth;
mod ike_rekey;
mod ike_sa;
mod info;
#[cfg(test)]
mod info_tests;
mod init;
#[cfg(test)]
mod nat_tests;
mod natd;
#[cfg(test)]
mod ports_tests;
mod proposal;
mod rekey;
#[cfg(test)]
mod rekey_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tunnel_tests;
#[cfg(test)]
mod windows_tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use dos::DosCounters;
pub use endpoint::Endpoint;
pub use fragment::Fragmentation;

use crate::auth::{AuthError, SigningKey};
use crate::cert::{CertError, CertVerifier};
use crate::codec::{Id, TrafficSelector};
use crate::crypto::{Cipher, DhGroup, DirectionKeys, IkeKeys, Secret};

/// Identifies an IKE SA: our own SPI of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaId(pub u64);

/// What an endpoint offers and accepts, and who it is.
pub struct Config {
    /// IKE SA ciphers, preferred first.
    pub ike_ciphers: Vec<Cipher>,
    /// DH groups, preferred first; the first one goes into our KE payload.
    pub groups: Vec<DhGroup>,
    /// ESP ciphers for Child SAs, preferred first.
    pub esp_ciphers: Vec<Cipher>,
    /// Our private key.
    pub key: SigningKey,
    /// Our certificate (DER), then any intermediates to send.
    pub certificates: Vec<Vec<u8>>,
    /// Our identity (IDi/IDr), which our certificate must carry.
    pub id: Id,
    /// The authorities that admit peers.
    pub verifier: CertVerifier,
    /// Request retransmission.
    pub retransmit: Retransmit,
    /// How long a responder keeps an IKE SA that has not completed IKE_AUTH.
    pub half_open_timeout: Duration,
    /// Answer IKE_SA_INIT with a COOKIE until the initiator returns it (RFC 7296 §2.6).
    pub require_cookie: bool,
    /// Demand cookies once this many responder SAs are half-open (no IKE_AUTH yet).
    pub cookie_threshold: Option<usize>,
    /// Demand cookies of an address once this many responder SAs with it are half-open.
    pub cookie_threshold_per_source: Option<usize>,
    /// Cookie secrets are replaced this often; a cookie made with the previous one is
    /// still accepted until the next replacement, so a cookie lives one to two periods.
    pub cookie_rotation: Duration,
    /// Half-open responder SAs held at most; new IKE_SA_INIT requests beyond are dropped
    /// (even with a valid cookie: an attacker with many real addresses).
    pub max_half_open: usize,
    /// Half-open responder SAs with one address held at most (a host, or a NAT's hosts).
    pub max_half_open_per_source: usize,
    /// IKE SAs held at most (any state); new IKE_SA_INIT requests beyond are dropped.
    pub max_ike_sas: usize,
    /// Encapsulate ESP in UDP even without a NAT (paths that drop IP protocol 50).
    pub force_encap: bool,
    /// Child SA rekeys carry a KE of our first group (perfect forward secrecy).
    pub rekey_pfs: bool,
    /// Announce SIGNATURE_HASH_ALGORITHMS (RFC 7427) in IKE_SA_INIT. Without it a peer
    /// signs with AUTH methods 1 and 9, as Windows does; we verify methods 1, 9 and 14
    /// either way and sign with what the peer announced.
    pub announce_signature_hashes: bool,
    /// The daemon's admission rule, asked once the peer has proved its certificate and
    /// AUTH: which authorities and identities may reach this host (e.g. a partner CA only
    /// for some rules). `None` admits every peer the verifier accepts.
    pub admit: Option<Admit>,
    /// Sees each IKE SA's SKEYSEED and SK_* when they are derived (initial exchange and
    /// rekeys), to compare them with another implementation's key log in the lab
    /// (`examples/lab_peer`). The library itself never logs keys; the daemon leaves it `None`.
    pub key_log: Option<KeyLog>,
    /// Which inbound ESP SPIs we may choose (e.g. outside the SPI slots of statically keyed
    /// SAs on the same host); `None` allows every SPI above 255.
    pub esp_spi: Option<SpiFilter>,
    /// IKE fragmentation (RFC 7383): offered, fragment size, reassembly bounds.
    pub fragmentation: Fragmentation,
    /// Which pairs (our address, the peer's) take a tunnel-mode Child SA, and between which
    /// selectors; `None`, or the hook answering `None`, means transport mode between the
    /// two hosts. Both roles ask it: the initiator for what to request, the responder for
    /// what to accept.
    pub tunnel: Option<TunnelPolicy>,
    /// Which pairs (our address, the peer's) take a transport-mode Child SA narrowed to one
    /// protocol and port range (a rule that admits the peer for one service only); `None`,
    /// or the hook answering `None`, means every protocol between the two hosts. Both roles
    /// ask it: the initiator proposes the narrowed selectors, the responder narrows a wider
    /// proposal to them and refuses one that does not cover them (RFC 7296 §2.9).
    pub ports: Option<PortsPolicy>,
}

/// The narrowing of a transport-mode Child SA a pair (our address, the peer's) takes, if any.
pub type PortsPolicy = Arc<dyn Fn(IpAddr, IpAddr) -> Option<Ports> + Send + Sync>;

/// One protocol and port range on each side: the traffic selectors of a narrowed
/// transport-mode Child SA (ranges inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// IP protocol number (never 0: that is every protocol).
    pub protocol: u8,
    /// Our ports (TSi's when we initiate).
    pub local: (u16, u16),
    /// The peer's ports.
    pub remote: (u16, u16),
}

/// The tunnel-mode Child SA a pair (our address, the peer's) takes, if any.
pub type TunnelPolicy = Arc<dyn Fn(IpAddr, IpAddr) -> Option<Tunnel> + Send + Sync>;

/// The traffic selectors of a tunnel-mode Child SA (RFC 7296 §2.9): the networks behind
/// us and behind the peer, carried between the two IKE endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// Ours (TSi when we initiate).
    pub local: Vec<TrafficSelector>,
    /// The peer's.
    pub remote: Vec<TrafficSelector>,
}

/// An inbound ESP SPI filter: `true` lets us choose the SPI. It must accept a good share
/// of the 32-bit space: SPIs are drawn at random until one passes.
pub type SpiFilter = Arc<dyn Fn(u32) -> bool + Send + Sync>;

/// A key-log hook: called once per derived IKE SA.
pub type KeyLog = Arc<dyn Fn(&KeyLogEntry<'_>) + Send + Sync>;

/// Hands freshly derived IKE SA keys to the key-log hook, if one is set.
fn log_keys(log: Option<&KeyLog>, spi_i: u64, spi_r: u64, skeyseed: &Secret, keys: &IkeKeys) {
    if let Some(log) = log {
        log(&KeyLogEntry {
            spi_i,
            spi_r,
            skeyseed,
            keys,
        });
    }
}

/// The key material of one IKE SA, as derived.
#[derive(Debug, Clone, Copy)]
pub struct KeyLogEntry<'a> {
    /// The IKE SA's initiator SPI.
    pub spi_i: u64,
    /// The IKE SA's responder SPI.
    pub spi_r: u64,
    /// SKEYSEED (§2.14, or §2.18 for a rekeyed IKE SA).
    pub skeyseed: &'a Secret,
    /// SK_d, SK_ai/ar, SK_ei/er, SK_pi/pr.
    pub keys: &'a IkeKeys,
}

/// An admission rule: `true` admits the peer.
pub type Admit = Arc<dyn Fn(&Admission<'_>) -> bool + Send + Sync>;

/// What an admission rule sees of an authenticated peer.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The authority whose anchor its chain ends in.
    pub authority: &'a str,
    /// Its certificate's subject.
    pub subject: &'a str,
    /// The identity it claimed (and its certificate carries).
    pub peer_id: &'a Id,
    /// Its end-entity certificate (DER), for identity patterns on subject and SANs.
    pub certificate: &'a [u8],
    /// Our address.
    pub local: SocketAddr,
    /// Its address.
    pub remote: SocketAddr,
}

impl Config {
    /// A configuration with our suites (AES-GCM-16-128/256, AES-CBC-128/256 + HMAC-SHA2-256-128;
    /// groups 31, 19 and 14) and default timers.
    pub fn new(
        key: SigningKey,
        certificates: Vec<Vec<u8>>,
        id: Id,
        verifier: CertVerifier,
    ) -> Config {
        let ciphers = vec![
            Cipher::AesGcm16 { bits: 128 },
            Cipher::AesGcm16 { bits: 256 },
            Cipher::AesCbcHmacSha256 { bits: 128 },
            Cipher::AesCbcHmacSha256 { bits: 256 },
        ];
        Config {
            ike_ciphers: ciphers.clone(),
            groups: vec![DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048],
            esp_ciphers: ciphers,
            key,
            certificates,
            id,
            verifier,
            retransmit: Retransmit::default(),
            half_open_timeout: Duration::from_secs(30),
            require_cookie: false,
            cookie_threshold: Some(100),
            cookie_threshold_per_source: Some(5),
            cookie_rotation: Duration::from_secs(60),
            max_half_open: 5_000,
            max_half_open_per_source: 50,
            max_ike_sas: 10_000,
            force_encap: false,
            rekey_pfs: true,
            announce_signature_hashes: true,
            admit: None,
            key_log: None,
            esp_spi: None,
            fragmentation: Fragmentation::default(),
            tunnel: None,
            ports: None,
        }
    }
}

impl Config {
    /// Checks that our first certificate carries our identity and our private key's
    /// public half, so a mismatch is a load-time error rather than failed handshakes.
    pub fn check(&self) -> Result<(), CertError> {
        let own = self
            .certificates
            .first()
            .ok_or(CertError::Malformed("no certificate of our own".into()))?;
        crate::cert::check_own(own, &self.id, &self.key)
    }
}

/// Retransmission: `initial`, doubling each time, at most `max_tries` sends in all.
#[derive(Debug, Clone, Copy)]
pub struct Retransmit {
    /// Wait after the first send.
    pub initial: Duration,
    /// Sends of one request before giving up.
    pub max_tries: u32,
}

impl Default for Retransmit {
    fn default() -> Retransmit {
        Retransmit {
            initial: Duration::from_millis(500),
            max_tries: 6,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address to send from.
    pub from: SocketAddr,
    /// The peer's address.
    pub to: SocketAddr,
    /// The IKE message.
    pub payload: Vec<u8>,
}

/// Child SA mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Transport mode (USE_TRANSPORT_MODE negotiated).
    Transport,
    /// Tunnel mode (no USE_TRANSPORT_MODE): the selectors are networks behind the two IKE
    /// endpoints, which are the SA's outer addresses.
    Tunnel,
}

/// A negotiated Child SA, ready for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    /// The IKE SA it belongs to.
    pub sa: SaId,
    /// SPI of the inbound ESP SA (we chose it).
    pub spi_in: u32,
    /// SPI of the outbound ESP SA (the peer chose it).
    pub spi_out: u32,
    /// ESP cipher.
    pub cipher: Cipher,
    /// Keys for inbound traffic.
    pub keys_in: DirectionKeys,
    /// Keys for outbound traffic.
    pub keys_out: DirectionKeys,
    /// Our traffic selectors.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Mode.
    pub mode: Mode,
    /// ESP in UDP on port 4500 (a NAT was detected, or encapsulation is forced).
    pub encap: bool,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The inbound SPI of the Child SA this one replaces (a rekey): install this one, then
    /// remove that one when [`Event::ChildDeleted`] says so.
    pub rekeyed: Option<u32>,
}

/// What happened, for the daemon to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer proved its identity with a certificate from a trusted authority.
    PeerAuthenticated {
        /// The IKE SA.
        sa: SaId,
        /// The identity it claimed and its certificate carries.
        peer_id: Id,
        /// Authority that admitted it.
        authority: String,
        /// Certificate subject.
        subject: String,
        /// Certificate notAfter (Unix seconds).
        not_after: i64,
        /// Its certificates (DER), end entity first: to check again against new CRLs
        /// and anchors while its SAs live.
        certificates: Vec<Vec<u8>>,
    },
    /// A Child SA is negotiated.
    ChildSaReady(Box<ChildSa>),
    /// The Child SA was refused by the peer (notify type); the IKE SA stays.
    ChildRefused {
        /// The IKE SA.
        sa: SaId,
        /// The error notify the peer sent.
        notify: u16,
    },
    /// The IKE SA failed and is gone.
    Failed {
        /// The IKE SA.
        sa: SaId,
        /// Why.
        reason: FailReason,
    },
    /// The Child SA is deleted (by us or the peer): remove its kernel SAs.
    ChildDeleted {
        /// The IKE SA.
        sa: SaId,
        /// Its inbound SPI.
        spi_in: u32,
        /// Its outbound SPI.
        spi_out: u32,
    },
    /// The IKE SA was rekeyed: `new` replaces `old` and holds its Child SAs.
    IkeRekeyed {
        /// The IKE SA that goes away.
        old: SaId,
        /// The IKE SA that replaces it.
        new: SaId,
    },
    /// The IKE SA is deleted (by us or the peer), with its Child SAs.
    Deleted {
        /// The IKE SA.
        sa: SaId,
    },
}

/// Why an IKE SA failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    /// No response after all retransmissions, or a half-open SA expired.
    #[error("timeout")]
    Timeout,
    /// No proposal in common.
    #[error("no proposal chosen")]
    NoProposalChosen,
    /// The peer sent an error notify.
    #[error("peer sent error notify {0}")]
    PeerError(u16),
    /// The peer's certificate was refused.
    #[error("certificate: {0}")]
    Certificate(#[from] CertError),
    /// The peer's AUTH payload was refused.
    #[error("authentication: {0}")]
    Auth(#[from] AuthError),
    /// The peer is authentic but no admission rule lets it in.
    #[error("peer {0} is not admitted")]
    NotAdmitted(String),
    /// The peer's identity is not the one we asked for.
    #[error("peer identity {0} is not the expected one")]
    UnexpectedIdentity(String),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(&'static str),
}

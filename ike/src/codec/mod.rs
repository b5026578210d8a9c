//! IKEv2 message codec (RFC 7296 §3): parse from `&[u8]`, emit to `Vec<u8>`.
//!
//! Decoding never panics: every length is checked against the bytes present. Unknown
//! non-critical payloads and Vendor IDs are skipped; an unknown payload with the critical
//! bit is kept as [`Payload::Unknown`] so the state machine can answer
//! UNSUPPORTED_CRITICAL_PAYLOAD. The SK payload is kept encrypted ([`Payload::Sk`]), and so is
//! an SKF fragment ([`Payload::Skf`], RFC 7383); after decryption (and reassembly) the inner
//! chain is parsed with [`decode_payloads`].

mod message;
mod payloads;
mod reader;
mod sa;
#[cfg(test)]
mod tests;
mod ts;

pub use message::{decode_message, decode_payloads, encode_payloads, Header, Message, HEADER_LEN};
pub use payloads::{Auth, Cert, CertReq, Delete, Id, IdType, Ke, Notify, Payload};
pub use sa::{Attribute, Proposal, Transform};
pub use ts::TrafficSelector;

/// Why bytes were not a well-formed IKEv2 message, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {at}")]
pub struct DecodeError {
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// Offset in the datagram (or decrypted SK body) where it was noticed.
    pub at: usize,
}

/// The kinds of malformed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// A field or a declared length runs past the end of the data.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A length field is smaller than its fixed part, or disagrees with its container.
    #[error("bad length of {0}")]
    BadLength(&'static str),
    /// Major version is not 2 (answer INVALID_MAJOR_VERSION).
    #[error("IKE major version {0} is not supported")]
    UnsupportedVersion(u8),
    /// A value that the RFC forbids.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Payload type numbers (RFC 7296 §3.2).
pub mod payload_type {
    pub const NONE: u8 = 0;
    pub const SA: u8 = 33;
    pub const KE: u8 = 34;
    pub const IDI: u8 = 35;
    pub const IDR: u8 = 36;
    pub const CERT: u8 = 37;
    pub const CERTREQ: u8 = 38;
    pub const AUTH: u8 = 39;
    pub const NONCE: u8 = 40;
    pub const NOTIFY: u8 = 41;
    pub const DELETE: u8 = 42;
    pub const VENDOR_ID: u8 = 43;
    pub const TSI: u8 = 44;
    pub const TSR: u8 = 45;
    pub const SK: u8 = 46;
    /// Encrypted and Authenticated Fragment (RFC 7383 §2.5).
    pub const SKF: u8 = 53;
}

/// Exchange types (RFC 7296 §3.1).
pub mod exchange {
    pub const IKE_SA_INIT: u8 = 34;
    pub const IKE_AUTH: u8 = 35;
    pub const CREATE_CHILD_SA: u8 = 36;
    pub const INFORMATIONAL: u8 = 37;
}

/// Header flags (RFC 7296 §3.1).
pub mod flags {
    /// Set by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// Higher version supported.
    pub const VERSION: u8 = 0x10;
    /// This message is a response.
    pub const RESPONSE: u8 = 0x20;
}

/// Notify message types (RFC 7296 §3.10.1 and later RFCs).
pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const INVALID_SPI: u16 = 11;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const REKEY_SA: u16 = 16393;
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
    pub const IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;
    /// Types below this are errors (RFC 7296 §3.10.1).
    pub const FIRST_STATUS: u16 = 16384;
}

/// Security protocol identifiers (RFC 7296 §3.3.1).
pub mod protocol {
    pub const IKE: u8 = 1;
    pub const AH: u8 = 2;
    pub const ESP: u8 = 3;
}

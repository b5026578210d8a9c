//! What the parser read, with the byte offset of every piece, before cross-checks. Values
//! that failed to parse are absent and their entry is marked incomplete, so that checks
//! which need the whole entry skip it instead of piling follow-on errors onto the real one.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    Action, Cipher, Defaults, Direction, Encapsulation, Endpoint, IdentityPattern, KeyExchange,
    Mode, Ownership, PortRange, Protocol, PublicKey, Revocation, Scope,
};

/// A value and the byte offset where the file says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sp<T> {
    pub v: T,
    pub at: usize,
}

impl<T> Sp<T> {
    pub fn new(v: T, at: usize) -> Self {
        Sp { v, at }
    }
}

/// Where an entry (an element of `[[hosts]]`, …) is, and how messages call it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origin {
    /// Offset of the `[[table]]` header or inline table.
    pub at: usize,
    /// `rules[2] "web"`.
    pub label: String,
    /// Every key parsed without error.
    pub complete: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RawPolicy {
    pub defaults: RawDefaults,
    pub ownership: RawOwnership,
    pub zones: Vec<RawZone>,
    pub hosts: Vec<RawHost>,
    pub clusters: Vec<RawCluster>,
    pub authorities: Vec<RawAuthority>,
    pub exemptions: Vec<RawExemption>,
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Default)]
pub(crate) struct RawDefaults {
    /// Values with the file's settings applied over the model's defaults.
    pub values: Defaults,
    pub table_at: Option<usize>,
    pub cipher_at: Option<usize>,
    pub rekey_at: Option<usize>,
    pub skew_at: Option<usize>,
    pub grace_at: Option<usize>,
    /// A duration failed to parse: the duration checks would judge a default instead.
    pub durations_complete: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RawOwnership {
    pub values: Ownership,
    pub table_at: Option<usize>,
    pub reqid_at: Option<usize>,
    pub priority_at: Option<usize>,
    pub spi_at: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct RawZone {
    pub name: Sp<String>,
    pub prefixes: Vec<Sp<IpNet>>,
    pub complete: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RawHost {
    pub origin: Origin,
    pub name: Option<Sp<String>>,
    pub addresses: Vec<Sp<IpAddr>>,
    pub public_key: Option<Sp<PublicKey>>,
    pub zones: Vec<Sp<String>>,
    pub encapsulation: Encapsulation,
    pub gateway_for: Vec<Sp<IpNet>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawCluster {
    pub origin: Origin,
    pub name: Option<Sp<String>>,
    pub addresses: Vec<Sp<IpAddr>>,
    pub public_key: Option<Sp<PublicKey>>,
    pub members: Vec<Sp<String>>,
    pub encapsulation: Encapsulation,
}

#[derive(Debug, Default)]
pub(crate) struct RawAuthority {
    pub origin: Origin,
    pub name: Option<Sp<String>>,
    pub ca_certificates: Vec<Sp<std::path::PathBuf>>,
    pub crls: Vec<Sp<std::path::PathBuf>>,
    pub revocation: Revocation,
    /// Offset of the `revocation` value, if the file gives one.
    pub revocation_at: Option<usize>,
    pub scope: Scope,
    pub identities: Vec<Sp<IdentityPattern>>,
    pub crl_warning: Option<Sp<u64>>,
}

#[derive(Debug)]
pub(crate) struct RawExemption {
    pub origin: Origin,
    pub name: Option<Sp<String>>,
    pub protocol: Option<Sp<Protocol>>,
    /// Offset of the `ports` key, for messages about the list as a whole.
    pub ports_at: Option<usize>,
    pub ports: Vec<Sp<PortRange>>,
    pub direction: Direction,
    /// Offset of the `direction` value, if the file gives one.
    pub direction_at: Option<usize>,
    pub peers: Vec<Sp<Endpoint>>,
    pub peers_at: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct RawRule {
    pub origin: Origin,
    pub name: Option<Sp<String>>,
    pub from: Vec<Sp<Endpoint>>,
    pub to_at: Option<usize>,
    pub to: Vec<Sp<Endpoint>>,
    pub protocol: Option<Sp<Protocol>>,
    pub ports_at: Option<usize>,
    pub ports: Vec<Sp<PortRange>>,
    pub action: Option<Sp<Action>>,
    /// As written; None = inherit from [defaults].
    pub mode: Option<Sp<Mode>>,
    pub cipher: Option<Sp<Cipher>>,
    /// As written; None = inherit from [defaults].
    pub key_exchange: Option<Sp<KeyExchange>>,
    pub identities_at: Option<usize>,
    pub identities: Vec<Sp<IdentityPattern>>,
}

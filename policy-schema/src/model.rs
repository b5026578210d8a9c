//! The validated, typed policy: what `load` returns once every check has passed.
//!
//! Everything here is plain data with no I/O. Names are unique within their kind, every
//! reference (zone, host, cluster) resolves, and numbers are inside their ranges; the
//! compiler in `agent` relies on these invariants and does not re-check them.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

pub use crate::authority::{
    Admission, Authority, CertIdentity, Glob, IdentityPattern, KeyExchange, Revocation, Scope,
    CRL_WARNING, CRL_WARNING_DEFAULT,
};

/// The whole policy file after validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Format version; only 1 exists.
    pub version: u32,
    pub defaults: Defaults,
    pub ownership: Ownership,
    pub zones: Vec<Zone>,
    pub hosts: Vec<Host>,
    pub clusters: Vec<Cluster>,
    /// Certificate authorities whose holders IKEv2 may admit (`[[authorities]]`).
    pub authorities: Vec<Authority>,
    pub exemptions: Vec<Exemption>,
    pub rules: Vec<Rule>,
}

/// `[defaults]`: values every rule and SA inherits unless it says otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Defaults {
    pub cipher: Cipher,
    pub mode: Mode,
    /// Seconds per key epoch: `epoch = floor(unix_time / rekey_interval)`.
    pub rekey_interval: u64,
    /// Largest clock difference between two hosts that rotation tolerates, seconds.
    pub clock_skew: u64,
    /// Extra time an old inbound SA stays after every peer may have switched, seconds.
    pub grace: u64,
    /// ESN anti-replay window, in packets.
    pub replay_window: u32,
    /// Accept `3des-hmac-sha1` (warns).
    pub allow_legacy: bool,
    /// Always let IPv6 neighbour discovery (ICMPv6 133–137) pass in clear.
    pub exempt_neighbor_discovery: bool,
    /// How rules that name none key SAs with inventory hosts.
    pub key_exchange: KeyExchange,
    /// Seconds a `request` rule's IKEv2 exchange waits for the peer's first answer before
    /// giving up (traffic to it flows clear meanwhile and after).
    pub request_timeout: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            cipher: Cipher::AesGcm128,
            mode: Mode::Transport,
            rekey_interval: 3600,
            clock_skew: 10,
            grace: 30,
            replay_window: 1024,
            allow_legacy: false,
            exempt_neighbor_discovery: true,
            key_exchange: KeyExchange::Static,
            request_timeout: 3,
        }
    }
}

/// `[ownership]`: the reqid, priority and SPI ranges that mark kernel objects as ours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ownership {
    /// Inclusive reqid range; at least 32 values wide.
    pub reqid: (u32, u32),
    /// Inclusive XFRM priority band (lower number = higher precedence); at least 256 +
    /// exemptions + 2 × rules wide (checked in `check::ownership`).
    pub priority: (u32, u32),
    /// Inclusive SPI range; starts at 256 or above (SPIs 1–255 are reserved by RFC 4303).
    pub spi: (u32, u32),
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            reqid: (0x7a00_0000, 0x7a00_00ff),
            priority: (0x0001_0000, 0x0001_ffff),
            spi: (0x4000_0000, 0x7fff_ffff),
        }
    }
}

/// A named set of prefixes (`[zones] intranet = ["10.10.0.0/24"]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Zone {
    pub name: String,
    pub prefixes: Vec<IpNet>,
}

/// An IPsec member: one agent with one X25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Host {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub public_key: PublicKey,
    /// Zones the file declares this host in (each address must lie in one of them).
    /// Membership is otherwise implied by address.
    pub zones: Vec<String>,
    pub encapsulation: Encapsulation,
    /// Prefixes this host protects as a tunnel gateway (empty: not a gateway).
    pub gateway_for: Vec<IpNet>,
}

/// A virtual address shared by member hosts (failover); it has its own key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub public_key: PublicKey,
    /// Host names that may hold the addresses.
    pub members: Vec<String>,
    pub encapsulation: Encapsulation,
}

/// Traffic that never gets IPsec (ICMP diagnostics, IKE, DHCP, Intel AMT…).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exemption {
    pub name: String,
    pub protocol: Protocol,
    /// Service ports; empty = every port (or a protocol without ports).
    pub ports: Vec<PortRange>,
    /// Who opens the connection: peers to our `ports` (`in`), we to theirs (`out`), or both.
    pub direction: Direction,
    /// Remote prefixes it applies to; empty = any peer.
    pub peers: Vec<IpNet>,
}

/// A firewall-style rule: first match in file order wins; mirrored.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    pub name: String,
    pub from: Vec<Endpoint>,
    pub to: Vec<Endpoint>,
    /// Restricts the rule to one protocol (None = all).
    pub protocol: Option<Protocol>,
    /// Ports on the `to` side; empty = all. Only with tcp/udp (or a numbered protocol with ports).
    pub ports: Vec<PortRange>,
    pub action: Action,
    pub mode: Mode,
    pub cipher: Cipher,
    /// Keying of SAs with inventory hosts; peers admitted by an authority always use IKEv2.
    pub key_exchange: KeyExchange,
    /// Extra identity constraints on authority-admitted peers (empty: none beyond the
    /// authority's own).
    pub identities: Vec<IdentityPattern>,
    /// Derived: which authorities' certificate holders this rule admits, per side.
    pub admits: Admission,
}

/// One element of a rule's `from`/`to` list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub enum Endpoint {
    Any,
    Zone(String),
    Host(String),
    Cluster(String),
    Prefix(IpNet),
    /// `ca:NAME`: every address, like `any`; a peer at an inventory host's address is
    /// that host (its key authenticates it), any other peer must authenticate over IKEv2
    /// with a certificate from the named authority.
    Authority(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Any => f.write_str("any"),
            Endpoint::Zone(n) => write!(f, "zone:{n}"),
            Endpoint::Host(n) => write!(f, "host:{n}"),
            Endpoint::Cluster(n) => write!(f, "cluster:{n}"),
            Endpoint::Prefix(p) => write!(f, "{p}"),
            Endpoint::Authority(n) => write!(f, "ca:{n}"),
        }
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        e.to_string()
    }
}

/// What a rule does with the traffic it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// ESP both ways; clear traffic dropped both ways.
    Require,
    /// ESP when an SA exists; clear accepted and sent otherwise.
    Request,
    /// Clear.
    Permit,
    /// Dropped.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Require => "require",
            Action::Request => "request",
            Action::Permit => "permit",
            Action::Block => "block",
        }
    }
    /// Whether the action uses ESP SAs.
    pub fn uses_esp(self) -> bool {
        matches!(self, Action::Require | Action::Request)
    }
}

/// ESP mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Transport,
    Tunnel,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Transport => "transport",
            Mode::Tunnel => "tunnel",
        }
    }
}

/// Cipher suites, named as in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Cipher {
    #[serde(rename = "aes-gcm-128")]
    AesGcm128,
    #[serde(rename = "aes-gcm-256")]
    AesGcm256,
    #[serde(rename = "chacha20-poly1305")]
    Chacha20Poly1305,
    #[serde(rename = "aes-cbc-hmac-sha256")]
    AesCbcHmacSha256,
    /// The 2007 "ESP/3DES" of the seed documents; needs `allow-legacy = true`.
    #[serde(rename = "3des-hmac-sha1")]
    TripleDesHmacSha1,
}

impl Cipher {
    pub const ALL: [Cipher; 5] = [
        Cipher::AesGcm128,
        Cipher::AesGcm256,
        Cipher::Chacha20Poly1305,
        Cipher::AesCbcHmacSha256,
        Cipher::TripleDesHmacSha1,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Cipher::AesGcm128 => "aes-gcm-128",
            Cipher::AesGcm256 => "aes-gcm-256",
            Cipher::Chacha20Poly1305 => "chacha20-poly1305",
            Cipher::AesCbcHmacSha256 => "aes-cbc-hmac-sha256",
            Cipher::TripleDesHmacSha1 => "3des-hmac-sha1",
        }
    }
    pub fn parse(s: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.as_str() == s)
    }
    /// Stable small number (never reorder: SPIs and reqids are derived from it).
    pub fn index(self) -> u32 {
        match self {
            Cipher::AesGcm128 => 0,
            Cipher::AesGcm256 => 1,
            Cipher::Chacha20Poly1305 => 2,
            Cipher::AesCbcHmacSha256 => 3,
            Cipher::TripleDesHmacSha1 => 4,
        }
    }
    pub fn is_legacy(self) -> bool {
        self == Cipher::TripleDesHmacSha1
    }
}

/// ESP encapsulation of a host's SAs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encapsulation {
    /// IP protocol 50.
    #[default]
    None,
    /// ESP-in-UDP on port 4500 (RFC 3948), for paths that drop protocol 50.
    Udp,
}

/// An IP protocol in a selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub enum Protocol {
    Icmp,
    Icmpv6,
    Tcp,
    Udp,
    /// Any other IP protocol number (1–255).
    Number(u8),
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmpv6 => 58,
            Protocol::Number(n) => n,
        }
    }
    /// Whether selectors on this protocol can carry ports.
    pub fn has_ports(self) -> bool {
        // UDP-Lite (136) and SCTP (132), DCCP (33) carry ports in the same place as TCP/UDP.
        matches!(self.number(), 6 | 17 | 33 | 132 | 136)
    }
    /// Only meaningful in one address family (ICMP → IPv4, ICMPv6 → IPv6).
    pub fn family(self) -> Option<Family> {
        match self {
            Protocol::Icmp => Some(Family::V4),
            Protocol::Icmpv6 => Some(Family::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Icmpv6 => f.write_str("icmpv6"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl From<Protocol> for String {
    fn from(p: Protocol) -> String {
        p.to_string()
    }
}

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
    pub fn of_net(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

/// Who opens the connection an exemption covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Peers connect to this host's ports.
    In,
    /// This host connects to peers' ports.
    Out,
    Both,
}

/// An inclusive port range; `lo <= hi` always holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }
    pub fn contains(&self, other: &PortRange) -> bool {
        self.lo <= other.lo && other.hi <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl From<PortRange> for String {
    fn from(p: PortRange) -> String {
        p.to_string()
    }
}

/// A 32-byte X25519 public key (base64 in the file).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn to_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
    /// Standard base64 of exactly 32 bytes, in its canonical spelling (see `canonical`).
    pub fn from_base64(s: &str) -> Option<PublicKey> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()?;
        Some(PublicKey::canonical(bytes.try_into().ok()?))
    }
    /// The key X25519 reads from `bytes`: bit 255 cleared and reduced mod 2^255 - 19
    /// (RFC 7748 section 5), so that every spelling of one point compares equal.
    pub fn canonical(bytes: [u8; 32]) -> PublicKey {
        PublicKey(crate::curve::canonical(bytes))
    }
    /// A point of small order: the shared secret with it is all zeros for any private key.
    pub fn is_low_order(&self) -> bool {
        crate::curve::is_low_order(&crate::curve::canonical(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl From<PublicKey> for String {
    fn from(k: PublicKey) -> String {
        k.to_base64()
    }
}

/// The networks an endpoint stands for.
pub fn any_prefixes() -> Vec<IpNet> {
    vec![
        "0.0.0.0/0".parse().expect("literal"),
        "::/0".parse().expect("literal"),
    ]
}

fn host_net(a: &IpAddr) -> IpNet {
    IpNet::from(*a)
}

impl Policy {
    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == name)
    }
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
    pub fn authority(&self, name: &str) -> Option<&Authority> {
        self.authorities.iter().find(|a| a.name == name)
    }
    /// The host whose public key is `key`, if any.
    pub fn host_by_key(&self, key: &PublicKey) -> Option<&Host> {
        self.hosts.iter().find(|h| &h.public_key == key)
    }
    /// The prefixes an endpoint stands for (host/cluster addresses as /32 or /128).
    /// References are known to resolve after validation; an unknown one yields nothing.
    /// An authority endpoint stands for every address: its peers are known by certificate.
    pub fn resolve(&self, e: &Endpoint) -> Vec<IpNet> {
        match e {
            Endpoint::Any | Endpoint::Authority(_) => any_prefixes(),
            Endpoint::Zone(n) => self.zone(n).map(|z| z.prefixes.clone()).unwrap_or_default(),
            Endpoint::Host(n) => self
                .host(n)
                .map(|h| h.addresses.iter().map(host_net).collect())
                .unwrap_or_default(),
            Endpoint::Cluster(n) => self
                .cluster(n)
                .map(|c| c.addresses.iter().map(host_net).collect())
                .unwrap_or_default(),
            Endpoint::Prefix(p) => vec![*p],
        }
    }
    /// The union of the prefixes of a list of endpoints. A long list (a rule naming
    /// thousands of hosts) looks hosts up by name in a map, not by a scan each.
    pub fn resolve_all(&self, es: &[Endpoint]) -> Vec<IpNet> {
        if es.len() < 32 {
            return es.iter().flat_map(|e| self.resolve(e)).collect();
        }
        let hosts: std::collections::HashMap<&str, &Host> =
            self.hosts.iter().map(|h| (h.name.as_str(), h)).collect();
        es.iter()
            .flat_map(|e| match e {
                Endpoint::Host(n) => hosts
                    .get(n.as_str())
                    .map(|h| h.addresses.iter().map(host_net).collect())
                    .unwrap_or_default(),
                other => self.resolve(other),
            })
            .collect()
    }
}

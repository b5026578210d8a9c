//! The XFRM object model shared by the compiler, the diff and the netlink layer.
//!
//! Identity is kept apart from attributes: a [`PolicyKey`] is what the kernel uses to find a
//! policy (direction, selector, mark), a [`SaKey`] what it uses to find an SA (destination,
//! SPI; the protocol is always ESP). A changed spec under the same key is an update.
//! Only what the kernel stores is in a `*Spec`; where an object came from (rule, peer, epoch)
//! rides beside it in `Desired` and is never compared.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

pub use policy_schema::Mode;

use crate::secret::Secret;

/// IP protocol number of ESP.
pub const IPPROTO_ESP: u8 = 50;
/// The ESP-in-UDP port (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// Policy direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    In,
    Out,
    Fwd,
}

impl Dir {
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
            Dir::Fwd => "fwd",
        }
    }
}

/// A selector port match, XFRM style: matches when `(port & mask) == (value & mask)`.
/// `mask == 0` matches every port. For ICMP, sport carries the type and dport the code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMatch {
    pub port: u16,
    pub mask: u16,
}

impl PortMatch {
    pub const ANY: PortMatch = PortMatch { port: 0, mask: 0 };
    pub fn exact(port: u16) -> PortMatch {
        PortMatch { port, mask: 0xffff }
    }
    pub fn is_any(&self) -> bool {
        self.mask == 0
    }
    /// The inclusive range this match covers (only prefix-shaped masks are produced by us).
    pub fn range(&self) -> (u16, u16) {
        let lo = self.port & self.mask;
        (lo, lo | !self.mask)
    }
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = self.range();
        if self.mask == 0 {
            f.write_str("any")
        } else if lo == hi {
            write!(f, "{lo}")
        } else {
            write!(f, "{lo}-{hi}")
        }
    }
}

/// The traffic a policy or SA applies to. `src` and `dst` are of the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    pub src: IpNet,
    pub dst: IpNet,
    /// IP protocol number, 0 = any.
    pub proto: u8,
    pub sport: PortMatch,
    pub dport: PortMatch,
}

impl Selector {
    /// Addresses only, every protocol and port.
    pub fn between(src: IpNet, dst: IpNet) -> Selector {
        Selector {
            src,
            dst,
            proto: 0,
            sport: PortMatch::ANY,
            dport: PortMatch::ANY,
        }
    }
    pub fn is_v6(&self) -> bool {
        matches!(self.src, IpNet::V6(_))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.src, self.dst)?;
        if self.proto != 0 {
            write!(f, " proto {}", self.proto)?;
        }
        if !self.sport.is_any() {
            write!(f, " sport {}", self.sport)?;
        }
        if !self.dport.is_any() {
            write!(f, " dport {}", self.dport)?;
        }
        Ok(())
    }
}

/// An XFRM mark (value/mask). Our policies carry none, except transition guards and
/// backstops (whose keys need one to differ from the policy they cover).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Mark {
    pub value: u32,
    pub mask: u32,
}

/// How the kernel finds a policy: (dir, selector, mark). Priority is an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub dir: Dir,
    pub sel: Selector,
    pub mark: Option<Mark>,
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {} {}", self.dir.as_str(), self.sel)?;
        if let Some(m) = self.mark {
            write!(f, " mark {:#x}/{:#x}", m.value, m.mask)?;
        }
        Ok(())
    }
}

/// Template level: `required` drops traffic without an SA, `use` falls back to clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Required,
    Use,
}

/// An ESP template of a protecting policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Template {
    pub mode: Mode,
    pub reqid: u32,
    pub level: Level,
    /// Tunnel endpoints (src, dst); None in transport mode (wildcard: the flow's addresses).
    pub tunnel: Option<(IpAddr, IpAddr)>,
}

/// What a policy does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyAction {
    /// Clear traffic passes (no template).
    Allow,
    /// Traffic is dropped.
    Block,
    /// ESP templates (one, in practice). Shared: every policy of a rule has the same
    /// action, and 20,000 policies need not carry 20,000 copies.
    Protect(Arc<[Template]>),
}

impl PolicyAction {
    /// Whether a change away from this action could expose a protected flow:
    /// `block` and `required` templates protect; `allow` and `use` let clear through.
    pub fn is_protective(&self) -> bool {
        match self {
            PolicyAction::Allow => false,
            PolicyAction::Block => true,
            PolicyAction::Protect(t) => t.iter().all(|t| t.level == Level::Required),
        }
    }
}

/// The kernel-visible attributes of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicySpec {
    /// XFRM priority: lower number wins.
    pub priority: u32,
    pub action: PolicyAction,
}

/// How the kernel finds an SA: (destination, SPI); the protocol is always ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaKey {
    pub dst: IpAddr,
    pub spi: u32,
}

impl fmt::Display for SaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sa dst {} spi {:#010x}", self.dst, self.spi)
    }
}

/// ESP transforms, with the algorithm names the kernel's crypto API knows (static when
/// compiled, owned when decoded from the kernel: a compile makes tens of thousands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// An AEAD (`rfc4106(gcm(aes))`, `rfc7539esp(chacha20,poly1305)`); key includes the salt.
    Aead {
        name: Cow<'static, str>,
        key: Secret,
        icv_bits: u32,
    },
    /// Encryption plus truncated HMAC (`cbc(aes)` + `hmac(sha256)`).
    EncAuth {
        enc_name: Cow<'static, str>,
        enc_key: Secret,
        auth_name: Cow<'static, str>,
        auth_key: Secret,
        trunc_bits: u32,
    },
}

impl Algorithm {
    /// Whether [`Algorithm::display_name`] is `name` (without building it).
    pub fn is_named(&self, name: &str) -> bool {
        match self {
            Algorithm::Aead { name: n, .. } => n == name,
            Algorithm::EncAuth {
                enc_name,
                auth_name,
                ..
            } => name.split_once('+') == Some((enc_name, auth_name)),
        }
    }
    /// The name shown to users (`plan --json` field `algorithm`).
    pub fn display_name(&self) -> String {
        match self {
            Algorithm::Aead { name, .. } => name.to_string(),
            Algorithm::EncAuth {
                enc_name,
                auth_name,
                ..
            } => format!("{enc_name}+{auth_name}"),
        }
    }
    /// Integrity check value length in bits.
    pub fn icv_bits(&self) -> u32 {
        match self {
            Algorithm::Aead { icv_bits, .. } => *icv_bits,
            Algorithm::EncAuth { trunc_bits, .. } => *trunc_bits,
        }
    }
}

/// ESP-in-UDP encapsulation (type ESPINUDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encap {
    pub sport: u16,
    pub dport: u16,
}

/// SA lifetimes in seconds after installation (byte and packet limits are unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lifetime {
    pub soft_secs: u64,
    pub hard_secs: u64,
}

/// The kernel-visible attributes of an ESP SA that the agent sets and compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSpec {
    pub src: IpAddr,
    pub reqid: u32,
    pub mode: Mode,
    /// Pinned to the pair's addresses (and protocol when every rule agrees on one) so a
    /// decrypted packet from another source is dropped (`XfrmInStateMismatch`).
    pub sel: Selector,
    pub alg: Algorithm,
    /// Anti-replay window in packets (with ESN, the bitmap length is derived from it).
    pub replay_window: u32,
    pub esn: bool,
    pub encap: Option<Encap>,
    pub lifetime: Lifetime,
}

/// Which way an SA carries traffic, seen from this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaDir {
    In,
    Out,
}

/// Where a desired policy comes from (for logs, errors and status; never compared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Origin {
    // Shared names: every policy of a rule or exemption points at one copy.
    Exemption(Arc<str>),
    Rule(Arc<str>),
    /// Built in by the agent (IPv6 neighbour discovery).
    Builtin(Arc<str>),
    /// A temporary block inserted by the diff around an unsafe transition.
    Guard,
    /// The fail-closed `block` under a protective outbound policy of the named rule
    /// (`plan/compile/backstop.rs`).
    Backstop(Arc<str>),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Exemption(n) => write!(f, "exemption {n}"),
            Origin::Rule(n) => write!(f, "rule {n}"),
            Origin::Builtin(n) => write!(f, "builtin {n}"),
            Origin::Guard => f.write_str("transition guard"),
            Origin::Backstop(n) => write!(f, "backstop of rule {n}"),
        }
    }
}

/// A policy the compiler wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredPolicy {
    pub spec: PolicySpec,
    pub origin: Origin,
}

/// Where a desired SA comes from (never compared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaMeta {
    /// Peer host (or `cluster:NAME` when the peer side is a virtual address).
    pub peer: String,
    pub dir: SaDir,
    pub epoch: u64,
    /// Initial outbound ESN sequence number set at installation, derived from the time so
    /// that a re-installed SA (restart, repair, failover) never falls inside the window the
    /// peer has already seen. Not compared: the kernel's counter moves on.
    pub initial_seq: u64,
}

/// An SA the compiler wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredSa {
    pub spec: SaSpec,
    pub meta: SaMeta,
}

/// Everything this host's kernel should hold, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub host: String,
    pub policies: BTreeMap<PolicyKey, DesiredPolicy>,
    pub states: BTreeMap<SaKey, DesiredSa>,
    /// When the desired set changes next (epoch rotation steps), on a whole second.
    pub next_change: Option<crate::plan::Timestamp>,
}

/// Counters the kernel keeps for an SA (observed only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SaStats {
    pub bytes: u64,
    pub packets: u64,
    /// Unix seconds of installation and of last use (0 = never used).
    pub add_time: u64,
    pub use_time: u64,
    pub replay_drops: u32,
    pub integrity_failures: u32,
}

/// An owned SA as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedSa {
    pub spec: SaSpec,
    pub stats: SaStats,
}

/// The kernel's owned objects (by reqid range, priority band and SPI range), plus the
/// keys of foreign objects so that the diff never writes over one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub policies: BTreeMap<PolicyKey, PolicySpec>,
    pub states: BTreeMap<SaKey, ObservedSa>,
    pub foreign_policies: BTreeSet<PolicyKey>,
    pub foreign_states: BTreeSet<SaKey>,
}

/// One kernel write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    AddSa(SaKey, SaSpec, u64),
    UpdateSa(SaKey, SaSpec),
    DelSa(SaKey),
    AddPolicy(PolicyKey, PolicySpec),
    UpdatePolicy(PolicyKey, PolicySpec),
    DelPolicy(PolicyKey),
}

/// A kernel write and what it is for (the rule or peer it came from), for errors and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    pub label: String,
}

impl OpKind {
    /// `+`, `~` or `-`.
    pub fn sign(&self) -> char {
        match self {
            OpKind::AddSa(..) | OpKind::AddPolicy(..) => '+',
            OpKind::UpdateSa(..) | OpKind::UpdatePolicy(..) => '~',
            OpKind::DelSa(..) | OpKind::DelPolicy(..) => '-',
        }
    }
    pub fn is_state(&self) -> bool {
        matches!(
            self,
            OpKind::AddSa(..) | OpKind::UpdateSa(..) | OpKind::DelSa(..)
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = self.kind.sign();
        match &self.kind {
            OpKind::AddSa(k, s, _) | OpKind::UpdateSa(k, s) => {
                write!(f, "{sign} {k} src {} reqid {}", s.src, s.reqid)?
            }
            OpKind::DelSa(k) => write!(f, "{sign} {k}")?,
            OpKind::AddPolicy(k, s) | OpKind::UpdatePolicy(k, s) => {
                write!(f, "{sign} {k} priority {}", s.priority)?
            }
            OpKind::DelPolicy(k) => write!(f, "{sign} {k}")?,
        }
        write!(f, " ({})", self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_algorithm_is_named_as_displayed() {
        let aead = Algorithm::Aead {
            name: "rfc4106(gcm(aes))".into(),
            key: Secret::new(vec![0; 20]),
            icv_bits: 128,
        };
        let enc_auth = Algorithm::EncAuth {
            enc_name: "cbc(aes)".into(),
            enc_key: Secret::new(vec![0; 16]),
            auth_name: "hmac(sha256)".into(),
            auth_key: Secret::new(vec![0; 32]),
            trunc_bits: 128,
        };
        for a in [&aead, &enc_auth] {
            assert!(a.is_named(&a.display_name()));
        }
        assert!(!aead.is_named("cbc(aes)+hmac(sha256)"));
        assert!(!enc_auth.is_named("rfc4106(gcm(aes))"));
        assert!(!enc_auth.is_named("cbc(aes)"));
        assert!(!enc_auth.is_named("cbc(aes)+hmac(sha1)"));
    }
}

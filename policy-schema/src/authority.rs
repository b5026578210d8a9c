//! IKEv2 peers outside the inventory: named certificate authorities, the identity patterns
//! that narrow whom they vouch for, and how a rule keys its SAs. Plain data; the agent
//! reads the certificate and CRL files named here (this crate never opens them).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Serialize;

/// `[[authorities]]`: a trust anchor whose certificate holders IKEv2 may admit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Authority {
    /// Unique name; rules say `ca:NAME`.
    pub name: String,
    /// PEM or DER files holding the CA certificate(s); absolute paths.
    pub ca_certificates: Vec<PathBuf>,
    /// CRL files issued by this CA; absolute paths.
    pub crls: Vec<PathBuf>,
    pub revocation: Revocation,
    pub scope: Scope,
    /// A peer's certificate must match one of these (empty: any certificate of the CA).
    pub identities: Vec<IdentityPattern>,
    /// Warn this many seconds before a CRL's nextUpdate (`crl-warning`).
    pub crl_warning: u64,
}

/// `crl-warning` when the file gives none: a day, time to publish a fresh CRL.
pub const CRL_WARNING_DEFAULT: u64 = 86_400;
/// The range of `crl-warning`: a minute to 90 days.
pub const CRL_WARNING: (u64, u64) = (60, 90 * 86_400);

/// What a missing or outdated CRL means for peers of an authority.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Revocation {
    /// No valid CRL (missing, unreadable, past `nextUpdate`): new peers are refused.
    #[default]
    Strict,
    /// Certificates are checked against a CRL when one is valid, accepted otherwise.
    Relaxed,
}

impl Revocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Revocation::Strict => "strict",
            Revocation::Relaxed => "relaxed",
        }
    }
}

/// Which rules admit an authority's certificate holders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only rules that name it (`ca:NAME`): a partner's CA (federation).
    #[default]
    Named,
    /// Also every `require`/`request` rule whose remote side is an address range
    /// (`any`, `zone:…`, a prefix): the organisation's own CA.
    Any,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Named => "named",
            Scope::Any => "any",
        }
    }
}

/// How a rule's SAs with inventory hosts get their keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyExchange {
    /// Derived from the hosts' X25519 keys and the epoch: no handshake, no forward secrecy.
    #[default]
    Static,
    /// Negotiated with IKEv2 on demand (forward secrecy). Peers outside the inventory
    /// always use IKEv2, whatever this says.
    Ikev2,
}

impl KeyExchange {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyExchange::Static => "static",
            KeyExchange::Ikev2 => "ikev2",
        }
    }
}

/// The authorities whose certificate holders a rule admits as the remote end, per side
/// (derived from `ca:` endpoints and authorities with `scope = "any"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Admission {
    /// Authorities admitted for peers on the `from` side (a local host on the `to` side).
    pub from: Vec<String>,
    /// Authorities admitted for peers on the `to` side.
    pub to: Vec<String>,
}

impl Admission {
    /// The admission of a rule with these sides and action, given the names of the
    /// authorities with `scope = "any"` (`broad`, in file order).
    pub fn of(
        from: &[crate::model::Endpoint],
        to: &[crate::model::Endpoint],
        action: crate::model::Action,
        broad: &[&str],
    ) -> Admission {
        if !action.uses_esp() {
            return Admission::default();
        }
        Admission {
            from: side(from, broad),
            to: side(to, broad),
        }
    }

    /// No authority peer on either side: only the inventory.
    pub fn is_empty(&self) -> bool {
        self.from.is_empty() && self.to.is_empty()
    }
    /// Every admitted authority once, in first-seen order.
    pub fn all(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for n in self.from.iter().chain(&self.to) {
            if !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
        out
    }
}

/// The authorities one side of an ESP rule admits: those it names, then the broad ones
/// when the side has an address range (`any`, a zone, a prefix).
fn side(ends: &[crate::model::Endpoint], broad: &[&str]) -> Vec<String> {
    use crate::model::Endpoint;
    let mut out: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    };
    for e in ends {
        if let Endpoint::Authority(n) = e {
            add(n);
        }
    }
    let ranges =
        |e: &Endpoint| matches!(e, Endpoint::Any | Endpoint::Zone(_) | Endpoint::Prefix(_));
    if ends.iter().any(ranges) {
        broad.iter().for_each(|n| add(n));
    }
    out
}

/// A text pattern: exact (ASCII case-insensitive), or `*` then a suffix that the value
/// must end with, after at least one more character.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Glob(pub String);

impl Glob {
    pub fn matches(&self, s: &str) -> bool {
        match self.0.strip_prefix('*') {
            Some(suffix) => {
                s.len() > suffix.len()
                    && s.is_char_boundary(s.len() - suffix.len())
                    && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            None => s.eq_ignore_ascii_case(&self.0),
        }
    }
}

/// One identity constraint on a peer's certificate (see docs/ike.md, "Identity patterns").
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub enum IdentityPattern {
    /// `dns:host.corp.example` or `dns:*.corp.example`: a dNSName SAN.
    Dns(Glob),
    /// `email:ops@corp.example` or `email:*@corp.example`: an rfc822Name SAN.
    Email(Glob),
    /// `ip:10.20.0.0/16`: an iPAddress SAN inside the prefix.
    Ip(IpNet),
    /// `dn:O=Corp,OU=Laptops`: every listed attribute appears in the subject with a
    /// matching value (attribute names as in RFC 4514, case-insensitive).
    Dn(Vec<(String, Glob)>),
}

/// What a peer's certificate says about it, for matching [`IdentityPattern`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertIdentity {
    /// Subject attributes as (short name such as "CN", value).
    pub subject: Vec<(String, String)>,
    pub dns: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl IdentityPattern {
    /// Whether the certificate's identity satisfies this pattern.
    pub fn matches(&self, id: &CertIdentity) -> bool {
        match self {
            IdentityPattern::Dns(g) => id.dns.iter().any(|d| g.matches(d)),
            IdentityPattern::Email(g) => id.emails.iter().any(|e| g.matches(e)),
            IdentityPattern::Ip(p) => id.ips.iter().any(|a| p.contains(a)),
            IdentityPattern::Dn(want) => want.iter().all(|(attr, g)| {
                id.subject
                    .iter()
                    .any(|(a, v)| a.eq_ignore_ascii_case(attr) && g.matches(v))
            }),
        }
    }

    /// Parse `kind:value`; the error is a message fragment ("is …, expected …").
    pub fn parse(s: &str) -> Result<IdentityPattern, String> {
        const EXPECTED: &str =
            "expected dns:NAME, dns:*.SUFFIX, email:ADDRESS, email:*@DOMAIN, ip:PREFIX or dn:ATTR=VALUE,…";
        let Some((kind, v)) = s.split_once(':') else {
            return Err(format!("is not an identity pattern ({EXPECTED})"));
        };
        let glob = |v: &str| -> Result<Glob, String> {
            let rest = v.strip_prefix('*').unwrap_or(v);
            if rest.is_empty() || rest.contains(['*', ' ', ',']) {
                return Err(format!(
                    "has a bad {kind} value (expected a name, or \"*\" then a suffix such as \"*.corp.example\"; one \"*\" at the start at most)"
                ));
            }
            Ok(Glob(v.to_string()))
        };
        match kind {
            "dns" => Ok(IdentityPattern::Dns(glob(v)?)),
            "email" if v.contains('@') => Ok(IdentityPattern::Email(glob(v)?)),
            "email" => Err(
                "has an email value without \"@\" (expected e.g. \"email:*@corp.example\")".into(),
            ),
            "ip" => crate::values::prefix(v).map(IdentityPattern::Ip),
            "dn" => dn(v),
            _ => Err(format!(
                "has an unknown identity kind \"{}:\" ({EXPECTED}){}",
                crate::text::shown(kind),
                crate::suggest::did_you_mean(kind, ["dns", "email", "ip", "dn"])
            )),
        }
    }
}

fn dn(v: &str) -> Result<IdentityPattern, String> {
    let mut out = Vec::new();
    for part in v.split(',') {
        let Some((attr, value)) = part.trim().split_once('=') else {
            return Err(
                "has a dn part without \"=\" (expected e.g. \"dn:O=Corp,OU=Laptops\")".into(),
            );
        };
        let attr = attr.trim();
        if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "has a bad dn attribute \"{}\" (expected a name such as CN, O, OU, C, DC)",
                crate::text::shown(attr)
            ));
        }
        let value = value.trim();
        let rest = value.strip_prefix('*').unwrap_or(value);
        if rest.is_empty() || rest.contains('*') {
            return Err(format!(
                "has a bad value for dn attribute {attr} (expected text, or \"*\" then a suffix)"
            ));
        }
        out.push((attr.to_string(), Glob(value.to_string())));
    }
    Ok(IdentityPattern::Dn(out))
}

impl fmt::Display for IdentityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityPattern::Dns(g) => write!(f, "dns:{}", g.0),
            IdentityPattern::Email(g) => write!(f, "email:{}", g.0),
            IdentityPattern::Ip(p) => write!(f, "ip:{p}"),
            IdentityPattern::Dn(parts) => {
                f.write_str("dn:")?;
                for (i, (a, g)) in parts.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep}{a}={}", g.0)?;
                }
                Ok(())
            }
        }
    }
}

impl From<IdentityPattern> for String {
    fn from(p: IdentityPattern) -> String {
        p.to_string()
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;

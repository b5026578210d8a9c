//! The format, declared once: every table's keys with their kind, whether they are required,
//! their documentation and default. The parser walks files against these tables (unknown
//! keys, missing keys, types) and the JSON Schema is generated from them, so the two cannot
//! disagree.

use serde_json::{json, Value};

use crate::model::{Defaults, Ownership};

/// What a key holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// An integer in an inclusive range.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// A name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`.
    Name,
    /// One string out of a fixed list.
    Enum(&'static [&'static str]),
    /// Seconds as an integer or a string like "1h30m", in an inclusive range.
    Duration {
        min: u64,
        max: u64,
    },
    /// `[lo, hi]` of u32, each an integer or a "0x…" string.
    Range32,
    /// Standard base64 of 32 bytes.
    Key,
    /// A non-empty list of plain unicast addresses.
    Addresses,
    /// A list of prefixes (a bare address is a /32 or /128).
    Prefixes,
    /// A list of names of other entries.
    Names,
    /// A list of endpoints: any, zone:NAME, host:NAME, cluster:NAME, ca:NAME, prefix or address.
    Endpoints,
    /// icmp | icmpv6 | tcp | udp, or an IP protocol number.
    Protocol,
    /// A list of ports and "lo-hi" ranges.
    Ports,
    /// A list of absolute file paths (read by the agent, never by this crate).
    Paths,
    /// A list of identity patterns: dns:…, email:…, ip:…, dn:….
    Identities,
    /// A sub-table with fixed keys.
    Table(&'static TableSpec),
    /// An array of tables with fixed keys.
    TableArray(&'static TableSpec),
    /// A table of name → list of prefixes.
    ZoneMap,
}

/// One key of a table.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub doc: &'static str,
    /// The value used when the key is absent, as JSON (taken from the model's defaults).
    pub default: Option<fn() -> Value>,
}

/// A table with fixed keys.
#[derive(Debug)]
pub(crate) struct TableSpec {
    /// How messages call it: "defaults", "hosts", …
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
}

const fn req(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        doc,
        default: None,
    }
}

const fn opt(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        doc,
        default: None,
    }
}

const fn dflt(name: &'static str, kind: Kind, doc: &'static str, d: fn() -> Value) -> Field {
    Field {
        name,
        kind,
        required: false,
        doc,
        default: Some(d),
    }
}

pub(crate) const CIPHERS: &[&str] = &[
    "aes-gcm-128",
    "aes-gcm-256",
    "chacha20-poly1305",
    "aes-cbc-hmac-sha256",
    "3des-hmac-sha1",
];
pub(crate) const MODES: &[&str] = &["transport", "tunnel"];
pub(crate) const ACTIONS: &[&str] = &["require", "request", "permit", "block"];
pub(crate) const DIRECTIONS: &[&str] = &["in", "out", "both"];
pub(crate) const ENCAPSULATIONS: &[&str] = &["none", "udp"];
pub(crate) const KEY_EXCHANGES: &[&str] = &["static", "ikev2"];
pub(crate) const REVOCATIONS: &[&str] = &["strict", "relaxed"];
pub(crate) const SCOPES: &[&str] = &["named", "any"];

/// Key epochs from 10 s (rekeying more often only churns SAs) to one day. The time-derived initial ESN sequence number spends
/// 2^32 numbers over an SA's hard lifetime (about two intervals), so the rate a restarted
/// SA may have sent at without replay drops at its peer falls with the interval: ~24,000
/// packets per second at one day (~580,000 at the default hour). Longer epochs would make
/// that protection meaningless while buying nothing (rotation costs a few netlink messages).
pub(crate) const REKEY_INTERVAL: (u64, u64) = (10, 86_400);
/// Clock skew beyond an hour is a broken clock, not skew; an hour at most also keeps
/// `2 × (2 × skew + grace)` within the longest interval.
pub(crate) const CLOCK_SKEW: (u64, u64) = (0, 3_600);
/// Packets in flight outlive an SA by seconds; an hour is generous.
pub(crate) const GRACE: (u64, u64) = (0, 3_600);
/// `request-timeout`: an IKE peer on any path answers within seconds; a minute is plenty.
pub(crate) const REQUEST_TIMEOUT: (u64, u64) = (1, 60);

/// The ESN replay window the kernel accepts (XFRMA_REPLAY_ESN_VAL bitmap; the agent keeps
/// it within what `ip xfrm` and strongSwan use).
pub(crate) const REPLAY_WINDOW: (i64, i64) = (32, 32768);

fn d() -> Defaults {
    Defaults::default()
}

fn o() -> Ownership {
    Ownership::default()
}

pub(crate) static DEFAULTS: TableSpec = TableSpec {
    name: "defaults",
    doc: "Values every rule and SA inherits unless it says otherwise.",
    fields: &[
        dflt(
            "cipher",
            Kind::Enum(CIPHERS),
            "ESP cipher suite of rules that name none.",
            || json!(d().cipher.as_str()),
        ),
        dflt(
            "mode",
            Kind::Enum(MODES),
            "ESP mode of rules that name none.",
            || json!(d().mode.as_str()),
        ),
        dflt(
            "rekey-interval",
            Kind::Duration {
                min: REKEY_INTERVAL.0,
                max: REKEY_INTERVAL.1,
            },
            "Length of a key epoch; keys change at every multiple of it (Unix time).",
            || json!(d().rekey_interval),
        ),
        dflt(
            "clock-skew",
            Kind::Duration {
                min: CLOCK_SKEW.0,
                max: CLOCK_SKEW.1,
            },
            "Largest clock difference between two hosts that key rotation tolerates.",
            || json!(d().clock_skew),
        ),
        dflt(
            "grace",
            Kind::Duration {
                min: GRACE.0,
                max: GRACE.1,
            },
            "How long an old inbound SA stays after every peer may have switched.",
            || json!(d().grace),
        ),
        dflt(
            "request-timeout",
            Kind::Duration {
                min: REQUEST_TIMEOUT.0,
                max: REQUEST_TIMEOUT.1,
            },
            "How long the IKEv2 exchange of a `request` rule waits for the peer's first answer before it gives up (the peer's traffic flows clear); it is tried again later.",
            || json!(d().request_timeout),
        ),
        dflt(
            "replay-window",
            Kind::Int {
                min: REPLAY_WINDOW.0,
                max: REPLAY_WINDOW.1,
            },
            "ESN anti-replay window, in packets.",
            || json!(d().replay_window),
        ),
        dflt(
            "allow-legacy",
            Kind::Bool,
            "Accept 3des-hmac-sha1 (with a warning).",
            || json!(d().allow_legacy),
        ),
        dflt(
            "exempt-neighbor-discovery",
            Kind::Bool,
            "Let IPv6 neighbour discovery (ICMPv6 133-137) pass in clear.",
            || json!(d().exempt_neighbor_discovery),
        ),
        dflt(
            "key-exchange",
            Kind::Enum(KEY_EXCHANGES),
            "Keying of rules that name none, for inventory hosts: static keys or IKEv2.",
            || json!(d().key_exchange.as_str()),
        ),
    ],
};

pub(crate) static OWNERSHIP: TableSpec = TableSpec {
    name: "ownership",
    doc: "The reqid, priority and SPI ranges that mark kernel objects as this agent's.",
    fields: &[
        dflt("reqid-range", Kind::Range32, "Inclusive reqid range, at least 32 wide, not containing 0.", || json!([o().reqid.0, o().reqid.1])),
        dflt("priority-range", Kind::Range32, "Inclusive XFRM priority band (lower = earlier), at least 256 + exemptions + 2 × rules wide.", || json!([o().priority.0, o().priority.1])),
        dflt("spi-range", Kind::Range32, "Inclusive SPI range, starting at 256 or above (RFC 4303 reserves 1-255).", || json!([o().spi.0, o().spi.1])),
    ],
};

pub(crate) static HOST: TableSpec = TableSpec {
    name: "hosts",
    doc: "An IPsec member: one agent with one X25519 key.",
    fields: &[
        req("name", Kind::Name, "Unique host name."),
        req(
            "addresses",
            Kind::Addresses,
            "The host's own unicast addresses.",
        ),
        req(
            "public-key",
            Kind::Key,
            "X25519 public key, standard base64 of 32 bytes.",
        ),
        opt(
            "zones",
            Kind::Names,
            "Zones the host declares itself in; each address must lie in one of them.",
        ),
        dflt(
            "encapsulation",
            Kind::Enum(ENCAPSULATIONS),
            "\"udp\": ESP-in-UDP on port 4500 (RFC 3948) for paths that drop protocol 50.",
            || json!("none"),
        ),
        opt(
            "gateway-for",
            Kind::Prefixes,
            "Subnets this host protects as a tunnel-mode gateway.",
        ),
    ],
};

pub(crate) static CLUSTER: TableSpec = TableSpec {
    name: "clusters",
    doc: "Virtual addresses shared by member hosts (failover), with their own key.",
    fields: &[
        req("name", Kind::Name, "Unique cluster name."),
        req(
            "addresses",
            Kind::Addresses,
            "The shared unicast addresses.",
        ),
        req(
            "public-key",
            Kind::Key,
            "X25519 public key of the cluster, distinct from every host key.",
        ),
        req(
            "members",
            Kind::Names,
            "Names of the hosts that may hold the addresses (at least one).",
        ),
        dflt(
            "encapsulation",
            Kind::Enum(ENCAPSULATIONS),
            "\"udp\": ESP-in-UDP on port 4500.",
            || json!("none"),
        ),
    ],
};

pub(crate) static EXEMPTION: TableSpec = TableSpec {
    name: "exemptions",
    doc: "Traffic that never gets IPsec (ICMP, IKE, DHCP, Intel AMT, ...).",
    fields: &[
        req("name", Kind::Name, "Unique exemption name."),
        req(
            "protocol",
            Kind::Protocol,
            "icmp, icmpv6, tcp, udp, or an IP protocol number 1-255.",
        ),
        opt(
            "ports",
            Kind::Ports,
            "Service ports (tcp, udp and other port protocols only); absent = all.",
        ),
        dflt(
            "direction",
            Kind::Enum(DIRECTIONS),
            "Who opens the connection: peers to our ports (in), we to theirs (out), or both.",
            || json!("both"),
        ),
        opt(
            "peers",
            Kind::Endpoints,
            "Remote endpoints it applies to; absent = any peer.",
        ),
    ],
};

pub(crate) static RULE: TableSpec = TableSpec {
    name: "rules",
    doc: "A rule: first match in file order wins; a rule from A to B also matches B to A.",
    fields: &[
        req("name", Kind::Name, "Unique rule name."),
        req(
            "from",
            Kind::Endpoints,
            "One side: any, zone:NAME, host:NAME, cluster:NAME, ca:NAME, a prefix or an address.",
        ),
        req("to", Kind::Endpoints, "The other side, same forms."),
        opt(
            "protocol",
            Kind::Protocol,
            "Restrict to one protocol; absent = all.",
        ),
        opt(
            "ports",
            Kind::Ports,
            "Ports on the `to` side (needs a port protocol); absent = all.",
        ),
        req(
            "action",
            Kind::Enum(ACTIONS),
            "require: ESP only; request: ESP when possible; permit: clear; block: drop.",
        ),
        opt(
            "mode",
            Kind::Enum(MODES),
            "ESP mode; absent = [defaults].mode.",
        ),
        opt(
            "cipher",
            Kind::Enum(CIPHERS),
            "Cipher suite; absent = [defaults].cipher.",
        ),
        opt(
            "key-exchange",
            Kind::Enum(KEY_EXCHANGES),
            "Keying with inventory hosts: static or ikev2; absent = [defaults].key-exchange. Authority peers always use ikev2.",
        ),
        opt(
            "identities",
            Kind::Identities,
            "Identity patterns an authority-admitted peer's certificate must also match (one of them).",
        ),
    ],
};

pub(crate) static AUTHORITY: TableSpec = TableSpec {
    name: "authorities",
    doc: "A certificate authority whose holders IKEv2 may admit as peers.",
    fields: &[
        req("name", Kind::Name, "Unique authority name; rules name it as ca:NAME."),
        req(
            "ca-certificates",
            Kind::Paths,
            "Absolute paths of the CA certificate files (PEM or DER), at least one.",
        ),
        opt(
            "crls",
            Kind::Paths,
            "Absolute paths of CRL files this CA issues.",
        ),
        dflt(
            "revocation",
            Kind::Enum(REVOCATIONS),
            "strict: no valid CRL refuses new peers (needs crls); relaxed: a missing or outdated CRL is a warning.",
            || json!("strict"),
        ),
        dflt(
            "scope",
            Kind::Enum(SCOPES),
            "named: admitted only by rules naming ca:NAME (a partner); any: also by require/request rules whose remote side is any, a zone or a prefix.",
            || json!("named"),
        ),
        opt(
            "identities",
            Kind::Identities,
            "Identity patterns a peer's certificate must match (one of them); absent = any holder.",
        ),
        dflt(
            "crl-warning",
            Kind::Duration {
                min: crate::authority::CRL_WARNING.0,
                max: crate::authority::CRL_WARNING.1,
            },
            "Warn (log, status, metric) this long before a CRL's nextUpdate.",
            || json!("1d"),
        ),
    ],
};

pub(crate) static ROOT: TableSpec = TableSpec {
    name: "policy",
    doc: "xfrm-agent policy file.",
    fields: &[
        req(
            "version",
            Kind::Int { min: 1, max: 1 },
            "Format version; must be 1.",
        ),
        opt("defaults", Kind::Table(&DEFAULTS), DEFAULTS.doc),
        opt("ownership", Kind::Table(&OWNERSHIP), OWNERSHIP.doc),
        opt(
            "zones",
            Kind::ZoneMap,
            "Named sets of prefixes: name = [\"10.10.0.0/24\", ...].",
        ),
        opt("hosts", Kind::TableArray(&HOST), HOST.doc),
        opt("clusters", Kind::TableArray(&CLUSTER), CLUSTER.doc),
        opt("authorities", Kind::TableArray(&AUTHORITY), AUTHORITY.doc),
        opt("exemptions", Kind::TableArray(&EXEMPTION), EXEMPTION.doc),
        opt("rules", Kind::TableArray(&RULE), RULE.doc),
    ],
};

impl Kind {
    /// What a value of this kind looks like, for "expected …" in messages.
    pub fn expected(&self) -> String {
        match self {
            Kind::Int { min, max } if min == max => format!("{min}"),
            Kind::Int { min, max } => format!("an integer {min}..={max}"),
            Kind::Bool => "true or false".into(),
            Kind::Name => "a name string".into(),
            Kind::Enum(values) => format!("one of {}", values.join(", ")),
            Kind::Duration { .. } => {
                "a duration (integer seconds or a string like \"1h30m\")".into()
            }
            Kind::Range32 => "[lo, hi] of integers or \"0x…\" strings".into(),
            Kind::Key => "a base64 public key string".into(),
            Kind::Addresses => "a list of addresses, e.g. [\"10.0.0.1\"]".into(),
            Kind::Prefixes => "a list of prefixes, e.g. [\"10.0.0.0/24\"]".into(),
            Kind::Names => "a list of names, e.g. [\"intranet\"]".into(),
            Kind::Endpoints => "a list of endpoints, e.g. [\"any\"] or [\"zone:intranet\"]".into(),
            Kind::Protocol => "icmp, icmpv6, tcp, udp or a protocol number 1-255".into(),
            Kind::Ports => "a list of ports, e.g. [80, \"16992-16995\"]".into(),
            Kind::Paths => {
                "a list of absolute paths, e.g. [\"/etc/xfrm-agent/ca/corp.pem\"]".into()
            }
            Kind::Identities => "a list of identity patterns, e.g. [\"dns:*.corp.example\"]".into(),
            Kind::Table(_) | Kind::ZoneMap => "a table".into(),
            Kind::TableArray(t) => format!("an array of tables ([[{}]])", t.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Cipher, Mode};

    /// The enumerations the parser accepts are exactly the model's names.
    #[test]
    fn enums_match_the_model() {
        assert_eq!(CIPHERS, Cipher::ALL.map(Cipher::as_str));
        assert_eq!(MODES, [Mode::Transport, Mode::Tunnel].map(Mode::as_str));
        let actions = [
            Action::Require,
            Action::Request,
            Action::Permit,
            Action::Block,
        ];
        assert_eq!(ACTIONS, actions.map(Action::as_str));
    }

    #[test]
    fn every_table_has_unique_documented_keys() {
        for spec in [
            &ROOT, &DEFAULTS, &OWNERSHIP, &HOST, &CLUSTER, &AUTHORITY, &EXEMPTION, &RULE,
        ] {
            for (i, f) in spec.fields.iter().enumerate() {
                assert!(!f.doc.is_empty(), "{}.{}", spec.name, f.name);
                assert!(spec.fields[..i].iter().all(|g| g.name != f.name));
                assert!(
                    !(f.required && f.default.is_some()),
                    "{}.{}",
                    spec.name,
                    f.name
                );
            }
        }
    }
}

//! Each table of the format, read into its located raw form.

use super::endpoint::Known;
use super::entries::{start, want_str, Entries};
use super::tree::{Item, Table};
use crate::model::{
    Action, Cipher, Direction, Encapsulation, KeyExchange, Mode, Revocation, Scope,
};
use crate::raw::{
    Origin, RawAuthority, RawCluster, RawDefaults, RawExemption, RawHost, RawOwnership, RawRule,
    RawZone, Sp,
};
use crate::report::Report;
use crate::values;

fn mode(s: &str) -> Mode {
    if s == "tunnel" {
        Mode::Tunnel
    } else {
        Mode::Transport
    }
}

fn cipher(s: &str) -> Cipher {
    Cipher::parse(s).expect("the field table lists only known ciphers")
}

fn encapsulation(s: Option<Sp<&str>>) -> Encapsulation {
    match s.map(|s| s.v) {
        Some("udp") => Encapsulation::Udp,
        _ => Encapsulation::None,
    }
}

fn key_exchange(s: &str) -> KeyExchange {
    if s == "ikev2" {
        KeyExchange::Ikev2
    } else {
        KeyExchange::Static
    }
}

fn action(s: &str) -> Action {
    match s {
        "require" => Action::Require,
        "request" => Action::Request,
        "permit" => Action::Permit,
        _ => Action::Block,
    }
}

fn direction(s: Option<&Sp<&str>>) -> Direction {
    match s.map(|s| s.v) {
        Some("in") => Direction::In,
        Some("out") => Direction::Out,
        _ => Direction::Both,
    }
}

pub(crate) fn defaults(rep: &mut Report, e: &mut Entries) -> RawDefaults {
    let mut d = RawDefaults {
        table_at: Some(e.at),
        ..RawDefaults::default()
    };
    let v = &mut d.values;
    if let Some(c) = e.choice(rep, "cipher") {
        v.cipher = cipher(c.v);
        d.cipher_at = Some(c.at);
    }
    if let Some(m) = e.choice(rep, "mode") {
        v.mode = mode(m.v);
    }
    let before = e.ok;
    e.ok = true;
    for (key, slot, at) in [
        ("rekey-interval", &mut v.rekey_interval, &mut d.rekey_at),
        ("clock-skew", &mut v.clock_skew, &mut d.skew_at),
        ("grace", &mut v.grace, &mut d.grace_at),
    ] {
        if let Some(t) = e.duration(rep, key) {
            *slot = t.v;
            *at = Some(t.at);
        }
    }
    d.durations_complete = e.ok;
    e.ok &= before;
    if let Some(w) = e.int(rep, "replay-window") {
        v.replay_window = u32::try_from(w.v).expect("range-checked by the field table");
    }
    if let Some(b) = e.bool(rep, "allow-legacy") {
        v.allow_legacy = b.v;
    }
    if let Some(b) = e.bool(rep, "exempt-neighbor-discovery") {
        v.exempt_neighbor_discovery = b.v;
    }
    if let Some(k) = e.choice(rep, "key-exchange") {
        v.key_exchange = key_exchange(k.v);
    }
    if let Some(t) = e.duration(rep, "request-timeout") {
        v.request_timeout = t.v;
    }
    d
}

pub(crate) fn ownership(rep: &mut Report, e: &mut Entries) -> RawOwnership {
    let mut o = RawOwnership {
        table_at: Some(e.at),
        ..RawOwnership::default()
    };
    if let Some(r) = e.range32(rep, "reqid-range") {
        o.values.reqid = r.v;
        o.reqid_at = Some(r.at);
    }
    if let Some(r) = e.range32(rep, "priority-range") {
        o.values.priority = r.v;
        o.priority_at = Some(r.at);
    }
    if let Some(r) = e.range32(rep, "spi-range") {
        o.values.spi = r.v;
        o.spi_at = Some(r.at);
    }
    o
}

/// `[zones]`: every key is a zone name, every value a list of prefixes.
pub(crate) fn zones(rep: &mut Report, table: &Table) -> Vec<RawZone> {
    let mut out = Vec::new();
    for entry in table.iter() {
        let (name, item, key_at) = (&*entry.key, &entry.item, entry.key_span.start);
        let mut complete = true;
        if let Err(frag) = values::name(name) {
            let shown = crate::text::shown(name);
            rep.error(key_at, format!("zones: zone name \"{shown}\" {frag}"));
            complete = false;
        } else if name == "any" {
            rep.error(
                key_at,
                "zones: zone name \"any\" is reserved (it means every address; expected another name)",
            );
            complete = false;
        }
        let (prefixes, ok) = zone_prefixes(rep, name, item, key_at);
        out.push(RawZone {
            name: Sp::new(name.to_string(), key_at),
            prefixes,
            complete: complete && ok,
        });
    }
    out
}

fn zone_prefixes(
    rep: &mut Report,
    name: &str,
    item: &Item,
    key_at: usize,
) -> (Vec<Sp<ipnet::IpNet>>, bool) {
    let name = &crate::text::shown(name);
    let Some(arr) = item.as_value().and_then(|v| v.as_array()) else {
        let found = super::entries::item_desc(item);
        rep.error(
            start(item.span(), key_at),
            format!("zones.{name} is {found}, expected a list of prefixes, e.g. [\"10.0.0.0/24\"]"),
        );
        return (Vec::new(), false);
    };
    let mut prefixes = Vec::new();
    let mut ok = true;
    for el in arr.iter() {
        let el_at = el.span.start;
        let parsed =
            want_str(el, "a prefix string such as \"10.0.0.0/24\"").and_then(values::prefix);
        match parsed {
            Ok(p) => prefixes.push(Sp::new(p, el_at)),
            Err(frag) => {
                let raw = rep.raw(Some(el.span.clone()));
                rep.error(el_at, format!("zones.{name}: prefix {raw} {frag}"));
                ok = false;
            }
        }
    }
    (prefixes, ok)
}

/// Called once every key is read: the label moves into the entry.
fn origin(e: &mut Entries) -> Origin {
    Origin {
        at: e.at,
        label: std::mem::take(&mut e.label),
        complete: e.ok,
    }
}

pub(crate) fn host(rep: &mut Report, e: &mut Entries, known: &Known) -> RawHost {
    let mut h = RawHost {
        name: e.name(rep, "name"),
        addresses: e.addresses(rep, "addresses"),
        public_key: e.key(rep, "public-key"),
        zones: e.refs(rep, "zones", &known.zones, "zone", "[zones]"),
        encapsulation: encapsulation(e.choice(rep, "encapsulation")),
        gateway_for: e
            .prefixes(rep, "gateway-for")
            .map(|l| l.v)
            .unwrap_or_default(),
        ..RawHost::default()
    };
    h.origin = origin(e);
    h
}

pub(crate) fn cluster(rep: &mut Report, e: &mut Entries, known: &Known) -> RawCluster {
    let mut c = RawCluster {
        name: e.name(rep, "name"),
        addresses: e.addresses(rep, "addresses"),
        public_key: e.key(rep, "public-key"),
        members: e.refs(rep, "members", &known.hosts, "host", "[[hosts]]"),
        encapsulation: encapsulation(e.choice(rep, "encapsulation")),
        ..RawCluster::default()
    };
    c.origin = origin(e);
    c
}

pub(crate) fn authority(rep: &mut Report, e: &mut Entries) -> RawAuthority {
    let name = e.name(rep, "name");
    let ca_certificates = e.paths(rep, "ca-certificates");
    let crls = e.paths(rep, "crls");
    let revocation = e.choice(rep, "revocation");
    let scope = e.choice(rep, "scope");
    let identities = e.identities(rep, "identities");
    let crl_warning = e.duration(rep, "crl-warning");
    RawAuthority {
        origin: origin(e),
        name,
        ca_certificates,
        crls,
        revocation: match revocation.as_ref().map(|r| r.v) {
            Some("relaxed") => Revocation::Relaxed,
            _ => Revocation::Strict,
        },
        revocation_at: revocation.map(|r| r.at),
        scope: match scope.map(|s| s.v) {
            Some("any") => Scope::Any,
            _ => Scope::Named,
        },
        identities: identities.map(|l| l.v).unwrap_or_default(),
        crl_warning,
    }
}

pub(crate) fn exemption(rep: &mut Report, e: &mut Entries, known: &Known) -> RawExemption {
    let name = e.name(rep, "name");
    let protocol = e.protocol(rep, "protocol");
    let ports = e.ports(rep, "ports");
    let dir = e.choice(rep, "direction");
    let peers = e.endpoints(rep, "peers", known);
    RawExemption {
        origin: origin(e),
        name,
        protocol,
        ports_at: ports.as_ref().map(|p| p.at),
        ports: ports.map(|p| p.v).unwrap_or_default(),
        direction: direction(dir.as_ref()),
        direction_at: dir.map(|d| d.at),
        peers_at: peers.as_ref().map(|p| p.at),
        peers: peers.map(|p| p.v).unwrap_or_default(),
    }
}

pub(crate) fn rule(rep: &mut Report, e: &mut Entries, known: &Known) -> RawRule {
    let name = e.name(rep, "name");
    let from = e.endpoints(rep, "from", known);
    let to = e.endpoints(rep, "to", known);
    let protocol = e.protocol(rep, "protocol");
    let ports = e.ports(rep, "ports");
    let action = e.choice(rep, "action").map(|a| Sp::new(action(a.v), a.at));
    let mode = e.choice(rep, "mode").map(|m| Sp::new(mode(m.v), m.at));
    let cipher = e.choice(rep, "cipher").map(|c| Sp::new(cipher(c.v), c.at));
    let keying = e.choice(rep, "key-exchange");
    let identities = e.identities(rep, "identities");
    let mut origin = origin(e);
    // A rule without both sides or an action cannot be reasoned about by the later checks.
    origin.complete &= from.is_some() && to.is_some() && action.is_some();
    RawRule {
        origin,
        name,
        from: from.map(|l| l.v).unwrap_or_default(),
        to_at: to.as_ref().map(|l| l.at),
        to: to.map(|l| l.v).unwrap_or_default(),
        protocol,
        ports_at: ports.as_ref().map(|p| p.at),
        ports: ports.map(|p| p.v).unwrap_or_default(),
        action,
        mode,
        cipher,
        key_exchange: keying.map(|k| Sp::new(key_exchange(k.v), k.at)),
        identities_at: identities.as_ref().map(|l| l.at),
        identities: identities.map(|l| l.v).unwrap_or_default(),
    }
}

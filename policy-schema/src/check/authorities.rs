//! Certificate authorities and the rules that admit their holders: revocation needs CRLs,
//! `ca:` endpoints only where IKEv2 can serve them, identity patterns only where a rule
//! admits someone to apply them to.

use rustc_hash::FxHashMap as HashMap;
use std::path::Path;

use crate::model::{Admission, Endpoint, KeyExchange, Mode, Revocation, Scope};
use crate::raw::{RawPolicy, RawRule};
use crate::report::Report;

pub(crate) fn check(rep: &mut Report, raw: &RawPolicy) {
    for a in raw.authorities.iter().filter(|a| a.origin.complete) {
        let label = &a.origin.label;
        if a.revocation == Revocation::Strict && a.crls.is_empty() {
            rep.error(
                a.revocation_at.unwrap_or(a.origin.at),
                format!("{label}: revocation = \"strict\" (the default) needs at least one CRL file, expected crls = [\"/…/crl.pem\"] or revocation = \"relaxed\""),
            );
        }
        let named = |e: &Endpoint| matches!(e, Endpoint::Authority(n) if a.name.as_ref().is_some_and(|m| &m.v == n));
        let used = raw
            .rules
            .iter()
            .any(|r| r.from.iter().chain(&r.to).any(|e| named(&e.v)));
        if a.scope == Scope::Named && !used {
            rep.warn(
                a.origin.at,
                format!("{label}: no rule names ca:{}, and scope = \"named\" admits its holders only where a rule does: it admits nobody", a.name.as_ref().map_or("", |n| n.v.as_str())),
            );
        }
    }
    shared_anchors(rep, raw);
    let broad: Vec<&str> = raw
        .authorities
        .iter()
        .filter(|a| a.scope == Scope::Any)
        .filter_map(|a| a.name.as_ref().map(|n| n.v.as_str()))
        .collect();
    let mode = raw.defaults.values.mode;
    for r in raw.rules.iter().filter(|r| r.origin.complete) {
        rule(rep, r, &broad, mode);
    }
    for x in &raw.exemptions {
        for p in x
            .peers
            .iter()
            .filter(|p| matches!(p.v, Endpoint::Authority(_)))
        {
            rep.error(
                p.at,
                format!("{}: peers \"{}\" is a certificate authority, but exemptions are clear traffic, matched by address before any authentication (expected any, a zone, a host, a cluster or a prefix)", x.origin.label, p.v),
            );
        }
    }
}

/// One CA file in two authorities: a peer whose chain ends there would belong to both, so
/// which rules admit it (and under which revocation mode) would be ambiguous.
fn shared_anchors(rep: &mut Report, raw: &RawPolicy) {
    let mut first: HashMap<&Path, &str> = HashMap::default();
    for a in &raw.authorities {
        for f in &a.ca_certificates {
            match first.get(f.v.as_path()) {
                Some(prev) if *prev != a.origin.label => rep.error(
                    f.at,
                    format!("{}: ca-certificates \"{}\" is also a CA file of {prev}: a peer whose chain ends there would belong to both authorities (expected each CA in one authority; combine their rules instead)", a.origin.label, crate::text::shown(&f.v.to_string_lossy())),
                ),
                Some(_) => {}
                None => {
                    first.insert(&f.v, &a.origin.label);
                }
            }
        }
    }
}

fn rule(rep: &mut Report, r: &RawRule, broad: &[&str], default_mode: Mode) {
    let label = &r.origin.label;
    let Some(action) = r.action.as_ref().map(|a| a.v) else {
        return;
    };
    let is_ca = |e: &&crate::raw::Sp<Endpoint>| matches!(e.v, Endpoint::Authority(_));
    let first_ca = r.from.iter().chain(&r.to).find(is_ca);
    if let Some(ca) = first_ca {
        if !action.uses_esp() {
            rep.error(
                ca.at,
                format!("{label}: \"{}\" admits peers by certificate, which only IKEv2 checks; action = \"{}\" is clear traffic matched by address (expected require or request, or an address endpoint)", ca.v, action.as_str()),
            );
        } else if let Some(k) = r
            .key_exchange
            .as_ref()
            .filter(|k| k.v == KeyExchange::Static)
        {
            rep.error(
                k.at,
                format!("{label}: key-exchange = \"static\" cannot key SAs with \"{}\" holders: peers outside the inventory have no static key and always use IKEv2 (expected \"ikev2\", or omit the key so that inventory hosts take [defaults].key-exchange)", ca.v),
            );
        }
        let mode = r.mode.as_ref().map_or(default_mode, |m| m.v);
        if action.uses_esp() && mode == Mode::Tunnel {
            let at = r.mode.as_ref().map_or(ca.at, |m| m.at);
            rep.error(
                at,
                format!("{label}: \"{}\" with tunnel mode is not supported: a peer outside the inventory declares no subnets to tunnel (expected mode = \"transport\" for this rule)", ca.v),
            );
        }
    }
    if let Some(at) = r.identities_at {
        let from: Vec<Endpoint> = r.from.iter().map(|e| e.v.clone()).collect();
        let to: Vec<Endpoint> = r.to.iter().map(|e| e.v.clone()).collect();
        if Admission::of(&from, &to, action, broad).is_empty() {
            rep.error(
                at,
                format!("{label}: identities constrain peers admitted by a certificate authority, and this rule admits none (expected a ca:NAME endpoint, or an authority with scope = \"any\" and a require/request rule with an address range)"),
            );
        }
    }
}

//! How an ESP leg is keyed: static keys, or IKEv2 (and by whose certificates), following
//! the compiler: a pair whose chain (the transport rules covering it in file order, up to
//! the first without a protocol) has an ESP rule saying `key-exchange = "ikev2"` gets no
//! static SAs and is negotiated (`plan/compile/states.rs`, `ike_setup/admission.rs`); a
//! gateway pair that [`crate::plan::ike_tunnels`] lists is negotiated in tunnel mode.

use std::net::IpAddr;

use policy_schema::{Family, Host, KeyExchange, Mode, Policy, Rule, Scope};
use serde::Serialize;

use super::Model;

/// How the SAs of an ESP leg are keyed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum Keying {
    /// Derived from the two hosts' static X25519 keys (no handshake).
    Static,
    /// Negotiated over IKEv2 under `rule`; each end proves itself with a certificate of
    /// one of `authorities` that carries its address.
    Ikev2 {
        rule: String,
        authorities: Vec<String>,
    },
}

impl Keying {
    /// "static keys", "IKEv2 (rule r, certificates of corp)".
    pub fn describe(&self) -> String {
        match self {
            Keying::Static => "static keys".into(),
            Keying::Ikev2 { rule, authorities } if authorities.is_empty() => {
                format!("IKEv2 (rule {rule}; no authority vouches for inventory hosts: no SA)")
            }
            Keying::Ikev2 { rule, authorities } => format!(
                "IKEv2 (rule {rule}, certificates of {})",
                authorities.join(" or ")
            ),
        }
    }

    pub fn is_ikev2(&self) -> bool {
        matches!(self, Keying::Ikev2 { .. })
    }
}

/// The keying of the transport SAs between hosts `a` and `b`.
pub(super) fn transport(m: &Model, a: IpAddr, b: IpAddr) -> Keying {
    let fam = Family::of(&a);
    let has = |nets: &[ipnet::IpNet], x: &IpAddr| nets.iter().any(|n| n.contains(x));
    let mut named: Vec<String> = Vec::new();
    let mut keyed_by: Option<&Rule> = None;
    for (j, r) in m.policy.rules.iter().enumerate() {
        if r.mode != Mode::Transport
            || r.protocol
                .and_then(|p| p.family())
                .is_some_and(|f| f != fam)
        {
            continue;
        }
        let (from, to) = &m.nets[j];
        let (b_from, b_to) = (has(from, &b) && has(to, &a), has(to, &b) && has(from, &a));
        if !(b_from || b_to) {
            continue;
        }
        if r.action.uses_esp() {
            if r.key_exchange == KeyExchange::Ikev2 && keyed_by.is_none() {
                keyed_by = Some(r);
            }
            let sides = [(b_from, &r.admits.from), (b_to, &r.admits.to)];
            named.extend(
                sides
                    .into_iter()
                    .filter(|s| s.0)
                    .flat_map(|s| s.1.iter().cloned()),
            );
        }
        if r.protocol.is_none() {
            break;
        }
    }
    match keyed_by {
        Some(r) => ikev2(m.policy, &r.name, named),
        None => Keying::Static,
    }
}

/// The keying of the tunnel between gateways `a` and `b` under tunnel rule `rule`.
pub(super) fn tunnel(policy: &Policy, a: &Host, b: &Host, rule: &Rule) -> Keying {
    let tunnels = crate::plan::ike_tunnels(policy, a);
    let keyed = (tunnels.iter()).find(|((_, peer), t)| {
        b.addresses.contains(peer)
            && (t.cipher == rule.cipher || rule.key_exchange == KeyExchange::Ikev2)
    });
    match keyed {
        Some((_, t)) => ikev2(policy, &t.rule, Vec::new()),
        None => Keying::Static,
    }
}

/// IKEv2 under `rule`: the authorities of scope `any`, then those the chain names.
fn ikev2(policy: &Policy, rule: &str, named: Vec<String>) -> Keying {
    let any = (policy.authorities.iter())
        .filter(|a| a.scope == Scope::Any)
        .map(|a| a.name.clone());
    let mut authorities: Vec<String> = Vec::new();
    for n in any.chain(named) {
        if !authorities.contains(&n) {
            authorities.push(n);
        }
    }
    Keying::Ikev2 {
        rule: rule.to_string(),
        authorities,
    }
}

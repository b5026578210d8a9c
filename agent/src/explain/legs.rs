//! One direction of a flow: what the sender's `out` policy does with its packets, then
//! what the receiver's `in` policy accepts, with the reason in one line.

use std::net::IpAddr;

use policy_schema::Action;
use serde::Serialize;

use super::ends::{Decider, End};
use super::keying::Keying;
use super::{action_verb, Transport};

/// The packets of one direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Leg {
    pub from: IpAddr,
    pub to: IpAddr,
    pub transport: Transport,
    /// Why, in one line: "db requires ESP (rule …); 10.30.0.30 has no key".
    pub reason: String,
    /// How its SAs are keyed (ESP legs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keying: Option<Keying>,
}

/// What the sender does with a packet.
enum Send {
    /// Clear, and why (no key, exempt, no rule, permit).
    Clear(String),
    /// Protected by an SA of this rule.
    Esp(String),
    /// Dropped, and why.
    Drop(String),
}

/// `s`'s packets to `r`; `keying` tells how the pair's SAs are keyed.
pub(super) fn leg(s: &End, r: &End, keying: impl Fn() -> Keying) -> Leg {
    let (mut keyed, mut keying_of) = (None, None);
    let (transport, reason) = match send(s, r) {
        Send::Drop(why) => (Transport::Dropped, why),
        Send::Esp(rule) => {
            let k = keying();
            let out = receive_esp(s, r, &rule, &k);
            keying_of = Some(k);
            out
        }
        Send::Clear(why) => receive_clear(s, r, why),
    };
    if matches!(transport, Transport::Esp | Transport::EspInUdp) {
        keyed = keying_of;
    }
    Leg {
        from: s.addr,
        to: r.addr,
        transport,
        reason,
        keying: keyed,
    }
}

fn send(s: &End, r: &End) -> Send {
    let me = s.label();
    match &s.decider {
        Decider::NotMember => Send::Clear(format!("{me} has no key")),
        Decider::Loopback => Send::Clear("loopback".into()),
        Decider::NoRule => Send::Clear(format!("no rule at {me} matches")),
        Decider::Exemption { name, .. } => Send::Clear(format!("exempt at {me}: {name}")),
        d @ Decider::Rule { name, action, .. } => match action {
            Action::Permit => Send::Clear(format!("{me} {} ({})", action_verb(*action), d.short())),
            Action::Block => Send::Drop(format!("{me} {} ({})", action_verb(*action), d.short())),
            // The compiler gives an ESP rule an SA with every party it pairs us with.
            _ if r.party.is_some() => Send::Esp(name.clone()),
            Action::Require => Send::Drop(format!(
                "{me} requires ESP ({}) and has no SA: {} has no key",
                d.short(),
                r.label()
            )),
            _ => Send::Clear(format!(
                "{me} requests ESP ({}), but {} has no key",
                d.short(),
                r.label()
            )),
        },
    }
}

/// ESP under `rule` arrives: the receiver has the inbound SA (the pair is computed the same
/// way at both ends); only a `block` there refuses it.
fn receive_esp(s: &End, r: &End, rule: &str, keying: &Keying) -> (Transport, String) {
    if let d @ Decider::Rule {
        action: Action::Block,
        ..
    } = &r.decider
    {
        let why = format!("{} blocks it ({})", r.label(), d.short());
        return (Transport::Dropped, why);
    }
    let udp: Vec<String> = [s, r]
        .iter()
        .filter(|e| e.encapsulation)
        .map(|e| e.label())
        .collect();
    let keys = match keying {
        Keying::Static => format!("{} and {} have keys", s.label(), r.label()),
        k => format!(
            "{} and {} key it over {}",
            s.label(),
            r.label(),
            k.describe()
        ),
    };
    if udp.is_empty() {
        (Transport::Esp, format!("rule {rule}: {keys}"))
    } else {
        let why = format!(
            "rule {rule}: {keys}; {} uses encapsulation = \"udp\"",
            udp.join(" and ")
        );
        (Transport::EspInUdp, why)
    }
}

/// A clear packet arrives: a receiver that requires ESP or blocks drops it.
fn receive_clear(s: &End, r: &End, why: String) -> (Transport, String) {
    if let d @ Decider::Rule { action, .. } = &r.decider {
        let me = r.label();
        let reason = match action {
            Action::Require => format!("{me} requires ESP ({}), drops clear: {why}", d.short()),
            Action::Block => format!("{me} blocks it ({})", d.short()),
            _ => String::new(),
        };
        if !reason.is_empty() {
            return (Transport::Dropped, reason);
        }
    }
    let reason = match (&s.decider, &r.decider) {
        (Decider::Exemption { name: a, .. }, Decider::Exemption { name: b, .. }) if a == b => {
            format!("exempt: {a}")
        }
        (Decider::NotMember, Decider::NotMember) => "neither end has a key".into(),
        // The member's side first: it is what the file says about the flow.
        (Decider::NotMember, _) => format!("{}; {why}", accepts_clear(r)),
        _ => format!("{why}; {}", accepts_clear(r)),
    };
    (Transport::Clear, reason)
}

/// Why the receiver takes a clear packet.
fn accepts_clear(r: &End) -> String {
    let me = r.label();
    match &r.decider {
        Decider::NotMember => format!("{me} has no key"),
        Decider::Loopback => "loopback".into(),
        Decider::NoRule => format!("no rule at {me} matches"),
        Decider::Exemption { name, .. } => format!("exempt at {me}: {name}"),
        d @ Decider::Rule { action, .. } => {
            format!("{me} {} ({})", action_verb(*action), d.short())
        }
    }
}

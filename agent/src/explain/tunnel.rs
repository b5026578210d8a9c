//! Flows a tunnel-mode rule decides: they are protected between the gateways whose
//! `gateway-for` covers each end, not by the ends themselves (which usually run no agent).
//!
//! Simplification: when the first rule (file order) that matches the flow is a tunnel-mode
//! rule, the gateways decide it; exemptions of the ends' own addresses are not consulted
//! (the compiler installs them only for a member's own addresses, not forwarded traffic).

use std::net::IpAddr;

use policy_schema::{Action, Encapsulation, Host, Mode};

use super::ends::party_of;
use super::{Decider, End, Explanation, Flow, Keying, Leg, Model, Transport};

/// The explanation, if a tunnel-mode rule decides `flow`.
pub(super) fn explain(m: &Model, flow: &Flow) -> Option<Explanation> {
    let p = m.policy;
    let j = (0..p.rules.len()).find(|&j| m.rule_matches(j, flow))?;
    let rule = &p.rules[j];
    if rule.mode != Mode::Tunnel {
        return None;
    }
    let gateway = |a: &IpAddr| {
        p.hosts
            .iter()
            .find(|h| h.gateway_for.iter().any(|n| n.contains(a)))
    };
    let (gs, gd) = (gateway(&flow.src), gateway(&flow.dst));
    let end = |addr: IpAddr, gw: Option<&Host>| End {
        addr,
        party: party_of(m, &addr).map(|(name, _)| name),
        encapsulation: gw.is_some_and(|g| g.encapsulation == Encapsulation::Udp),
        decider: Decider::Rule {
            index: j,
            name: rule.name.clone(),
            action: rule.action,
            at: m.locs.rule(j),
            gateway: gw.map(|g| g.name.clone()),
        },
    };
    let (src, dst) = (end(flow.src, gs), end(flow.dst, gd));
    let mut keying = None;
    let (transport, reason) = match (gs, gd) {
        (Some(a), Some(b)) if a.name != b.name => {
            let (t, why) = between(a, b, &src.decider, rule.action);
            if matches!(t, Transport::Esp | Transport::EspInUdp) {
                let k = super::keying::tunnel(p, a, b, rule);
                let why = match &k {
                    Keying::Static => why,
                    k => format!("{why}, keyed over {}", k.describe()),
                };
                keying = Some(k);
                (t, why)
            } else {
                (t, why)
            }
        }
        _ => (
            Transport::Clear,
            format!(
                "{} is tunnel mode, but no two gateways cover both ends: nothing enforces it",
                src.decider.describe()
            ),
        ),
    };
    let leg = |from, to| Leg {
        from,
        to,
        transport,
        reason: reason.clone(),
        keying: keying.clone(),
    };
    Some(Explanation {
        flow: *flow,
        outcome: transport,
        forward: leg(flow.src, flow.dst),
        reply: leg(flow.dst, flow.src),
        src,
        dst,
    })
}

/// What gateways `a` and `b` do with the flow under the rule's `action`.
fn between(a: &Host, b: &Host, decider: &Decider, action: Action) -> (Transport, String) {
    let gws = format!("gateways {} and {}", a.name, b.name);
    let rule = decider.describe();
    match action {
        Action::Require | Action::Request => {
            let udp = [a, b].iter().any(|g| g.encapsulation == Encapsulation::Udp);
            let t = if udp {
                Transport::EspInUdp
            } else {
                Transport::Esp
            };
            (t, format!("tunnelled between {gws} ({rule})"))
        }
        Action::Permit => (Transport::Clear, format!("{gws} pass it in clear ({rule})")),
        Action::Block => (Transport::Dropped, format!("{gws} block it ({rule})")),
    }
}

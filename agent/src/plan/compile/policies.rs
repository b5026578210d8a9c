//! Exemptions, built-ins and rules → XFRM policies for one host.
//!
//! Policies are O(rules × local addresses × remote prefixes × port blocks), never O(peers):
//! "any ↔ my subnet, require" is one `out` and one `in` catch-all per local address whose
//! ESP template has wildcard addresses, so the kernel picks the per-peer SA by the packet's
//! addresses and the template's reqid.
//!
//! Precedence (lower XFRM priority wins, LAB-NOTES "Precedence"): transition guards, then
//! built-ins, then exemptions in file order, then rules in file order (first match wins),
//! each protective outbound policy with its fail-closed backstop right below it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use policy_schema::{Action, Direction, Family, Host, Mode, Policy, Rule};

use super::backstop::with_backstops;
use super::net::{any_contains, any_of, host, of_family};
use super::ports::{blocks_of, Side};
use super::prune::prune;
use super::tunnel::{tunnel_links, TunnelLink};
use super::{Layout, RuleNets};
use crate::model::{
    DesiredPolicy, Dir, Level, Origin, PolicyAction, PolicyKey, PolicySpec, PortMatch, Selector,
    Template,
};

/// ICMPv6 neighbour discovery (RFC 4861 types 133–137): without it, a catch-all `require`
/// on a global IPv6 address stops address resolution and every IPv6 flow with it.
const NDP_TYPES: (u16, u16) = (133, 137);

/// Collects policies; the first writer of a key wins (it has the higher precedence).
///
/// Appended in precedence order and sorted once at the end: inserting 20,000 policies one
/// by one into the map was a tenth of a 10,000-peer compile.
struct Builder {
    out: Vec<(PolicyKey, DesiredPolicy)>,
}

impl Builder {
    fn add(
        &mut self,
        dir: Dir,
        sel: Selector,
        priority: u32,
        action: &PolicyAction,
        origin: &Origin,
    ) {
        let key = PolicyKey {
            dir,
            sel,
            mark: None,
        };
        self.out.push((
            key,
            DesiredPolicy {
                spec: PolicySpec {
                    priority,
                    action: action.clone(),
                },
                origin: origin.clone(),
            },
        ));
    }

    fn finish(mut self) -> BTreeMap<PolicyKey, DesiredPolicy> {
        // A stable sort keeps equal keys in the order they were added: the first one of a
        // run is the one with the higher precedence.
        self.out.sort_by_key(|a| a.0);
        self.out.dedup_by(|later, first| later.0 == first.0);
        // Backstops only under the policies that won their key.
        let out = with_backstops(self.out);
        // Sorted and unique: the map is built in one pass, not by search and insert.
        out.into_iter().collect()
    }
}

fn sel(src: IpNet, dst: IpNet, proto: u8, sport: PortMatch, dport: PortMatch) -> Selector {
    Selector {
        src,
        dst,
        proto,
        sport,
        dport,
    }
}

/// The `in` and `out` selectors for traffic between local `a` and remote `r`.
fn pair_selectors(
    a: IpNet,
    r: IpNet,
    proto: u8,
    port: PortMatch,
    side: Side,
) -> [(Dir, Selector); 2] {
    let any = PortMatch::ANY;
    match side {
        Side::Server => [
            (Dir::In, sel(r, a, proto, any, port)),
            (Dir::Out, sel(a, r, proto, port, any)),
        ],
        Side::Client => [
            (Dir::Out, sel(a, r, proto, any, port)),
            (Dir::In, sel(r, a, proto, port, any)),
        ],
    }
}

/// Every XFRM policy this host needs.
pub fn policies(
    policy: &Policy,
    me: &Host,
    local: &[IpAddr],
    layout: &Layout,
    nets: &RuleNets,
) -> BTreeMap<PolicyKey, DesiredPolicy> {
    let mut b = Builder { out: Vec::new() };
    builtins(policy, local, layout, &mut b);
    for (i, ex) in policy.exemptions.iter().enumerate() {
        let prio = layout.exemption(i);
        let origin = Origin::Exemption(ex.name.as_str().into());
        let proto = ex.protocol.number();
        for a in local {
            let fam = Family::of(a);
            if ex.protocol.family().is_some_and(|f| f != fam) {
                continue;
            }
            let peers = if ex.peers.is_empty() {
                vec![any_of(fam)]
            } else {
                of_family(&ex.peers, fam)
            };
            let sides: &[Side] = match ex.direction {
                Direction::In => &[Side::Server],
                Direction::Out => &[Side::Client],
                Direction::Both => &[Side::Server, Side::Client],
            };
            for r in peers {
                for port in blocks_of(&ex.ports) {
                    for side in sides {
                        for (dir, s) in pair_selectors(host(*a), r, proto, port, *side) {
                            b.add(dir, s, prio, &PolicyAction::Allow, &origin);
                        }
                    }
                }
            }
        }
    }
    for (j, (rule, (from, to))) in policy.rules.iter().zip(nets.iter()).enumerate() {
        let prio = layout.rule(j);
        let origin = Origin::Rule(rule.name.as_str().into());
        match rule.mode {
            Mode::Transport => {
                let sides = (from.as_slice(), to.as_slice());
                transport_rule(rule, sides, local, prio, layout, &origin, &mut b)
            }
            Mode::Tunnel => {
                for link in tunnel_links(policy, rule, me) {
                    tunnel_rule(rule, &link, prio, layout, &origin, &mut b);
                }
            }
        }
    }
    b.finish()
}

fn builtins(policy: &Policy, local: &[IpAddr], layout: &Layout, b: &mut Builder) {
    let has_v6 = local.iter().any(|a| a.is_ipv6());
    if !(policy.defaults.exempt_neighbor_discovery && has_v6) {
        return;
    }
    let origin = Origin::Builtin("ipv6-neighbor-discovery".into());
    let any6 = any_of(Family::V6);
    let types = policy_schema::PortRange {
        lo: NDP_TYPES.0,
        hi: NDP_TYPES.1,
    };
    for t in blocks_of(&[types]) {
        // ICMP type travels in the selector's source-port field (xfrm_flowi_sport).
        for dir in [Dir::In, Dir::Out] {
            let s = sel(any6, any6, 58, t, PortMatch::ANY);
            b.add(dir, s, layout.builtin, &PolicyAction::Allow, &origin);
        }
    }
}

/// The policy action of a rule; ESP templates use the rule's profile reqid.
fn rule_action(rule: &Rule, layout: &Layout, tunnel: Option<(IpAddr, IpAddr)>) -> PolicyAction {
    let tmpl = |level| {
        PolicyAction::Protect(Arc::new([Template {
            mode: rule.mode,
            reqid: layout.reqid(rule.cipher, rule.mode),
            level,
            tunnel,
        }]))
    };
    match rule.action {
        Action::Require => tmpl(Level::Required),
        Action::Request => tmpl(Level::Use),
        Action::Permit => PolicyAction::Allow,
        Action::Block => PolicyAction::Block,
    }
}

fn transport_rule(
    rule: &Rule,
    (from, to): (&[IpNet], &[IpNet]),
    local: &[IpAddr],
    prio: u32,
    layout: &Layout,
    origin: &Origin,
    b: &mut Builder,
) {
    let action = rule_action(rule, layout, None);
    for a in local {
        let sides = RuleSides {
            a: *a,
            in_to: any_contains(to, a),
            in_from: any_contains(from, a),
        };
        for (dir, s) in rule_selectors(rule, &sides, from, to) {
            b.add(dir, s, prio, &action, origin);
        }
    }
}

/// Where local address `a` stands in a transport rule: inside its `to`, its `from`, both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RuleSides {
    pub a: IpAddr,
    pub in_to: bool,
    pub in_from: bool,
}

/// The pruned selectors of a transport rule for one local address, towards the remote
/// prefixes `from` and `to` (the rule's own, or a part of them: pruning compares only
/// selectors of one remote prefix with those of a prefix containing or inside it).
pub(super) fn rule_selectors(
    rule: &Rule,
    sides: &RuleSides,
    from: &[IpNet],
    to: &[IpNet],
) -> Vec<(Dir, Selector)> {
    let a = &sides.a;
    let fam = Family::of(a);
    if rule
        .protocol
        .and_then(|p| p.family())
        .is_some_and(|f| f != fam)
    {
        return Vec::new();
    }
    let proto = rule.protocol.map_or(0, |p| p.number());
    let ports = blocks_of(&rule.ports);
    let mut sels: Vec<(Dir, Selector)> = Vec::new();
    for (contains_me, remote, side) in [
        (sides.in_to, from, Side::Server),
        (sides.in_from, to, Side::Client),
    ] {
        if !contains_me {
            continue;
        }
        for r in of_family(remote, fam) {
            for port in &ports {
                sels.extend(pair_selectors(host(*a), r, proto, *port, side));
            }
        }
    }
    prune(sels)
}

/// The policy a transport rule's selectors carry: its priority, action and origin.
pub(super) fn rule_policy(rule: &Rule, j: usize, layout: &Layout) -> DesiredPolicy {
    DesiredPolicy {
        spec: PolicySpec {
            priority: layout.rule(j),
            action: rule_action(rule, layout, None),
        },
        origin: Origin::Rule(rule.name.as_str().into()),
    }
}

fn tunnel_rule(
    rule: &Rule,
    link: &TunnelLink,
    prio: u32,
    layout: &Layout,
    origin: &Origin,
    b: &mut Builder,
) {
    let proto = rule.protocol.map_or(0, |p| p.number());
    let out_action = rule_action(rule, layout, Some((link.local_addr, link.peer_addr)));
    let in_action = rule_action(rule, layout, Some((link.peer_addr, link.local_addr)));
    for port in blocks_of(&rule.ports) {
        for (dir, s) in pair_selectors(link.local_net, link.remote_net, proto, port, link.side()) {
            if dir == Dir::Out {
                b.add(Dir::Out, s, prio, &out_action, origin);
            } else {
                // Decapsulated traffic for the subnet behind us is forwarded: without a `fwd`
                // policy holding the template it is dropped (XfrmInNoPols, LAB-NOTES).
                b.add(Dir::Fwd, s, prio, &in_action, origin);
                b.add(Dir::In, s, prio, &in_action, origin);
            }
        }
    }
}

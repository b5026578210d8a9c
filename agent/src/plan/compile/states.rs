//! The ESP SAs this host needs: for every (local address, peer address) pair that an ESP
//! rule covers, one outbound SA and the inbound SAs of the epochs in force.
//!
//! Both ends run this same computation from the same file, each from its own side; the
//! outbound SA of A towards B and the inbound SA of B from A then agree on SPI, key,
//! algorithm and selector without any negotiation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::{
    Action, Cipher, Encapsulation, Family, KeyExchange, Mode, Policy, PublicKey, Rule,
};

use super::carry::{Pair, Pairs};
use super::epoch::{EpochView, Timeline};
use super::net::{any_of, host, PrefixIndex};
use super::ports::blocks_of;
use super::sa_map::SaSink;
use super::spi::{profile, SpiTable};
use super::suite::SaContext;
use super::tunnel::{ike_tunnels, tunnel_links};
use super::{Layout, RuleNets};
use crate::keys::PrivateKey;
use crate::model::{
    DesiredSa, Encap, Lifetime, PortMatch, SaDir, SaKey, SaMeta, SaSpec, Selector, NAT_T_PORT,
};

/// One side of an SA pair: a host, or a cluster's virtual addresses.
#[derive(Clone, Debug)]
pub struct Party<'a> {
    /// Host name, or `cluster:NAME`.
    pub name: String,
    pub addrs: &'a [IpAddr],
    pub key: PublicKey,
    pub encap: Encapsulation,
}

/// Narrowing of one rule for one pair: protocol, port block and which end is the server.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Narrow {
    proto: u8,
    port: Option<PortMatch>,
    local_is_server: Option<bool>,
}

fn rule_narrow(r: &RuleSides, a_to: bool, a_from: bool) -> Narrow {
    // Ports sit on the `to` side; they pin only when the pair's orientation is unambiguous.
    let local_is_server = match (a_to, a_from) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    Narrow {
        proto: r.proto,
        port: r.port,
        local_is_server,
    }
}

/// The narrowings of the rules sharing one SA profile, folded as they come (only the first
/// and whether the others agree with it matter, so nothing is collected per pair).
#[derive(Clone, Copy)]
struct Narrows {
    first: Narrow,
    same_proto: bool,
    same_port: bool,
}

impl Narrows {
    fn new(first: Narrow) -> Narrows {
        Narrows {
            first,
            same_proto: true,
            same_port: true,
        }
    }
    fn push(&mut self, n: Narrow) {
        self.same_proto &= n.proto == self.first.proto;
        self.same_port &=
            n.port == self.first.port && n.local_is_server == self.first.local_is_server;
    }
}

/// The selector for a→b traffic that fits every narrowing of the rules sharing the SA.
fn pinned_selector(a: IpAddr, b: IpAddr, narrows: &Narrows) -> Selector {
    let mut s = Selector::between(host(a), host(b));
    let first = narrows.first;
    if first.proto == 0 || !narrows.same_proto {
        return s;
    }
    s.proto = first.proto;
    if let (true, Some(port), Some(server)) = (narrows.same_port, first.port, first.local_is_server)
    {
        if server {
            s.sport = port;
        } else {
            s.dport = port;
        }
    }
    s
}

/// A transport rule with its prefixes indexed and its narrowing worked out, once per
/// compile (resolving per peer would be O(peers × rules × prefixes)).
struct RuleSides<'a> {
    rule: &'a Rule,
    from: PrefixIndex,
    to: PrefixIndex,
    proto: u8,
    /// The one port block the rule names, if it names exactly one.
    port: Option<PortMatch>,
}

/// The transport rules, ready to be matched against pairs.
pub struct Rules<'a> {
    rules: Vec<RuleSides<'a>>,
}

impl<'a> Rules<'a> {
    pub fn new(policy: &'a Policy, nets: &RuleNets) -> Rules<'a> {
        let rules = policy
            .rules
            .iter()
            .zip(nets.iter())
            .filter(|(r, _)| r.mode == Mode::Transport)
            .map(|(rule, (from, to))| {
                let blocks = blocks_of(&rule.ports);
                RuleSides {
                    rule,
                    from: PrefixIndex::new(from),
                    to: PrefixIndex::new(to),
                    proto: rule.protocol.map_or(0, |p| p.number()),
                    port: (blocks.len() == 1 && !blocks[0].is_any()).then(|| blocks[0]),
                }
            })
            .collect();
        Rules { rules }
    }

    /// The rules that can match traffic of local address `a` at all, with which side `a`
    /// is on — computed once per local address, not once per peer.
    pub fn for_party(&self, party: &Party) -> Vec<LocalRules<'_>> {
        party.addrs.iter().map(|a| self.for_local(a)).collect()
    }

    fn for_local(&self, a: &IpAddr) -> LocalRules<'_> {
        let fam = Family::of(a);
        let rules = self
            .rules
            .iter()
            .filter(|r| {
                r.rule
                    .protocol
                    .and_then(|p| p.family())
                    .is_none_or(|f| f == fam)
            })
            .filter_map(|sides| {
                let (in_to, in_from) = (sides.to.contains(a), sides.from.contains(a));
                (in_to || in_from).then_some(LocalRule {
                    sides,
                    in_to,
                    in_from,
                })
            })
            .collect();
        LocalRules { a: *a, rules }
    }
}

/// A rule as seen from one local address.
struct LocalRule<'a> {
    sides: &'a RuleSides<'a>,
    in_to: bool,
    in_from: bool,
}

/// The rules that concern one local address, in file order.
pub struct LocalRules<'a> {
    a: IpAddr,
    rules: Vec<LocalRule<'a>>,
}

/// An SA profile a pair needs, with the narrowings of the rules behind it.
type Need = ((Cipher, Mode), Narrows);

impl LocalRules<'_> {
    /// The SA profiles the pair (local `a`, remote `b`) needs, first match wins: a matching
    /// rule without protocol ends the search (it takes all remaining traffic of the pair).
    /// Written to `out` in profile order; the buffer is reused across pairs.
    ///
    /// Empty when an ESP rule of the chain says `key-exchange = "ikev2"`: IKEv2 keys the
    /// pair (`ike_setup::PolicyAdmission` decides the same way), while the rules' policies
    /// stay, so its traffic raises the acquires that start the exchange.
    fn needs(&self, b: &IpAddr, out: &mut Vec<Need>) {
        out.clear();
        let mut ikev2 = false;
        for lr in &self.rules {
            let r = lr.sides;
            let a_to = lr.in_to && r.from.contains(b);
            let a_from = lr.in_from && r.to.contains(b);
            if !(a_to || a_from) {
                continue;
            }
            if r.rule.action.uses_esp() {
                ikev2 |= r.rule.key_exchange == KeyExchange::Ikev2;
                let profile = (r.rule.cipher, r.rule.mode);
                let narrow = rule_narrow(r, a_to, a_from);
                match out.iter_mut().find(|(p, _)| *p == profile) {
                    Some((_, n)) => n.push(narrow),
                    None => out.push((profile, Narrows::new(narrow))),
                }
            }
            if r.rule.protocol.is_none() {
                break;
            }
        }
        if ikev2 {
            out.clear();
        }
        out.sort_by_key(|(p, _)| *p);
    }
}

/// Everything the SA builder needs that does not change per pair.
pub struct SaContextAll<'a> {
    pub spis: &'a SpiTable,
    pub timeline: Timeline,
    pub view: &'a EpochView,
    pub layout: &'a Layout,
    pub replay_window: u32,
    pub now_ns: u64,
}

/// The selector of the reverse direction.
pub fn mirror(s: &Selector) -> Selector {
    Selector {
        src: s.dst,
        dst: s.src,
        proto: s.proto,
        sport: s.dport,
        dport: s.sport,
    }
}

/// One SA profile between `a` (ours) and `b` (the peer's), all epochs in force.
#[allow(clippy::too_many_arguments)]
fn emit(
    cx: &SaContextAll,
    pair: &mut Pair,
    peer: &str,
    a: IpAddr,
    b: IpAddr,
    cipher: Cipher,
    mode: Mode,
    encap: Encapsulation,
    out_sel: Selector,
    out: &mut SaSink,
) {
    let prof = profile(cipher, mode, encap);
    let encap = (encap == Encapsulation::Udp).then_some(Encap {
        sport: NAT_T_PORT,
        dport: NAT_T_PORT,
    });
    let lifetime = Lifetime {
        soft_secs: cx.timeline.soft_lifetime(),
        hard_secs: cx.timeline.hard_lifetime(),
    };
    let mut add = |dir: SaDir, src: IpAddr, dst: IpAddr, epoch: u64, sel: Selector| {
        let Some(spi) = cx.spis.spi(&src, epoch, prof) else {
            return;
        };
        let ctx = SaContext {
            cipher,
            mode,
            encap: if encap.is_some() {
                Encapsulation::Udp
            } else {
                Encapsulation::None
            },
            epoch,
            src: &src,
            dst: &dst,
            oldest_epoch: cx.view.inbound.first().map_or(epoch, |&e| e.min(epoch)),
        };
        let initial_seq = match dir {
            SaDir::Out => cx.timeline.initial_seq(epoch, cx.now_ns),
            SaDir::In => 0,
        };
        let spec = SaSpec {
            src,
            reqid: cx.layout.reqid(cipher, mode),
            mode,
            sel,
            alg: ctx.algorithm(pair),
            replay_window: cx.replay_window,
            esn: true,
            encap,
            lifetime,
        };
        let meta = SaMeta {
            peer: peer.to_string(),
            dir,
            epoch,
            initial_seq,
        };
        out.push(SaKey { dst, spi }, DesiredSa { spec, meta });
    };
    add(SaDir::Out, a, b, cx.view.outbound, out_sel);
    for &e in &cx.view.inbound {
        add(SaDir::In, b, a, e, mirror(&out_sel));
    }
}

/// Transport-mode SAs between our party `me` and the peer party `peer`.
pub fn transport_sas(
    cx: &SaContextAll,
    mine: &[LocalRules],
    me: &Party,
    peer: &Party,
    pair: &mut Pair,
    out: &mut SaSink,
) {
    let encap = if me.encap == Encapsulation::Udp || peer.encap == Encapsulation::Udp {
        Encapsulation::Udp
    } else {
        Encapsulation::None
    };
    let mut needs = Vec::new();
    for local in mine {
        let a = &local.a;
        for b in peer.addrs.iter().filter(|b| b.is_ipv4() == a.is_ipv4()) {
            local.needs(b, &mut needs);
            for ((cipher, mode), narrows) in &needs {
                // Selector for local→remote traffic (the inbound SA uses it mirrored).
                let out_sel = pinned_selector(*a, *b, narrows);
                emit(
                    cx, &mut *pair, &peer.name, *a, *b, *cipher, *mode, encap, out_sel, out,
                );
            }
        }
    }
}

/// Tunnel-mode SAs of this gateway: one profile per (peer gateway, outer pair, cipher),
/// except for gateway pairs keyed over IKEv2 ([`ike_tunnels`]).
pub fn tunnel_sas(
    cx: &SaContextAll,
    policy: &Policy,
    me: &policy_schema::Host,
    (pairs, mine): (&mut Pairs, &PrivateKey),
    out: &mut SaSink,
) {
    // (peer, local outer, peer outer, cipher) → inner (local, remote) subnet pairs.
    type Group<'a> =
        BTreeMap<(String, IpAddr, IpAddr, Cipher), (&'a policy_schema::Host, Vec<(IpNet, IpNet)>)>;
    let mut groups: Group = BTreeMap::new();
    // Gateway pairs keyed over IKEv2 get their tunnel SAs from keying.
    let ike = ike_tunnels(policy, me);
    for rule in policy
        .rules
        .iter()
        .filter(|r| r.mode == Mode::Tunnel && r.action.uses_esp())
    {
        for link in tunnel_links(policy, rule, me) {
            // (A second IKEv2 rule with another cipher gets no SAs: not static ones.)
            let keyed = ike.get(&(link.local_addr, link.peer_addr));
            if keyed
                .is_some_and(|t| t.cipher == rule.cipher || rule.key_exchange == KeyExchange::Ikev2)
            {
                continue;
            }
            let k = (
                link.peer.name.clone(),
                link.local_addr,
                link.peer_addr,
                rule.cipher,
            );
            let g = groups.entry(k).or_insert_with(|| (link.peer, Vec::new()));
            if !g.1.contains(&(link.local_net, link.remote_net)) {
                g.1.push((link.local_net, link.remote_net));
            }
        }
    }
    for ((name, a, b, cipher), (peer, inner)) in groups {
        let encap =
            if me.encapsulation == Encapsulation::Udp || peer.encapsulation == Encapsulation::Udp {
                Encapsulation::Udp
            } else {
                Encapsulation::None
            };
        // One inner pair: pin it. Several: the tunnel endpoints already bind the SA (the
        // template checks them), so the selector stays open within the outer family.
        let out_sel = match inner.as_slice() {
            [(l, r)] if l.addr().is_ipv4() == a.is_ipv4() => Selector::between(*l, *r),
            _ => {
                let fam = Family::of(&a);
                Selector::between(any_of(fam), any_of(fam))
            }
        };
        // No pair (a key without a contributory secret): no SAs, the traffic is dropped.
        let Some(pair) = pairs.get(mine, &peer.public_key) else {
            continue;
        };
        emit(
            cx,
            pair,
            &name,
            a,
            b,
            cipher,
            Mode::Tunnel,
            encap,
            out_sel,
            out,
        );
    }
}

/// Whether any rule of the policy uses ESP at all (else no SA and no rotation).
pub fn any_esp(policy: &Policy) -> bool {
    policy
        .rules
        .iter()
        .any(|r| matches!(r.action, Action::Require | Action::Request))
}

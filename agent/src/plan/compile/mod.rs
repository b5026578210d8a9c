//! The compile: policy + identity + addresses + time → the desired XFRM policies and SAs.
//! [`desired`] is the definition; [`Compiler`] gives the same result incrementally.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use policy_schema::{Cipher, Cluster, Host, Mode, Policy};

use super::{LocalAddrs, Timestamp};
use crate::keys::Identity;
use crate::model::{Desired, DesiredSa, SaKey};
use carry::Carry;
use epoch::{EpochView, Timeline};
use sa_map::SaSink;
use spi::SpiTable;
use states::{Party, Rules, SaContextAll};

pub(super) mod backstop;
mod carry;
mod epoch;
mod incremental;
pub(super) mod net;
mod policies;
mod ports;
mod prune;
mod sa_map;
pub(super) mod spi;
pub(super) mod states;
mod suite;
mod tunnel;

pub use incremental::{Compiled, Compiler, Touched};
pub(crate) use tunnel::ike_tunnels;

#[cfg(test)]
mod tests;

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("host {0} is not in the policy")]
    UnknownHost(String),
}

/// Every rule's `from` and `to` resolved to prefixes, in file order: resolving scans the
/// inventory, and both the policies and the SAs need it — once per compile is enough.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleNets(Vec<(Vec<IpNet>, Vec<IpNet>)>);

impl RuleNets {
    pub fn new(policy: &Policy) -> RuleNets {
        RuleNets(
            policy
                .rules
                .iter()
                .map(|r| (policy.resolve_all(&r.from), policy.resolve_all(&r.to)))
                .collect(),
        )
    }
    /// (from, to) of each rule, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &(Vec<IpNet>, Vec<IpNet>)> {
        self.0.iter()
    }
}

/// Where our objects sit in the owned reqid range and priority band.
///
/// reqid = range start + cipher × 2 + mode: stable whatever the file order, so inserting a
/// rule never re-keys an SA. Priorities: guards at the band start, built-ins next, then
/// exemptions, then rules — rules start at a fixed offset (up to 1024 exemptions) so that
/// adding an exemption does not renumber every rule. Each rule has two priorities: its
/// own, and the one after it for the backstops under its outbound policies
/// (`plan/compile/backstop.rs`), above every later rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    reqid_base: u32,
    /// Transition guards (the diff inserts them around unsafe reorderings).
    pub guard: u32,
    pub builtin: u32,
    exemption_base: u32,
    rule_base: u32,
}

impl Layout {
    pub fn new(policy: &Policy) -> Layout {
        let (lo, hi) = policy.ownership.priority;
        let width = hi - lo;
        let exemptions = policy.exemptions.len() as u32;
        let rules = policy.rules.len() as u32;
        let room = width.saturating_sub(16 + 2 * rules) / 2;
        let exemption_slots = exemptions.max(room.min(1024));
        Layout {
            reqid_base: policy.ownership.reqid.0,
            guard: lo,
            builtin: lo + 1,
            exemption_base: lo + 16,
            rule_base: lo + 16 + exemption_slots,
        }
    }
    pub fn exemption(&self, i: usize) -> u32 {
        self.exemption_base + i as u32
    }
    /// Rule `j`'s priority; `rule(j) + 1` is its backstops'.
    pub fn rule(&self, j: usize) -> u32 {
        self.rule_base + 2 * j as u32
    }
    pub fn reqid(&self, cipher: Cipher, mode: Mode) -> u32 {
        let m = match mode {
            Mode::Transport => 0,
            Mode::Tunnel => 1,
        };
        self.reqid_base + cipher.index() * 2 + m
    }
}

/// The XFRM policies and SAs this host needs at `now`.
///
/// `local` only matters for cluster addresses: their SAs exist only on the member that
/// holds the address right now (and whose identity has the cluster's key).
/// [`Compiler`] gives the same result, reusing the previous compile where it can.
pub fn desired(
    policy: &Policy,
    id: &Identity,
    local: &LocalAddrs,
    now: Timestamp,
) -> Result<Desired, PlanError> {
    let carry = RefCell::new(Carry::default());
    desired_with(policy, id, local, now, &RuleNets::new(policy), &carry)
}

/// [`desired`] with the rules already resolved, reusing what `carry` kept from earlier
/// compiles (and keeping what this one computes).
fn desired_with(
    policy: &Policy,
    id: &Identity,
    local: &LocalAddrs,
    now: Timestamp,
    nets: &RuleNets,
    carry: &RefCell<Carry>,
) -> Result<Desired, PlanError> {
    let me = find_me(policy, id)?;
    let job = SaJob::new(policy, id, me, local, now, nets, carry);
    let policy_addrs = policy_addrs(me, &job.member_of);
    let policies = || policies::policies(policy, me, &policy_addrs, &job.layout, nets);
    let states = || job.sas();
    // Policies and SAs do not depend on each other: a large inventory compiles them on two
    // cores (the daemon's reload waits for both). Same output either way.
    let (policies, states) = if policy.hosts.len() >= PARALLEL_FROM_HOSTS {
        std::thread::scope(|s| {
            let p = s.spawn(policies);
            let st = states();
            let p = p.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            (p, st)
        })
    } else {
        (policies(), states())
    };
    let (states, next_change) = states;
    Ok(Desired {
        host: me.name.clone(),
        policies,
        states,
        next_change,
    })
}

/// From this many hosts on, policies and SAs are compiled on two threads.
const PARALLEL_FROM_HOSTS: usize = 512;

fn find_me<'a>(policy: &'a Policy, id: &Identity) -> Result<&'a Host, PlanError> {
    policy
        .host(&id.host)
        .ok_or_else(|| PlanError::UnknownHost(id.host.clone()))
}

/// The clusters `me` is a member of.
fn member_of<'a>(policy: &'a Policy, me: &Host) -> Vec<&'a Cluster> {
    policy
        .clusters
        .iter()
        .filter(|c| c.members.iter().any(|m| m == &me.name))
        .collect()
}

/// The local addresses policies are made for.
///
/// Policies cover cluster addresses on every member, held or not, so a failover only
/// changes SAs — never the policies the peers' traffic is checked against.
fn policy_addrs(me: &Host, member_of: &[&Cluster]) -> Vec<IpAddr> {
    let mut addrs = me.addresses.clone();
    addrs.extend(member_of.iter().flat_map(|c| c.addresses.iter().copied()));
    addrs
}

/// What compiling this host's SAs needs.
struct SaJob<'a> {
    policy: &'a Policy,
    id: &'a Identity,
    me: &'a Host,
    member_of: Vec<&'a Cluster>,
    local: &'a LocalAddrs,
    now: Timestamp,
    layout: Layout,
    nets: &'a RuleNets,
    /// Pair secrets and SPI slots from earlier compiles (borrowed mutably one use at a time).
    carry: &'a RefCell<Carry>,
}

impl<'a> SaJob<'a> {
    fn new(
        policy: &'a Policy,
        id: &'a Identity,
        me: &'a Host,
        local: &'a LocalAddrs,
        now: Timestamp,
        nets: &'a RuleNets,
        carry: &'a RefCell<Carry>,
    ) -> SaJob<'a> {
        carry.borrow_mut().pairs.keep_held(id);
        SaJob {
            policy,
            id,
            me,
            member_of: member_of(policy, me),
            local,
            now,
            layout: Layout::new(policy),
            nets,
            carry,
        }
    }

    /// This host's SAs, and when they change next.
    fn sas(&self) -> (BTreeMap<SaKey, DesiredSa>, Option<Timestamp>) {
        let (timeline, view) = self.timeline();
        let spis = self.spi_table();
        let cx = self.context(&spis, timeline, &view);
        // In the common case (one address each, mid-epoch) a peer gets one SA per epoch in
        // force: reserving that much saves regrowing a vector of tens of thousands of SAs.
        let mut states =
            sa_map::SaSink::with_capacity(self.policy.hosts.len() * (1 + view.inbound.len()));
        if states::any_esp(self.policy) {
            let held = self.held();
            let elsewhere = elsewhere(self.policy, &held);
            let peers = peers(self.policy, self.me, &elsewhere);
            self.transport(&cx, &held, &peers, &mut states);
            let pairs = &mut self.carry.borrow_mut().pairs;
            states::tunnel_sas(
                &cx,
                self.policy,
                self.me,
                (pairs, self.id.key()),
                &mut states,
            );
        }
        let states = states.into_map();
        let next_change = (!states.is_empty()).then_some(Timestamp::from_secs(view.next_change));
        (states, next_change)
    }

    /// The epoch timeline and the view of it at `now`.
    fn timeline(&self) -> (Timeline, EpochView) {
        let timeline = Timeline::from_defaults(&self.policy.defaults);
        let view = timeline.view(self.now.secs());
        (timeline, view)
    }

    /// The SPI slots (the last table is kept, reused while addresses stay).
    fn spi_table(&self) -> Arc<SpiTable> {
        (self.carry.borrow_mut()).spi_table(|kept| SpiTable::reuse_or_build(self.policy, kept))
    }

    fn context<'b>(
        &'b self,
        spis: &'b SpiTable,
        timeline: Timeline,
        view: &'b EpochView,
    ) -> SaContextAll<'b> {
        SaContextAll {
            spis,
            timeline,
            view,
            layout: &self.layout,
            replay_window: self.policy.defaults.replay_window,
            now_ns: self.now.nanos(),
        }
    }

    /// The clusters we hold at least one address of (and have the key of), each with the
    /// addresses we hold. A cluster's SAs go with each address, not with the cluster as a
    /// whole: a member holding only some of them (one family moved ahead of the other, or
    /// the families split between members) keeps no SAs *as the cluster* for the others
    /// (it reaches them as a peer, like any host: `elsewhere`). Their holder sends
    /// on the same SPIs; an outbound SA installed here early would start from a sequence
    /// number fixed at that time, below what the holder has sent by the time the address
    /// moves here, and the peers would drop our packets as replays.
    fn held(&self) -> Vec<(&'a Cluster, Vec<IpAddr>)> {
        self.member_of
            .iter()
            .copied()
            .filter(|c| self.id.has_cluster_key(&c.name))
            .map(|c| {
                let addrs: Vec<IpAddr> = c
                    .addresses
                    .iter()
                    .copied()
                    .filter(|a| self.local.contains(a))
                    .collect();
                (c, addrs)
            })
            .filter(|(_, addrs)| !addrs.is_empty())
            .collect()
    }

    /// The transport-mode SAs with each of `peers`, from us and from the addresses we hold
    /// of the `held` clusters.
    fn transport(
        &self,
        cx: &SaContextAll,
        held: &[(&Cluster, Vec<IpAddr>)],
        peers: &[Party],
        out: &mut SaSink,
    ) {
        let rules = Rules::new(self.policy, self.nets);
        let me_party = host_party(self.me);
        let my_rules = rules.for_party(&me_party);
        let held_parties: Vec<(&Cluster, Party, Vec<_>)> = held
            .iter()
            .map(|(c, addrs)| {
                let party = Party {
                    addrs,
                    ..cluster_party(c)
                };
                let r = rules.for_party(&party);
                (*c, party, r)
            })
            .collect();
        let pairs = &mut self.carry.borrow_mut().pairs;
        for peer in peers {
            // No pair (a key without a contributory secret): no SAs, traffic dropped.
            if let Some(pair) = pairs.get(self.id.key(), &peer.key) {
                states::transport_sas(cx, &my_rules, &me_party, peer, pair, out);
            }
            for (c, party, party_rules) in &held_parties {
                if party.name == peer.name {
                    continue; // a cluster's addresses held here and elsewhere: not a pair
                }
                let key = self.id.cluster_key(&c.name);
                if let Some(pair) = key.and_then(|k| pairs.get(k, &peer.key)) {
                    states::transport_sas(cx, party_rules, party, peer, pair, out);
                }
            }
        }
    }
}

fn host_party(h: &Host) -> Party<'_> {
    Party {
        name: h.name.clone(),
        addrs: &h.addresses,
        key: h.public_key,
        encap: h.encapsulation,
    }
}

fn cluster_party(c: &Cluster) -> Party<'_> {
    Party {
        name: format!("cluster:{}", c.name),
        addrs: &c.addresses,
        key: c.public_key,
        encap: c.encapsulation,
    }
}

/// Each cluster with the addresses we do not hold (held elsewhere, by another member),
/// if any: a member holding one of its cluster's addresses still reaches the others,
/// which another member holds, as any host does.
fn elsewhere<'a>(
    policy: &'a Policy,
    held: &[(&'a Cluster, Vec<IpAddr>)],
) -> Vec<(&'a Cluster, Vec<IpAddr>)> {
    (policy.clusters.iter())
        .map(|c| {
            let mine = held.iter().find(|(h, _)| h.name == c.name);
            let rest = (c.addresses.iter())
                .filter(|a| mine.is_none_or(|(_, m)| !m.contains(a)))
                .copied()
                .collect::<Vec<_>>();
            (c, rest)
        })
        .filter(|(_, rest)| !rest.is_empty())
        .collect()
}

/// Every identity we may exchange SAs with: the other hosts, and each cluster at the
/// addresses we do not hold ourselves (traffic to a held address is local).
fn peers<'a>(
    policy: &'a Policy,
    me: &Host,
    elsewhere: &'a [(&'a Cluster, Vec<IpAddr>)],
) -> Vec<Party<'a>> {
    let hosts = policy
        .hosts
        .iter()
        .filter(|h| h.name != me.name)
        .map(host_party);
    let clusters = elsewhere.iter().map(|(c, rest)| Party {
        addrs: rest,
        ..cluster_party(c)
    });
    hosts.chain(clusters).collect()
}

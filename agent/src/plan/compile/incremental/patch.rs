//! Patching the last result: which peers and prefixes a change reaches, recomputed in
//! place; an error names what could not be shown to stay unchanged.

use std::collections::btree_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use policy_schema::Mode;

use super::super::epoch::Timeline;
use super::super::{host_party, states, SaSink};
use super::hosts::{self, Before};
use super::{held_key, rule_patch, sa_keys, set_initial_seq, Compiled, Inputs, Memo, Touched};
use rustc_hash::FxHashSet;

/// The addresses whose SPI slot moved: usually a handful, compared one by one (a hash
/// lookup per inventory address cost more than the rest of the scan).
enum Moved {
    Few(Vec<IpAddr>),
    Many(FxHashSet<IpAddr>),
}

impl Moved {
    fn new(moved: Vec<IpAddr>) -> Moved {
        if moved.len() <= 16 {
            Moved::Few(moved)
        } else {
            Moved::Many(moved.into_iter().collect())
        }
    }
    fn contains(&self, a: &IpAddr) -> bool {
        match self {
            Moved::Few(v) => v.contains(a),
            Moved::Many(s) => s.contains(a),
        }
    }
}

/// Patch `m` to the result of `x` and say which keys changed, or say why not (then `m`
/// may be half patched).
pub(super) fn patch(m: &mut Memo, x: &Inputs) -> Result<(Compiled, Touched), &'static str> {
    if x.id.fingerprint() != m.identity {
        return Err("this host's identity or cluster keys changed");
    }
    let timeline = Timeline::from_defaults(&x.policy.defaults);
    if timeline.view(x.now.secs()) != m.view {
        return Err("the epochs in force changed");
    }
    // A change of up to one host in eight is patched; more is about as fast in full.
    let limit = x.policy.hosts.len() / 8 + 4;
    let changed = if Arc::ptr_eq(&m.policy, x.shared) {
        Vec::new()
    } else {
        if !hosts::same_settings(&m.policy, x.policy) {
            return Err("settings, zones, clusters, exemptions or rules changed");
        }
        if m.policy.host(&x.me.name) != Some(x.me) {
            return Err("this host's own entry changed");
        }
        hosts::changed_hosts(&m.policy.hosts, &x.policy.hosts, limit).ok_or("many hosts changed")?
    };
    if changed.is_empty() {
        // Same settings and hosts: the same rule prefixes.
        if held_key(&x.job(&m.nets)) != m.held {
            return Err("the cluster addresses held changed");
        }
        set_initial_seq(m, &timeline, x.now);
        m.policy = Arc::clone(x.shared);
        let same = Compiled::Patched {
            peers: 0,
            prefixes: 0,
        };
        return Ok((same, Touched::default()));
    }
    if x.policy.rules.iter().any(|r| r.mode == Mode::Tunnel) {
        return Err("hosts changed under tunnel rules");
    }
    let done = patch_hosts(m, x, &timeline, &changed, limit)?;
    set_initial_seq(m, &timeline, x.now);
    Ok(done)
}

/// Recompute the policies of the changed rule prefixes and the SAs of the peers that the
/// host changes `changed` reach.
fn patch_hosts(
    m: &mut Memo,
    x: &Inputs,
    timeline: &Timeline,
    changed: &[Before],
    limit: usize,
) -> Result<(Compiled, Touched), &'static str> {
    let names: Vec<&str> = changed.iter().map(|c| c.0.as_str()).collect();
    let ends = m.ends.as_ref().ok_or("host names repeat")?;
    let (nets, ends, changes) =
        (ends.splice(x.policy, &m.nets, &names)).ok_or("host names repeat")?;
    debug_assert!(nets == super::super::RuleNets::new(x.policy));
    let job = x.job(&nets);
    let held = job.held();
    if held
        .iter()
        .map(|(c, a)| (&c.name, a))
        .ne(m.held.iter().map(|(n, a)| (n, a)))
    {
        return Err("the cluster addresses held changed");
    }
    let spis = job.spi_table();
    // Shared slots or addresses make SAs of different peers collide (the last one wins):
    // a peer's SAs are then no longer all under its name, before or after.
    if !spis.is_collision_free() || !m.spis.is_collision_free() {
        return Err("SPI slots are shared");
    }
    let moved = Moved::new(spis.moved_since(&m.spis));
    if changes.iter().any(|(_, d)| d.len() > 2 * limit) {
        return Err("rule prefixes changed widely");
    }
    let local = super::super::policy_addrs(x.me, &job.member_of);
    let rules = rule_patch::rule_patch(x.policy, &job.layout, &local, (&m.nets, &nets), &changes)?;
    let prefixes: Vec<IpNet> = changes.into_iter().flat_map(|(_, d)| d).collect();
    // Only a prefix shorter than a host's can hold other addresses than its own.
    let holds = |d: &IpNet, b: &IpAddr| match d.prefix_len() == d.max_prefix_len() {
        true => d.addr() == *b,
        false => d.contains(b),
    };
    let reached = |addrs: &[IpAddr]| {
        (addrs.iter()).any(|b| moved.contains(b) || prefixes.iter().any(|d| holds(d, b)))
    };
    if reached(&x.me.addresses) || x.policy.clusters.iter().any(|c| reached(&c.addresses)) {
        return Err("the change reaches this host's or a cluster's SAs");
    }
    // Each peer with the addresses its SAs were made for.
    let mut peers: Vec<(&str, &[IpAddr])> = (changed.iter())
        .map(|(n, before)| {
            (
                n.as_str(),
                before.as_ref().map_or(&[][..], |h| &h.addresses),
            )
        })
        .collect();
    peers.extend(
        (x.policy.hosts.iter())
            .filter(|h| reached(&h.addresses) && names.binary_search(&h.name.as_str()).is_err())
            .map(|h| (h.name.as_str(), &h.addresses[..])),
    );
    peers.sort_unstable();
    if peers.len() > limit {
        return Err("the change reaches many peers");
    }
    let mut sink = SaSink::default();
    if states::any_esp(x.policy) {
        let by_name = |n: &str| peers.binary_search_by(|p| p.0.cmp(n)).is_ok();
        let parties: Vec<_> = (x.policy.hosts.iter())
            .filter(|h| h.name != x.me.name && by_name(&h.name))
            .map(host_party)
            .collect();
        let cx = job.context(&spis, *timeline, &m.view);
        job.transport(&cx, &held, &parties, &mut sink);
    }
    let mut touched = Touched::default();
    rules.apply(&mut m.desired.policies, &mut touched.policies)?;
    let mine: Vec<IpAddr> = (x.me.addresses.iter())
        .chain(held.iter().flat_map(|(_, a)| a.iter()))
        .copied()
        .collect();
    let states = &mut m.desired.states;
    for (name, addrs) in &peers {
        for k in sa_keys(states, &m.spis, &mine, addrs) {
            let sa = states.remove(&k).expect("listed");
            if sa.meta.peer != *name {
                return Err("an SA of the peer's addresses is another peer's");
            }
            touched.states.insert(k);
        }
    }
    debug_assert!(!states
        .values()
        .any(|s| peers.iter().any(|p| p.0 == s.meta.peer)));
    for (k, sa) in sink.into_map() {
        touched.states.insert(k);
        match states.entry(k) {
            Entry::Vacant(e) => {
                e.insert(sa);
            }
            Entry::Occupied(_) => return Err("an SA key is taken by another peer"),
        }
    }
    m.desired.next_change =
        (!states.is_empty()).then_some(crate::plan::Timestamp::from_secs(m.view.next_change));
    (m.spis, m.nets, m.ends) = (spis, nets, Some(ends));
    m.policy = Arc::clone(x.shared);
    let how = Compiled::Patched {
        peers: peers.len(),
        prefixes: prefixes.len(),
    };
    Ok((how, touched))
}

//! Patching the last result: which peers and prefixes a change reaches, recomputed in
//! place; an error names what could not be shown to stay unchanged.

use std::collections::btree_map::Entry;

use ipnet::IpNet;
use policy_schema::Mode;

use super::super::epoch::Timeline;
use super::super::{host_party, states, RuleNets, SaSink};
use super::{held_names, hosts, rule_patch, set_initial_seq, Compiled, Inputs, Memo};
use crate::fasthash::FastSet;

/// Patch `m` to the result of `x`, or say why not (then `m` may be half patched).
pub(super) fn patch(m: &mut Memo, x: &Inputs) -> Result<Compiled, &'static str> {
    if x.id.fingerprint() != m.identity {
        return Err("this host's identity or cluster keys changed");
    }
    if !hosts::same_settings(&m.policy, x.policy) {
        return Err("settings, zones, clusters, exemptions or rules changed");
    }
    if m.policy.host(&x.me.name) != Some(x.me) {
        return Err("this host's own entry changed");
    }
    let timeline = Timeline::from_defaults(&x.policy.defaults);
    if timeline.view(x.now.secs()) != m.view {
        return Err("the epochs in force changed");
    }
    // A change of up to one host in eight is patched; more is about as fast in full.
    let limit = x.policy.hosts.len() / 8 + 4;
    let dirty = hosts::changed_hosts(&m.policy.hosts, &x.policy.hosts, limit)
        .ok_or("many hosts changed")?;
    if dirty.is_empty() {
        // Same settings and hosts: the same rule prefixes.
        if held_names(&x.job(&m.nets)) != m.held {
            return Err("the cluster addresses held changed");
        }
        set_initial_seq(m, &timeline, x.now);
        return Ok(Compiled::Patched {
            peers: 0,
            prefixes: 0,
        });
    }
    if x.policy.rules.iter().any(|r| r.mode == Mode::Tunnel) {
        return Err("hosts changed under tunnel rules");
    }
    let nets = RuleNets::new(x.policy);
    let counts = patch_hosts(m, x, &nets, &timeline, dirty, limit)?;
    set_initial_seq(m, &timeline, x.now);
    hosts::update_hosts(&mut m.policy.hosts, &x.policy.hosts);
    m.nets = nets;
    Ok(counts)
}

/// Recompute the policies of the changed rule prefixes and the SAs of the peers the host
/// changes `dirty` reach.
fn patch_hosts(
    m: &mut Memo,
    x: &Inputs,
    nets: &RuleNets,
    timeline: &Timeline,
    dirty: Vec<String>,
    limit: usize,
) -> Result<Compiled, &'static str> {
    let job = x.job(nets);
    let held = job.held();
    if held.iter().map(|c| &c.name).ne(m.held.iter()) {
        return Err("the cluster addresses held changed");
    }
    let spis = job.spi_table();
    // Shared slots or addresses make SAs of different peers collide (the last one wins):
    // a peer's SAs are then no longer all under its name, before or after.
    if !spis.is_collision_free() || !m.spis.is_collision_free() {
        return Err("SPI slots are shared");
    }
    let moved: FastSet<_> = spis.moved_since(&m.spis).into_iter().collect();
    let changes = rule_patch::changed_prefixes(&m.nets, nets, 2 * limit)
        .ok_or("rule prefixes changed widely")?;
    let local = super::super::policy_addrs(x.me, &job.member_of);
    let rules = rule_patch::rule_patch(x.policy, &job.layout, &local, (&m.nets, nets), &changes)?;
    let changed: Vec<IpNet> = changes.into_iter().flat_map(|(_, d)| d).collect();
    let reached = |addrs: &[std::net::IpAddr]| {
        addrs
            .iter()
            .any(|b| moved.contains(b) || changed.iter().any(|d| d.contains(b)))
    };
    if reached(&x.me.addresses) || x.policy.clusters.iter().any(|c| reached(&c.addresses)) {
        return Err("the change reaches this host's or a cluster's SAs");
    }
    let mut peers: Vec<&str> = dirty.iter().map(String::as_str).collect();
    peers.extend(
        (x.policy.hosts.iter())
            .filter(|h| reached(&h.addresses))
            .map(|h| h.name.as_str()),
    );
    peers.sort_unstable();
    peers.dedup();
    if peers.len() > limit {
        return Err("the change reaches many peers");
    }
    let mut sink = SaSink::default();
    if states::any_esp(x.policy) {
        let parties: Vec<_> = (x.policy.hosts.iter())
            .filter(|h| h.name != x.me.name && peers.binary_search(&h.name.as_str()).is_ok())
            .map(host_party)
            .collect();
        let view = &m.view;
        let cx = job.context(&spis, *timeline, view);
        job.transport(&cx, &held, &parties, &mut sink);
    }
    rules.apply(&mut m.desired.policies)?;
    let states = &mut m.desired.states;
    states.retain(|_, sa| peers.binary_search(&sa.meta.peer.as_str()).is_err());
    for (k, sa) in sink.into_map() {
        match states.entry(k) {
            Entry::Vacant(e) => {
                e.insert(sa);
            }
            Entry::Occupied(_) => return Err("an SA key is taken by another peer"),
        }
    }
    m.desired.next_change = (!states.is_empty()).then_some(m.view.next_change);
    m.spis = spis;
    Ok(Compiled::Patched {
        peers: peers.len(),
        prefixes: changed.len(),
    })
}

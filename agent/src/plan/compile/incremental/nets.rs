//! Rule prefixes after host changes: the last lists with the changed hosts' parts
//! replaced, instead of resolving every endpoint again (a rule naming 10,000 hosts took
//! milliseconds to resolve).

use ipnet::IpNet;
use policy_schema::{Endpoint, Host, Policy};

use super::super::RuleNets;
use rustc_hash::FxHashMap;

/// Where each endpoint's prefixes end in the resolved `from` and `to` of each rule.
#[derive(Clone, Debug)]
pub(super) struct Ends(Vec<[Vec<u32>; 2]>);

/// Per rule (by index), the prefixes that may have left or joined it.
pub(super) type Touched = Vec<(usize, Vec<IpNet>)>;

/// Host endpoints resolve by name: with every name once, an endpoint's prefixes are its
/// host's addresses, whichever way [`Policy::resolve_all`] looks the name up.
fn by_name(hosts: &[Host]) -> Option<FxHashMap<&str, &Host>> {
    let map: FxHashMap<&str, &Host> = hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    (map.len() == hosts.len()).then_some(map)
}

fn resolve(policy: &Policy, hosts: &FxHashMap<&str, &Host>, e: &Endpoint) -> Vec<IpNet> {
    match e {
        Endpoint::Host(n) => hosts
            .get(n.as_str())
            .map(|h| h.addresses.iter().map(|a| IpNet::from(*a)).collect())
            .unwrap_or_default(),
        other => policy.resolve(other),
    }
}

impl Ends {
    /// The ends in `nets`, the rules of `policy` resolved; None when host names repeat.
    pub(super) fn of(policy: &Policy, nets: &RuleNets) -> Option<Ends> {
        let hosts = by_name(&policy.hosts)?;
        let mut out = Vec::with_capacity(policy.rules.len());
        for (rule, (from, to)) in policy.rules.iter().zip(nets.iter()) {
            let mut sides = [Vec::new(), Vec::new()];
            for (k, (eps, side)) in [(&rule.from, from), (&rule.to, to)].into_iter().enumerate() {
                let mut end = 0;
                for e in eps {
                    end += resolve(policy, &hosts, e).len() as u32;
                    sides[k].push(end);
                }
                if end as usize != side.len() {
                    return None;
                }
            }
            out.push(sides);
        }
        Some(Ends(out))
    }

    /// The rules of `policy` resolved, given the last ones `old` (with these ends) and
    /// the names of the hosts that changed since (sorted); with their ends, and per rule
    /// the prefixes that may have left or joined it (those of the changed hosts). None
    /// when host names repeat.
    pub(super) fn splice(
        &self,
        policy: &Policy,
        old: &RuleNets,
        changed: &[&str],
    ) -> Option<(RuleNets, Ends, Touched)> {
        let is_changed = |e: &Endpoint| matches!(e, Endpoint::Host(n) if changed.binary_search(&n.as_str()).is_ok());
        let mut hosts: FxHashMap<&str, &Host> = FxHashMap::default();
        let named = |h: &&Host| changed.binary_search(&h.name.as_str()).is_ok();
        for h in policy.hosts.iter().filter(named) {
            if hosts.insert(h.name.as_str(), h).is_some() {
                return None;
            }
        }
        let (mut nets, mut ends, mut touched) = (Vec::new(), Vec::new(), Vec::new());
        for (j, (rule, (from, to))) in policy.rules.iter().zip(old.iter()).enumerate() {
            let mut d = Vec::new();
            let mut side = |k: usize, eps: &[Endpoint], old: &[IpNet]| {
                let old_ends = &self.0[j][k];
                let Some(first) = eps.iter().position(is_changed) else {
                    return (old.to_vec(), old_ends.clone());
                };
                // Up to the first changed endpoint, the lists are the same.
                let mut start = first.checked_sub(1).map_or(0, |i| old_ends[i]);
                let mut net = Vec::with_capacity(old.len() + 4);
                net.extend_from_slice(&old[..start as usize]);
                let mut end = old_ends[..first].to_vec();
                for (e, &stop) in eps[first..].iter().zip(&old_ends[first..]) {
                    let part = &old[start as usize..stop as usize];
                    if is_changed(e) {
                        let new = resolve(policy, &hosts, e);
                        d.extend(part.iter().chain(&new));
                        net.extend(new);
                    } else {
                        net.extend_from_slice(part);
                    }
                    end.push(net.len() as u32);
                    start = stop;
                }
                (net, end)
            };
            let (f, fe) = side(0, &rule.from, from);
            let (t, te) = side(1, &rule.to, to);
            nets.push((f, t));
            ends.push([fe, te]);
            if !d.is_empty() {
                d.sort_unstable();
                d.dedup();
                touched.push((j, d));
            }
        }
        Some((RuleNets(nets), Ends(ends), touched))
    }
}

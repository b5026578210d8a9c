//! Pruning a rule's selectors: one contained in another of the same rule and direction
//! says nothing the larger one does not.

use ipnet::IpNet;

use crate::model::{Dir, PortMatch, Selector};

/// Drop selectors contained in another of the same rule and direction: same action and
/// priority, so the larger one already says everything.
///
/// Linear in the number of selectors times the few distinct (source, destination) prefix
/// lengths: a selector can only be contained in one whose prefixes are no longer than its
/// own, i.e. one whose networks equal its own truncated to those lengths — looked up, not
/// searched (a rule naming 10,000 hosts was quadratic here).
pub(super) fn prune(mut sels: Vec<(Dir, Selector)>) -> Vec<(Dir, Selector)> {
    use rustc_hash::FxHashMap;
    use std::collections::BTreeSet;
    // Equal selectors are identical, so an unstable sort gives the same list, faster.
    sels.sort_unstable();
    sels.dedup();
    let lens: BTreeSet<(u8, u8)> = sels
        .iter()
        .map(|(_, s)| (s.src.prefix_len(), s.dst.prefix_len()))
        .collect();
    let truncated = sels
        .iter()
        .all(|(_, s)| s.src == s.src.trunc() && s.dst == s.dst.trunc());
    if lens.len() == 1 && truncated {
        return prune_runs(sels);
    }
    let trunc = |n: &IpNet, len: u8| IpNet::new(n.addr(), len).map(|n| n.trunc()).ok();
    let mut by_nets: FxHashMap<(Dir, IpNet, IpNet), Vec<usize>> = FxHashMap::default();
    for (i, (d, s)) in sels.iter().enumerate() {
        by_nets
            .entry((*d, s.src.trunc(), s.dst.trunc()))
            .or_default()
            .push(i);
    }
    let contained = |i: usize, d: Dir, s: &Selector| {
        lens.iter()
            .filter(|(ls, ld)| *ls <= s.src.prefix_len() && *ld <= s.dst.prefix_len())
            .filter_map(|(ls, ld)| Some((trunc(&s.src, *ls)?, trunc(&s.dst, *ld)?)))
            .filter_map(|(src, dst)| by_nets.get(&(d, src, dst)))
            .flatten()
            .any(|&j| j != i && contains(&sels[j].1, s))
    };
    let keep: Vec<bool> = sels
        .iter()
        .enumerate()
        .map(|(i, (d, s))| !contained(i, *d, s))
        .collect();
    sels.into_iter()
        .zip(keep)
        .filter_map(|(x, k)| k.then_some(x))
        .collect()
}

/// `prune` when every selector has the same prefix lengths and canonical networks (a rule
/// between hosts): one can then only contain another with the very same networks, and
/// those are neighbours in the sorted list — no index needed.
fn prune_runs(sels: Vec<(Dir, Selector)>) -> Vec<(Dir, Selector)> {
    let same_nets = |a: &(Dir, Selector), b: &(Dir, Selector)| {
        (a.0, a.1.src, a.1.dst) == (b.0, b.1.src, b.1.dst)
    };
    let mut keep = Vec::with_capacity(sels.len());
    for run in sels.chunk_by(same_nets) {
        for (i, (_, s)) in run.iter().enumerate() {
            let covered = run
                .iter()
                .enumerate()
                .any(|(j, (_, o))| j != i && contains(o, s));
            keep.push(!covered);
        }
    }
    sels.into_iter()
        .zip(keep)
        .filter_map(|(x, k)| k.then_some(x))
        .collect()
}

fn port_contains(outer: &PortMatch, inner: &PortMatch) -> bool {
    if outer.is_any() {
        return true;
    }
    if inner.is_any() {
        return false;
    }
    let (olo, ohi) = outer.range();
    let (ilo, ihi) = inner.range();
    olo <= ilo && ihi <= ohi
}

/// Every packet `inner` matches, `outer` matches too.
pub fn contains(outer: &Selector, inner: &Selector) -> bool {
    outer.src.contains(&inner.src)
        && outer.dst.contains(&inner.dst)
        && (outer.proto == 0 || outer.proto == inner.proto)
        && port_contains(&outer.sport, &inner.sport)
        && port_contains(&outer.dport, &inner.dport)
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    /// The obvious quadratic definition the indexed `prune` must agree with.
    fn naive(mut sels: Vec<(Dir, Selector)>) -> Vec<(Dir, Selector)> {
        sels.sort();
        sels.dedup();
        let keep: Vec<bool> = sels
            .iter()
            .enumerate()
            .map(|(i, (d, s))| {
                !sels
                    .iter()
                    .enumerate()
                    .any(|(j, (d2, s2))| j != i && d == d2 && contains(s2, s))
            })
            .collect();
        sels.into_iter()
            .zip(keep)
            .filter_map(|(x, k)| k.then_some(x))
            .collect()
    }

    #[test]
    fn indexed_prune_equals_the_definition() {
        let nets = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "10.1.2.3/32",
            "10.1.2.4/32",
            "10.2.0.0/16",
            "::/0",
            "fd00::/64",
            "fd00::1/128",
        ];
        agrees_with_the_definition(&nets);
    }

    #[test]
    fn run_prune_of_host_pairs_equals_the_definition() {
        agrees_with_the_definition(&["10.1.2.3/32", "10.1.2.4/32", "10.9.0.1/32"]);
    }

    /// Random selector lists over `nets` (and a few protocols and ports).
    fn agrees_with_the_definition(nets: &[&str]) {
        let ports = [
            PortMatch::default(),
            PortMatch::exact(80),
            PortMatch::exact(443),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..300 {
            let len = 1 + next(40);
            let sels: Vec<(Dir, Selector)> = (0..len)
                .filter_map(|_| {
                    let src: IpNet = nets[next(nets.len())].parse().unwrap();
                    let dst: IpNet = nets[next(nets.len())].parse().unwrap();
                    if src.addr().is_ipv4() != dst.addr().is_ipv4() {
                        return None;
                    }
                    let mut s = Selector::between(src, dst);
                    s.proto = [0u8, 6, 17][next(3)];
                    if s.proto != 0 {
                        s.dport = ports[next(ports.len())];
                    }
                    Some(([Dir::In, Dir::Out][next(2)], s))
                })
                .collect();
            assert_eq!(prune(sels.clone()), naive(sels));
        }
    }
}

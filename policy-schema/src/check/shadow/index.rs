//! The earlier rules, indexed by what a rule containing a given one must have: a `from`
//! (or, mirrored, a `to`) prefix containing that rule's first `from` prefix, likewise for
//! `to`, and ports covering its first port — each under the protocol itself or under "no
//! protocol". Each is a necessary condition, so the smallest of the candidate lists holds
//! every rule that can contain it, in file order; `Selector::contains` then decides.

use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;

use ipnet::IpNet;

use super::Selector;
use crate::model::Protocol;

/// Port ranges up to this wide are indexed by each port; wider ones are always candidates.
const NARROW: u32 = 64;

#[derive(Default)]
pub(super) struct Earlier {
    by_from: HashMap<(Option<Protocol>, IpNet), Vec<usize>>,
    by_to: HashMap<(Option<Protocol>, IpNet), Vec<usize>>,
    /// Prefix lengths present in the maps, per family (`true` = IPv4).
    lens: BTreeSet<(bool, u8)>,
    /// Rules with ports, by each port of their narrow ranges.
    by_port: HashMap<(Option<Protocol>, u16), Vec<usize>>,
    /// Rules with a wide port range.
    wide_ports: HashMap<Option<Protocol>, Vec<usize>>,
    /// Rules without ports (they contain any ports, and only they contain mirrored).
    portless: HashMap<Option<Protocol>, Vec<usize>>,
}

impl Earlier {
    /// Rule `i` (every rule inserted before has a lower number).
    pub fn insert(&mut self, i: usize, s: &Selector) {
        for p in s.from {
            push_once(self.by_from.entry((s.protocol, p.trunc())).or_default(), i);
        }
        for p in s.to {
            push_once(self.by_to.entry((s.protocol, p.trunc())).or_default(), i);
        }
        let nets = s.from.iter().chain(s.to);
        self.lens
            .extend(nets.map(|p| (p.addr().is_ipv4(), p.prefix_len())));
        if s.ports.is_empty() {
            self.portless.entry(s.protocol).or_default().push(i);
        }
        for r in &s.ports {
            if u32::from(r.hi - r.lo) < NARROW {
                for port in r.lo..=r.hi {
                    push_once(self.by_port.entry((s.protocol, port)).or_default(), i);
                }
            } else {
                push_once(self.wide_ports.entry(s.protocol).or_default(), i);
            }
        }
    }

    /// Every earlier rule that may contain `s`, ascending, each once.
    pub fn candidates(&self, s: &Selector) -> Vec<usize> {
        let (f, t) = (s.from[0], s.to[0]);
        // A container has no protocol or the same one.
        let both = [None, s.protocol];
        let protocols = &both[..if s.protocol.is_some() { 2 } else { 1 }];
        // Straight: from ⊆ from, to ⊆ to, ports covered (or none on the container).
        let straight = [
            self.around(&self.by_from, protocols, f),
            self.around(&self.by_to, protocols, t),
            self.ports(protocols, s),
        ];
        // Mirrored: from ⊆ to, to ⊆ from, and the container has no ports.
        let mirrored = [
            self.around(&self.by_to, protocols, f),
            self.around(&self.by_from, protocols, t),
            protocols
                .iter()
                .filter_map(|p| self.portless.get(p))
                .collect(),
        ];
        let mut out: Vec<usize> = [straight, mirrored]
            .into_iter()
            .filter_map(|lists| lists.into_iter().min_by_key(|l| total(l)))
            .flatten()
            .flatten()
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The lists of rules with a prefix (in `map`) containing `net`.
    fn around<'a>(
        &'a self,
        map: &'a HashMap<(Option<Protocol>, IpNet), Vec<usize>>,
        protocols: &[Option<Protocol>],
        net: IpNet,
    ) -> Vec<&'a Vec<usize>> {
        let v4 = net.addr().is_ipv4();
        let lens = self
            .lens
            .iter()
            .filter(|(f, len)| *f == v4 && *len <= net.prefix_len());
        let supernets = lens.filter_map(|(_, len)| IpNet::new(net.addr(), *len).ok());
        supernets
            .flat_map(|n| {
                protocols
                    .iter()
                    .filter_map(move |p| map.get(&(*p, n.trunc())))
            })
            .collect()
    }

    /// The lists of rules whose ports may cover `s`'s first port (all ports if it has none).
    fn ports<'a>(&'a self, protocols: &[Option<Protocol>], s: &Selector) -> Vec<&'a Vec<usize>> {
        let mut lists: Vec<&Vec<usize>> = protocols
            .iter()
            .filter_map(|p| self.portless.get(p))
            .collect();
        if let Some(first) = s.ports.first() {
            for p in protocols {
                lists.extend(self.by_port.get(&(*p, first.lo)));
                lists.extend(self.wide_ports.get(p));
            }
        }
        lists
    }
}

/// Append `i` unless it is already the last (a rule listing a prefix or port twice).
fn push_once(list: &mut Vec<usize>, i: usize) {
    if list.last() != Some(&i) {
        list.push(i);
    }
}

fn total(lists: &[&Vec<usize>]) -> usize {
    lists.iter().map(|l| l.len()).sum()
}

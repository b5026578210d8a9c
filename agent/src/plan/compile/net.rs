//! Prefix arithmetic the compiler needs (containment, intersection, family filters).

use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::Family;

use rustc_hash::FxHashSet;

/// `addr` lies inside one of `nets`.
pub fn any_contains(nets: &[IpNet], addr: &IpAddr) -> bool {
    nets.iter().any(|n| n.contains(addr))
}

/// A set of prefixes indexed by length: "does one contain this address" costs one hash
/// lookup per distinct prefix length instead of a scan (a rule naming 10,000 hosts asked
/// that for every peer: quadratic).
#[derive(Debug, Default)]
pub struct PrefixIndex {
    nets: FxHashSet<IpNet>,
    lens: Vec<(bool, u8)>,
}

impl PrefixIndex {
    pub fn new(nets: &[IpNet]) -> PrefixIndex {
        let mut lens: Vec<(bool, u8)> = nets
            .iter()
            .map(|n| (n.addr().is_ipv4(), n.prefix_len()))
            .collect();
        lens.sort_unstable();
        lens.dedup();
        PrefixIndex {
            nets: nets.iter().map(IpNet::trunc).collect(),
            lens,
        }
    }

    /// Same answer as [`any_contains`] over the indexed prefixes.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        let v4 = addr.is_ipv4();
        self.lens
            .iter()
            .filter(|(f, _)| *f == v4)
            .filter_map(|(_, len)| IpNet::new(*addr, *len).ok())
            .any(|n| self.nets.contains(&n.trunc()))
    }
}

/// The overlap of two prefixes: the longer one if one contains the other, else none.
pub fn intersect(a: &IpNet, b: &IpNet) -> Option<IpNet> {
    if a.contains(b) {
        Some(*b)
    } else if b.contains(a) {
        Some(*a)
    } else {
        None
    }
}

/// Only the prefixes of one family.
pub fn of_family(nets: &[IpNet], fam: Family) -> Vec<IpNet> {
    nets.iter()
        .filter(|n| Family::of_net(n) == fam)
        .copied()
        .collect()
}

/// A host prefix (/32 or /128) for an address.
pub fn host(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// Address bytes with a family tag, for hashing and key derivation (no allocation).
pub fn addr_tagged(addr: &IpAddr) -> TaggedAddr {
    let mut b = [0u8; 17];
    match addr {
        IpAddr::V4(a) => {
            b[0] = 4;
            b[1..5].copy_from_slice(&a.octets());
            TaggedAddr(b, 5)
        }
        IpAddr::V6(a) => {
            b[0] = 6;
            b[1..].copy_from_slice(&a.octets());
            TaggedAddr(b, 17)
        }
    }
}

/// A family tag and the address octets.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaggedAddr([u8; 17], usize);

impl std::ops::Deref for TaggedAddr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

/// The any-prefix of a family.
pub fn any_of(fam: Family) -> IpNet {
    match fam {
        Family::V4 => "0.0.0.0/0".parse().expect("literal"),
        Family::V6 => "::/0".parse().expect("literal"),
    }
}

//! Prefix arithmetic the compiler needs (containment, intersection, family filters).

use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::Family;

/// `inner` lies entirely inside `outer` (same family).
pub fn net_contains(outer: &IpNet, inner: &IpNet) -> bool {
    outer.contains(inner)
}

/// `addr` lies inside one of `nets`.
pub fn any_contains(nets: &[IpNet], addr: &IpAddr) -> bool {
    nets.iter().any(|n| n.contains(addr))
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

/// Address bytes with a family tag, for hashing and key derivation.
pub fn addr_bytes(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => [&[4u8][..], &a.octets()].concat(),
        IpAddr::V6(a) => [&[6u8][..], &a.octets()].concat(),
    }
}

/// The any-prefix of a family.
pub fn any_of(fam: Family) -> IpNet {
    match fam {
        Family::V4 => "0.0.0.0/0".parse().expect("literal"),
        Family::V6 => "::/0".parse().expect("literal"),
    }
}

//! Slot assignment by linear probing in a fixed order, and its update when a few
//! addresses come and go.
//!
//! Addresses probe in order of (home slot, family, address). As long as no slot runs past
//! the end of the table, each one then takes `max(home, previous one's slot + 1)`: the
//! slots before it are either below its home or all taken by the run it joins. So a change
//! moves only the addresses from the first changed one on, until one lands where it was.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address in probing order, with its home slot and the slot it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Probe {
    pub home: u32,
    v6: bool,
    bits: u128,
    pub slot: u32,
}

impl Probe {
    pub fn new(home: u32, a: &IpAddr) -> Probe {
        let (v6, bits) = match a {
            IpAddr::V4(a) => (false, u128::from(u32::from(*a))),
            IpAddr::V6(a) => (true, u128::from(*a)),
        };
        Probe {
            home,
            v6,
            bits,
            slot: u32::MAX,
        }
    }

    pub fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.bits as u32))
        }
    }

    /// The probing order: home slot, then the tagged address bytes (family first).
    fn key(&self) -> (u32, bool, u128) {
        (self.home, self.v6, self.bits)
    }
}

/// Sort `order` into probing order, once per address.
pub(super) fn sort(order: &mut Vec<Probe>) {
    order.sort_unstable_by_key(Probe::key);
    order.dedup_by_key(|p| p.key());
}

/// Slots for `order` (in probing order) in a table of `n` slots; false when they would
/// run past the end (probing then wraps around, which this does not model).
pub(super) fn assign(order: &mut [Probe], n: u64) -> bool {
    let mut next = 0;
    for p in order {
        let s = u64::from(p.home).max(next);
        if s >= n {
            return false;
        }
        p.slot = s as u32;
        next = s + 1;
    }
    true
}

/// `order` (assigned without running past the end) with `gone` taken out and `new` put
/// in, slots probed again from the first change until they agree with the old ones; the
/// entries whose slot changed (the new ones included). None when an entry to take out is
/// missing, one to put in is there already, or slots would run past the end.
pub(super) fn update(
    order: &mut Vec<Probe>,
    gone: &[Probe],
    new: &[Probe],
    n: u64,
) -> Option<Vec<Probe>> {
    let find = |order: &[Probe], p: &Probe| order.binary_search_by_key(&p.key(), Probe::key);
    for g in gone {
        let i = find(order, g).ok()?;
        order.remove(i);
    }
    for p in new {
        let i = find(order, p).err()?;
        order.insert(
            i,
            Probe {
                slot: u32::MAX,
                ..*p
            },
        );
    }
    let keys = || gone.iter().chain(new).map(Probe::key);
    let (Some(first), Some(last)) = (keys().min(), keys().max()) else {
        return Some(Vec::new());
    };
    let start = order.partition_point(|p| p.key() < first);
    let mut next = start
        .checked_sub(1)
        .map_or(0, |i| u64::from(order[i].slot) + 1);
    let mut moved = Vec::new();
    for p in &mut order[start..] {
        let s = u64::from(p.home).max(next);
        if s >= n {
            return None;
        }
        if s == u64::from(p.slot) && p.key() > last {
            break;
        }
        if s != u64::from(p.slot) {
            p.slot = s as u32;
            moved.push(*p);
        }
        next = s + 1;
    }
    Some(moved)
}

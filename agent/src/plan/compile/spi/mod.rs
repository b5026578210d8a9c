//! Deterministic, collision-free SPIs that both ends of an SA compute on their own.
//!
//! The kernel finds an inbound SA by (destination, SPI, ESP), so every inbound SPI on one
//! destination address must be unique. Each inventory address (host or cluster) gets a
//! *slot*: 256 consecutive SPIs of the owned range. The SA from sender address `a` uses a
//! SPI in `a`'s slot, so the SPIs arriving at any destination come from distinct slots and
//! can never collide; inside a slot, the epoch (mod 8) and the SA profile (cipher, mode,
//! encapsulation) pick one of the 256:
//!
//! ```text
//! spi = range.lo + slot * 256 + (epoch % 8) * 32 + profile      (profile < 32)
//! ```
//! Slots come from a hash of the address, with collisions resolved by linear probing in a
//! fixed order (hash, then address bytes) — every host computes the same table from the
//! same file, whatever the order of hosts in it. An address keeps its slot when others are
//! added unless they probe into it, which is rare because the table is kept at most half
//! full. Each epoch gets new SPIs, so a key is never changed under a live SPI, and SPIs
//! outside the owned range (another daemon's) are never used.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use policy_schema::{Cipher, Encapsulation, Mode, Policy};
use sha2::{Digest, Sha256};

use super::net::addr_tagged;
use probe::Probe;
use rustc_hash::{FxHashMap, FxHashSet};

mod probe;

/// SPIs per slot.
pub const SLOT_SIZE: u32 = 256;

/// The slot of every inventory address.
#[derive(Clone, Debug)]
pub struct SpiTable {
    lo: u32,
    slots: FxHashMap<IpAddr, Slot>,
    /// The addresses in probing order with their slots; empty when probing wrapped around
    /// the end of the range (then a change rebuilds the table).
    order: Vec<Probe>,
    inputs: SpiInputs,
    /// Every address once, in a slot of its own.
    unique: bool,
    /// Tells tables apart for [`SpiTable::moved_since`].
    id: u64,
    /// The table this one was updated from, and the addresses whose slot changed since.
    delta: Option<(u64, Vec<IpAddr>)>,
}

/// A table's slots, its addresses in probing order, and those whose slot changed.
type Updated = (FxHashMap<IpAddr, Slot>, Vec<Probe>, Vec<IpAddr>);

static TABLES: AtomicU64 = AtomicU64::new(0);

/// Where an address sits, and where its hash put it first (kept: hashing every address
/// was most of a rebuild when one of them moved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    slot: u32,
    home: u32,
}

impl Slot {
    fn of(p: &Probe) -> Slot {
        Slot {
            slot: p.slot,
            home: p.home,
        }
    }
}

/// Linear probing as first written, for when slots run past the end of the range: each
/// address, in probing order, takes the first free slot from its home on, wrapping
/// around. False when the table is full (addresses then share slots).
fn wrap_around(order: &mut [Probe], n: u64) -> bool {
    let mut unique = true;
    let mut taken = FxHashSet::with_capacity_and_hasher(order.len(), Default::default());
    for p in order.iter_mut() {
        let mut s = u64::from(p.home);
        let mut probes = 0;
        while taken.contains(&s) && probes < n {
            s = (s + 1) % n;
            probes += 1;
        }
        unique &= taken.insert(s);
        p.slot = s as u32;
    }
    unique
}

/// All a table depends on: the owned SPI range and the inventory's addresses in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SpiInputs {
    range: (u32, u32),
    addrs: Vec<IpAddr>,
}

impl SpiInputs {
    fn of(policy: &Policy) -> SpiInputs {
        SpiInputs {
            range: policy.ownership.spi,
            addrs: policy
                .hosts
                .iter()
                .flat_map(|h| h.addresses.iter())
                .chain(policy.clusters.iter().flat_map(|c| c.addresses.iter()))
                .copied()
                .collect(),
        }
    }
}

/// What an SA is for, inside a slot: at most 32 profiles.
pub fn profile(cipher: Cipher, mode: Mode, encap: Encapsulation) -> u32 {
    let m = match mode {
        Mode::Transport => 0,
        Mode::Tunnel => 1,
    };
    let u = match encap {
        Encapsulation::None => 0,
        Encapsulation::Udp => 1,
    };
    cipher.index() * 4 + m * 2 + u
}

fn slot_hash(addr: &IpAddr) -> u64 {
    let mut h = Sha256::new();
    h.update(b"xfrm-agent v1 spi-slot");
    h.update(&*addr_tagged(addr));
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

impl SpiTable {
    /// Assign slots to every host and cluster address of the policy.
    ///
    /// The policy's validation guarantees the range holds at least twice as many slots as
    /// there are addresses; if it does not, the table is still built but later addresses
    /// share slots (never silently: `complete()` says so). The definition
    /// [`SpiTable::reuse_or_build`] is tested against.
    #[cfg(test)]
    pub fn build(policy: &Policy) -> SpiTable {
        SpiTable::from_inputs(SpiInputs::of(policy), None)
    }

    /// The table of `policy`: `prev` itself when the range and the addresses are the same
    /// (a reload that changes rules only); else built anew, hashing only the addresses
    /// `prev` does not have (the result is the same as building anew, tested against `SpiTable::build`).
    pub fn reuse_or_build(policy: &Policy, prev: Option<&Arc<SpiTable>>) -> Arc<SpiTable> {
        let inputs = SpiInputs::of(policy);
        match prev {
            Some(p) if p.inputs == inputs => p.clone(),
            _ => Arc::new(SpiTable::from_inputs(inputs, prev.map(|p| &**p))),
        }
    }

    fn from_inputs(inputs: SpiInputs, prev: Option<&SpiTable>) -> SpiTable {
        let (lo, hi) = inputs.range;
        let n = ((u64::from(hi) - u64::from(lo) + 1) / u64::from(SLOT_SIZE)).max(1);
        let prev = prev.filter(|p| p.inputs.range == inputs.range);
        let id = TABLES.fetch_add(1, Ordering::Relaxed);
        if let Some((slots, order, moved)) = prev.and_then(|p| p.updated(&inputs, n)) {
            let delta = prev.map(|p| (p.id, moved));
            return SpiTable {
                lo,
                slots,
                order,
                inputs,
                unique: true,
                id,
                delta,
            };
        }
        // n <= 2^32 / 256: a home slot fits in 32 bits.
        let home = |a: &IpAddr| match prev.and_then(|p| p.slots.get(a)) {
            Some(s) => s.home,
            None => (slot_hash(a) % n) as u32,
        };
        let mut order: Vec<Probe> = inputs
            .addrs
            .iter()
            .map(|a| Probe::new(home(a), a))
            .collect();
        probe::sort(&mut order);
        let mut unique = order.len() == inputs.addrs.len();
        let linear = probe::assign(&mut order, n);
        if !linear {
            unique &= wrap_around(&mut order, n);
        }
        let slots = order.iter().map(|p| (p.addr(), Slot::of(p))).collect();
        if !linear {
            order.clear();
        }
        SpiTable {
            lo,
            slots,
            order,
            inputs,
            unique,
            id,
            delta: None,
        }
    }

    /// The slots for `inputs` by updating this table, when only a few addresses changed
    /// in place (the usual edit) and none repeats: with the entries in probing order and
    /// the addresses whose slot changed.
    fn updated(&self, inputs: &SpiInputs, n: u64) -> Option<Updated> {
        let (old, new) = (&self.inputs.addrs, &inputs.addrs);
        if !self.unique || self.order.is_empty() || old.len() != new.len() {
            return None;
        }
        let (mut was, mut is) = (Vec::new(), Vec::new());
        for (o, a) in old.iter().zip(new).filter(|(o, a)| o != a) {
            was.push(*o);
            is.push(*a);
            if was.len() > 64 {
                return None;
            }
        }
        let gone: Vec<Probe> = (was.iter().filter(|a| !is.contains(a)))
            .map(|a| Some(Probe::new(self.slots.get(a)?.home, a)))
            .collect::<Option<_>>()?;
        // Old addresses are unique, so the new ones are when the changed positions do
        // not repeat one, nor name one the table has at a position that did not change.
        let elsewhere = |a: &IpAddr| !was.contains(a) && self.slots.contains_key(a);
        if (is.iter().enumerate()).any(|(i, a)| is[..i].contains(a) || elsewhere(a)) {
            return None;
        }
        let added: Vec<&IpAddr> = is.iter().filter(|a| !was.contains(a)).collect();
        let added: Vec<Probe> = (added.into_iter())
            .map(|a| Probe::new((slot_hash(a) % n) as u32, a))
            .collect();
        let mut order = self.order.clone();
        let moved = probe::update(&mut order, &gone, &added, n)?;
        let mut slots = self.slots.clone();
        for g in &gone {
            slots.remove(&g.addr());
        }
        slots.extend(moved.iter().map(|p| (p.addr(), Slot::of(p))));
        Some((slots, order, moved.iter().map(Probe::addr).collect()))
    }

    /// Whether every inventory address appears once and has a slot of its own: then SAs
    /// with different peers never share a (destination, SPI).
    pub fn is_collision_free(&self) -> bool {
        self.unique
    }

    /// The addresses whose slot differs from the one they had in `old` (new ones included):
    /// one address added or moved can push another out of its slot (linear probing).
    pub fn moved_since(&self, old: &SpiTable) -> Vec<IpAddr> {
        if let Some((from, moved)) = &self.delta {
            if *from == old.id {
                return moved.clone();
            }
        }
        if self.lo != old.lo {
            return self.slots.keys().copied().collect();
        }
        self.slots
            .iter()
            .filter(|(a, s)| old.slots.get(*a).map(|o| o.slot) != Some(s.slot))
            .map(|(a, _)| *a)
            .collect()
    }

    /// The SPIs of every SA sent from `src`, if `src` is in the inventory.
    pub fn slot_spis(&self, src: &IpAddr) -> Option<std::ops::RangeInclusive<u32>> {
        let first = self.lo + self.slots.get(src)?.slot * SLOT_SIZE;
        Some(first..=first + (SLOT_SIZE - 1))
    }

    /// The SPI of the SA sent from `src` in `epoch` with `profile`, if `src` is in the
    /// inventory.
    pub fn spi(&self, src: &IpAddr, epoch: u64, profile: u32) -> Option<u32> {
        let slot = self.slots.get(src)?.slot;
        Some(self.lo + slot * SLOT_SIZE + ((epoch % 8) as u32) * 32 + profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_schema::Cipher;
    use proptest::prelude::*;

    /// A policy whose hosts have the addresses `addrs` (v4 and v6), in `slots` slots.
    fn inventory(addrs: &[(bool, u16)], slots: u32) -> Policy {
        let mut p = crate::plan::testkit::seed();
        p.ownership.spi = (0x4000_0000, 0x4000_0000 + slots * SLOT_SIZE - 1);
        p.hosts = (addrs.iter().enumerate())
            .map(|(i, &(v6, x))| {
                let a = if v6 {
                    format!("fd00::{x:x}")
                } else {
                    format!("10.0.{}.{}", x >> 8, x & 0xff)
                };
                crate::plan::testkit::host(&format!("h{i}"), &[&a], i as u32)
            })
            .collect();
        p
    }

    /// The rebuilt table is the one built anew, and says which addresses moved.
    fn same_as_built(old: &Arc<SpiTable>, p: &Policy) -> Result<Arc<SpiTable>, TestCaseError> {
        let built = SpiTable::build(p);
        let rebuilt = SpiTable::reuse_or_build(p, Some(old));
        prop_assert_eq!(&built.slots, &rebuilt.slots);
        prop_assert_eq!(built.unique, rebuilt.unique);
        let moved: std::collections::BTreeSet<_> = rebuilt.moved_since(old).into_iter().collect();
        for (a, s) in &built.slots {
            let was = old.slots.get(a).map(|o| o.slot);
            prop_assert_eq!(moved.contains(a), was != Some(s.slot), "{}", a);
        }
        Ok(rebuilt)
    }

    #[test]
    fn an_address_repeated_in_place_is_shared() {
        let at = |xs: &[u16]| inventory(&xs.iter().map(|x| (false, *x)).collect::<Vec<_>>(), 64);
        let old = Arc::new(SpiTable::build(&at(&[1, 2, 3])));
        // Every position changed, to addresses the table had, one of them twice.
        let new = SpiTable::reuse_or_build(&at(&[2, 1, 1]), Some(&old));
        assert!(!new.is_collision_free());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A table rebuilt from another one is the one built anew.
        #[test]
        fn rebuilt_equals_built(
            before in proptest::collection::vec((any::<bool>(), 0u16..64), 1..40),
            after in proptest::collection::vec((any::<bool>(), 0u16..64), 1..40),
            slots in 1u32..80,
        ) {
            let old = Arc::new(SpiTable::build(&inventory(&before, slots)));
            same_as_built(&old, &inventory(&after, slots))?;
        }

        /// Tables updated edit after edit (addresses replaced in place, as a host moves)
        /// stay the ones built anew.
        #[test]
        fn updated_equals_built(
            first in proptest::collection::vec((any::<bool>(), 0u16..300), 1..60),
            edits in proptest::collection::vec((0usize..60, any::<bool>(), 0u16..300), 1..20),
            slots in 40u32..200,
        ) {
            let mut addrs = first;
            let mut table = Arc::new(SpiTable::build(&inventory(&addrs, slots)));
            for (i, v6, x) in edits {
                let n = addrs.len();
                addrs[i % n] = (v6, x);
                table = same_as_built(&table, &inventory(&addrs, slots))?;
            }
        }
    }

    #[test]
    fn profiles_fit_in_32() {
        for c in Cipher::ALL {
            for m in [Mode::Transport, Mode::Tunnel] {
                for u in [Encapsulation::None, Encapsulation::Udp] {
                    assert!(profile(c, m, u) < 32);
                }
            }
        }
    }
}

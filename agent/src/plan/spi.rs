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
use std::sync::Arc;

use policy_schema::{Cipher, Encapsulation, Mode, Policy};
use sha2::{Digest, Sha256};

use super::net::{addr_tagged, TaggedAddr};
use crate::fasthash::{FastMap, FastSet};

/// SPIs per slot.
pub const SLOT_SIZE: u32 = 256;

/// The slot of every inventory address.
#[derive(Clone, Debug)]
pub struct SpiTable {
    lo: u32,
    slots: FastMap<IpAddr, u32>,
    inputs: SpiInputs,
    /// Every address once, in a slot of its own.
    unique: bool,
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
    /// share slots (never silently: `complete()` says so).
    pub fn build(policy: &Policy) -> SpiTable {
        SpiTable::from_inputs(SpiInputs::of(policy))
    }

    /// The table of `policy`: `prev` itself when the range and the addresses are the same
    /// (a reload that changes rules only), since hashing every address is most of a build.
    pub fn reuse_or_build(policy: &Policy, prev: Option<&Arc<SpiTable>>) -> Arc<SpiTable> {
        let inputs = SpiInputs::of(policy);
        match prev {
            Some(p) if p.inputs == inputs => p.clone(),
            _ => Arc::new(SpiTable::from_inputs(inputs)),
        }
    }

    fn from_inputs(inputs: SpiInputs) -> SpiTable {
        let (lo, hi) = inputs.range;
        let n = ((u64::from(hi) - u64::from(lo) + 1) / u64::from(SLOT_SIZE)).max(1);
        let mut addrs: Vec<(u64, TaggedAddr, IpAddr)> = inputs
            .addrs
            .iter()
            .map(|a| (slot_hash(a) % n, addr_tagged(a), *a))
            .collect();
        addrs.sort();
        addrs.dedup_by(|x, y| x.2 == y.2);
        let mut unique = addrs.len() == inputs.addrs.len();
        let mut taken = FastSet::with_capacity_and_hasher(addrs.len(), Default::default());
        let mut slots = FastMap::with_capacity_and_hasher(addrs.len(), Default::default());
        for (start, _, addr) in addrs {
            let mut s = start;
            let mut probes = 0;
            while taken.contains(&s) && probes < n {
                s = (s + 1) % n;
                probes += 1;
            }
            unique &= taken.insert(s);
            slots.insert(addr, s as u32);
        }
        SpiTable {
            lo,
            slots,
            inputs,
            unique,
        }
    }

    /// Whether every inventory address appears once and has a slot of its own: then SAs
    /// with different peers never share a (destination, SPI).
    pub fn is_collision_free(&self) -> bool {
        self.unique
    }

    /// The addresses whose slot differs from the one they had in `old` (new ones included):
    /// one address added or moved can push another out of its slot (linear probing).
    pub fn moved_since(&self, old: &SpiTable) -> Vec<IpAddr> {
        if self.lo != old.lo {
            return self.slots.keys().copied().collect();
        }
        self.slots
            .iter()
            .filter(|(a, s)| old.slots.get(*a) != Some(*s))
            .map(|(a, _)| *a)
            .collect()
    }

    /// The SPI of the SA sent from `src` in `epoch` with `profile`, if `src` is in the
    /// inventory.
    pub fn spi(&self, src: &IpAddr, epoch: u64, profile: u32) -> Option<u32> {
        let slot = *self.slots.get(src)?;
        Some(self.lo + slot * SLOT_SIZE + ((epoch % 8) as u32) * 32 + profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_schema::Cipher;

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

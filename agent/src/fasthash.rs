//! A fast, non-keyed hash for maps keyed by addresses, prefixes and public keys.
//!
//! The standard SipHash resists collision attacks on untrusted keys; ours all come from the
//! operator's policy file, and hashing them was a tenth of a 10,000-peer compile. This is
//! the Fx hash (rustc's), with a final rotation so that hashbrown's bucket index (low bits)
//! and tag (top bits) both come from well-mixed product bits.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with the fast hash.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with the fast hash.
pub type FastSet<T> = HashSet<T, BuildHasherDefault<FastHasher>>;

/// The Fx hash state.
#[derive(Clone, Copy, Default)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // The product's low bits only depend on the inputs' low bits.
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn neighbouring_addresses_spread_over_buckets() {
        let buckets: HashSet<u64> = (0..1024u32)
            .map(|i| {
                let a = IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8));
                let mut h = FastHasher::default();
                std::hash::Hash::hash(&a, &mut h);
                h.finish() & 1023
            })
            .collect();
        assert!(buckets.len() > 600, "{} of 1024 buckets", buckets.len());
    }
}

//! Randomness comes in from the caller, so tests and simulations are deterministic.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A source of cryptographically secure random bytes (the daemon wraps the OS's).
pub trait Rng {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);
}

/// A deterministic stream (SHA-256 of seed and counter), for tests and simulations only.
pub struct SeededRng {
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
}

impl SeededRng {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> SeededRng {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_be_bytes());
        SeededRng {
            seed: Zeroizing::new(bytes),
            counter: 0,
        }
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed.as_slice())
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter = self.counter.wrapping_add(1);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

/// `n` random bytes.
pub(crate) fn random_vec(rng: &mut dyn Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v);
    v
}

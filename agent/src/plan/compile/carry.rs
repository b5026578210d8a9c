//! What one compile leaves the next: the pair secrets, the SA keys expanded from them and
//! the SPI slots. A [`Compiler`](super::Compiler) keeps them across reloads; a one-shot
//! [`desired`](super::desired) starts from an empty one, so the result never depends on them.

use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;

use policy_schema::PublicKey;
use rustc_hash::FxHashMap;

use super::spi::SpiTable;
use crate::keys::{Identity, PairKey, PrivateKey};
use crate::secret::Secret;

/// The state compiles reuse; every part is a cache of a pure function of the inputs.
#[derive(Default)]
pub(crate) struct Carry {
    pub pairs: Pairs,
    /// The last compile's SPI slots: they only change with the inventory's addresses.
    pub spis: Option<Arc<SpiTable>>,
}

impl Carry {
    /// The SPI table `get` returns given the one kept from the last compile, which it may
    /// reuse (see [`SpiTable::reuse_or_build`]); kept in turn for the next compile.
    pub fn spi_table(
        &mut self,
        get: impl FnOnce(Option<&Arc<SpiTable>>) -> Arc<SpiTable>,
    ) -> Arc<SpiTable> {
        let table = get(self.spis.as_ref());
        self.spis = Some(table.clone());
        table
    }
}

/// Pair secrets by (our public key, the peer's): computed once per peer key, which saves
/// one X25519 operation per peer on every compile (≈0.9 s at 10,000 peers). Our public key
/// names our private key, so entries stay right across identities; those of keys no longer
/// held are dropped.
#[derive(Default)]
pub(crate) struct Pairs {
    map: FxHashMap<(PublicKey, PublicKey), Pair>,
    /// Our public keys the entries were made for (the identity of the last compile).
    held: Vec<PublicKey>,
}

impl Pairs {
    /// Forget the pairs of private keys `id` does not hold.
    pub fn keep_held(&mut self, id: &Identity) {
        let held: Vec<PublicKey> = id.held_keys().collect();
        if held != self.held {
            self.map.retain(|(mine, _), _| held.contains(mine));
            self.held = held;
        }
    }

    /// The pair of our key `local` with `peer`; `None` (logged) when the peer's key gives
    /// no contributory secret — that peer gets no SAs, so its protected traffic is
    /// dropped, never sent under keys anyone could compute.
    pub fn get(&mut self, local: &PrivateKey, peer: &PublicKey) -> Option<&mut Pair> {
        match self.map.entry((local.public(), *peer)) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(v) => match PairKey::new(local, peer) {
                Ok(key) => Some(v.insert(Pair {
                    key,
                    memo: Vec::new(),
                })),
                Err(e) => {
                    tracing::error!(peer = %peer, error = %e, "refusing the pair");
                    None
                }
            },
        }
    }
}

#[cfg(test)]
impl Pairs {
    /// (pairs, SA keys remembered over all pairs): what a test can see of the reuse.
    pub fn counts(&self) -> (usize, usize) {
        let keys = self.map.values().map(|p| p.memo.len()).sum();
        (self.map.len(), keys)
    }
}

/// A pair secret and the SA keys already expanded from it: every recompile (reload,
/// rotation step) needs the same keys again, and expanding them was a fifth of a
/// 10,000-peer compile.
pub(crate) struct Pair {
    key: PairKey,
    memo: Vec<Derived>,
}

/// What tells one SA key of a pair from another: everything else its HKDF info binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DerivationId {
    /// The SA profile (cipher, mode, encapsulation), as numbered for SPIs.
    pub profile: u32,
    pub epoch: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// An SA key already expanded from a pair.
struct Derived {
    id: DerivationId,
    keys: (Secret, Secret),
}

/// A pair needs a handful of SAs at a time (addresses × profiles × at most three epochs);
/// past this many remembered keys something is off, and the memo starts over.
const MEMO_CAP: usize = 64;

impl Pair {
    /// The keys `derive` expands for `id`, expanded once and then remembered. `derive` must
    /// depend on nothing but `id` and this pair. Keys of epochs before `oldest` (no longer
    /// in force) are forgotten when a new one is remembered.
    pub fn remembered(
        &mut self,
        id: DerivationId,
        oldest: u64,
        derive: impl FnOnce(&PairKey) -> (Secret, Secret),
    ) -> (Secret, Secret) {
        if let Some(d) = self.memo.iter().find(|d| d.id == id) {
            return d.keys.clone();
        }
        self.memo.retain(|d| d.id.epoch >= oldest);
        if self.memo.len() >= MEMO_CAP {
            self.memo.clear();
        }
        let keys = derive(&self.key);
        self.memo.push(Derived {
            id,
            keys: keys.clone(),
        });
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit;

    /// The pair is computed once while its key is held, and anew for a new key.
    #[test]
    fn pairs_serve_only_the_keys_still_held() {
        let me = PrivateKey::generate();
        let peer = PrivateKey::generate().public();
        let mut p = testkit::seed();
        p.hosts[0].public_key = me.public();
        let id = Identity::resolve(&p, me.clone(), None).unwrap();
        let mut pairs = Pairs::default();
        pairs.keep_held(&id);
        let first: *const Pair = pairs.get(id.key(), &peer).unwrap();
        let same = Identity::resolve(&p, me, None).unwrap();
        pairs.keep_held(&same);
        assert!(std::ptr::eq(first, pairs.get(same.key(), &peer).unwrap()));
        let other = PrivateKey::generate();
        p.hosts[0].public_key = other.public();
        let rekeyed = Identity::resolve(&p, other, None).unwrap();
        pairs.keep_held(&rekeyed);
        assert_eq!(pairs.map.len(), 0, "the old key's pairs are dropped");
        pairs.get(rekeyed.key(), &peer).unwrap();
        assert_eq!(pairs.map.len(), 1);
    }
}

//! The desired SAs, collected during a compile and then turned into a map at once.

use std::collections::BTreeMap;

use crate::model::{DesiredSa, SaKey};

/// Collects SAs, then builds the map at once: inserting 30,000 SAs one by one searched
/// the map every time. Keys and SAs are kept apart so that sorting moves only the keys —
/// moving whole SAs around cost more than the searches it replaced.
#[derive(Default)]
pub struct SaSink {
    keys: Vec<(SaKey, usize)>,
    sas: Vec<Option<DesiredSa>>,
}

impl SaSink {
    pub fn with_capacity(n: usize) -> SaSink {
        SaSink {
            keys: Vec::with_capacity(n),
            sas: Vec::with_capacity(n),
        }
    }

    pub(super) fn push(&mut self, key: SaKey, sa: DesiredSa) {
        self.keys.push((key, self.sas.len()));
        self.sas.push(Some(sa));
    }

    /// The SAs as a map; of several with one key the last one wins, as with map inserts.
    pub fn into_map(self) -> BTreeMap<SaKey, DesiredSa> {
        let SaSink { mut keys, mut sas } = self;
        // By key, then by position: keeping the last of a run keeps the last one added.
        keys.sort_unstable();
        keys.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        let sorted: Vec<(SaKey, DesiredSa)> = keys
            .iter()
            .map(|&(k, i)| (k, sas[i].take().expect("each position is taken once")))
            .collect();
        // Sorted and unique: the map is built in one pass over the nodes.
        sorted.into_iter().collect()
    }
}

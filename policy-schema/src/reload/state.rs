//! The pieces of a text, and what a reload keeps of the last good load per kind of
//! reusable entry (`[[hosts]]`, `[[rules]]`): per entry, the hash of its piece, the offsets
//! of its values and a hash of the value the load returned.

use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;

use rustc_hash::FxHasher;

use crate::raw::Origin;

/// A piece's hash; never zero, so that "no piece" costs no space in [`Kept`].
pub(crate) type PieceHash = NonZeroU64;

/// A piece of the text: from a line that begins with `[` (or the text's start) to the next.
pub(crate) struct Piece {
    pub start: usize,
    pub end: usize,
    /// Only pieces that begin with `[[` (could be an array-of-tables entry) are hashed.
    pub hash: Option<PieceHash>,
}

/// Cut `text` before every line that begins with `[`, hashing the `[[` pieces with `hash`.
pub(crate) fn split(text: &str, hash: impl Fn(&[u8]) -> u64) -> Vec<Piece> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    starts.extend(memchr::memmem::find_iter(bytes, b"\n[").map(|i| i + 1));
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    let each = starts.iter().zip(ends).map(|(&start, end)| Piece {
        start,
        end,
        hash: bytes[start..end]
            .starts_with(b"[[")
            .then(|| NonZeroU64::new(hash(&bytes[start..end])).unwrap_or(NonZeroU64::MIN)),
    });
    each.collect()
}

/// A model value's hash (to check that a caller's previous policy is the one returned).
pub(crate) fn value_hash<T: Hash>(value: &T) -> u64 {
    let mut h = FxHasher::default();
    value.hash(&mut h);
    h.finish()
}

/// Offsets kept for a value the file does not give (an optional key left out).
pub(crate) const ABSENT: u32 = u32::MAX;

/// The entries of one kind of the last good load.
pub(crate) struct Kept {
    /// Per entry, the hash of its piece if that piece can be reused.
    pieces: Vec<Option<PieceHash>>,
    /// The entries with a reusable piece, sorted by its hash.
    by_hash: Vec<u32>,
    /// Per entry, where its offsets start in `offsets` (one more at the end).
    firsts: Vec<u32>,
    /// Per entry, its values' offsets relative to its header ([`ABSENT`] for none).
    offsets: Vec<u32>,
    /// Per entry, [`value_hash`] of the value the load returned (0: not yet known).
    values: Vec<u64>,
}

impl Kept {
    /// The entries (by `origin`) whose piece holds exactly one table, theirs, read without
    /// error; `headers` are every header offset, ascending. `offsets` lists an entry's
    /// values' offsets (`None` for absent ones); `value` is the value hash of an entry the
    /// walk reused. `None` when offsets do not fit in u32.
    pub fn record<E>(
        pieces: &[Piece],
        headers: &[usize],
        entries: &[E],
        origin: impl Fn(&E) -> &Origin,
        offsets: impl Fn(&E, &mut Vec<Option<usize>>),
        value: impl Fn(usize) -> Option<u64>,
    ) -> Option<Kept> {
        let mut kept = Kept {
            pieces: vec![None; entries.len()],
            by_hash: Vec::new(),
            firsts: Vec::with_capacity(entries.len() + 1),
            offsets: Vec::new(),
            values: Vec::with_capacity(entries.len()),
        };
        let mut heads = headers.iter().peekable();
        let mut each = entries.iter().map(&origin).enumerate().peekable();
        for p in pieces {
            let mut inside = 0;
            while heads.next_if(|&&h| h < p.end).is_some() {
                inside += 1;
            }
            while each.next_if(|(_, o)| o.at < p.start).is_some() {}
            let Some((k, o)) = each.next_if(|(_, o)| o.at == p.start) else {
                continue;
            };
            if inside == 1 && o.complete && p.hash.is_some() {
                kept.pieces[k] = p.hash;
                kept.by_hash.push(u32::try_from(k).ok()?);
            }
        }
        let mut abs = Vec::new();
        for e in entries {
            let at = origin(e).at;
            kept.values.push(value(at).unwrap_or(0));
            kept.firsts.push(u32::try_from(kept.offsets.len()).ok()?);
            abs.clear();
            offsets(e, &mut abs);
            for a in &abs {
                let rel = a.map_or(Some(ABSENT), |a| u32::try_from(a - at).ok())?;
                kept.offsets.push(rel);
            }
        }
        kept.firsts.push(u32::try_from(kept.offsets.len()).ok()?);
        kept.by_hash
            .sort_unstable_by_key(|&k| kept.pieces[k as usize]);
        kept.by_hash.shrink_to_fit();
        kept.offsets.shrink_to_fit();
        Some(kept)
    }

    /// Once the load succeeded: the values it returned, in the order of the entries.
    pub fn with_values<T: Hash>(mut self, built: &[T]) -> Kept {
        for (v, b) in self.values.iter_mut().zip(built) {
            if *v == 0 {
                *v = value_hash(b);
            }
        }
        self
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The entry whose piece hashes to `hash`: most often `guess` (the one after the last
    /// found, when entries kept their order), else by binary search.
    pub fn find(&self, hash: PieceHash, guess: usize) -> Option<usize> {
        if self.pieces.get(guess) == Some(&Some(hash)) {
            return Some(guess);
        }
        let piece = |k: &u32| self.pieces[*k as usize];
        let i = self.by_hash.partition_point(|k| piece(k) < Some(hash));
        let k = *self.by_hash.get(i)?;
        (piece(&k) == Some(hash)).then_some(k as usize)
    }

    pub fn offsets_of(&self, k: usize) -> &[u32] {
        &self.offsets[self.firsts[k] as usize..self.firsts[k + 1] as usize]
    }

    pub fn value(&self, k: usize) -> u64 {
        self.values[k]
    }

    pub fn heap_bytes(&self) -> usize {
        self.pieces.capacity() * 8
            + (self.by_hash.capacity() + self.firsts.capacity() + self.offsets.capacity()) * 4
            + self.values.capacity() * 8
    }
}

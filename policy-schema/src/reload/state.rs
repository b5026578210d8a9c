//! What a reload keeps of the last good load (per `[[hosts]]` piece: its hash, its host's
//! index and the offsets of its values) and how it hands reused entries to the walk.

use std::hash::{Hash, Hasher};

use std::cell::Cell;
use std::num::NonZeroU64;

use rustc_hash::FxHasher;

use crate::model::Host;
use crate::parse::{Known, Reuse};
use crate::raw::{Origin, RawHost, RawPolicy, Sp};

/// A piece of the text: from a line that begins with `[` (or the text's start) to the next.
pub(crate) struct Piece {
    pub start: usize,
    pub end: usize,
    /// Only pieces that begin with `[[` (could be `[[hosts]]`) are hashed.
    pub hash: Option<PieceHash>,
}

/// A piece's hash; never zero, so that "no piece" costs no space in [`Seen`].
pub(crate) type PieceHash = NonZeroU64;

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

/// The `[[hosts]]` pieces of the last good load.
pub(crate) struct Seen {
    /// Per host, the hash of its piece if that piece can be reused.
    pieces: Vec<Option<PieceHash>>,
    /// The hosts with a reusable piece, sorted by its hash.
    by_hash: Vec<u32>,
    /// Per host, where its offsets start in `offsets` (one more at the end).
    firsts: Vec<u32>,
    /// Per host, relative to its header: name, public-key, then each address, zone and
    /// gateway-for prefix.
    offsets: Vec<u32>,
    /// Per host, a hash of the value that load returned: a reused entry is rebuilt from
    /// the previous policy's host, which must be exactly that value.
    values: Vec<u64>,
}

fn value_hash(host: &Host) -> u64 {
    let mut h = FxHasher::default();
    host.hash(&mut h);
    h.finish()
}

impl Seen {
    /// The pieces that hold exactly one table, a host read without error at their start
    /// (`headers`: every header offset, ascending). `None` when offsets do not fit in u32.
    /// Complete once [`Seen::with_hosts`] has the hosts of the policy built from `raw`.
    pub fn record(
        pieces: &[Piece],
        headers: &[usize],
        raw: &RawPolicy,
        reused: &Reused,
    ) -> Option<Seen> {
        let mut seen = Seen {
            pieces: vec![None; raw.hosts.len()],
            by_hash: Vec::new(),
            firsts: Vec::with_capacity(raw.hosts.len() + 1),
            offsets: Vec::new(),
            values: Vec::with_capacity(raw.hosts.len()),
        };
        let mut heads = headers.iter().peekable();
        let mut hosts = raw.hosts.iter().enumerate().peekable();
        for p in pieces {
            let mut inside = 0;
            while heads.next_if(|&&h| h < p.end).is_some() {
                inside += 1;
            }
            while hosts.next_if(|(_, h)| h.origin.at < p.start).is_some() {}
            let Some((k, h)) = hosts.next_if(|(_, h)| h.origin.at == p.start) else {
                continue;
            };
            if inside == 1 && h.origin.complete && p.hash.is_some() {
                seen.pieces[k] = p.hash;
                seen.by_hash.push(u32::try_from(k).ok()?);
            }
        }
        for h in &raw.hosts {
            // A reused host's value is the one checked against its hash; 0 = to compute.
            seen.values
                .push(reused.value_hash(h.origin.at).unwrap_or(0));
            seen.firsts.push(u32::try_from(seen.offsets.len()).ok()?);
            let rel = |at: usize| u32::try_from(at - h.origin.at).ok();
            let at = |o: &Option<Sp<_>>| o.as_ref().map_or(h.origin.at, |s: &Sp<_>| s.at);
            seen.offsets.push(rel(at(&h.name))?);
            seen.offsets
                .push(rel(h.public_key.as_ref().map_or(h.origin.at, |s| s.at))?);
            let lists = h.addresses.iter().map(|a| a.at);
            let lists = lists.chain(h.zones.iter().map(|z| z.at));
            for a in lists.chain(h.gateway_for.iter().map(|g| g.at)) {
                seen.offsets.push(rel(a)?);
            }
        }
        seen.firsts.push(u32::try_from(seen.offsets.len()).ok()?);
        seen.by_hash
            .sort_unstable_by_key(|&k| seen.pieces[k as usize]);
        seen.by_hash.shrink_to_fit();
        seen.offsets.shrink_to_fit();
        Some(seen)
    }

    /// Once the load succeeded: the hosts it returned (in the order of `raw.hosts`).
    pub fn with_hosts(mut self, hosts: &[Host]) -> Seen {
        for (v, h) in self.values.iter_mut().zip(hosts) {
            if *v == 0 {
                *v = value_hash(h);
            }
        }
        self
    }

    /// `hosts` could be the ones the load that recorded this returned (each reused one is
    /// checked against its hash as it is reused).
    pub fn describes(&self, hosts: &[Host]) -> bool {
        hosts.len() == self.values.len()
    }

    /// The host whose piece hashes to `hash`: most often `guess` (the one after the last
    /// found, when entries kept their order), else by binary search.
    fn host_of(&self, hash: PieceHash, guess: usize) -> Option<usize> {
        if self.pieces.get(guess) == Some(&Some(hash)) {
            return Some(guess);
        }
        let piece = |k: &u32| self.pieces[*k as usize];
        let i = self.by_hash.partition_point(|k| piece(k) < Some(hash));
        let k = *self.by_hash.get(i)?;
        (piece(&k) == Some(hash)).then_some(k as usize)
    }

    fn offsets_of(&self, k: usize) -> &[u32] {
        &self.offsets[self.firsts[k] as usize..self.firsts[k + 1] as usize]
    }

    pub fn heap_bytes(&self) -> usize {
        self.pieces.capacity() * 8
            + (self.by_hash.capacity() + self.firsts.capacity() + self.offsets.capacity()) * 4
            + self.values.capacity() * 8
    }
}

/// The pieces of a new text that a [`Seen`] matches, by the offset of their header.
pub(crate) struct Reused<'p> {
    seen: Option<(&'p Seen, &'p [Host])>,
    /// (header offset, previous host index), ascending.
    at: Vec<(usize, usize)>,
    /// Where the last lookup found its offset: the walk asks in file order, three times.
    cursor: Cell<usize>,
}

impl<'p> Reused<'p> {
    pub fn new(pieces: &[Piece], last: Option<(&'p Seen, &'p crate::Policy)>) -> Reused<'p> {
        let Some((seen, prev)) = last else {
            return Reused {
                seen: None,
                at: Vec::new(),
                cursor: Cell::new(0),
            };
        };
        let mut guess = 0;
        let mut matched = |p: &Piece| {
            let k = seen.host_of(p.hash?, guess)?;
            guess = k + 1;
            Some((p.start, k))
        };
        let matched = pieces.iter().filter_map(&mut matched);
        Reused {
            seen: Some((seen, &prev.hosts)),
            at: matched.collect(),
            cursor: Cell::new(0),
        }
    }

    fn index(&self, at: usize) -> Option<usize> {
        let c = self.cursor.get();
        let i = match self.at.get(c..c + 2) {
            Some([(a, _), ..]) if *a == at => c,
            Some([_, (a, _)]) if *a == at => c + 1,
            _ => self.at.binary_search_by_key(&at, |(a, _)| *a).ok()?,
        };
        self.cursor.set(i);
        Some(self.at[i].1)
    }

    /// The value hash of the host reused at `at`.
    fn value_hash(&self, at: usize) -> Option<u64> {
        let (seen, _) = self.seen?;
        Some(seen.values[self.index(at)?])
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.at.len()
    }

    pub fn claims(&self, at: usize) -> bool {
        self.index(at).is_some()
    }
}

impl Reuse for Reused<'_> {
    fn name(&self, at: usize) -> Option<&str> {
        let (_, hosts) = self.seen?;
        Some(&hosts[self.index(at)?].name)
    }

    fn host(&self, at: usize, label: String, known: &Known) -> Option<RawHost> {
        let (seen, hosts) = self.seen?;
        let k = self.index(at)?;
        let h = &hosts[k];
        // Not the value the last load returned (the caller's `previous` is another
        // policy), or the walk would report a zone the new text no longer defines.
        if value_hash(h) != seen.values[k] || !h.zones.iter().all(|z| known.zones.contains(z)) {
            return None;
        }
        let offs = seen.offsets_of(k);
        let lists = h.addresses.len() + h.zones.len() + h.gateway_for.len();
        if offs.len() != 2 + lists {
            return None;
        }
        let mut offs = offs.iter().map(|&o| at + o as usize);
        let mut next = || offs.next().expect("counted above");
        Some(RawHost {
            origin: Origin {
                at,
                label,
                complete: true,
            },
            name: Some(Sp::new(h.name.clone(), next())),
            public_key: Some(Sp::new(h.public_key, next())),
            addresses: h.addresses.iter().map(|a| Sp::new(*a, next())).collect(),
            zones: h.zones.iter().map(|z| Sp::new(z.clone(), next())).collect(),
            encapsulation: h.encapsulation,
            gateway_for: h.gateway_for.iter().map(|g| Sp::new(*g, next())).collect(),
        })
    }
}

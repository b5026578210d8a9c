//! Reloading a policy file that changed a little: the `[[hosts]]` and `[[rules]]` entries
//! whose text is unchanged since the last good load are not read again, their values come
//! from the policy that load returned. The result is always the one [`crate::load`] gives
//! for the same text: the same policy, the same warnings, the same errors at the same
//! places.
//!
//! Why that holds:
//! - The text is cut at lines that begin with `[` into pieces; the scanner reads every
//!   piece but the reused ones from its first line to its last, from the top level, so
//!   the cuts are proven to fall between top-level lines (a `[` line inside a multi-line
//!   array fails this and the whole load goes the full way).
//! - A piece is reused only when its bytes hash (SipHash, keyed at random per reloader:
//!   two different pieces match with probability 2^-64, whatever the text) to those of a
//!   piece that the last good load read the same way and found to be one `[[hosts]]` or
//!   `[[rules]]` table and nothing else. Its header is still read (so the tree gets the
//!   same tables in the same places); its body can only have filled that table, and did
//!   so without any error.
//! - Its entry is rebuilt from the previous policy's host or rule (which must hash to the
//!   value that load returned) and the offsets kept of each value, shifted to where the
//!   piece now is. What depends on the rest of the file is taken from the new text (the
//!   index in the label), or checked against it: a zone, host, cluster or authority it
//!   names that the new text no longer defines makes the load go the full way. (A rule's
//!   mode, cipher and key-exchange stay as written, or absent: [defaults] applies in the
//!   build, as always; which authorities it admits is derived in the build from the
//!   `[[authorities]]` of the new text, which are always read. A rule with `identities`
//!   is always read.)
//! - The cross-entry checks and the build then run over the whole raw policy as always.
//!
//! Anything else (text outside the scanner's plain subset, an entry of `previous` that is
//! not the value the last load returned, a name gone) is read in full.

mod rebuild;
mod state;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, RandomState};

use crate::diagnostic::Diagnostics;
use crate::model::Policy;
use crate::parse::{self, Segment};
use crate::report::Report;
use crate::Loaded;
use rebuild::{Reused, Seen};

/// Loads policy texts one after another, reusing the unchanged `[[hosts]]` and `[[rules]]`
/// entries of the last good load. It keeps hashes and value offsets (a few dozen bytes per
/// entry, ~0.4 MB at 10k hosts), not the text.
#[derive(Default)]
pub struct Reloader {
    keys: RandomState,
    /// What the last successful load saw, if it was read piece by piece.
    last: Option<Seen>,
    /// Entries reused by the last call (tests check that reuse happens at all).
    #[cfg(test)]
    reused: usize,
}

impl Reloader {
    /// A reloader that keeps nothing yet: its first load reads the whole text.
    pub fn new() -> Self {
        Reloader::default()
    }

    /// The same as [`crate::load`]`(file, text)`, faster when `previous` is the policy the
    /// last successful call returned (unchanged) and few entries differ. Any other
    /// `previous` (or `None`) is safe and loads in full. A call that returns errors keeps
    /// what the last good load kept, so the next call can pass the policy still in force.
    pub fn load(
        &mut self,
        file: &str,
        text: &str,
        previous: Option<&Policy>,
    ) -> Result<Loaded, Diagnostics> {
        let pieces = state::split(text, |b| self.keys.hash_one(b));
        let last = self.last.as_ref().zip(previous);
        let last = last.filter(|(seen, p)| seen.describes(p));
        let reused = Reused::new(&pieces, last);
        #[cfg(test)]
        {
            self.reused = reused.count();
        }
        let segs: Vec<Segment> = pieces
            .iter()
            .map(|p| Segment {
                start: p.start,
                end: p.end,
                skip_body: reused.claims(p.start),
            })
            .collect();
        let mut rep = Report::new(file, text);
        let Some((raw, headers)) = parse::parse_segments(&mut rep, text, &segs, &reused) else {
            let full = crate::load(file, text);
            if full.is_ok() {
                self.last = None;
            }
            return full;
        };
        let seen = Seen::record(&pieces, &headers, &raw, &reused);
        let loaded = crate::check_and_build(rep, raw)?;
        self.last = seen.map(|s| s.with_policy(&loaded.policy));
        Ok(loaded)
    }

    /// Bytes kept between loads (hashes and offsets), for memory budgets.
    pub fn retained_bytes(&self) -> usize {
        self.last.as_ref().map_or(0, Seen::heap_bytes)
    }
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("retained_bytes", &self.retained_bytes())
            .finish_non_exhaustive()
    }
}

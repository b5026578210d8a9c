//! Reloading a policy file that changed a little: the `[[hosts]]` entries whose text is
//! unchanged since the last good load are not read again, their values come from the
//! policy that load returned. The result is always the one [`crate::load`] gives for the
//! same text: the same policy, the same warnings, the same errors at the same places.
//!
//! Why that holds:
//! - The text is cut at lines that begin with `[` into pieces; the scanner reads every
//!   piece but the reused ones from its first line to its last, from the top level, so
//!   the cuts are proven to fall between top-level lines (a `[` line inside a multi-line
//!   array fails this and the whole load goes the full way).
//! - A piece is reused only when its bytes hash (SipHash, keyed at random per reloader)
//!   to those of a piece that the last good load read the same way and found to be one
//!   `[[hosts]]` table and nothing else. Its header is still read (so the tree gets the
//!   same tables in the same places); its body can only have filled that table, and did
//!   so without any error.
//! - Its entry is rebuilt from the previous policy's host (which must hash to the value
//!   that load returned) and the offsets kept of each value, shifted to where the piece
//!   now is; everything that depends on the rest of the
//!   file (the index in the label, the zones it names) is taken from the new text, and a
//!   zone that no longer exists makes the load go the full way.
//! - The cross-entry checks and the build then run over the whole raw policy as always.
//!
//! Anything else (text outside the scanner's plain subset, a host of `previous` that is
//! not the value the last load returned, a zone gone) is read in full.

mod state;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, RandomState};

use crate::diagnostic::Diagnostics;
use crate::model::Policy;
use crate::parse::{self, Segment};
use crate::report::Report;
use crate::Loaded;
use state::{Reused, Seen};

/// Loads policy texts one after another, reusing the unchanged `[[hosts]]` entries of the
/// last good load. It keeps hashes and value offsets (a few dozen bytes per host), not
/// the text.
#[derive(Default)]
pub struct Reloader {
    keys: RandomState,
    /// What the last successful load saw, if it was read piece by piece.
    last: Option<Seen>,
    /// Hosts reused by the last call (tests check that reuse happens at all).
    #[cfg(test)]
    reused: usize,
}

impl Reloader {
    pub fn new() -> Self {
        Reloader::default()
    }

    /// The same as [`crate::load`]`(file, text)`, faster when `previous` is the policy the
    /// last successful call returned (unchanged) and few `[[hosts]]` entries differ. Any
    /// other `previous` (or `None`) is safe and loads in full.
    pub fn load(
        &mut self,
        file: &str,
        text: &str,
        previous: Option<&Policy>,
    ) -> Result<Loaded, Diagnostics> {
        let pieces = state::split(text, |b| self.keys.hash_one(b));
        let last = self.last.as_ref().zip(previous);
        let last = last.filter(|(seen, p)| seen.describes(&p.hosts));
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
        self.last = seen.map(|s| s.with_hosts(&loaded.policy.hosts));
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

//! The authorities' CA certificate and CRL files, watched like the policy file (renames
//! into place, in-place writes, symlink swaps): a change reloads them within the quiet
//! period, so a new CRL reaches established peers at once instead of at their next
//! exchange.

use std::path::PathBuf;
use std::time::Duration;

use policy_schema::Policy;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::Instant;

use crate::daemon::debounce::{Debounce, FileEvent};
use crate::daemon::watch;

/// A burst of events settles this long before the files are read: one rename raises
/// several events (from, to, both), and reading at the first would read again at the
/// next. A writer's close ends its write the same way.
const QUIET: Duration = Duration::from_millis(50);

/// Every CA certificate and CRL file of the policy's authorities.
pub fn files_of(policy: &Policy) -> Vec<PathBuf> {
    (policy.authorities.iter())
        .flat_map(|a| a.ca_certificates.iter().chain(&a.crls))
        .cloned()
        .collect()
}

/// The watch over one policy's authority files, and when to read them again.
pub struct AuthorityFiles {
    pub files: Vec<PathBuf>,
    rx: UnboundedReceiver<FileEvent>,
    _watcher: Option<notify::RecommendedWatcher>,
    debounce: Debounce,
    origin: Instant,
}

impl AuthorityFiles {
    /// Watch `files`; a watch that cannot start is logged (SIGHUP still reloads them).
    pub fn watch(files: Vec<PathBuf>) -> AuthorityFiles {
        let (tx, rx) = unbounded_channel();
        let watcher = match files.is_empty() {
            true => None,
            false => watch::watch_files(&files, tx)
                .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the authorities' CA and CRL files; send SIGHUP after replacing one"))
                .ok(),
        };
        AuthorityFiles {
            files,
            rx,
            _watcher: watcher,
            debounce: Debounce::new(QUIET),
            origin: Instant::now(),
        }
    }

    /// The next events (cancel-safe); never ready without a watch.
    pub async fn next(&mut self) -> Vec<FileEvent> {
        let Some(first) = self.rx.recv().await else {
            return std::future::pending().await;
        };
        let more = std::iter::from_fn(|| self.rx.try_recv().ok());
        std::iter::once(first).chain(more).collect()
    }

    /// Note events that arrived at `now`. A complete file is read after the quiet period
    /// too (see [`QUIET`]); one still being written waits for its close.
    pub fn note(&mut self, events: &[FileEvent], now: Instant) {
        for e in events {
            let e = match e {
                FileEvent::Complete => FileEvent::Changed,
                other => *other,
            };
            self.debounce.event(e, now - self.origin);
        }
    }

    /// When the files are to be read again.
    pub fn due(&self) -> Option<Instant> {
        self.debounce.due().map(|d| self.origin + d)
    }

    /// True (and reset) when the files are to be read at `now`.
    pub fn fire(&mut self, now: Instant) -> bool {
        self.debounce.fire(now - self.origin)
    }
}

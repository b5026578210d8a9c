//! Changes to the policy and key files (inotify), fed to the reload debounce.

use std::ops::ControlFlow;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::{Cx, Source};
use crate::daemon::debounce::FileEvent;

/// The file watcher and the channel its events arrive on.
pub(in crate::daemon) struct PolicyFile {
    pub(in crate::daemon) rx: UnboundedReceiver<FileEvent>,
    /// Kept for its drop: dropping it stops the watch.
    pub(in crate::daemon) _watcher: notify::RecommendedWatcher,
}

impl Source for PolicyFile {
    /// Every event queued when the first arrived.
    type Event = Vec<FileEvent>;

    async fn next(&mut self) -> anyhow::Result<Vec<FileEvent>> {
        let Some(first) = self.rx.recv().await else {
            // The watcher is gone (it is held here, so never): nothing more will come.
            return std::future::pending().await;
        };
        let more = std::iter::from_fn(|| self.rx.try_recv().ok());
        Ok(std::iter::once(first).chain(more).collect())
    }

    fn on_event(&mut self, evs: Vec<FileEvent>, cx: &mut Cx<'_>) -> ControlFlow<()> {
        let now = cx.timers.since_origin(Instant::now());
        for k in evs {
            cx.timers.debounce.event(k, now);
            if k == FileEvent::Writing {
                cx.rec.note_write();
            }
        }
        ControlFlow::Continue(())
    }
}

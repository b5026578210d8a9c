//! SIGHUP (reload, reading the whole kernel), SIGTERM and SIGINT (stop).

use std::ops::ControlFlow;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use super::{Cx, Source};
use crate::daemon::reconciler::Cause;
use crate::daemon::systemd;

/// A signal the daemon answers.
pub(in crate::daemon) enum Received {
    Hangup,
    Stop,
}

/// The signal handlers, installed for the daemon's whole life.
pub(in crate::daemon) struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    pub(in crate::daemon) fn open() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

impl Source for Signals {
    type Event = Received;

    async fn next(&mut self) -> anyhow::Result<Received> {
        Ok(tokio::select! {
            _ = self.hup.recv() => Received::Hangup,
            _ = self.term.recv() => Received::Stop,
            _ = self.int.recv() => Received::Stop,
        })
    }

    fn on_event(&mut self, ev: Received, cx: &mut Cx<'_>) -> ControlFlow<()> {
        match ev {
            Received::Stop => ControlFlow::Break(()),
            Received::Hangup => {
                systemd::reloading();
                let r = cx.rec.reload(true);
                cx.timers.reread(r, Instant::now());
                // An operator's explicit reload also reads the whole kernel.
                cx.turn.add(Cause::Reload);
                cx.turn.sweep = true;
                ControlFlow::Continue(())
            }
        }
    }
}

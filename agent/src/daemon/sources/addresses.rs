//! Local address changes (rtnetlink): the compiled set depends on which addresses are here.

use std::ops::ControlFlow;

use anyhow::Context as _;
use tokio::io::unix::AsyncFd;

use super::{read_when_ready, Cx, Source};
use crate::daemon::reconciler::Cause;
use crate::kernel::addrs::{AddrEvent, AddrEvents};
use crate::kernel::KernelError;

/// The address event subscription.
pub(in crate::daemon) struct Addresses {
    fd: AsyncFd<AddrEvents>,
}

impl Addresses {
    pub(in crate::daemon) fn open() -> anyhow::Result<Addresses> {
        let ev = AddrEvents::open().context("subscribing to address events")?;
        // SAFETY: AddrEvents owns its socket fd for its whole life and closes it only on
        // drop, which AsyncFd runs after deregistering.
        let fd = unsafe { AsyncFd::register(ev) }?;
        Ok(Addresses { fd })
    }
}

impl Source for Addresses {
    type Event = Result<Vec<AddrEvent>, KernelError>;

    async fn next(&mut self) -> anyhow::Result<Self::Event> {
        Ok(read_when_ready(&mut self.fd, |ev| ev.poll()).await?)
    }

    fn on_event(&mut self, evs: Self::Event, cx: &mut Cx<'_>) -> ControlFlow<()> {
        match evs {
            Ok(evs) if evs.is_empty() => {}
            Ok(evs) => {
                tracing::info!(events = ?evs, "local addresses changed");
                cx.turn.add(Cause::Addresses);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading address events failed; resyncing");
                cx.turn.add(Cause::Resync);
            }
        }
        ControlFlow::Continue(())
    }
}

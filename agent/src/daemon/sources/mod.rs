//! The loop's event sources. Each is a struct that waits for its next event
//! ([`Source::next`]) and handles it ([`Source::on_event`]); one with timers of its own
//! says when the earliest fires ([`Source::next_deadline`]) and handles it then
//! ([`Source::on_deadline`]). Handlers reach the rest of the daemon only through [`Cx`]:
//! they ask for a reconcile by adding a cause to the turn. How to add one:
//! `docs/architecture.md`, "Adding a daemon source".

mod addresses;
mod control_socket;
mod ike;
mod metrics_http;
mod policy_file;
mod signals;
mod xfrm;

use std::ops::ControlFlow;
use std::os::fd::AsRawFd;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::reconciler::{Reconciler, Turn};
use super::timers::Timers;

pub(super) use addresses::Addresses;
pub(super) use control_socket::ControlSocket;
pub(super) use ike::{Ike, IkeInput};
pub(super) use metrics_http::MetricsEndpoint;
pub(super) use policy_file::PolicyFile;
pub(super) use signals::Signals;
pub(super) use xfrm::Xfrm;

/// What a handler may touch: the reconciler (policy in force, kernel socket, view,
/// metrics), the loop's timers, and the turn being assembled (the reconcile it asks for).
pub(super) struct Cx<'a> {
    pub(super) rec: &'a mut Reconciler,
    pub(super) timers: &'a mut Timers,
    pub(super) turn: &'a mut Turn,
}

/// One source of events for the daemon's loop.
pub(super) trait Source {
    /// One readiness's worth of input (e.g. the messages read from a socket).
    type Event;

    /// Wait for the next event. Cancel-safe: the loop drops this future whenever another
    /// source is ready first. An error is fatal: the daemon exits with it.
    async fn next(&mut self) -> anyhow::Result<Self::Event>;

    /// Handle one event; `Break` stops the daemon.
    fn on_event(&mut self, ev: Self::Event, cx: &mut Cx<'_>) -> ControlFlow<()>;

    /// When this source's earliest own timer fires (None: none armed).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Called in a turn at or after [`Source::next_deadline`].
    fn on_deadline(&mut self, _now: Instant, _cx: &mut Cx<'_>) {}
}

/// Every source the loop waits on.
pub(super) struct Sources {
    pub(super) signals: Signals,
    pub(super) policy_file: PolicyFile,
    pub(super) addresses: Addresses,
    pub(super) xfrm: Xfrm,
    pub(super) control: ControlSocket,
    pub(super) metrics: MetricsEndpoint,
    /// IKEv2 (None: the policy uses none; no socket is opened).
    pub(super) ike: Option<Ike>,
}

impl Sources {
    /// The earliest timer of any source.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        earliest(&[
            &self.signals,
            &self.policy_file,
            &self.addresses,
            &self.xfrm,
            &self.control,
            &self.metrics,
            &self.ike,
        ])
    }

    /// Run the deadline handler of every source whose timer has fired at `now`.
    pub(super) fn on_deadlines(&mut self, now: Instant, cx: &mut Cx<'_>) {
        fire_due(
            &mut [
                &mut self.signals,
                &mut self.policy_file,
                &mut self.addresses,
                &mut self.xfrm,
                &mut self.control,
                &mut self.metrics,
                &mut self.ike,
            ],
            now,
            cx,
        );
    }
}

/// The timer half of a source, object-safe (a [`Source`], or an optional one), so that
/// [`Sources`] lists its sources once for both questions.
pub(super) trait Timed {
    fn deadline(&self) -> Option<Instant>;
    fn fire(&mut self, now: Instant, cx: &mut Cx<'_>);
}

impl<S: Source> Timed for S {
    fn deadline(&self) -> Option<Instant> {
        self.next_deadline()
    }
    fn fire(&mut self, now: Instant, cx: &mut Cx<'_>) {
        self.on_deadline(now, cx);
    }
}

impl<S: Source> Timed for Option<S> {
    fn deadline(&self) -> Option<Instant> {
        self.as_ref().and_then(Source::next_deadline)
    }
    fn fire(&mut self, now: Instant, cx: &mut Cx<'_>) {
        if let Some(s) = self {
            s.on_deadline(now, cx);
        }
    }
}

/// The earliest deadline of `sources`.
fn earliest(sources: &[&dyn Timed]) -> Option<Instant> {
    sources.iter().filter_map(|s| s.deadline()).min()
}

/// Fire every source of `sources` whose deadline is at or before `now`.
fn fire_due(sources: &mut [&mut dyn Timed], now: Instant, cx: &mut Cx<'_>) {
    for s in sources.iter_mut() {
        if s.deadline().is_some_and(|d| d <= now) {
            s.fire(now, cx);
        }
    }
}

/// Wait until `fd` is readable, then `read` what is queued (readiness is cleared after:
/// the readers drain their socket).
async fn read_when_ready<T: AsRawFd, R>(
    fd: &mut AsyncFd<T>,
    read: impl FnOnce(&mut T) -> R,
) -> std::io::Result<R> {
    let mut g = fd.readable_mut().await?;
    let r = read(g.get_inner_mut());
    g.clear_ready();
    Ok(r)
}

#[cfg(test)]
mod tests;

//! The control socket (@xfrm-agent): each connection gets the daemon's view as JSON.

use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

use super::{Cx, Source};
use crate::daemon::control;

/// The bound control socket; holding it is the single-instance lock.
pub(in crate::daemon) struct ControlSocket {
    l: UnixListener,
}

impl ControlSocket {
    /// Bind it: fails when another agent runs in this network namespace.
    pub(in crate::daemon) fn bind() -> anyhow::Result<ControlSocket> {
        let l = match control::bind() {
            Ok(l) => UnixListener::from_std(l)?,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                anyhow::bail!("another xfrm-agent is already running in this network namespace")
            }
            Err(e) => return Err(e).context("binding the control socket @xfrm-agent"),
        };
        Ok(ControlSocket { l })
    }
}

impl Source for ControlSocket {
    /// A client, or a failed accept (ignored).
    type Event = std::io::Result<UnixStream>;

    async fn next(&mut self) -> anyhow::Result<Self::Event> {
        Ok(self.l.accept().await.map(|(s, _)| s))
    }

    fn on_event(&mut self, s: Self::Event, cx: &mut Cx<'_>) -> ControlFlow<()> {
        let Ok(mut s) = s else {
            return ControlFlow::Continue(());
        };
        // The view names hosts, paths and errors: root and our own user only.
        let me = geteuid();
        let body = match s.peer_cred() {
            Ok(c) if c.uid() == 0 || c.uid() == me => {
                serde_json::to_string(&cx.rec.view).unwrap_or_default()
            }
            _ => r#"{"error":"the daemon's view is for root (or the daemon's user) only"}"#
                .to_string(),
        };
        tokio::spawn(async move {
            let write = s.write_all(body.as_bytes());
            let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
        });
        ControlFlow::Continue(())
    }
}

fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

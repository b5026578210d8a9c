//! The first packets to a peer being keyed over IKEv2: queued rather than dropped.
//!
//! The kernel drops a packet that hits a `require` policy with no SA yet unless the
//! namespace's `net.core.xfrm_larval_drop` is 0; then the packet waits in the policy's
//! queue (see `reconciler::waiting` for how it is released). Dropped, a new TCP connection
//! waits a full second for its SYN to be retransmitted. With IKEv2 running the daemon sets
//! it to 0 in its namespace (`--first-packets queue`, the default) and puts the previous
//! value back on exit: without a daemon to key peers, dropping at once is kinder than
//! holding packets for up to 100 s.

use crate::kernel::larval;

/// `run --first-packets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FirstPackets {
    /// Set net.core.xfrm_larval_drop = 0 while IKEv2 runs (restored on exit).
    Queue,
    /// Leave net.core.xfrm_larval_drop as the host has it.
    System,
}

/// What the daemon changed, to put back on exit.
#[derive(Debug, Default)]
pub struct Larval {
    restore: Option<bool>,
}

impl Larval {
    /// IKEv2 starts: apply `choice`. Returns what the status shows: whether first packets
    /// wait (`queued`) or are `dropped` (`unknown` when the sysctl cannot be read).
    pub fn start(choice: FirstPackets) -> (Larval, &'static str) {
        let now = match larval::drops() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read net.core.xfrm_larval_drop; first packets to new IKE peers may be dropped");
                return (Larval::default(), "unknown");
            }
        };
        if !now || choice == FirstPackets::System {
            if now {
                tracing::info!("net.core.xfrm_larval_drop = 1 (--first-packets system): packets to a peer being keyed are dropped until its SA is in");
            }
            return (Larval::default(), if now { "dropped" } else { "queued" });
        }
        match larval::set_drops(false) {
            Ok(()) => {
                tracing::info!("set net.core.xfrm_larval_drop = 0: packets to a peer being keyed wait for its SA (restored on exit)");
                (
                    Larval {
                        restore: Some(true),
                    },
                    "queued",
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot set net.core.xfrm_larval_drop = 0; first packets to new IKE peers are dropped");
                (Larval::default(), "dropped")
            }
        }
    }
}

impl Drop for Larval {
    /// Daemon exit (also on an error return): put back what [`Larval::start`] changed.
    fn drop(&mut self) {
        if let Some(drop) = self.restore.take() {
            match larval::set_drops(drop) {
                Ok(()) => tracing::info!("restored net.core.xfrm_larval_drop = 1"),
                Err(e) => tracing::warn!(error = %e, "cannot restore net.core.xfrm_larval_drop"),
            }
        }
    }
}

//! The daemon's view: what `status` shows of a running daemon and most metrics read.

use serde::{Deserialize, Serialize};

use crate::model::Desired;
use crate::plan::Timestamp;

/// The last reload attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadInfo {
    #[serde(with = "crate::clock::unix_secs_f64")]
    pub unix: Timestamp,
    pub ok: bool,
    pub error: Option<String>,
}

/// The last reconcile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileInfo {
    #[serde(with = "crate::clock::unix_secs_f64")]
    pub unix: Timestamp,
    pub cause: String,
    pub ops: usize,
    pub failed: usize,
    pub duration_ms: f64,
    pub verified: bool,
    /// How the kernel was read: "dump" (every owned object), or "N keys" (a patched
    /// reload read only the keys it changed).
    pub read: String,
}

/// What `status` shows of a running daemon (also the source of most metrics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonView {
    pub pid: u32,
    pub host: String,
    pub config: String,
    pub policy_sha256: String,
    #[serde(with = "crate::clock::unix_secs_f64")]
    pub started_unix: Timestamp,
    pub last_reload: ReloadInfo,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The located errors of the last rejected file; cleared by the next good load.
    pub last_error: Option<String>,
    /// The last rejected load, kept after a good one (a rejection that was quickly
    /// followed by a good file, e.g. a half-written file, stays visible here).
    pub last_rejected: Option<ReloadInfo>,
    /// The newest epoch among outbound SAs (the one traffic is sent with).
    pub epoch: Option<u64>,
    #[serde(with = "crate::clock::opt_unix_secs")]
    pub next_rotation_unix: Option<Timestamp>,
    pub reconciles: u64,
    pub last_reconcile: ReconcileInfo,
    pub drift_repairs: u64,
    pub rotations: u64,
    pub unknown_peer_acquires: u64,
    pub soft_expires: u64,
    /// Owned objects in the kernel after the last reconcile (not what the policy wants).
    pub owned_policies: usize,
    pub owned_states: usize,
    /// Kernel features missing (e.g. ESP): SAs are not installed, policies hold traffic.
    pub missing_features: Vec<String>,
    pub encap_sockets: usize,
    /// IKEv2 keying, when the policy uses it.
    #[serde(default)]
    pub ike: Option<super::ike::view::IkeView>,
    /// With IKEv2: whether packets to a peer being keyed wait for its SA (`queued`) or
    /// are `dropped` (net.core.xfrm_larval_drop).
    #[serde(default)]
    pub first_packets: Option<String>,
}

impl DaemonView {
    /// Take the desired set's facts (epoch, next rotation); the owned counts are set from
    /// the kernel by the caller.
    pub fn note_desired(&mut self, d: &Desired) {
        self.epoch = d
            .states
            .values()
            .filter(|s| s.meta.dir == crate::model::SaDir::Out)
            .map(|s| s.meta.epoch)
            .max();
        self.next_rotation_unix = d.next_change;
    }
}

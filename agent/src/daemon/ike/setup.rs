//! PLACEHOLDER until `agent::ike_setup` (helper P) lands on main: the same signature and
//! shape, so the daemon builds against it. It finds no IKE in any policy (the daemon then
//! opens no IKE sockets and behaves as before). When merging, replace this file's body
//! with `pub use crate::ike_setup::{ike_setup, IkeSetup};`.

use std::sync::Arc;

use crate::keying::{Admission, Settings};
use crate::load::PolicyFiles;

/// What the daemon needs to run IKEv2 for a policy.
pub struct IkeSetup {
    /// Our credentials, the authorities' verifier and the suites.
    pub config: ike::sa::Config,
    /// Which pairs and peers the policy keys over IKEv2.
    pub admission: Arc<dyn Admission>,
    /// Keying timers.
    pub settings: Settings,
}

/// The IKE setup of `policy` on host `host` (`None`: no pair of it is keyed over IKEv2).
pub fn ike_setup(
    _policy: &policy_schema::Policy,
    _host: &str,
    _files: &PolicyFiles,
) -> anyhow::Result<Option<IkeSetup>> {
    Ok(None)
}

//! The pure core: policy + identity + addresses + time → desired XFRM objects, and the diff
//! of desired against observed. Nothing here does I/O or reads the clock.

use std::collections::BTreeSet;
use std::net::IpAddr;

use policy_schema::Policy;

use crate::keys::Identity;
use crate::model::Desired;

pub mod diff;

/// A moment, in nanoseconds since the Unix epoch (passed in; the plan never reads a clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn from_secs(s: u64) -> Timestamp {
        Timestamp(s.saturating_mul(1_000_000_000))
    }
    pub fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    pub fn nanos(self) -> u64 {
        self.0
    }
}

/// The addresses configured on this host right now (only cluster addresses depend on it).
pub type LocalAddrs = BTreeSet<IpAddr>;

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("host {0} is not in the policy")]
    UnknownHost(String),
}

/// The XFRM policies and SAs this host needs at `now`.
pub fn desired(
    policy: &Policy,
    id: &Identity,
    local: &LocalAddrs,
    now: Timestamp,
) -> Result<Desired, PlanError> {
    let _ = (policy, id, local, now);
    todo!("compiler")
}

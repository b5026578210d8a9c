//! One module per target; each has `pub fn run(data: &[u8])`.

pub mod ike;
pub mod keys;
pub mod netlink;
pub mod policy;
pub mod reload;

/// The invariants of any load, shared with policy-schema's proptest harness.
#[path = "../../../policy-schema/tests/support/invariants.rs"]
pub mod invariants;

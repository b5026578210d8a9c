//! xfrm-agent: one declarative IPsec policy file → kernel XFRM policies and ESP SAs.
//!
//! Data flows one way: file → [`policy_schema::Policy`] → [`plan::desired`] →
//! [`plan::diff`] → kernel ops. Nothing under `plan` does I/O or reads the clock.

pub mod cli;
pub mod daemon;
pub mod engine;
pub mod explain;
pub mod fasthash;
pub mod kernel;
pub mod keying;
pub mod keys;
pub mod model;
pub mod plan;
pub mod render;
pub mod secret;
pub mod show;
pub mod status;

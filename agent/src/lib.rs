//! xfrm-agent: one declarative IPsec policy file → kernel XFRM policies and ESP SAs.
//!
//! Data flows one way: file → [`policy_schema::Policy`] → [`plan::desired`] →
//! [`plan::diff`] → kernel ops. Nothing under `plan` does I/O or reads the clock.

pub mod cli;
pub mod clock;
pub mod credentials;
pub mod daemon;
pub mod engine;
pub mod explain;
pub mod ike_setup;
pub mod keepalive;
pub mod kernel;
pub mod keying;
pub mod keys;
pub mod load;
pub mod model;
pub mod plan;
pub mod report;
pub mod secret;

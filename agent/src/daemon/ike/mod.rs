//! IKEv2 inside the daemon: the I/O half around the pure [`crate::keying::Keying`] — the
//! IKE sockets, the NAT keepalives, the OS random numbers — and what status shows of it.
//! The loop's source (`daemon/sources/ike.rs`) is a thin adapter over [`IkeDriver`].

mod driver;
mod rng;
pub mod setup;
pub mod view;

pub use driver::{keepalive_paths, IkeDriver, Negotiated};
pub use rng::OsRng;

//! IKEv2 inside the daemon: the I/O half around the pure [`crate::keying::Keying`] — the
//! IKE sockets, the NAT keepalives, the OS random numbers — and what status shows of it.
//! The loop's source (`daemon/sources/ike.rs`) is a thin adapter over [`IkeDriver`].

pub mod authority_files;
pub mod crls;
mod driver;
mod rng;
pub mod view;

pub use driver::{keepalive_paths, IkeDriver, Negotiated};
pub use rng::OsRng;

/// The seed policy's desired set for site at a fixed time (SAs to build test data from).
#[cfg(test)]
pub(crate) fn seed_desired() -> crate::model::Desired {
    use crate::plan::{self, testkit, LocalAddrs, Timestamp};
    let p = testkit::seed();
    let id = testkit::identity(&p, 1);
    let t = Timestamp::from_secs(1e9 as u64);
    plan::desired(&p, &id, &LocalAddrs::new(), t).expect("desired")
}

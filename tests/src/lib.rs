//! End-to-end tests of xfrm-agent in the lab: the seed topology in network namespaces (or
//! Vagrant VMs) with real agents and real ESP, checked against an independent oracle.
//!
//! The library holds the pieces; the tests in tests/tests/ put them together:
//! [`topology`] (the shared topology file), [`oracle`] (expected outcomes from the policy),
//! [`exec`] (how a host is reached), [`remote`] (captures, echo servers, probers),
//! [`pcap`] (reading the captures), [`matrix`] (cells, runs, verdicts), [`report`] (the
//! table), [`lab`] (bringing the namespace lab up and down from a test).

pub mod daemon;
pub mod exec;
pub mod garp;
pub mod interop;
pub mod lab;
pub mod matrix;
pub mod oracle;
pub mod pcap;
pub mod probe;
pub mod remote;
pub mod report;
pub mod stream;
pub mod topology;
pub mod wire;
pub mod xfrm;

use std::path::PathBuf;

/// The repository this crate was built from.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

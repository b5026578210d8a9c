//! Heap an `ike` responder endpoint retains per established IKE SA (with its Child SA),
//! in one process, no root: the `ike` crate's share of the daemon's RSS per IKE SA that
//! `scripts/bench-ike` measures (docs/benchmarks.md).
//!
//! cargo run --release -p bench --example ike_heap [PEERS]
//!
//! One initiator endpoint runs PEERS handshakes (one source address each) with one
//! responder endpoint over an in-memory wire; a counting allocator gives the bytes live
//! (as requested, without the allocator's own overhead) before and after, and after the
//! responder is dropped: what it held.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use ike::cert::testpki::{self, Pki};
use ike::sa::Endpoint;

mod common;

use common::{exchange, live, Counting};

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let peers: u32 = std::env::args().nth(1).map_or(1000, |s| s.parse().unwrap());
    let pki = Pki::new("bench CA", 1);
    let responder_ip = "10.77.0.2";
    // All initiators share one identity and certificate, as in scripts/bench-ike.
    let initiator_cfg = testpki::config(&pki, &pki, "10.78.0.1", 3);
    let rng = |seed: u64| Box::new(ike::rng::SeededRng::new(seed));
    let (now, wall) = (Instant::now(), testpki::now());
    let mut ini = Endpoint::new(initiator_cfg, rng(7), now, wall);
    let before = live();
    let mut resp = Endpoint::new(
        testpki::config(&pki, &pki, responder_ip, 2),
        rng(8),
        now,
        wall,
    );
    let empty = live() - before;
    let r_addr = SocketAddr::new(responder_ip.parse().unwrap(), 500);
    let mut ready = 0u32;
    for i in 0..peers {
        let ip = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 78, 0, 1)) + i));
        ini.initiate(now, SocketAddr::new(ip, 500), r_addr, None);
        ready += exchange(&mut ini, &mut resp, now);
    }
    let held = live() - before;
    drop(resp);
    let after_drop = live() - before;
    let per_sa = (held - after_drop - empty) as f64 / f64::from(ready.max(1));
    println!(
        "peers={peers} established={ready} responder_empty_bytes={empty} responder_bytes_per_ike_sa={per_sa:.0}"
    );
}

//! Heap the daemon keeps per established IKE SA, by part, in one process, no root: the
//! breakdown of the RSS per IKE SA that `scripts/bench-ike` measures (docs/benchmarks.md).
//!
//! cargo run --release -p bench --example keying_heap [PEERS]
//!
//! One `ike` initiator endpoint runs PEERS handshakes (one source address each) with one
//! responder [`Keying`], as the daemon runs it; then what the daemon builds from it per
//! peer: the negotiated SAs (`desired_states`, of which the daemon holds [`COPIES`]), the
//! status view, and one metrics scrape (transient). A counting allocator gives the bytes
//! live (as requested, without the allocator's own overhead). `ike_heap` gives the `ike`
//! endpoint's part of keying's; for allocation sites, run this under heaptrack with
//! `KEYING_HEAP_EXIT=1` (it exits after the handshakes: what keying holds shows as leaked).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::daemon::ike::crls::CrlTracker;
use agent::daemon::ike::view;
use agent::daemon::metrics::{render, Metrics};
use agent::daemon::view::DaemonView;
use agent::keying::{lifetime, Admission, Keying, Settings, Terms};
use ike::cert::testpki::{self, Pki};
use ike::sa::Endpoint;

mod common;

use common::{exchange, live, peak, reset_peak, Counting, Responder};

#[global_allocator]
static A: Counting = Counting;

/// Every pair keyed in transport mode, every authenticated peer admitted (as the bench's
/// `any → host:b` rule with `scope = "any"`).
struct Everyone;

impl Admission for Everyone {
    fn terms(&self, _: IpAddr, _: IpAddr) -> Option<Terms> {
        Some(Terms::transport(
            0x7a00_0010,
            1024,
            lifetime(Duration::from_secs(3600)),
        ))
    }
    fn admit(&self, _: &ike::sa::Admission<'_>) -> bool {
        true
    }
}

/// Copies of the negotiated SAs the daemon holds: the set the IKE driver last reported
/// (shared with the reconciler) and the merged desired set of the reconciler's last
/// reconcile.
const COPIES: isize = 2;

fn main() {
    let peers: u32 = std::env::args().nth(1).map_or(1000, |s| s.parse().unwrap());
    let pki = Pki::new("bench CA", 1);
    let responder_ip = "10.77.0.2";
    let initiator_cfg = testpki::config(&pki, &pki, "10.78.0.1", 3);
    let rng = |seed: u64| Box::new(ike::rng::SeededRng::new(seed));
    let (now, wall) = (Instant::now(), testpki::now());
    let mut ini = Endpoint::new(initiator_cfg, rng(7), now, wall);
    let before = live();
    let mut resp = Keying::new(
        testpki::config(&pki, &pki, responder_ip, 2),
        rng(8),
        (now, wall),
        Settings::default(),
        Arc::new(Everyone),
    );
    let empty = live() - before;
    let r_addr = SocketAddr::new(responder_ip.parse().unwrap(), 500);
    let mut ready = 0u32;
    reset_peak();
    for i in 0..peers {
        let ip = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 78, 0, 1)) + i));
        ini.initiate(now, SocketAddr::new(ip, 500), r_addr, None);
        ready += exchange(&mut ini, &mut resp, now);
    }
    let n = f64::from(ready.max(1));
    let per = |bytes: isize| bytes as f64 / n;
    if std::env::var_os("KEYING_HEAP_EXIT").is_some() {
        // For heaptrack: everything still allocated shows as leaked, by allocation site.
        std::process::exit(0);
    }

    let at = live();
    let states = resp.desired_states();
    let negotiated = live() - at;

    let at = live();
    let ike = view::build(&resp, now, 1_800_000_000, None, &CrlTracker::default());
    let status_view = live() - at;

    let dv = DaemonView {
        ike: Some(ike),
        ..DaemonView::default()
    };
    let at = live();
    let text = render(&Metrics::default(), &dv, None, &BTreeMap::new());
    let scrape = live() - at;
    drop((text, dv, states));

    // The initiator grew too: what the responder held is what dropping it frees.
    let held = live();
    drop(resp);
    let keying = held - live() - empty;
    println!(
        "peers={peers} established={ready} keying_empty_bytes={empty} \
         keying_bytes_per_peer={:.0} negotiated_sas_bytes_per_peer={:.0} \
         status_view_bytes_per_peer={:.0} retained_per_peer={:.0} \
         metrics_scrape_transient_bytes_per_peer={:.0} burst_peak_bytes={}",
        per(keying),
        per(negotiated),
        per(status_view),
        per(keying + COPIES * negotiated + status_view),
        per(scrape),
        peak() - before,
    );
}

impl Responder for Keying {
    fn receive(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, datagram: &[u8]) {
        self.handle(now, from, to, datagram);
    }
    fn transmit(&mut self, now: Instant) -> Option<ike::sa::Transmit> {
        self.poll_transmit(now)
    }
}

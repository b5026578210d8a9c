//! ESP-in-UDP through the encapsulation socket, between two namespaces over veth, under a
//! catch-all "require" policy with no UDP exemption. Needs ESP: runs in UML
//!   scripts/uml-run -- cargo test -p agent --test kernel_encap
//! and skips elsewhere with a one-line reason.

mod support;

use std::process::Command;
use std::sync::mpsc;

use agent::engine::reconcile;
use agent::kernel::{self, encap};
use agent::model::*;
use policy_schema::Ownership;
use support::ns::{privileged, TestNetns};
use support::*;

fn esp(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    let ok = std::path::Path::new("/sys/module/esp4").exists();
    assert!(
        ok || std::env::var_os("XFRM_REQUIRE_ESP").is_none(),
        "{test}: XFRM_REQUIRE_ESP is set but this kernel has no ESP"
    );
    if !ok {
        eprintln!("skipping {test}: no ESP in this kernel (run it in scripts/uml-run)");
    }
    ok
}

const A: &str = "10.99.0.1";
const B: &str = "10.99.0.2";

/// The plan of one side: catch-all require both ways, one encap SA each way.
fn side(me: &str, peer: &str, out_spi: u32, in_spi: u32) -> Desired {
    desired_from(&format!(
        "policy dir=out src=10.99.0.0/24 dst=10.99.0.0/24 prio=0x10100 action=esp
         policy dir=in src=10.99.0.0/24 dst=10.99.0.0/24 prio=0x10100 action=esp
         sa dst={peer} spi={out_spi:#x} src={me} key={out_spi} encap=4500/4500 peer=p dir=out
         sa dst={me} spi={in_spi:#x} src={peer} key={in_spi} encap=4500/4500 peer=p dir=in"
    ))
}

fn counter(ns: &TestNetns, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat", "/proc/net/xfrm_stat"])
        .output()
        .expect("cat xfrm_stat");
    agent::report::peers::parse_xfrm_stat(&String::from_utf8_lossy(&out.stdout))
        .get(name)
        .copied()
        .unwrap_or(0)
}

fn ping(ns: &TestNetns, dst: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst,
        ])
        .output()
        .expect("ping")
        .status
        .success()
}

/// Hold an encapsulation socket open inside `ns` until the returned sender is dropped.
fn hold_socket(ns: &TestNetns) -> mpsc::Sender<()> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let name = ns.name.clone();
    std::thread::spawn(move || {
        kernel::netns::enter(&name).unwrap();
        let s = encap::open_encap_socket(false, NAT_T_PORT);
        ready_tx
            .send(s.as_ref().map(|_| ()).map_err(|e| e.to_string()))
            .unwrap();
        let _ = stop_rx.recv();
        drop(s);
    });
    ready_rx.recv().unwrap().expect("encap socket");
    stop_tx
}

#[test]
fn esp_in_udp_needs_the_encap_socket() {
    if !esp("esp_in_udp_needs_the_encap_socket") {
        return;
    }
    let (na, nb) = (TestNetns::new("ea"), TestNetns::new("eb"));
    na.ip(&[
        "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &nb.name,
    ]);
    na.ip(&["addr", "add", "10.99.0.1/24", "dev", "va"]);
    nb.ip(&["addr", "add", "10.99.0.2/24", "dev", "vb"]);
    for (n, dev) in [(&na, "va"), (&nb, "vb")] {
        n.ip(&["link", "set", dev, "up"]);
        n.ip(&["link", "set", "lo", "up"]);
    }
    let (da, db) = (
        side(A, B, 0x4000_0ab0, 0x4000_0ba0),
        side(B, A, 0x4000_0ba0, 0x4000_0ab0),
    );
    na.run(move || {
        let mut s = kernel::open().unwrap();
        let out = reconcile(&mut s, &da, &Ownership::default(), false).unwrap();
        assert!(out.verified, "{:?}", out.failed);
    });
    nb.run(move || {
        let mut s = kernel::open().unwrap();
        let out = reconcile(&mut s, &db, &Ownership::default(), false).unwrap();
        assert!(out.verified, "{:?}", out.failed);
    });

    // Without the socket, B sees plain UDP to 4500 and its require in-policy drops it.
    let before = counter(&nb, "XfrmInTmplMismatch");
    assert!(!ping(&na, B), "ping passed without an encapsulation socket");
    let after = counter(&nb, "XfrmInTmplMismatch");
    assert!(after > before, "XfrmInTmplMismatch {before} -> {after}");

    // With the sockets (both sides: replies come back encapsulated too), it passes.
    let stop = (hold_socket(&na), hold_socket(&nb));
    assert!(
        ping(&na, B),
        "ping failed with the encapsulation sockets open"
    );
    let packets = nb.run(|| {
        let mut s = kernel::open().unwrap();
        let obs = kernel::observe(&mut s, &Ownership::default()).unwrap();
        let k = SaKey {
            dst: B.parse().unwrap(),
            spi: 0x4000_0ab0,
        };
        obs.states[&k].stats.packets
    });
    assert!(packets >= 3, "inbound SA counted {packets} packets");
    drop(stop);
}

#[test]
fn encap_sockets_open_with_bypass_v4_and_v6() {
    if !privileged("encap_sockets_open_with_bypass_v4_and_v6") {
        return;
    }
    let ns = TestNetns::new("eso");
    ns.run(|| {
        let socks = encap::open_encap_sockets(true).expect("v4 and v6 encap sockets");
        assert_eq!(socks.len(), 2);
        assert_eq!(socks[0].local_addr().unwrap().port(), NAT_T_PORT);
        assert!(socks[1].local_addr().unwrap().is_ipv6());
    });
}

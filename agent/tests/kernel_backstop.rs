//! The fail-closed backstop on this machine's kernel (policies only: no ESP needed).
//!
//! Two throw-away namespaces joined by a veth: `site` (10.10.0.10, the agent's policies of
//! the seed's site, no SAs) and `peer` (10.10.0.11, a UDP listener, no XFRM). A probe
//! datagram from 10.10.0.10 is covered by the catch-all `require`; with no SA it is dropped.
//! Deleting that policy must still drop it (the backstop), and the peer must receive no
//! clear copy. The control — the backstop deleted too — shows the same probe arriving in
//! clear, so the test can fail. Skipped with a one-line reason when not root.

mod support;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use agent::engine::reconcile;
use agent::kernel;
use agent::keys::{Identity, PrivateKey};
use agent::model::Desired;
use agent::plan::is_backstop;
use agent::plan::{desired, Timestamp};
use policy_schema::Ownership;
use support::ns::{privileged, TestNetns};

const SITE: &str = "10.10.0.10";
const PEER: &str = "10.10.0.11";
/// A second address on the site namespace that no policy covers: its datagram is the
/// end marker (it follows the probe over the same veth, so the probe, if sent, is first).
const MARKER_SRC: &str = "10.10.0.12";

fn site_desired() -> Desired {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("examples/seed-site-dmz.toml")).unwrap();
    let policy = policy_schema::load("seed-site-dmz.toml", &text)
        .unwrap()
        .policy;
    let key_text = std::fs::read_to_string(root.join("examples/keys/site.key")).unwrap();
    let key = PrivateKey::from_base64(&key_text, "site.key").unwrap();
    let id = Identity::resolve(&policy, key, None).unwrap();
    let mut d = desired(
        &policy,
        &id,
        &Default::default(),
        Timestamp::from_secs(1_800_000_000),
    )
    .unwrap();
    d.states.clear(); // no ESP on this kernel
    d
}

/// The two namespaces, linked, addressed, with the peer's listener.
fn rig() -> (TestNetns, TestNetns) {
    let site = TestNetns::new("bs-site");
    let peer = TestNetns::new("bs-peer");
    site.ip(&[
        "link", "add", "bs0", "type", "veth", "peer", "name", "bs1", "netns", &peer.name,
    ]);
    for a in [SITE, MARKER_SRC] {
        site.ip(&["addr", "add", &format!("{a}/24"), "dev", "bs0"]);
    }
    peer.ip(&["addr", "add", &format!("{PEER}/24"), "dev", "bs1"]);
    for (ns, dev) in [(&site, "bs0"), (&peer, "bs1")] {
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    (site, peer)
}

/// Sends one probe (from the protected address) and one marker; returns whether the
/// kernel accepted the probe's send and how many probes the peer received in clear.
fn probe(site: &TestNetns, peer: &TestNetns, n: u32) -> (bool, usize) {
    let listener = peer.run(|| {
        let s = UdpSocket::bind((PEER, 5001)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s
    });
    let sent = site.run(move || {
        let probe = UdpSocket::bind((SITE, 0)).unwrap();
        let ok = probe
            .send_to(format!("probe {n}").as_bytes(), (PEER, 5001))
            .is_ok();
        (ok, UdpSocket::bind((MARKER_SRC, 0)).unwrap())
    });
    let (ok, marker) = sent;
    let mut clear = 0;
    let mut buf = [0u8; 64];
    for _ in 0..100 {
        marker.send_to(b"marker", (PEER, 5001)).unwrap();
        match listener.recv_from(&mut buf) {
            Ok((len, _)) if &buf[..len] == b"marker" => return (ok, clear),
            Ok((len, _)) => {
                assert!(buf[..len].starts_with(b"probe"), "unexpected datagram");
                clear += 1;
            }
            Err(_) => continue, // nothing yet (a busy machine): send the marker again
        }
    }
    panic!("the marker never arrived: the rig is broken");
}

fn out_stat(ns: &TestNetns, name: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat", "/proc/net/xfrm_stat"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in xfrm_stat:\n{text}"))
}

#[test]
fn a_deleted_require_policy_drops_instead_of_sending_clear() {
    if !privileged("a_deleted_require_policy_drops_instead_of_sending_clear") {
        return;
    }
    let (site, peer) = rig();
    let d = site_desired();
    let backstops = d.policies.keys().filter(|k| is_backstop(k)).count();
    assert!(
        backstops >= 2,
        "the seed's site has a protective outbound policy"
    );
    let own = Ownership::default();
    let install = |d: &Desired| {
        let d = d.clone();
        let own = own.clone();
        site.run(move || {
            let mut sock = kernel::open().unwrap();
            let out = reconcile(&mut sock, &d, &own, false).unwrap();
            assert!(out.failed.is_empty() && out.verified, "{:?}", out.failed);
            out.plan.ops.len()
        })
    };
    install(&d);
    assert_eq!(probe(&site, &peer, 1).1, 0, "require without an SA drops");

    let catch_all = ["dir", "out", "src", "10.10.0.10/32", "dst", "0.0.0.0/0"];
    site.ip(&[&["xfrm", "policy", "delete"][..], &catch_all[..]].concat());
    let blocked = out_stat(&site, "XfrmOutPolBlock");
    let (sent, clear) = probe(&site, &peer, 2);
    assert_eq!(
        clear, 0,
        "the require policy deleted: the backstop must drop"
    );
    assert!(!sent, "a block policy refuses the send (EPERM)");
    assert_eq!(out_stat(&site, "XfrmOutPolBlock"), blocked + 1);

    // The control: without the backstop the same probe goes out in clear. The agent's
    // own engine deletes it: iproute2 sends no mark whose value is 0 (`mark 0 mask 2` and
    // `index N` find nothing), so only netlink or a flush removes the 0/2 half.
    let mut bare = d.clone();
    bare.policies
        .retain(|k, _| !(is_backstop(k) || k.sel.dst.prefix_len() == 0 && k.sel.proto == 0));
    let removed = install(&bare);
    assert_eq!(removed, 2, "exactly the backstop's two halves");
    assert_eq!(probe(&site, &peer, 3).1, 1, "no backstop: the probe leaks");

    // The agent's reconcile puts back the policy and both halves of its backstop.
    assert_eq!(install(&d), 3);
    assert_eq!(probe(&site, &peer, 4).1, 0);
}

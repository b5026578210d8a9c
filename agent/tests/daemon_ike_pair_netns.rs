//! Two daemons keying an inventory pair over IKEv2 (`key-exchange = "ikev2"`), each in its
//! own namespace over veth, with certificates from one test CA: traffic from site raises an
//! acquire, site's daemon starts the exchange, and both daemons report the peer
//! authenticated and try to install the negotiated SAs (the host kernel has no ESP, so the
//! writes are refused: the view says `esp` is missing). Real ESP runs in the UML lab.
//! A reload turns IKEv2 on and off without a restart: the IKE sockets open and close.
//! Skips without root.
//!   cargo test -p agent --test daemon_ike_pair_netns

mod support;

use std::path::Path;

use ike::cert::testpki::Pki;
use serde_json::Value;
use support::daemon::{view, wait_for};
use support::ike_hosts::{pair_policy, HostFiles, DB, SITE};
use support::ns::{privileged, TestNetns};

/// The policy: one CA of scope "any" without CRLs.
fn policy(ca: &Path) -> String {
    pair_policy(&format!(
        "ca-certificates = [\"{}\"]\nrevocation = \"relaxed\"",
        ca.display()
    ))
}

fn ike_peer(v: &Value) -> Option<&Value> {
    v["ike"]["peers"].as_array()?.first()
}

#[test]
fn two_daemons_key_an_inventory_pair_over_ikev2() {
    if !privileged("two_daemons_key_an_inventory_pair_over_ikev2") {
        return;
    }
    let (n1, n2) = TestNetns::veth_pair(("ikp1", "ikp2"), (SITE, DB));
    let pki = Pki::new("Corp CA", 1);
    let (fs, fd) = (
        HostFiles::new(&pki, ("site", SITE, 41), policy),
        HostFiles::new(&pki, ("db", DB, 42), policy),
    );
    let _db = fd.start(&n2);
    let _site = fs.start(&n1);
    let v = view(&n1).expect("site answers");
    assert!(v["ike"].is_object(), "IKE runs: {v}");
    assert!(ike_peer(&v).is_none(), "no peer before traffic");
    // Traffic site → db: the require policy holds it and raises an acquire.
    n1.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let _ = s.send_to(b"hello", (DB, 9));
    });
    for (ns, peer) in [(&n1, DB), (&n2, SITE)] {
        wait_for("the peer to be authenticated", || {
            view(ns).is_some_and(|v| {
                ike_peer(&v).is_some_and(|p| p["identity"].as_str().is_some_and(|s| !s.is_empty()))
            })
        });
        let v = view(ns).unwrap();
        let p = ike_peer(&v).unwrap();
        assert_eq!(p["address"], peer, "{v}");
        assert_eq!(p["authority"], "corp", "{v}");
        assert!(p["established_unix"].is_u64(), "{v}");
        assert_eq!(v["ike"]["failures"], serde_json::json!({}), "{v}");
        // The negotiated SAs were handed to the reconcile, which the kernel refused.
        wait_for("the negotiated SAs to be tried", || {
            view(ns).is_some_and(|v| {
                v["missing_features"]
                    .as_array()
                    .is_some_and(|m| !m.is_empty())
            })
        });
    }
    let v = view(&n1).unwrap();
    assert!(v["ike"]["certificate_not_after"].is_i64(), "{v}");
    // The acquire went to keying, not to the unknown-peer counter; the keying reconcile
    // read only the negotiated SAs' keys (the kernel held the rest).
    assert_eq!(v["unknown_peer_acquires"], 0, "{v}");
    let last = &v["last_reconcile"];
    assert_eq!(last["cause"], "keying", "{v}");
    assert_eq!(last["read"], "2 keys", "{v}");
    assert_eq!(last["failed"], 2, "both negotiated SAs tried: {v}");

    // A reload that keys the pair statically: site deletes the IKE SA (db hears the
    // Delete), and neither keeps the peer.
    // (The dead IKE SA lingers in the engine a while to answer retransmissions.)
    // Site no longer uses IKEv2 at all: its IKE source closes.
    fs.drop_ikev2();
    for ns in [&n1, &n2] {
        wait_for("the IKE peer to be gone after the reload", || {
            view(ns).is_some_and(|v| ike_peer(&v).is_none())
        });
    }
    assert!(view(&n1).unwrap()["ike"].is_null());
    let v = view(&n2).unwrap();
    assert_eq!(v["ike"]["failures"], serde_json::json!({}), "a Delete: {v}");
    assert_eq!(view(&n1).unwrap()["reloads_ok"], 1);
}

/// Whether UDP `port` is free in `ns` (nothing of the daemon's bound to it).
fn udp_free(ns: &TestNetns, port: u16) -> bool {
    ns.run(move || std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok())
}

#[test]
fn a_reload_turns_ikev2_on_and_off_without_a_restart() {
    if !privileged("a_reload_turns_ikev2_on_and_off_without_a_restart") {
        return;
    }
    let (n1, _n2) = TestNetns::veth_pair(("ikr1", "ikr2"), (SITE, DB));
    let pki = Pki::new("Corp CA", 1);
    let fs = HostFiles::new(&pki, ("site", SITE, 43), policy);
    fs.drop_ikev2();
    let _site = fs.start(&n1);
    let v = view(&n1).expect("site answers");
    assert!(v["ike"].is_null(), "no IKE without an IKEv2 pair: {v}");
    assert!(udp_free(&n1, 500) && udp_free(&n1, 4500));
    // On: the sockets open, the view shows keying, the pair's acquires go to it.
    fs.edit(|t| {
        t.replace(
            "action = \"require\"\n",
            "action = \"require\"\nkey-exchange = \"ikev2\"\n",
        )
    });
    wait_for("IKE to start on the reload", || {
        view(&n1).is_some_and(|v| v["ike"].is_object())
    });
    assert!(
        !udp_free(&n1, 500) && !udp_free(&n1, 4500),
        "the IKE sockets hold 500 and 4500"
    );
    n1.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let _ = s.send_to(b"hello", (DB, 9));
    });
    wait_for("an exchange with db to start", || {
        view(&n1).is_some_and(|v| v["ike"]["ike_sas"].as_u64() >= Some(1))
    });
    assert_eq!(view(&n1).unwrap()["unknown_peer_acquires"], 0);
    // Off again: the sockets close and keying's view goes.
    fs.drop_ikev2();
    wait_for("IKE to stop on the reload", || {
        view(&n1).is_some_and(|v| v["ike"].is_null())
    });
    assert!(
        udp_free(&n1, 500) && udp_free(&n1, 4500),
        "the IKE sockets are closed"
    );
    let v = view(&n1).unwrap();
    assert_eq!(
        (v["reloads_ok"].as_u64(), v["last_error"].is_null()),
        (Some(2), true),
        "{v}"
    );
}

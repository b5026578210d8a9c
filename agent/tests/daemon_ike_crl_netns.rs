//! Revocation reaches established IKE SAs at once: two daemons key a pair over IKEv2 (as
//! in `daemon_ike_pair_netns`), then db's CRL file is replaced by rename. A forged CRL and
//! an older one (lower crlNumber) are refused with the error in status and the peer kept;
//! a newer one revoking site's certificate deletes the peer on db (status: `revoked`,
//! `peers_cut`), and site hears the Delete. The kernel here has no ESP: what is checked is
//! keying's peers, through `status`; real ESP runs in the UML lab. Skips without root.
//!   cargo test -p agent --test daemon_ike_crl_netns

mod support;

use std::path::Path;
use std::time::Instant;

use ike::cert::testpki::Pki;
use serde_json::Value;
use support::daemon::{view, wait_for};
use support::ike_hosts::{pair_policy, pem, HostFiles, DB, SITE};
use support::ns::{privileged, TestNetns};

/// Site's certificate serial (its key seed).
const SITE_SERIAL: u8 = 41;

/// One CA with a CRL file beside the CA, strict revocation.
fn policy(ca: &Path) -> String {
    let crl = ca.with_file_name("corp.crl");
    pair_policy(&format!(
        "ca-certificates = [\"{}\"]\ncrls = [\"{}\"]\nrevocation = \"strict\"\ncrl-warning = \"1h\"",
        ca.display(),
        crl.display()
    ))
}

fn ike_peer(v: &Value) -> Option<&Value> {
    v["ike"]["peers"].as_array()?.first()
}

fn authenticated(ns: &TestNetns) -> bool {
    view(ns).is_some_and(|v| {
        ike_peer(&v).is_some_and(|p| p["identity"].as_str().is_some_and(|s| !s.is_empty()))
    })
}

/// Waits until the daemon in `ns` shows an authority error containing `what`; its view.
fn refused(ns: &TestNetns, what: &str) -> Value {
    let shows = |v: &Value| {
        (v["ike"]["authority_error"].as_str()).is_some_and(|e| e.contains(what))
            && v["ike"]["authority_errors"].as_u64() >= Some(1)
    };
    wait_for(&format!("an authority error with {what:?}"), || {
        view(ns).is_some_and(|v| shows(&v))
    });
    view(ns).unwrap()
}

/// A CRL of `ca` (PEM) revoking `revoked`, numbered `number`, valid until 2099.
fn crl(ca: &Pki, revoked: &[u64], number: u64) -> String {
    pem("X509 CRL", &ca.crl_numbered(revoked, 2099, number))
}

#[test]
fn a_crl_renamed_into_place_cuts_the_revoked_peer() {
    if !privileged("a_crl_renamed_into_place_cuts_the_revoked_peer") {
        return;
    }
    let (n1, n2) = TestNetns::veth_pair(("ikc1", "ikc2"), (SITE, DB));
    let pki = Pki::new("Corp CA", 1);
    let (fs, fd) = (
        HostFiles::new(&pki, ("site", SITE, SITE_SERIAL), policy),
        HostFiles::new(&pki, ("db", DB, 42), policy),
    );
    fs.replace("corp.crl", &crl(&pki, &[], 2));
    fd.replace("corp.crl", &crl(&pki, &[], 2));
    let _db = fd.start(&n2);
    let _site = fs.start(&n1);
    n1.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let _ = s.send_to(b"hello", (DB, 9));
    });
    for ns in [&n1, &n2] {
        wait_for("the peer to be authenticated", || authenticated(ns));
    }
    let v = view(&n2).unwrap();
    assert_eq!(v["ike"]["crls"][0]["state"], "current", "{v}");
    assert!(
        v["ike"]["crls"][0]["seconds_left"].as_i64().unwrap() > 0,
        "{v}"
    );

    // A forged CRL (our CA's name, another key) revoking site: refused, peer kept.
    let forger = Pki::new("Corp CA", 7);
    fd.replace("corp.crl", &crl(&forger, &[SITE_SERIAL.into()], 9));
    let v = refused(&n2, "not signed");
    let e = v["ike"]["authority_error"].as_str().unwrap_or_default();
    assert!(e.contains("corp.crl"), "the file is named: {v}");
    assert!(ike_peer(&v).is_some(), "peer kept: {v}");

    // An older CRL (crlNumber 1 < 2 in force) revoking site: refused too.
    fd.replace("corp.crl", &crl(&pki, &[SITE_SERIAL.into()], 1));
    let v = refused(&n2, "older than");
    assert!(v["ike"]["authority_errors"].as_u64() >= Some(2), "{v}");
    assert!(ike_peer(&v).is_some(), "peer kept: {v}");

    // The real one, newer: site's SAs go on db at once, and on site by the Delete.
    let renamed = Instant::now();
    fd.replace("corp.crl", &crl(&pki, &[SITE_SERIAL.into()], 3));
    wait_for("db to cut site", || {
        view(&n2).is_some_and(|v| ike_peer(&v).is_none())
    });
    let cut = renamed.elapsed();
    wait_for("site to hear the Delete", || {
        view(&n1).is_some_and(|v| ike_peer(&v).is_none())
    });
    println!(
        "CRL rename → peer gone: db {} ms, site {} ms",
        cut.as_millis(),
        renamed.elapsed().as_millis()
    );
    let v = view(&n2).unwrap();
    assert_eq!(v["ike"]["failures"]["revoked"], 1, "{v}");
    assert_eq!(v["ike"]["peers_cut"], 1, "{v}");
    assert!(v["ike"]["authority_error"].is_null(), "{v}");
}

//! Revocation and expiry cut established peers: a new CRL revoking a peer mid-session, an
//! anchor withdrawn, a peer's certificate and our own reaching notAfter on a simulated
//! clock; an outdated CRL alone does not.

use std::time::Duration;

use ike::cert::testpki::{rcgen, Pki, TestKey};
use ike::cert::{CertVerifier, RevocationMode};
use ike::sa::Config;

use super::testnet::{ip, Net, A, B, CLEAN};
use super::tests::{acquire, both_up, established, revoking_a, settings};
use super::FailureKind;

fn verifier(ca: &Pki, crl: &[u8], mode: RevocationMode) -> CertVerifier {
    let mut v = CertVerifier::new();
    v.add_authority("corp", &[&ca.ca_der], &[crl], mode)
        .unwrap();
    v
}

#[test]
fn a_crl_revoking_an_established_peer_deletes_its_sas_at_once() {
    let mut n = established(CLEAN, 31);
    let pki = Pki::new("Corp CA", 1);
    n.b.set_verifier(n.now, revoking_a(&pki));
    assert!(
        n.b.desired_states().is_empty(),
        "B's SAs with A gone at once"
    );
    assert_eq!(n.b.peers().count(), 0);
    assert_eq!(n.b.counters().peers_cut, 1);
    assert_eq!(n.b.counters().failures_of(FailureKind::Revoked), 1);
    let a_gone = |n: &Net| n.a.desired_states().is_empty();
    assert!(
        n.run_until(Duration::from_secs(2), a_gone, |_| ()),
        "A got B's Delete"
    );
    // A's next acquire is refused by B for the revocation.
    assert!(n.a.acquire(n.now, &acquire(A, B, 9)));
    let refused = |n: &Net| n.b.counters().failures_of(FailureKind::Revoked) == 2;
    assert!(n.run_until(Duration::from_secs(60), refused, |_| ()));
    assert!(n.b.desired_states().is_empty());
}

#[test]
fn a_crl_revoking_someone_else_changes_nothing() {
    let mut n = established(CLEAN, 32);
    let before = n.b.desired_states();
    let pki = Pki::new("Corp CA", 1);
    n.b.set_verifier(
        n.now,
        verifier(&pki, &pki.crl(&[99], 2030), RevocationMode::Strict),
    );
    assert_eq!(n.b.desired_states(), before);
    assert_eq!(n.b.counters().peers_cut, 0);
}

#[test]
fn a_withdrawn_anchor_cuts_its_peers() {
    let mut n = established(CLEAN, 33);
    let other = Pki::new("Other CA", 5);
    n.b.set_verifier(
        n.now,
        verifier(&other, &other.crl(&[], 2030), RevocationMode::Strict),
    );
    assert!(n.b.desired_states().is_empty());
    assert_eq!(n.b.counters().failures_of(FailureKind::AuthFailed), 1);
}

#[test]
fn an_outdated_crl_under_strict_keeps_established_peers_and_refuses_new_ones() {
    let mut n = established(CLEAN, 34);
    let before = n.b.desired_states();
    let pki = Pki::new("Corp CA", 1);
    // nextUpdate 2026-01-01: before the tests' now (2026-06-01).
    n.b.set_verifier(
        n.now,
        verifier(&pki, &pki.crl(&[], 2026), RevocationMode::Strict),
    );
    assert_eq!(n.b.desired_states(), before, "established peer kept");
    n.b.delete_peer(n.now, (ip(B), ip(A)));
    n.run_for(Duration::from_secs(5), |_| ());
    assert!(n.a.acquire(n.now, &acquire(A, B, 9)));
    let failed = |n: &Net| n.b.counters().failures_of(FailureKind::AuthFailed) == 1;
    assert!(
        n.run_until(Duration::from_secs(60), failed, |_| ()),
        "{:?}",
        n.b.counters()
    );
    assert!(n.b.desired_states().is_empty(), "a new exchange is refused");
}

/// A's certificate (same key, serial and address) valid until `secs` after the tests' now.
fn a_expiring_after(pki: &Pki, a: &mut Config, secs: u64) {
    let ip_a = ip(A);
    a.certificates = vec![pki.leaf(&TestKey::new(21), 21, |p| {
        p.subject_alt_names = vec![rcgen::SanType::IpAddress(ip_a)];
        p.not_after = rcgen::date_time_ymd(2026, 6, 1) + Duration::from_secs(secs);
    })];
}

#[test]
fn a_peer_certificate_expiring_deletes_its_sas_at_not_after() {
    let mut n = Net::new_with(settings(), CLEAN, 35, |pki, a, _| {
        a_expiring_after(pki, a, 100)
    });
    let start = n.now;
    let expiry = start + Duration::from_secs(100);
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    assert!(n.run_until(Duration::from_secs(10), both_up, |_| ()));
    let b_gone = |n: &Net| n.b.desired_states().is_empty();
    let early = |n: &Net| assert!(n.now >= expiry || !b_gone(n), "cut before notAfter");
    assert!(n.run_until(Duration::from_secs(200), b_gone, early));
    println!("B cut A {:?} after notAfter", n.now - expiry);
    assert!(n.now - expiry < Duration::from_secs(1));
    assert_eq!(n.b.counters().failures_of(FailureKind::Expired), 1);
}

#[test]
fn our_certificate_expiring_deletes_every_peer_and_refuses_new_exchanges() {
    let mut n = Net::new_with(settings(), CLEAN, 36, |pki, a, _| {
        a_expiring_after(pki, a, 100)
    });
    let expiry = n.now + Duration::from_secs(100);
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    assert!(n.run_until(Duration::from_secs(10), both_up, |_| ()));
    let a_gone = |n: &Net| n.a.desired_states().is_empty();
    assert!(n.run_until(Duration::from_secs(200), a_gone, |_| ()));
    assert!(n.now >= expiry && n.now - expiry < Duration::from_secs(1));
    assert!(n.a.own_certificate_expired(n.now));
    assert!(!n.a.acquire(n.now, &acquire(A, B, 2)), "no new exchange");
    assert_eq!(n.a.counters().refused_own_expired, 1);
    let b_gone = |n: &Net| n.b.desired_states().is_empty();
    assert!(n.run_until(Duration::from_secs(5), b_gone, |_| ()));
}

//! Two keying agents over a simulated network: acquire to mirrored SAs, de-duplication,
//! admission, make-before-break rekeys, Delete, liveness failure, retransmit limits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ike::cert::testpki::{self, Pki};
use ike::cert::{CertVerifier, RevocationMode};
use ike::sa::Config;

use super::testnet::{ip, table, Faults, Net, A, B, CLEAN, REQID, ROUGH};
use super::{Acquire, FailureKind, Keying, Settings, StaticSpis};
use crate::model::{DesiredSa, SaDir, SaKey, Selector};
use crate::plan::host_net as host;

pub(super) fn settings() -> Settings {
    Settings {
        rekey_after: Duration::from_secs(40),
        rekey_jitter: Duration::from_secs(4),
        ike_rekey_after: Duration::from_secs(100),
        grace: Duration::from_secs(5),
        dpd_idle: Duration::from_secs(30),
        retry: Duration::from_secs(1),
    }
}

pub(super) fn acquire(local: &str, remote: &str, seq: u32) -> Acquire {
    Acquire {
        local: ip(local),
        remote: ip(remote),
        sel: Selector::between(host(ip(local)), host(ip(remote))),
        seq,
    }
}

pub(super) fn outbound(k: &Keying) -> Vec<(SaKey, DesiredSa)> {
    (k.desired_states().into_iter())
        .filter(|(_, s)| s.meta.dir == SaDir::Out)
        .collect()
}

/// Both sides carry traffic: each has one outbound SA.
pub(super) fn both_up(n: &Net) -> bool {
    outbound(&n.a).len() == 1 && outbound(&n.b).len() == 1
}

/// Every outbound SA either side wants has the other side's inbound SA with the same key,
/// algorithm (keys), selector and encapsulation; at most one outbound SA per side.
pub(super) fn consistent(n: &Net) -> Result<(), String> {
    let (da, db) = (n.a.desired_states(), n.b.desired_states());
    for (mine, theirs, who) in [(&da, &db, "A"), (&db, &da, "B")] {
        let outs: Vec<_> = mine
            .iter()
            .filter(|(_, s)| s.meta.dir == SaDir::Out)
            .collect();
        if outs.len() > 1 {
            return Err(format!("{who} wants {} outbound SAs", outs.len()));
        }
        for (k, s) in outs {
            let matches = theirs.get(k).is_some_and(|i| {
                i.meta.dir == SaDir::In
                    && i.spec.encap == s.spec.encap
                    && (&i.spec.alg, &i.spec.sel, i.spec.src)
                        == (&s.spec.alg, &s.spec.sel, s.spec.src)
            });
            if !matches {
                return Err(format!(
                    "{who}'s outbound {k} has no matching inbound SA at its peer"
                ));
            }
        }
    }
    Ok(())
}

/// [`consistent`], at every step.
pub(super) fn outbound_has_peer_inbound(n: &Net) {
    if let Err(e) = consistent(n) {
        panic!("at {:?}: {e}", n.now);
    }
}

pub(super) fn established(faults: Faults, seed: u64) -> Net {
    let mut n = Net::new(settings(), faults, seed);
    assert!(n.a.acquire(n.now, &acquire(A, B, 7)));
    assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
    n
}

#[test]
fn an_acquire_gives_both_sides_mirrored_sas() {
    for seed in 1..5 {
        let faults = if seed == 1 { CLEAN } else { ROUGH };
        let n = established(faults, seed);
        let (da, db) = (n.a.desired_states(), n.b.desired_states());
        assert_eq!((da.len(), db.len()), (2, 2), "seed {seed}");
        for (k, a) in &da {
            let b = &db[k];
            assert_ne!(a.meta.dir, b.meta.dir, "{k}");
            assert_eq!(a.spec.alg, b.spec.alg, "{k}");
            assert_eq!((a.spec.reqid, b.spec.reqid), (REQID, REQID));
            let (src, dst) = match a.meta.dir {
                SaDir::Out => (ip(A), ip(B)),
                SaDir::In => (ip(B), ip(A)),
            };
            assert_eq!((a.spec.src, k.dst), (src, dst));
            assert_eq!(a.spec.sel, Selector::between(host(src), host(dst)));
        }
        outbound_has_peer_inbound(&n);
        assert_eq!(n.a.acquire_seq((ip(A), ip(B))), Some(7));
        let (pair, status) = n.b.peers().next().unwrap();
        assert_eq!(*pair, (ip(B), ip(A)));
        assert_eq!(
            (status.identity.as_str(), status.authority.as_str()),
            (A, "corp")
        );
        assert!(status.established.is_some() && status.suite.starts_with("aes-gcm-16"));
    }
}

#[test]
fn acquires_for_one_peer_start_one_exchange() {
    let mut n = Net::new(settings(), CLEAN, 3);
    let started: Vec<bool> = (0..3)
        .map(|seq| n.a.acquire(n.now, &acquire(A, B, seq)))
        .collect();
    assert_eq!(started, [true, false, false]);
    assert_eq!(n.a.counters().acquires_merged, 2);
    assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
    // Once up, a late acquire (the kernel raced the install) starts nothing either.
    assert!(!n.a.acquire(n.now, &acquire(A, B, 9)));
    assert_eq!((n.a.ike_sa_count(), n.b.ike_sa_count()), (1, 1));
    assert_eq!(n.a.desired_states().len(), 2);
}

#[test]
fn a_pair_no_rule_keys_gets_nothing() {
    let mut n = Net::new(settings(), CLEAN, 4);
    assert!(!n.a.acquire(n.now, &acquire(A, "10.0.0.9", 1)));
    assert_eq!(n.a.counters().acquires_not_admitted, 1);
    assert!(n.a.poll_transmit(n.now).is_none());
    assert!(n.a.desired_states().is_empty());
}

#[test]
fn a_peer_not_admitted_gets_nothing() {
    let mut n = Net::new(settings(), CLEAN, 5);
    n.b.set_admission(n.now, table(B, A, false));
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    let failed = |n: &Net| n.b.counters().failures_of(FailureKind::NotAdmitted) == 1;
    assert!(n.run_until(Duration::from_secs(60), failed, |_| ()));
    n.run_for(Duration::from_secs(10), |_| ());
    assert!(n.a.desired_states().is_empty() && n.b.desired_states().is_empty());
    assert_eq!(n.a.counters().failures_of(FailureKind::AuthFailed), 1);
    assert_eq!(n.a.peers().count() + n.b.peers().count(), 0);
}

/// A peer whose certificate B refuses (an attacker's input) gets no SA; the failure is
/// counted by its reason on B.
fn refused(edit: impl FnOnce(&Pki, &mut Config, &mut Config), reason: FailureKind) {
    let mut n = Net::new_with(settings(), CLEAN, 20, edit);
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    let failed = |n: &Net| n.b.counters().failures_of(reason) == 1;
    assert!(
        n.run_until(Duration::from_secs(60), failed, |_| ()),
        "{:?}",
        n.b.counters()
    );
    n.run_for(Duration::from_secs(10), |_| ());
    assert!(n.a.desired_states().is_empty() && n.b.desired_states().is_empty());
    assert_eq!(n.a.counters().failures_of(FailureKind::AuthFailed), 1);
}

/// `pki` as authority corp, with a CRL revoking A's certificate (serial 21).
fn revoking_a(pki: &Pki) -> CertVerifier {
    let mut verifier = CertVerifier::new();
    let crl = pki.crl(&[21], 2030);
    verifier
        .add_authority("corp", &[&pki.ca_der], &[&crl], RevocationMode::Strict)
        .unwrap();
    verifier
}

#[test]
fn a_revoked_peer_gets_nothing() {
    refused(
        |pki, _, b| b.verifier = revoking_a(pki),
        FailureKind::Revoked,
    );
}

#[test]
fn a_peer_certified_by_another_ca_gets_nothing() {
    refused(
        |pki, a, _| *a = testpki::config(&Pki::new("Rogue CA", 9), pki, A, 21),
        FailureKind::AuthFailed,
    );
}

#[test]
fn an_admission_withdrawn_on_reload_deletes_the_peer() {
    let mut n = established(CLEAN, 6);
    n.a.set_admission(n.now, table(A, "10.0.0.9", true));
    assert!(n.a.desired_states().is_empty());
    n.run_for(Duration::from_secs(5), |_| ());
    assert!(n.b.desired_states().is_empty(), "B got the Delete");
}

#[test]
fn a_crl_given_on_reload_refuses_the_peer_at_its_next_exchange() {
    let mut n = established(CLEAN, 7);
    n.a.delete_peer(n.now, (ip(A), ip(B)));
    let gone = |n: &Net| n.b.desired_states().is_empty();
    assert!(n.run_until(Duration::from_secs(30), gone, |_| ()));
    // The same CA (same key and name), now revoking A's certificate (serial 21).
    let pki = Pki::new("Corp CA", 1);
    let mut b = testpki::config(&pki, &pki, B, 22);
    b.verifier = revoking_a(&pki);
    n.b.set_config(b);
    assert!(n.a.acquire(n.now, &acquire(A, B, 2)));
    let revoked = |n: &Net| n.b.counters().failures_of(FailureKind::Revoked) == 1;
    assert!(
        n.run_until(Duration::from_secs(60), revoked, |_| ()),
        "{:?}",
        n.b.counters()
    );
    assert!(n.b.desired_states().is_empty());
}

fn rekeys_make_before_break(faults: Faults, seed: u64) {
    let mut n = established(faults, seed);
    let (start, first) = (n.now, outbound(&n.a)[0].0);
    // Two Child SA rekeys per side and an IKE SA rekey, the invariant at every step.
    n.run_for(Duration::from_secs(130), outbound_has_peer_inbound);
    assert!(both_up(&n));
    let rekeys = |k: &Keying| k.peers().next().map_or(0, |p| p.1.rekeys);
    assert!(
        rekeys(&n.a) >= 3 && rekeys(&n.b) >= 3,
        "{} {}",
        rekeys(&n.a),
        rekeys(&n.b)
    );
    assert_ne!(outbound(&n.a)[0].0, first);
    // The IKE SA was rekeyed too (after 100 s), its Child SAs moved to the new one.
    for k in [&n.a, &n.b] {
        let established = k.peers().next().unwrap().1.established.unwrap();
        assert!(established > start + Duration::from_secs(90));
    }
    // Replaced inbound SAs are gone after their grace: one Child SA, two SAs a side.
    n.run_for(Duration::from_secs(10), outbound_has_peer_inbound);
    assert!(
        n.a.desired_states().len() <= 4,
        "{:?}",
        n.a.desired_states().keys()
    );
    assert_eq!(n.a.counters().failures, Default::default());
}

#[test]
fn child_sa_rekeys_are_make_before_break() {
    rekeys_make_before_break(CLEAN, 7);
}

#[test]
fn child_sa_rekeys_are_make_before_break_on_a_lossy_network() {
    let faults = Faults { loss: 10, ..ROUGH };
    for seed in 8..11 {
        rekeys_make_before_break(faults, seed);
    }
}

#[test]
fn simultaneous_acquires_on_both_sides_stay_consistent_through_rekeys() {
    for seed in 15..19 {
        let mut n = Net::new(settings(), ROUGH, seed);
        assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
        assert!(n.b.acquire(n.now, &acquire(B, A, 1)));
        assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
        // Both IKE_AUTH requests carry INITIAL_CONTACT (neither side had an IKE SA up when
        // it started), so each side drops the IKE SA it initiated once the other's arrives,
        // and uses an outbound SA its peer just dropped until its own response is in:
        // consistent again once the exchanges are over.
        n.run_for(Duration::from_secs(10), |_| ());
        n.run_for(Duration::from_secs(130), outbound_has_peer_inbound);
        assert!(both_up(&n), "seed {seed}");
    }
}

#[test]
fn a_delete_removes_the_peers_sas_on_both_sides() {
    let mut n = established(ROUGH, 11);
    n.a.delete_peer(n.now, (ip(A), ip(B)));
    assert!(n.a.desired_states().is_empty());
    let gone = |n: &Net| n.b.desired_states().is_empty();
    assert!(n.run_until(Duration::from_secs(30), gone, |_| ()));
}

#[test]
fn a_silent_peer_fails_its_liveness_check() {
    let mut n = established(CLEAN, 12);
    n.b_gone = true;
    let gone = |n: &Net| n.a.desired_states().is_empty();
    assert!(n.run_until(Duration::from_secs(120), gone, |_| ()));
    assert_eq!(n.a.counters().failures_of(FailureKind::Timeout), 1);
    assert_eq!(n.a.peers().count(), 0);
}

#[test]
fn an_unanswered_exchange_is_counted_and_a_new_acquire_retries() {
    let mut n = Net::new(settings(), CLEAN, 13);
    n.b_gone = true;
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    let failed = |n: &Net| n.a.counters().failures_of(FailureKind::Timeout) == 1;
    assert!(n.run_until(Duration::from_secs(120), failed, |_| ()));
    assert!(n.a.desired_states().is_empty());
    n.b_gone = false;
    assert!(n.a.acquire(n.now, &acquire(A, B, 2)));
    assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
}

#[test]
fn inbound_spis_avoid_static_slots() {
    let mut policy = crate::plan::testkit::seed();
    policy.ownership.spi = (0x4000_0000, 0x7fff_ffff);
    let table = crate::plan::SpiTable::build(&policy);
    let addrs: Vec<IpAddr> = (policy.hosts.iter())
        .flat_map(|h| h.addresses.clone())
        .chain([ip(A), ip(B)])
        .collect();
    let spis = Arc::new(StaticSpis::new(&table, policy.ownership.spi, &addrs));
    let mut n = Net::new(settings(), CLEAN, 14);
    n.a.set_spis(n.now, spis.clone());
    n.b.set_spis(n.now, spis.clone());
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
    n.run_for(Duration::from_secs(90), outbound_has_peer_inbound);
    for k in
        n.a.desired_states()
            .keys()
            .chain(n.b.desired_states().keys())
    {
        assert!(spis.is_free(k.spi), "{k}");
    }
}

#[test]
fn a_child_sa_in_a_slot_a_reload_takes_is_rekeyed_out_of_it() {
    let range = (0x4000_0000, 0x7fff_ffff);
    let mut n = Net::new(settings(), CLEAN, 19);
    let all = Arc::new(StaticSpis::with_taken(range, []));
    n.a.set_spis(n.now, all.clone());
    n.b.set_spis(n.now, all);
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
    let inbound = |k: &Keying| -> Vec<u32> {
        (k.desired_states().into_iter())
            .filter(|(_, s)| s.meta.dir == SaDir::In)
            .map(|(k, _)| k.spi)
            .collect()
    };
    let old = inbound(&n.a);
    // A new inventory address now holds the slot of A's inbound SPI.
    let spis = Arc::new(StaticSpis::with_taken(range, old.clone()));
    n.a.set_spis(n.now, spis.clone());
    n.run_for(Duration::from_secs(10), outbound_has_peer_inbound);
    let now_in = inbound(&n.a);
    assert!(
        !now_in.is_empty() && now_in.iter().all(|s| spis.is_free(*s)),
        "{now_in:x?}"
    );
    assert!(now_in.iter().all(|s| !old.contains(s)));
}

#[test]
fn esp_in_udp_when_the_exchange_says_so() {
    let mut n = Net::new_with(settings(), CLEAN, 21, |_, a, _| a.force_encap = true);
    assert!(n.a.acquire(n.now, &acquire(A, B, 1)));
    assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
    let (da, db) = (n.a.desired_states(), n.b.desired_states());
    for (k, s) in da.iter().chain(&db) {
        let encap = s
            .spec
            .encap
            .unwrap_or_else(|| panic!("{k} not encapsulated"));
        assert_eq!((encap.sport, encap.dport), (4500, 4500), "{k}");
    }
    outbound_has_peer_inbound(&n);
}

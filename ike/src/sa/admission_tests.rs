//! Who gets in: certificates from other CAs, unexpected identities, our own certificate,
//! the daemon's admission rule, peers that do not sign (a pre-shared key).

use std::time::Duration;

use super::sim::Faults;
use super::tests::{addr, both_ready, config, pair, sim, A, B};
use super::*;
use crate::auth::{method, AuthError};
use crate::cert::testpki::{Pki, TestKey};
use crate::cert::CertError;
use crate::codec::{notify, Auth};

/// a initiates; b answers AUTHENTICATION_FAILED, which is all a hears.
fn assert_b_refuses_a(s: &mut super::sim::Sim) {
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(5), |s| !s.events_a.is_empty());
    let refused = FailReason::PeerError(notify::AUTHENTICATION_FAILED);
    assert_eq!(
        s.events_a,
        vec![Event::Failed {
            sa,
            reason: refused
        }]
    );
}

#[test]
fn a_peer_from_another_ca_is_refused_on_both_sides() {
    let (pki, other) = (Pki::new("Corp CA", 1), Pki::new("Other CA", 2));
    let ca = config(&other, &pki, "10.0.0.1", 21); // a's certificate is from another CA
    let cb = config(&pki, &pki, "10.0.0.2", 22);
    let mut s = sim(ca, cb, Faults::NONE, 7);
    assert_b_refuses_a(&mut s);
    assert!(matches!(
        s.events_b.as_slice(),
        [Event::Failed {
            reason: FailReason::Certificate(crate::cert::CertError::UnknownIssuer),
            ..
        }]
    ));
}

#[test]
fn the_initiator_refuses_an_unexpected_responder_identity() {
    let mut s = pair(Faults::NONE, 8, |_, _| {});
    let sa = s.a.initiate(
        s.now,
        addr(A),
        addr(B),
        Some(Id::from_ip("10.0.0.9".parse().unwrap())),
    );
    s.run_until(Duration::from_secs(5), |s| !s.events_a.is_empty());
    assert_eq!(
        s.events_a,
        vec![Event::Failed {
            sa,
            reason: FailReason::UnexpectedIdentity("10.0.0.2".into())
        }]
    );
}

#[test]
fn a_config_whose_certificate_does_not_fit_is_refused_at_load() {
    let pki = Pki::new("Corp CA", 1);
    assert_eq!(config(&pki, &pki, "10.0.0.1", 21).check(), Ok(()));
    let mut wrong_id = config(&pki, &pki, "10.0.0.1", 21);
    wrong_id.id = Id::from_ip("10.0.0.7".parse().unwrap());
    assert!(matches!(
        wrong_id.check(),
        Err(crate::cert::CertError::IdMismatch { .. })
    ));
    let mut wrong_key = config(&pki, &pki, "10.0.0.1", 21);
    wrong_key.key = TestKey::new(99).signing_key();
    assert!(matches!(
        wrong_key.check(),
        Err(crate::cert::CertError::Key(_))
    ));
}

#[test]
fn the_admission_rule_decides_after_authentication() {
    let deny_a = |b: &mut Config| {
        let rule: Admit = std::sync::Arc::new(|who: &Admission<'_>| {
            who.authority == "corp" && who.remote.ip() != addr(A).ip()
        });
        b.admit = Some(rule);
    };
    let mut s = pair(Faults::NONE, 21, |_, b| deny_a(b));
    assert_b_refuses_a(&mut s);
    assert!(
        matches!(s.events_b.as_slice(), [Event::Failed { reason: FailReason::NotAdmitted(who), .. }] if who == "10.0.0.1")
    );
    // The same rule on the initiator refuses nothing here: b is admitted.
    let mut s = pair(Faults::NONE, 22, |a, _| deny_a(a));
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
}

#[test]
fn a_pre_shared_key_peer_fails_authentication_not_the_protocol() {
    let psk = Auth {
        method: 2,
        data: vec![0; 32],
    };
    let cert: &[u8] = b"certificate";
    for certs in [&[][..], &[cert][..]] {
        assert_eq!(
            ike_auth::signature_and_certificate(&psk, certs).unwrap_err(),
            FailReason::Auth(AuthError::UnsupportedMethod(2))
        );
    }
    let signed = Auth {
        method: method::DIGITAL_SIGNATURE,
        data: vec![0; 32],
    };
    assert!(matches!(
        ike_auth::signature_and_certificate(&signed, &[]),
        Err(FailReason::Certificate(CertError::Malformed(_)))
    ));
    assert_eq!(
        ike_auth::signature_and_certificate(&signed, &[cert]).unwrap(),
        (cert, &[][..])
    );
}

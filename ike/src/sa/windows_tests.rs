//! Windows' IKEv2 profile: AES-CBC-256 + HMAC-SHA2-256, DH group 14 or 19, no RFC 7427
//! (AUTH methods 1 and 9 only), and an initiator that sends no IDr.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::sim::{children, Faults, Sim};
use super::tests::{addr, assert_matching_children_keys, both_ready, pair, A, B};
use super::{Config, Event, KeyLog};
use crate::auth::method;
use crate::codec::{decode_message, exchange, Auth, Payload};
use crate::crypto::{open_sk, Cipher, DhGroup, IkeKeys};

const CBC256: Cipher = Cipher::AesCbcHmacSha256 { bits: 256 };

/// What a Windows Connection Security Rule offers with one main mode crypto set.
fn windows_like(c: &mut Config, group: DhGroup) {
    c.ike_ciphers = vec![CBC256];
    c.esp_ciphers = vec![CBC256];
    c.groups = vec![group];
    c.announce_signature_hashes = false;
}

fn key_log_into(keys: &Arc<Mutex<Vec<IkeKeys>>>) -> KeyLog {
    let keys = keys.clone();
    Arc::new(move |e: &super::KeyLogEntry<'_>| keys.lock().unwrap().push(e.keys.clone()))
}

/// The decrypted IKE_AUTH (request, response) of the run, with the logged keys.
fn ike_auth(s: &Sim, keys: &IkeKeys) -> (Vec<Payload>, Vec<Payload>) {
    let open = |response: bool| {
        let (_, _, bytes) = s
            .delivered
            .iter()
            .find(|(_, _, b)| {
                let h = decode_message(b).unwrap().header;
                h.exchange == exchange::IKE_AUTH && h.is_response() == response
            })
            .expect("an IKE_AUTH message");
        let (e, a) = match response {
            false => (&keys.sk_ei, &keys.sk_ai),
            true => (&keys.sk_er, &keys.sk_ar),
        };
        let msg = decode_message(bytes).unwrap();
        open_sk(CBC256, e.expose(), a.expose(), bytes, &msg).unwrap()
    };
    (open(false), open(true))
}

fn auth_method(payloads: &[Payload]) -> Option<u8> {
    payloads.iter().find_map(|p| match p {
        Payload::Auth(Auth { method, .. }) => Some(*method),
        _ => None,
    })
}

fn group_of_ke(s: &Sim) -> u16 {
    let (_, _, last_init) = s
        .delivered
        .iter()
        .rfind(|(_, _, b)| decode_message(b).unwrap().header.exchange == exchange::IKE_SA_INIT)
        .unwrap();
    decode_message(last_init)
        .unwrap()
        .payloads
        .iter()
        .find_map(|p| match p {
            Payload::Ke(ke) => Some(ke.group),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_windows_like_initiator_gets_cbc_and_ecdsa_method_9_with_groups_14_and_19() {
    for group in [DhGroup::Modp2048, DhGroup::Ecp256] {
        let logged = Arc::new(Mutex::new(Vec::new()));
        let mut s = pair(Faults::NONE, 14, |a, b| {
            windows_like(a, group);
            b.key_log = Some(key_log_into(&logged));
        });
        // Windows names no responder identity: no IDr in IKE_AUTH.
        s.a.initiate(s.now, addr(A), addr(B), None);
        assert!(s.run_until(Duration::from_secs(5), both_ready), "{group:?}");
        assert_matching_children_keys(&s);
        assert_eq!(children(&s.events_b)[0].cipher, CBC256);
        assert_eq!(group_of_ke(&s), group.number());
        let keys = logged.lock().unwrap()[0].clone();
        let (request, response) = ike_auth(&s, &keys);
        assert!(!request.iter().any(|p| matches!(p, Payload::IdR(_))));
        // We answer with the identity of our certificate, and sign the old way (RFC 4754).
        let our_id = response.iter().find_map(|p| match p {
            Payload::IdR(id) => Some(id.clone()),
            _ => None,
        });
        assert_eq!(our_id, Some(super::Id::from_ip(addr(B).ip())));
        assert_eq!(auth_method(&response), Some(method::ECDSA_P256));
    }
}

#[test]
fn a_windows_like_responder_gets_group_14_after_invalid_ke_and_method_9() {
    let logged = Arc::new(Mutex::new(Vec::new()));
    let mut s = pair(Faults::NONE, 15, |a, b| {
        a.key_log = Some(key_log_into(&logged));
        windows_like(b, DhGroup::Modp2048);
    });
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    assert_matching_children_keys(&s);
    assert_eq!(children(&s.events_a)[0].cipher, CBC256);
    // Our KE was group 31 (our first); the retry after INVALID_KE_PAYLOAD is group 14.
    assert_eq!(group_of_ke(&s), 14);
    let keys = logged.lock().unwrap()[0].clone();
    let (request, _) = ike_auth(&s, &keys);
    assert_eq!(auth_method(&request), Some(method::ECDSA_P256));
}

#[test]
fn the_peer_is_refused_when_its_method_9_signature_is_forged() {
    // A Windows-like initiator whose certificate is not the key it signs with.
    let mut s = pair(Faults::NONE, 16, |a, _| {
        windows_like(a, DhGroup::Ecp256);
        a.key = crate::cert::testpki::TestKey::new(99).signing_key();
    });
    s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(5), |s| {
        s.events_b.iter().any(|e| matches!(e, Event::Failed { .. }))
    });
    assert!(children(&s.events_b).is_empty());
    assert!(s.events_b.iter().any(|e| matches!(e, Event::Failed { .. })));
}

/// Windows' main mode proposals: one per crypto set, here DH 14 then DH 19.
fn windows_proposals() -> Vec<crate::codec::Proposal> {
    use super::proposal::ike_proposals;
    let mut second = ike_proposals(&[CBC256], &[DhGroup::Ecp256]);
    second[0].number = 2;
    [ike_proposals(&[CBC256], &[DhGroup::Modp2048]), second].concat()
}

#[test]
fn proposal_selection_takes_windows_order_and_our_groups() {
    use super::proposal::choose;
    use crate::codec::protocol;
    let ours = Config::new(
        crate::cert::testpki::TestKey::new(1).signing_key(),
        Vec::new(),
        super::Id::from_ip(addr(A).ip()),
        crate::cert::CertVerifier::new(),
    );
    let offered = windows_proposals();
    let pick = |ciphers: &[Cipher], groups: &[DhGroup]| {
        choose(&offered, protocol::IKE, ciphers, groups).map(|c| (c.proposal.number, c.group))
    };
    // Our defaults accept the first proposal: AES-CBC-256, group 14.
    let chosen = choose(&offered, protocol::IKE, &ours.ike_ciphers, &ours.groups).unwrap();
    assert_eq!(
        (chosen.cipher, chosen.group),
        (CBC256, Some(DhGroup::Modp2048))
    );
    assert_eq!(chosen.proposal.transforms.len(), 4, "ENCR, INTEG, PRF, DH");
    // Without group 14 the second proposal (19) is taken; with neither, none.
    assert_eq!(
        pick(&[CBC256], &[DhGroup::Ecp256]),
        Some((2, Some(DhGroup::Ecp256)))
    );
    assert_eq!(pick(&[CBC256], &[DhGroup::Curve25519]), None);
    // AES-CBC-128 or GCM alone do not match AES-CBC-256.
    let cbc128 = Cipher::AesCbcHmacSha256 { bits: 128 };
    assert_eq!(
        pick(&[cbc128, Cipher::AesGcm16 { bits: 256 }], &ours.groups),
        None
    );
}

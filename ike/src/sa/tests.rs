//! Two in-process endpoints over a simulated network establish IKE and Child SAs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::sim::{children, Faults, Sim};
use super::*;
use crate::cert::testpki::{now as wall_now, Pki};
use crate::codec::{decode_message, notify, Payload};
use crate::rng::SeededRng;

pub(super) const A: &str = "10.0.0.1:500";
pub(super) const B: &str = "10.0.0.2:500";

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) use crate::cert::testpki::config;

pub(super) fn pair(faults: Faults, seed: u64, edit: impl FnOnce(&mut Config, &mut Config)) -> Sim {
    let pki = Pki::new("Corp CA", 1);
    let (mut ca, mut cb) = (
        config(&pki, &pki, "10.0.0.1", 21),
        config(&pki, &pki, "10.0.0.2", 22),
    );
    edit(&mut ca, &mut cb);
    sim(ca, cb, faults, seed)
}

pub(super) fn sim(ca: Config, cb: Config, faults: Faults, seed: u64) -> Sim {
    let start = Instant::now();
    let a = Endpoint::new(ca, Box::new(SeededRng::new(seed * 2)), start, wall_now());
    let b = Endpoint::new(
        cb,
        Box::new(SeededRng::new(seed * 2 + 1)),
        start,
        wall_now(),
    );
    Sim::new(a, b, addr(A), addr(B), start, faults, seed)
}

pub(super) fn both_ready(s: &Sim) -> bool {
    !children(&s.events_a).is_empty() && !children(&s.events_b).is_empty()
}

pub(super) fn assert_matching_children_keys(s: &Sim) {
    let (ca, cb) = (children(&s.events_a), children(&s.events_b));
    assert_eq!((ca.len(), cb.len()), (1, 1), "exactly one Child SA each");
    let (a, b) = (ca[0], cb[0]);
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
    assert_eq!(a.keys_out, b.keys_in);
    assert_eq!(a.keys_in, b.keys_out);
    assert_ne!(a.keys_in, a.keys_out);
    assert_eq!(a.cipher, b.cipher);
}

fn assert_matching_children(s: &Sim) {
    assert_matching_children_keys(s);
    let (a, b) = (children(&s.events_a)[0], children(&s.events_b)[0]);
    assert_eq!(
        (a.local_ts.clone(), a.remote_ts.clone()),
        (b.remote_ts.clone(), b.local_ts.clone())
    );
    assert_eq!(
        a.local_ts,
        vec![crate::codec::TrafficSelector::host(addr(A).ip())]
    );
    assert_eq!((a.mode, a.encap), (Mode::Transport, false));
    for events in [&s.events_a, &s.events_b] {
        let authenticated = events
            .iter()
            .filter(|e| matches!(e, Event::PeerAuthenticated { .. }))
            .count();
        assert_eq!(authenticated, 1);
        assert!(
            !events.iter().any(|e| matches!(e, Event::Failed { .. })),
            "{events:?}"
        );
    }
}

#[test]
fn establishes_on_a_clean_channel() {
    let mut s = pair(Faults::NONE, 1, |_, _| {});
    s.a.initiate(s.now, addr(A), addr(B), Some(Id::from_ip(addr(B).ip())));
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    assert_matching_children(&s);
    // Four messages: IKE_SA_INIT and IKE_AUTH, request and response.
    assert_eq!(s.delivered.len(), 4);
    let peer = s.events_b.iter().find_map(|e| match e {
        Event::PeerAuthenticated {
            peer_id, authority, ..
        } => Some((peer_id.clone(), authority.clone())),
        _ => None,
    });
    assert_eq!(peer, Some((Id::from_ip(addr(A).ip()), "corp".to_string())));
}

#[test]
fn establishes_despite_loss_duplication_and_reordering() {
    let faults = Faults {
        loss: 25,
        duplicate: 20,
        jitter: Duration::from_millis(900),
    };
    for seed in 0..40 {
        let mut s = pair(faults, seed, |_, _| {});
        s.a.initiate(s.now, addr(A), addr(B), None);
        assert!(
            s.run_until(Duration::from_secs(120), both_ready),
            "seed {seed}: {:?} {:?}",
            s.events_a,
            s.events_b
        );
        // Let late duplicates and retransmissions land: nothing changes.
        s.run_until(Duration::from_secs(10), |_| false);
        assert_matching_children(&s);
    }
}

#[test]
fn every_suite_establishes() {
    use crate::crypto::{Cipher, DhGroup};
    let suites = [
        (Cipher::AesGcm16 { bits: 128 }, DhGroup::Curve25519),
        (Cipher::AesGcm16 { bits: 256 }, DhGroup::Ecp256),
        (Cipher::AesCbcHmacSha256 { bits: 128 }, DhGroup::Ecp256),
        (Cipher::AesCbcHmacSha256 { bits: 256 }, DhGroup::Curve25519),
    ];
    for (cipher, group) in suites {
        let mut s = pair(Faults::NONE, 3, |a, _| {
            a.ike_ciphers = vec![cipher];
            a.esp_ciphers = vec![cipher];
            a.groups = vec![group];
        });
        s.a.initiate(s.now, addr(A), addr(B), None);
        assert!(
            s.run_until(Duration::from_secs(5), both_ready),
            "{cipher:?} {group:?}"
        );
        assert_matching_children(&s);
        assert_eq!(children(&s.events_a)[0].cipher, cipher);
    }
}

pub(super) fn first_notify(bytes: &[u8]) -> Option<u16> {
    decode_message(bytes)
        .unwrap()
        .payloads
        .iter()
        .find_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
}

#[test]
fn initiator_retries_with_the_group_the_responder_wants() {
    let mut s = pair(Faults::NONE, 4, |_, b| {
        b.groups = vec![crate::crypto::DhGroup::Ecp256]
    });
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    assert_matching_children(&s);
    let (_, from_a, reply) = &s.delivered[1];
    assert!(!from_a);
    assert_eq!(first_notify(reply), Some(notify::INVALID_KE_PAYLOAD));
    assert_eq!(s.delivered.len(), 6);
}

#[test]
fn initiator_returns_the_cookie_and_the_responder_keeps_no_state_before() {
    let mut s = pair(Faults::NONE, 5, |_, b| b.require_cookie = true);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), |s| s.delivered.len() == 2));
    assert_eq!(first_notify(&s.delivered[1].2), Some(notify::COOKIE));
    assert_eq!(
        s.b.ike_sa_count(),
        0,
        "no responder state for a request without cookie"
    );
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    assert_matching_children(&s);
}

#[test]
fn retransmissions_back_off_then_give_up() {
    let faults = Faults {
        loss: 100,
        duplicate: 0,
        jitter: Duration::ZERO,
    };
    let mut s = pair(faults, 6, |a, _| {
        a.retransmit = Retransmit {
            initial: Duration::from_secs(1),
            max_tries: 4,
        }
    });
    let start = s.now;
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(60), |s| !s.events_a.is_empty());
    let times: Vec<u64> = s.sent.iter().map(|(t, _)| (*t - start).as_secs()).collect();
    assert_eq!(times, vec![0, 1, 3, 7]);
    assert_eq!(
        s.events_a,
        vec![Event::Failed {
            sa,
            reason: FailReason::Timeout
        }]
    );
    assert_eq!((s.now - start).as_secs(), 15);
}

#[test]
fn tampered_ike_auth_is_dropped_and_the_retransmission_wins() {
    let mut s = pair(Faults::NONE, 9, |_, _| {});
    s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(5), |s| s.delivered.len() == 2);
    // Deliver a forged copy of a's IKE_AUTH request before the real one.
    let real = s.a.poll_transmit(s.now).unwrap();
    let mut forged = real.payload.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(s.b.handle(s.now, real.from, real.to, &forged).is_empty());
    let events = s.b.handle(s.now, real.from, real.to, &real.payload);
    assert_eq!(children(&events).len(), 1);
}

/// The responder forgets the IKE_SA_INIT messages and nonces once IKE_AUTH is through:
/// a replayed IKE_AUTH request still gets the response it was sent, and nothing new.
#[test]
fn a_replayed_ike_auth_is_answered_from_the_kept_response() {
    let mut s = pair(Faults::NONE, 12, |_, _| {});
    s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(5), |s| s.delivered.len() == 2);
    let req = s.a.poll_transmit(s.now).unwrap();
    let events = s.b.handle(s.now, req.from, req.to, &req.payload);
    assert_eq!(children(&events).len(), 1);
    let first = s.b.poll_transmit(s.now).unwrap();
    assert!(s.b.handle(s.now, req.from, req.to, &req.payload).is_empty());
    let again = s.b.poll_transmit(s.now).unwrap();
    assert_eq!(again.payload, first.payload);
    assert!(s.b.poll_transmit(s.now).is_none());
}

#[test]
fn unsupported_critical_payload_is_answered() {
    let mut s = pair(Faults::NONE, 10, |_, _| {});
    s.a.initiate(s.now, addr(A), addr(B), None);
    let mut req = decode_message(&s.a.poll_transmit(s.now).unwrap().payload).unwrap();
    req.payloads.push(Payload::Unknown {
        payload_type: 200,
        body: vec![1, 2],
    });
    assert!(s
        .b
        .handle(s.now, addr(A), addr(B), &req.encode())
        .is_empty());
    let reply = s.b.poll_transmit(s.now).unwrap();
    assert_eq!(
        first_notify(&reply.payload),
        Some(notify::UNSUPPORTED_CRITICAL_PAYLOAD)
    );
    assert_eq!(s.b.ike_sa_count(), 0);
}

proptest::proptest! {
    #[test]
    fn the_endpoint_survives_arbitrary_datagrams(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let mut s = pair(Faults::NONE, 11, |_, _| {});
        let _ = s.b.handle(s.now, addr(A), addr(B), &data);
    }
}

#[test]
fn responses_go_back_the_way_the_request_came() {
    // The initiator's IKE_AUTH arrives on port 4500 (as after a MOBIKE/NAT-T float).
    let mut s = pair(Faults::NONE, 12, |_, _| {});
    s.a.initiate(s.now, addr(A), addr(B), None);
    let init = s.a.poll_transmit(s.now).unwrap();
    s.b.handle(s.now, init.from, init.to, &init.payload);
    let reply = s.b.poll_transmit(s.now).unwrap();
    s.a.handle(s.now, reply.from, reply.to, &reply.payload);
    let auth = s.a.poll_transmit(s.now).unwrap();
    let (a4500, b4500) = (addr("10.0.0.1:4500"), addr("10.0.0.2:4500"));
    let events = s.b.handle(s.now, a4500, b4500, &auth.payload);
    let answer = s.b.poll_transmit(s.now).unwrap();
    assert_eq!((answer.from, answer.to), (b4500, a4500));
    assert_eq!(
        (children(&events)[0].local, children(&events)[0].remote),
        (b4500, a4500)
    );
    // A retransmission from port 500 is answered on port 500 from the cache.
    s.b.handle(s.now, auth.from, auth.to, &auth.payload);
    let again = s.b.poll_transmit(s.now).unwrap();
    assert_eq!(
        (again.from, again.to, &again.payload),
        (addr(B), addr(A), &answer.payload)
    );
}

#[test]
fn a_refused_child_sa_leaves_the_ike_sa_up() {
    use crate::crypto::Cipher;
    let mut s = pair(Faults::NONE, 16, |a, b| {
        a.esp_ciphers = vec![Cipher::AesGcm16 { bits: 128 }];
        b.esp_ciphers = vec![Cipher::AesCbcHmacSha256 { bits: 256 }];
    });
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    let refused = |e: &Event| matches!(e, Event::ChildRefused { .. });
    assert!(s.run_until(Duration::from_secs(5), |s| s.events_a.iter().any(refused)));
    assert!(s.events_a.contains(&Event::ChildRefused {
        sa,
        notify: notify::NO_PROPOSAL_CHOSEN
    }));
    assert!(children(&s.events_a).is_empty() && children(&s.events_b).is_empty());
    assert!(
        s.a.check_liveness(s.now, sa).is_some(),
        "the IKE SA is established"
    );
}

#[test]
fn an_unanswered_exchange_can_be_abandoned_and_sends_nothing_more() {
    let faults = Faults {
        loss: 100,
        duplicate: 0,
        jitter: Duration::ZERO,
    };
    let mut s = pair(faults, 7, |_, _| {});
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(2), |_| false);
    let sent = s.sent.len();
    let events = s.a.abandon(s.now, sa).expect("IKE_SA_INIT is unanswered");
    assert_eq!(
        events,
        vec![Event::Failed {
            sa,
            reason: FailReason::Timeout
        }]
    );
    s.run_until(Duration::from_secs(60), |_| false);
    assert_eq!(s.sent.len(), sent, "nothing sent after abandon");
    assert!(s.a.abandon(s.now, sa).is_none(), "abandoned once");
}

#[test]
fn an_answered_exchange_is_not_abandoned() {
    let mut s = pair(Faults::NONE, 8, |_, _| {});
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    assert!(s.a.abandon(s.now, sa).is_none());
}

//! Denial-of-service limits of the responder, under attack: cookies past a half-open
//! threshold (global and per source), forged, moved and stale cookies, replays, half-open
//! and IKE SA caps, half-open expiry.

use std::net::SocketAddr;
use std::time::Duration;

use super::sim::Faults;
use super::sim::Sim;
use super::tests::{addr, both_ready, first_notify, pair, A, B};
use crate::codec::{decode_message, notify, Notify, Payload};

/// Delivers a's pending datagrams to b directly; returns how many b answered.
fn a_to_b(s: &mut Sim) -> usize {
    let mut answered = 0;
    while let Some(t) = s.a.poll_transmit(s.now) {
        s.b.handle(s.now, t.from, t.to, &t.payload);
        while let Some(r) = s.b.poll_transmit(s.now) {
            answered += 1;
            s.a.handle(s.now, r.from, r.to, &r.payload);
        }
    }
    answered
}

#[test]
fn cookies_are_demanded_past_the_half_open_threshold() {
    let mut s = pair(Faults::NONE, 19, |_, b| b.cookie_threshold = Some(2));
    for _ in 0..2 {
        s.a.initiate(s.now, addr(A), addr(B), None);
        // IKE_SA_INIT answered, then a's IKE_AUTH is held back: b stays half-open.
        let t = s.a.poll_transmit(s.now).unwrap();
        s.b.handle(s.now, t.from, t.to, &t.payload);
        let r = s.b.poll_transmit(s.now).unwrap();
        s.a.handle(s.now, r.from, r.to, &r.payload);
        s.a.poll_transmit(s.now).unwrap();
    }
    assert_eq!(s.b.ike_sa_count(), 2);
    s.a.initiate(s.now, addr(A), addr(B), None);
    let t = s.a.poll_transmit(s.now).unwrap();
    s.b.handle(s.now, t.from, t.to, &t.payload);
    let r = s.b.poll_transmit(s.now).unwrap();
    assert_eq!(first_notify(&r.payload), Some(notify::COOKIE));
    assert_eq!(
        s.b.ike_sa_count(),
        2,
        "no state for the third before its cookie"
    );
    s.a.handle(s.now, r.from, r.to, &r.payload);
    assert_eq!(
        a_to_b(&mut s),
        2,
        "IKE_SA_INIT with cookie and IKE_AUTH answered"
    );
    assert_eq!(s.b.ike_sa_count(), 3);
}

#[test]
fn duplicate_cookie_answers_neither_resend_nor_exhaust_the_initiator() {
    let mut s = pair(Faults::NONE, 26, |_, b| b.require_cookie = true);
    s.a.initiate(s.now, addr(A), addr(B), None);
    let t = s.a.poll_transmit(s.now).unwrap();
    // Four copies reach a busy responder (retransmissions): four COOKIE answers.
    let answers: Vec<_> = (0..4)
        .flat_map(|_| inject(&mut s, t.from, &t.payload))
        .collect();
    for r in &answers {
        s.a.handle(s.now, addr(B), addr(A), r);
    }
    let resent: Vec<_> = std::iter::from_fn(|| s.a.poll_transmit(s.now)).collect();
    assert_eq!(
        resent.len(),
        1,
        "one request with the cookie, not one per answer"
    );
    s.b.handle(s.now, resent[0].from, resent[0].to, &resent[0].payload);
    assert_eq!(a_to_b(&mut s), 0);
    while let Some(r) = s.b.poll_transmit(s.now) {
        s.a.handle(s.now, r.from, r.to, &r.payload);
    }
    assert!(s.run_until(Duration::from_secs(5), both_ready));
}

#[test]
fn ike_sas_beyond_the_limit_are_not_created() {
    let mut s = pair(Faults::NONE, 20, |_, b| b.max_ike_sas = 1);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert_eq!(a_to_b(&mut s), 2);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert_eq!(a_to_b(&mut s), 0);
    assert_eq!((s.b.ike_sa_count(), s.b.refused_over_limit()), (1, 1));
}

/// A spoofed IKE_SA_INIT: a's request `template` with initiator SPI `n` from `from`.
fn spoofed(template: &[u8], n: u64) -> Vec<u8> {
    let mut d = template.to_vec();
    d[..8].copy_from_slice(&n.to_be_bytes());
    d
}

/// A source address in 10.9.0.0/16 for spoofed request `n`.
fn source(n: u64) -> SocketAddr {
    let ip = std::net::Ipv4Addr::new(10, 9, (n >> 8) as u8, n as u8);
    SocketAddr::new(ip.into(), 500)
}

/// An IKE_SA_INIT of a's, not sent (its SA in a is left to time out).
fn template(s: &mut Sim) -> Vec<u8> {
    s.a.initiate(s.now, addr(A), addr(B), None);
    s.a.poll_transmit(s.now).unwrap().payload
}

/// Feeds b `datagram` from `from`; returns b's answers (to nobody: the source is spoofed).
fn inject(s: &mut Sim, from: SocketAddr, datagram: &[u8]) -> Vec<Vec<u8>> {
    s.b.handle(s.now, from, addr(B), datagram);
    std::iter::from_fn(|| s.b.poll_transmit(s.now))
        .map(|t| t.payload)
        .collect()
}

#[test]
fn a_spoofed_flood_makes_no_state_past_the_threshold_and_a_real_initiator_gets_in() {
    let mut s = pair(Faults::NONE, 21, |_, b| b.cookie_threshold = Some(10));
    let t = template(&mut s);
    for n in 1..=2_000 {
        let answers = inject(&mut s, source(n), &spoofed(&t, n));
        assert_eq!(answers.len(), 1, "each request answered once, statelessly");
    }
    let c = s.b.dos_counters();
    assert_eq!((s.b.ike_sa_count(), s.b.half_open_count()), (10, 10));
    assert_eq!((c.cookies_sent, c.cookies_invalid), (1_990, 0));
    // The real initiator is asked for a cookie too, returns it and gets in.
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    assert_eq!(s.b.dos_counters().cookies_sent, 1_991);
    assert_eq!(s.b.half_open_count(), 10, "the real one is established");
    // The spoofed half-open SAs expire; the established one stays.
    s.now += Duration::from_secs(31);
    s.b.handle_timeout(s.now);
    s.b.handle_timeout(s.now + Duration::from_secs(60));
    assert_eq!(s.b.dos_counters().half_open_expired, 10);
    assert_eq!((s.b.half_open_count(), s.b.ike_sa_count()), (0, 1));
}

#[test]
fn one_source_is_asked_for_cookies_past_its_own_threshold_then_capped() {
    let mut s = pair(Faults::NONE, 22, |_, b| {
        (b.cookie_threshold, b.cookie_threshold_per_source) = (None, Some(3));
        b.max_half_open_per_source = 5;
    });
    let t = template(&mut s);
    let from = source(7);
    for n in 1..=3 {
        let answer = inject(&mut s, from, &spoofed(&t, n)).remove(0);
        assert_ne!(first_notify(&answer), Some(notify::COOKIE));
    }
    let answer = inject(&mut s, from, &spoofed(&t, 4)).remove(0);
    assert_eq!(first_notify(&answer), Some(notify::COOKIE));
    assert_eq!(s.b.half_open_count(), 3, "no state before the cookie");
    // Another address is not held to that source's count.
    let other = inject(&mut s, source(8), &spoofed(&t, 5)).remove(0);
    assert_ne!(first_notify(&other), Some(notify::COOKIE));
    // A host that really owns the address returns cookies: admitted up to the cap.
    for n in 10..14 {
        let request = spoofed(&t, n);
        let cookie = inject(&mut s, from, &request).remove(0);
        let answers = inject(&mut s, from, &with_cookie(&request, &cookie));
        assert_eq!(answers.len(), usize::from(n < 12), "request {n}");
    }
    assert_eq!(s.b.half_open_count(), 6);
    assert_eq!(s.b.dos_counters().refused_half_open_per_source, 2);
}

#[test]
fn forged_and_stale_cookies_are_refused() {
    let mut s = pair(Faults::NONE, 23, |_, b| b.require_cookie = true);
    let t = template(&mut s);
    let from = source(1);
    let cookie = inject(&mut s, from, &t).remove(0);
    let mut forged = cookie.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let again = inject(&mut s, from, &with_cookie(&t, &forged)).remove(0);
    assert_eq!(first_notify(&again), Some(notify::COOKIE));
    // Another source, or another SPIi, with a genuine cookie: refused as well.
    let moved = inject(&mut s, source(2), &with_cookie(&t, &cookie)).remove(0);
    assert_eq!(first_notify(&moved), Some(notify::COOKIE));
    let other_spi = with_cookie(&spoofed(&t, 99), &cookie);
    assert_eq!(
        first_notify(&inject(&mut s, from, &other_spi)[0]),
        Some(notify::COOKIE)
    );
    assert_eq!(
        (s.b.dos_counters().cookies_invalid, s.b.ike_sa_count()),
        (3, 0)
    );
    // One rotation later the cookie still works (the previous secret is kept) ...
    s.now += Duration::from_secs(61);
    let (fresh, late) = (spoofed(&t, 50), spoofed(&t, 51));
    let cookie_late = inject(&mut s, from, &late).remove(0);
    let answers = inject(&mut s, from, &with_cookie(&t, &cookie));
    assert_ne!(first_notify(&answers[0]), Some(notify::COOKIE));
    assert_eq!(s.b.ike_sa_count(), 1);
    // ... two rotations later it is stale; the newer one still works.
    s.now += Duration::from_secs(61);
    let stale = inject(&mut s, from, &with_cookie(&fresh, &cookie)).remove(0);
    assert_eq!(first_notify(&stale), Some(notify::COOKIE));
    let answers = inject(&mut s, from, &with_cookie(&late, &cookie_late));
    assert_ne!(first_notify(&answers[0]), Some(notify::COOKIE));
    assert_eq!(s.b.ike_sa_count(), 2);
}

#[test]
fn a_replayed_ike_sa_init_is_answered_from_cache_without_new_state() {
    let mut s = pair(Faults::NONE, 24, |_, _| {});
    let t = template(&mut s);
    let first = inject(&mut s, source(3), &t);
    for _ in 0..100 {
        assert_eq!(inject(&mut s, source(3), &t), first);
    }
    assert_eq!((s.b.ike_sa_count(), s.b.half_open_count()), (1, 1));
}

#[test]
fn half_open_sas_beyond_the_global_limit_are_not_created() {
    let mut s = pair(Faults::NONE, 25, |_, b| {
        (b.cookie_threshold, b.cookie_threshold_per_source) = (None, None);
        b.max_half_open = 3;
    });
    let t = template(&mut s);
    for n in 1..=10 {
        inject(&mut s, source(n), &spoofed(&t, n));
    }
    assert_eq!(
        (s.b.ike_sa_count(), s.b.dos_counters().refused_half_open),
        (3, 7)
    );
}

/// `request` with the COOKIE of `answer` put first (RFC 7296 §2.6), as an initiator does.
fn with_cookie(request: &[u8], answer: &[u8]) -> Vec<u8> {
    let cookie = (decode_message(answer).unwrap().payloads.into_iter())
        .find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == notify::COOKIE => Some(n.data),
            _ => None,
        })
        .expect("a COOKIE answer");
    let mut msg = decode_message(request).unwrap();
    if let Some(Payload::Notify(n)) = msg.payloads.first() {
        if n.notify_type == notify::COOKIE {
            msg.payloads.remove(0);
        }
    }
    msg.payloads
        .insert(0, Payload::Notify(Notify::new(notify::COOKIE, cookie)));
    msg.encode()
}

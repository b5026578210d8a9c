//! Denial-of-service limits of the responder: cookies past a half-open threshold, an IKE SA cap.

use super::sim::Faults;
use super::sim::Sim;
use super::tests::{addr, first_notify, pair, A, B};
use crate::codec::notify;

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
fn ike_sas_beyond_the_limit_are_not_created() {
    let mut s = pair(Faults::NONE, 20, |_, b| b.max_ike_sas = 1);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert_eq!(a_to_b(&mut s), 2);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert_eq!(a_to_b(&mut s), 0);
    assert_eq!((s.b.ike_sa_count(), s.b.refused_over_limit()), (1, 1));
}

//! NAT detection and forced UDP encapsulation between two endpoints.

use std::time::Duration;

use super::sim::{children, Faults};
use super::tests::{addr, assert_matching_children_keys, both_ready, pair, A, B};
use crate::codec::{decode_message, notify, Payload};

#[test]
fn forced_encapsulation_moves_to_4500_on_both_sides() {
    for forced_by_a in [true, false] {
        let mut s = pair(Faults::NONE, 17, |a, b| {
            a.force_encap = forced_by_a;
            b.force_encap = !forced_by_a;
        });
        s.a.initiate(s.now, addr(A), addr(B), None);
        assert!(s.run_until(Duration::from_secs(5), both_ready));
        let (ca, cb) = (children(&s.events_a)[0], children(&s.events_b)[0]);
        assert!(ca.encap && cb.encap);
        assert_eq!(
            (ca.local, ca.remote),
            (addr("10.0.0.1:4500"), addr("10.0.0.2:4500"))
        );
        assert_eq!(
            (cb.local, cb.remote),
            (addr("10.0.0.2:4500"), addr("10.0.0.1:4500"))
        );
        assert_matching_children_keys(&s);
    }
}

#[test]
fn nat_detection_sees_no_nat_on_a_direct_path() {
    let mut s = pair(Faults::NONE, 18, |_, _| {});
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    let request = decode_message(&s.delivered[0].2).unwrap();
    let natd = |t| {
        request
            .payloads
            .iter()
            .any(|p| matches!(p, Payload::Notify(n) if n.notify_type == t))
    };
    assert!(natd(notify::NAT_DETECTION_SOURCE_IP) && natd(notify::NAT_DETECTION_DESTINATION_IP));
    assert!(!children(&s.events_a)[0].encap && !children(&s.events_b)[0].encap);
    assert_eq!(children(&s.events_b)[0].remote, addr(A));
}

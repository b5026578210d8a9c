//! Transport-mode Child SAs narrowed to one protocol and port (a partner admitted for one
//! service): both roles carry the narrowed selectors, a responder narrows a wider proposal
//! (RFC 7296 §2.9) and refuses one that misses its service, and rekeys keep the narrowing.

use std::sync::Arc;
use std::time::Duration;

use super::sim::{children, Faults, Sim};
use super::tests::{addr, both_ready, pair, A, B};
use super::{Config, Event, Mode, Ports};
use crate::codec::{notify, TrafficSelector};

const TCP: u8 = 6;
const ANY: (u16, u16) = (0, u16::MAX);

/// B serves TCP 443 to A: A's side any port, B's side 443.
fn service(c: &mut Config) {
    c.ports = Some(Arc::new(|local, _| {
        let at_b = local == addr(B).ip();
        Some(Ports {
            protocol: TCP,
            local: if at_b { (443, 443) } else { ANY },
            remote: if at_b { ANY } else { (443, 443) },
        })
    }));
}

fn ts(at: &str, protocol: u8, (start_port, end_port): (u16, u16)) -> Vec<TrafficSelector> {
    let mut ts = TrafficSelector::host(addr(at).ip());
    (ts.protocol, ts.start_port, ts.end_port) = (protocol, start_port, end_port);
    vec![ts]
}

fn refused(events: &[Event]) -> Option<u16> {
    events.iter().find_map(|e| match e {
        Event::ChildRefused { notify, .. } => Some(*notify),
        _ => None,
    })
}

fn established(configure: impl FnOnce(&mut Config, &mut Config)) -> Sim {
    let mut s = pair(Faults::NONE, 11, configure);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    s
}

/// Both Child SAs carry A any-port → B:443 over TCP, mirrored.
fn assert_narrowed(s: &Sim, nth: usize) {
    let (a, b) = (children(&s.events_a)[nth], children(&s.events_b)[nth]);
    assert_eq!((a.mode, b.mode), (Mode::Transport, Mode::Transport));
    assert_eq!(a.local_ts, ts(A, TCP, ANY));
    assert_eq!(a.remote_ts, ts(B, TCP, (443, 443)));
    assert_eq!((&b.local_ts, &b.remote_ts), (&a.remote_ts, &a.local_ts));
}

#[test]
fn both_roles_narrow_to_the_service() {
    let s = established(|a, b| {
        service(a);
        service(b);
    });
    assert_narrowed(&s, 0);
}

#[test]
fn a_responder_narrows_a_wider_proposal() {
    // A (the partner's side) asks for every protocol; B admits it for TCP 443 only and
    // answers with that; A's SA then carries what was agreed, not what it asked.
    let s = established(|_, b| service(b));
    assert_narrowed(&s, 0);
}

#[test]
fn a_responder_refuses_a_proposal_missing_its_service() {
    // A asks for TCP 22 on B; B's service is 443: nothing fits, TS_UNACCEPTABLE.
    let mut s = pair(Faults::NONE, 12, |a, b| {
        a.ports = Some(Arc::new(|_, _| {
            Some(Ports {
                protocol: TCP,
                local: ANY,
                remote: (22, 22),
            })
        }));
        service(b);
    });
    s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(5), |s| refused(&s.events_a).is_some());
    assert_eq!(refused(&s.events_a), Some(notify::TS_UNACCEPTABLE));
    assert!(children(&s.events_a).is_empty() && children(&s.events_b).is_empty());
}

#[test]
fn a_rekeyed_child_keeps_the_narrowing() {
    for b_rekeys in [true, false] {
        let mut s = established(|_, b| service(b));
        if b_rekeys {
            let theirs = children(&s.events_b)[0].clone();
            s.b.rekey_child(s.now, theirs.sa, theirs.spi_in).unwrap();
        } else {
            let ours = children(&s.events_a)[0].clone();
            s.a.rekey_child(s.now, ours.sa, ours.spi_in).unwrap();
        }
        let two = |s: &Sim| children(&s.events_a).len() == 2 && children(&s.events_b).len() == 2;
        assert!(s.run_until(Duration::from_secs(5), two), "{:?}", s.events_a);
        assert_narrowed(&s, 1);
    }
}

//! Tunnel-mode Child SAs: no USE_TRANSPORT_MODE, selectors of the networks behind the two
//! endpoints, kept across Child SA and IKE SA rekeys; a mode or selector mismatch is refused.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::sim::{children, Faults, Sim};
use super::tests::{addr, both_ready, pair, A, B};
use super::{Config, Event, Mode, Tunnel};
use crate::codec::{notify, TrafficSelector};

fn net(start: &str, end: &str) -> TrafficSelector {
    TrafficSelector {
        protocol: 0,
        start_port: 0,
        end_port: u16::MAX,
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
    }
}

/// Behind A: 192.168.1.0/24; behind B: 192.168.2.0/24 and 192.168.3.0/24.
fn behind(ip: IpAddr) -> Vec<TrafficSelector> {
    if ip == addr(A).ip() {
        vec![net("192.168.1.0", "192.168.1.255")]
    } else {
        vec![
            net("192.168.2.0", "192.168.2.255"),
            net("192.168.3.0", "192.168.3.255"),
        ]
    }
}

fn gateways(c: &mut Config) {
    c.tunnel = Some(Arc::new(|local, remote| {
        Some(Tunnel {
            local: behind(local),
            remote: behind(remote),
        })
    }));
}

fn refused(events: &[Event]) -> Option<u16> {
    events.iter().find_map(|e| match e {
        Event::ChildRefused { notify, .. } => Some(*notify),
        _ => None,
    })
}

fn established() -> Sim {
    let mut s = pair(Faults::NONE, 7, |a, b| {
        gateways(a);
        gateways(b);
    });
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    s
}

#[test]
fn gateways_negotiate_a_tunnel_between_their_networks() {
    let s = established();
    let (a, b) = (children(&s.events_a)[0], children(&s.events_b)[0]);
    assert_eq!((a.mode, b.mode), (Mode::Tunnel, Mode::Tunnel));
    assert_eq!(a.local_ts, behind(addr(A).ip()));
    assert_eq!(a.remote_ts, behind(addr(B).ip()));
    assert_eq!(
        (b.local_ts.clone(), b.remote_ts.clone()),
        (a.remote_ts.clone(), a.local_ts.clone())
    );
    // The SA's outer addresses are the two endpoints.
    assert_eq!((a.local, a.remote), (addr(A), addr(B)));
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
}

#[test]
fn a_rekeyed_tunnel_keeps_its_selectors() {
    // The responder rekeys the Child SA; then the initiator, through a rekeyed IKE SA.
    for ike_first in [false, true] {
        let mut s = established();
        let old = children(&s.events_a)[0].clone();
        if ike_first {
            s.a.rekey_ike(s.now, old.sa).unwrap();
            s.run_until(Duration::from_secs(5), |_| false);
            let new = s.events_a.iter().find_map(|e| match e {
                Event::IkeRekeyed { new, .. } => Some(*new),
                _ => None,
            });
            s.a.rekey_child(s.now, new.unwrap(), old.spi_in).unwrap();
        } else {
            let theirs = children(&s.events_b)[0].clone();
            s.b.rekey_child(s.now, theirs.sa, theirs.spi_in).unwrap();
        }
        let two = |s: &Sim| children(&s.events_a).len() == 2 && children(&s.events_b).len() == 2;
        assert!(s.run_until(Duration::from_secs(5), two), "{:?}", s.events_a);
        let (a, b) = (children(&s.events_a)[1], children(&s.events_b)[1]);
        assert_eq!((a.mode, b.mode), (Mode::Tunnel, Mode::Tunnel));
        assert_eq!(a.local_ts, behind(addr(A).ip()));
        assert_eq!(a.remote_ts, behind(addr(B).ip()));
        assert_eq!(b.local_ts, behind(addr(B).ip()));
        assert_eq!(a.rekeyed, Some(old.spi_in));
    }
}

#[test]
fn a_responder_in_transport_mode_refuses_a_tunnel_and_back() {
    for tunnel_at_a in [true, false] {
        let mut s = pair(Faults::NONE, 8, |a, b| {
            gateways(if tunnel_at_a { a } else { b })
        });
        s.a.initiate(s.now, addr(A), addr(B), None);
        s.run_until(Duration::from_secs(5), |s| refused(&s.events_a).is_some());
        assert_eq!(refused(&s.events_a), Some(notify::NO_PROPOSAL_CHOSEN));
        assert!(children(&s.events_a).is_empty() && children(&s.events_b).is_empty());
    }
}

#[test]
fn a_responder_refuses_selectors_short_of_its_networks() {
    // A asks for only one of the two networks behind B: B wants both, so it refuses.
    let mut s = pair(Faults::NONE, 9, |a, b| {
        a.tunnel = Some(Arc::new(|local, remote| {
            Some(Tunnel {
                local: behind(local),
                remote: behind(remote)[..1].to_vec(),
            })
        }));
        gateways(b);
    });
    s.a.initiate(s.now, addr(A), addr(B), None);
    s.run_until(Duration::from_secs(5), |s| refused(&s.events_a).is_some());
    assert_eq!(refused(&s.events_a), Some(notify::TS_UNACCEPTABLE));
    assert!(children(&s.events_b).is_empty());
}

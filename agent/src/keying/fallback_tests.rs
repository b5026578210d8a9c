//! `request` peers: an unanswered exchange is given up at the rule's timeout (not after
//! every retransmission), the next waits for the backoff, and a peer that answers is keyed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::fallback::FIRST_BACKOFF;
use super::testnet::{ip, Net, A, B, CLEAN, REQID};
use super::{lifetime, Acquire, Admission, FailureKind, Settings, Terms};
use crate::model::Selector;
use crate::plan::host_net as host;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Keys A ↔ B under a `request` rule (or `require`: no fallback).
struct Request(Option<Duration>);

impl Admission for Request {
    fn terms(&self, local: IpAddr, remote: IpAddr) -> Option<Terms> {
        let pair = [(ip(A), ip(B)), (ip(B), ip(A))];
        pair.contains(&(local, remote)).then(|| Terms {
            fallback: self.0,
            ..Terms::transport(REQID, 1024, lifetime(Duration::from_secs(60)))
        })
    }
    fn admit(&self, _: &ike::sa::Admission<'_>) -> bool {
        true
    }
}

fn net(fallback: Option<Duration>, b_answers: bool) -> Net {
    let mut n = Net::new(Settings::default(), CLEAN, 41);
    n.a.set_admission(n.now, Arc::new(Request(fallback)));
    n.b.set_admission(n.now, Arc::new(Request(fallback)));
    n.b_gone = !b_answers;
    n
}

fn acquire() -> Acquire {
    Acquire {
        local: ip(A),
        remote: ip(B),
        sel: Selector::between(host(ip(A)), host(ip(B))),
        seq: 1,
    }
}

fn timeouts(n: &Net) -> u64 {
    n.a.counters().failures_of(FailureKind::Timeout)
}

#[test]
fn an_unanswered_request_peer_is_given_up_at_the_timeout_then_retried_after_the_backoff() {
    let mut n = net(Some(TIMEOUT), false);
    let t0 = n.now;
    assert!(n.a.acquire(n.now, &acquire()));
    assert!(n.run_until(Duration::from_secs(60), |n| timeouts(n) == 1, |_| ()));
    assert_eq!(
        n.now - t0,
        TIMEOUT,
        "given up at the timeout, not after every try"
    );
    assert_eq!(
        n.a.clear_peers(n.now).collect::<Vec<_>>(),
        [&(ip(A), ip(B))]
    );
    // Within the backoff an acquire starts nothing (the traffic flows clear).
    assert!(!n.a.acquire(n.now, &acquire()));
    assert_eq!(n.a.counters().acquires_in_backoff, 1);
    n.run_for(FIRST_BACKOFF, |_| ());
    assert!(
        n.a.acquire(n.now, &acquire()),
        "tried again after the backoff"
    );
    assert!(n.run_until(Duration::from_secs(60), |n| timeouts(n) == 2, |_| ()));
    // The second failure doubles the wait.
    n.run_for(FIRST_BACKOFF + Duration::from_secs(1), |_| ());
    assert!(!n.a.acquire(n.now, &acquire()));
    assert!(n.a.desired_states().is_empty());
}

#[test]
fn a_request_peer_that_answers_is_keyed_and_never_backed_off() {
    let mut n = net(Some(TIMEOUT), true);
    assert!(n.a.acquire(n.now, &acquire()));
    let up = |n: &Net| !n.a.desired_states().is_empty() && !n.b.desired_states().is_empty();
    assert!(n.run_until(Duration::from_secs(60), up, |_| ()));
    n.run_for(Duration::from_secs(10), |_| ());
    assert_eq!(timeouts(&n), 0);
    assert_eq!(n.a.clear_peers(n.now).count(), 0);
}

#[test]
fn a_require_peer_is_not_given_up_early() {
    let mut n = net(None, false);
    assert!(n.a.acquire(n.now, &acquire()));
    n.run_for(TIMEOUT * 3, |_| ());
    assert_eq!(timeouts(&n), 0, "still retransmitting");
    assert_eq!(n.a.clear_peers(n.now).count(), 0);
}

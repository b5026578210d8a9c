//! INFORMATIONAL between two established endpoints: Deletes and liveness checks.

use std::time::Duration;

use super::sim::{children, Faults, Sim};
use super::tests::{addr, both_ready, pair, A, B};
use super::{Event, FailReason, SaId};

fn established(seed: u64) -> (Sim, SaId) {
    let mut s = pair(Faults::NONE, seed, |_, _| {});
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), both_ready));
    (s, sa)
}

#[test]
fn a_deleted_ike_sa_is_reported_on_both_sides_and_forgotten() {
    let (mut s, sa) = established(13);
    assert!(s.a.delete(s.now, sa).unwrap().is_empty());
    assert!(s.a.check_liveness(s.now, sa).is_none(), "window size 1");
    let deleted = |e: &Event| matches!(e, Event::Deleted { .. });
    assert!(
        s.run_until(Duration::from_secs(5), |s| s.events_a.iter().any(deleted)
            && s.events_b.iter().any(deleted))
    );
    assert_eq!(s.events_a.last(), Some(&Event::Deleted { sa }));
    s.run_until(Duration::from_secs(60), |_| false);
    assert_eq!((s.a.ike_sa_count(), s.b.ike_sa_count()), (0, 0));
}

#[test]
fn a_deleted_child_sa_is_reported_on_both_sides() {
    let (mut s, sa) = established(14);
    let child = children(&s.events_a)[0].clone();
    let events = s.a.delete_child(s.now, sa, child.spi_in).unwrap();
    assert_eq!(
        events,
        vec![Event::ChildDeleted {
            sa,
            spi_in: child.spi_in,
            spi_out: child.spi_out
        }]
    );
    let gone = |e: &Event| matches!(e, Event::ChildDeleted { .. });
    assert!(s.run_until(Duration::from_secs(5), |s| s.events_b.iter().any(gone)));
    let b = children(&s.events_b)[0].clone();
    assert!(s.events_b.contains(&Event::ChildDeleted {
        sa: b.sa,
        spi_in: b.spi_in,
        spi_out: b.spi_out
    }));
    assert!(
        s.a.delete_child(s.now, sa, child.spi_in).is_none(),
        "no Child SA left"
    );
}

#[test]
fn liveness_checks_pass_then_fail_when_the_peer_is_gone() {
    let (mut s, sa) = established(15);
    s.a.check_liveness(s.now, sa).unwrap();
    s.run_until(Duration::from_secs(20), |_| false);
    assert!(!s.events_a.iter().any(|e| matches!(e, Event::Failed { .. })));
    s.set_faults(Faults {
        loss: 100,
        duplicate: 0,
        jitter: Duration::ZERO,
    });
    s.a.check_liveness(s.now, sa).unwrap();
    assert!(s.run_until(Duration::from_secs(600), |s| s
        .events_a
        .iter()
        .any(|e| matches!(e, Event::Failed { .. }))));
    assert_eq!(
        s.events_a.last(),
        Some(&Event::Failed {
            sa,
            reason: FailReason::Timeout
        })
    );
}

#[test]
fn a_restarted_peer_sends_initial_contact_and_its_old_ike_sa_goes() {
    let (mut s, _) = established(16);
    let old_b = children(&s.events_b)[0].sa;
    // a restarts: a fresh endpoint with a's configuration and no SAs.
    s.a = pair(Faults::NONE, 17, |_, _| {}).a;
    s.events_a.clear();
    s.a.initiate(s.now, addr(A), addr(B), None);
    let replaced = |s: &Sim| {
        children(&s.events_a).len() == 1 && s.events_b.contains(&Event::Deleted { sa: old_b })
    };
    assert!(s.run_until(Duration::from_secs(5), replaced));
    // A second IKE SA while the first is up carries no INITIAL_CONTACT: b keeps both.
    let before = s.events_b.len();
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(5), |s| children(&s.events_a).len() == 2));
    assert!(!s.events_b[before..]
        .iter()
        .any(|e| matches!(e, Event::Deleted { .. })));
}

#[test]
fn both_ends_initiating_at_once_send_no_initial_contact_and_keep_both_ike_sas() {
    let jitter = Faults {
        loss: 0,
        duplicate: 0,
        jitter: Duration::from_millis(80),
    };
    for seed in 20..40 {
        let mut s = pair(jitter, seed, |_, _| {});
        s.a.initiate(s.now, addr(A), addr(B), None);
        s.b.initiate(s.now, addr(B), addr(A), None);
        let both = |s: &Sim| children(&s.events_a).len() == 2 && children(&s.events_b).len() == 2;
        assert!(s.run_until(Duration::from_secs(10), both), "seed {seed}");
        s.run_until(Duration::from_secs(5), |_| false);
        // Neither end made the other drop an IKE SA it still uses.
        assert!(
            !(s.events_a.iter().chain(&s.events_b))
                .any(|e| matches!(e, Event::Deleted { .. } | Event::Failed { .. })),
            "seed {seed}"
        );
        assert_eq!(
            (s.a.ike_sa_count(), s.b.ike_sa_count()),
            (2, 2),
            "seed {seed}"
        );
    }
}

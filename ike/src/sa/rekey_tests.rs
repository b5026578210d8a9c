//! Child SA rekeys with CREATE_CHILD_SA between two established endpoints.

use std::time::Duration;

use super::sim::{children, Faults, Sim};
use super::tests::{addr, both_ready, pair, A, B};
use super::{ChildSa, Config, Event, SaId};
use crate::codec::notify;
use crate::crypto::DhGroup;

fn established(
    faults: Faults,
    seed: u64,
    edit: impl FnOnce(&mut Config, &mut Config),
) -> (Sim, SaId) {
    let mut s = pair(faults, seed, edit);
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(120), both_ready));
    (s, sa)
}

fn deleted(events: &[Event]) -> Vec<(u32, u32)> {
    events
        .iter()
        .filter_map(|e| {
            if let Event::ChildDeleted {
                spi_in, spi_out, ..
            } = e
            {
                Some((*spi_in, *spi_out))
            } else {
                None
            }
        })
        .collect()
}

/// Both sides got a second Child SA that replaces the first, with matching new keys, and
/// both removed the first.
fn assert_rekeyed(s: &Sim) -> (ChildSa, ChildSa) {
    let (ca, cb) = (children(&s.events_a), children(&s.events_b));
    assert_eq!((ca.len(), cb.len()), (2, 2), "{:?}", s.events_a);
    let (old_a, new_a, old_b, new_b) = (ca[0], ca[1], cb[0], cb[1]);
    assert_eq!(
        (new_a.rekeyed, new_b.rekeyed),
        (Some(old_a.spi_in), Some(old_b.spi_in))
    );
    assert_eq!((new_a.spi_in, new_a.spi_out), (new_b.spi_out, new_b.spi_in));
    assert_eq!(
        (new_a.keys_out.clone(), new_a.keys_in.clone()),
        (new_b.keys_in.clone(), new_b.keys_out.clone())
    );
    assert_ne!(new_a.keys_out, old_a.keys_out);
    assert_eq!(deleted(&s.events_a), vec![(old_a.spi_in, old_a.spi_out)]);
    assert_eq!(deleted(&s.events_b), vec![(old_b.spi_in, old_b.spi_out)]);
    (new_a.clone(), new_b.clone())
}

fn two_deletes(s: &Sim) -> bool {
    deleted(&s.events_a).len() == 1 && deleted(&s.events_b).len() == 1
}

#[test]
fn either_side_rekeys_with_pfs() {
    for by_a in [true, false] {
        let (mut s, sa) = established(Faults::NONE, 30, |_, _| {});
        let (ours, theirs) = (
            children(&s.events_a)[0].clone(),
            children(&s.events_b)[0].clone(),
        );
        if by_a {
            s.a.rekey_child(s.now, sa, ours.spi_in).unwrap();
        } else {
            s.b.rekey_child(s.now, theirs.sa, theirs.spi_in).unwrap();
        }
        assert!(s.run_until(Duration::from_secs(5), two_deletes));
        assert_rekeyed(&s);
    }
}

#[test]
fn rekeys_survive_loss_duplication_and_reordering() {
    let faults = Faults {
        loss: 25,
        duplicate: 20,
        jitter: Duration::from_millis(900),
    };
    for seed in 0..10 {
        let (mut s, sa) = established(faults, seed, |_, _| {});
        let old = children(&s.events_a)[0].spi_in;
        s.a.rekey_child(s.now, sa, old).unwrap();
        assert!(
            s.run_until(Duration::from_secs(120), two_deletes),
            "seed {seed}"
        );
        s.run_until(Duration::from_secs(10), |_| false);
        assert_rekeyed(&s);
    }
}

#[test]
fn pfs_makes_different_keys_than_a_rekey_without() {
    let new_keys = |pfs: bool| {
        let (mut s, sa) = established(Faults::NONE, 31, |a, b| {
            (a.rekey_pfs, b.rekey_pfs) = (pfs, pfs)
        });
        let old = children(&s.events_a)[0].spi_in;
        s.a.rekey_child(s.now, sa, old).unwrap();
        assert!(s.run_until(Duration::from_secs(5), two_deletes));
        assert_rekeyed(&s).0
    };
    assert_ne!(new_keys(true).keys_out, new_keys(false).keys_out);
}

#[test]
fn the_rekeying_side_retries_with_the_group_the_peer_wants() {
    let (mut s, sa) = established(Faults::NONE, 32, |_, b| b.groups = vec![DhGroup::Ecp256]);
    let old = children(&s.events_a)[0].spi_in;
    s.a.rekey_child(s.now, sa, old).unwrap();
    assert!(s.run_until(Duration::from_secs(5), two_deletes));
    assert_rekeyed(&s);
    assert!(!s
        .events_a
        .iter()
        .any(|e| matches!(e, Event::ChildRefused { .. })));
}

#[test]
fn a_rekey_of_a_child_the_peer_no_longer_has_is_refused() {
    let (mut s, sa) = established(Faults::NONE, 33, |_, _| {});
    let old = children(&s.events_a)[0].spi_in;
    // b deletes its side, but the Delete is lost: a still has the Child SA.
    let b_child = children(&s.events_b)[0].clone();
    s.set_faults(Faults {
        loss: 100,
        duplicate: 0,
        jitter: Duration::ZERO,
    });
    s.b.delete_child(s.now, b_child.sa, b_child.spi_in).unwrap();
    s.run_until(Duration::from_millis(1), |_| false);
    s.set_faults(Faults::NONE);
    s.a.rekey_child(s.now, sa, old).unwrap();
    let refused = |s: &Sim| {
        s.events_a
            .iter()
            .any(|e| matches!(e, Event::ChildRefused { .. }))
    };
    assert!(s.run_until(Duration::from_secs(5), refused));
    assert!(s.events_a.contains(&Event::ChildRefused {
        sa,
        notify: notify::CHILD_SA_NOT_FOUND
    }));
}

//! Child SA rekeys with CREATE_CHILD_SA between two established endpoints.

use std::time::Duration;

use super::sim::{children, Faults, Sim};
use super::tests::{addr, both_ready, pair, A, B};
use super::{ChildSa, Config, Event, SaId};
use crate::codec::notify;
use crate::crypto::DhGroup;

pub(super) fn established(
    faults: Faults,
    seed: u64,
    edit: impl FnOnce(&mut Config, &mut Config),
) -> (Sim, SaId) {
    let mut s = pair(faults, seed, edit);
    let sa = s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(120), both_ready));
    (s, sa)
}

pub(super) fn deleted(events: &[Event]) -> Vec<(u32, u32)> {
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
pub(super) fn assert_rekeyed(s: &Sim) -> (ChildSa, ChildSa) {
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

pub(super) fn two_deletes(s: &Sim) -> bool {
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

pub(super) fn ike_rekeyed(events: &[Event]) -> Option<(SaId, SaId)> {
    events.iter().find_map(|e| {
        if let Event::IkeRekeyed { old, new } = e {
            Some((*old, *new))
        } else {
            None
        }
    })
}

#[test]
fn either_side_rekeys_the_ike_sa_and_the_child_sas_move_to_the_new_one() {
    for by_a in [true, false] {
        let (mut s, sa_a) = established(Faults::NONE, 34, |_, _| {});
        let sa_b = children(&s.events_b)[0].sa;
        if by_a {
            s.a.rekey_ike(s.now, sa_a).unwrap();
        } else {
            s.b.rekey_ike(s.now, sa_b).unwrap();
        }
        let old_gone = |events: &[Event], old| events.contains(&Event::Deleted { sa: old });
        assert!(
            s.run_until(Duration::from_secs(5), |s| old_gone(&s.events_a, sa_a)
                && old_gone(&s.events_b, sa_b))
        );
        let (old_a, new_a) = ike_rekeyed(&s.events_a).unwrap();
        let (old_b, new_b) = ike_rekeyed(&s.events_b).unwrap();
        assert_eq!((old_a, old_b), (sa_a, sa_b));
        assert!(
            deleted(&s.events_a).is_empty() && deleted(&s.events_b).is_empty(),
            "Child SAs survive"
        );
        // The Child SA now lives in the new IKE SA: rekey it through that one.
        let child = children(&s.events_a)[0].spi_in;
        assert!(
            s.a.rekey_child(s.now, sa_a, child).is_none(),
            "the old IKE SA is gone"
        );
        s.a.rekey_child(s.now, new_a, child).unwrap();
        assert!(s.run_until(Duration::from_secs(5), two_deletes));
        let (new_child_a, new_child_b) = assert_rekeyed(&s);
        assert_eq!((new_child_a.sa, new_child_b.sa), (new_a, new_b));
        s.run_until(Duration::from_secs(60), |_| false);
        assert_eq!((s.a.ike_sa_count(), s.b.ike_sa_count()), (1, 1));
    }
}

/// The Child SAs each side reported and has not deleted since.
pub(super) fn live(events: &[Event]) -> Vec<ChildSa> {
    let gone = deleted(events);
    children(events)
        .into_iter()
        .filter(|c| !gone.contains(&(c.spi_in, c.spi_out)))
        .cloned()
        .collect()
}

#[test]
fn simultaneous_rekeys_leave_one_child_sa() {
    for seed in 40..46 {
        let (mut s, sa) = established(Faults::NONE, seed, |_, _| {});
        let (a0, b0) = (
            children(&s.events_a)[0].clone(),
            children(&s.events_b)[0].clone(),
        );
        s.a.rekey_child(s.now, sa, a0.spi_in).unwrap();
        s.b.rekey_child(s.now, b0.sa, b0.spi_in).unwrap();
        s.run_until(Duration::from_secs(30), |_| false);
        let (la, lb) = (live(&s.events_a), live(&s.events_b));
        assert_eq!(
            (la.len(), lb.len()),
            (1, 1),
            "seed {seed}: {:?} / {:?}",
            s.events_a,
            s.events_b
        );
        assert_eq!((la[0].spi_in, la[0].spi_out), (lb[0].spi_out, lb[0].spi_in));
        assert_eq!(
            (la[0].keys_in.clone(), la[0].keys_out.clone()),
            (lb[0].keys_out.clone(), lb[0].keys_in.clone())
        );
        assert_ne!(la[0].spi_in, a0.spi_in, "the old Child SA is gone");
        // The loser never reports its redundant Child SA; the winner reports and deletes it.
        let mut reported = [children(&s.events_a).len(), children(&s.events_b).len()];
        reported.sort();
        assert_eq!(reported, [2, 3], "seed {seed}");
        assert!(!s
            .events_a
            .iter()
            .chain(&s.events_b)
            .any(|e| matches!(e, Event::Failed { .. } | Event::ChildRefused { .. })));
    }
}

/// (SPIi, SPIr, SKEYSEED, keys) as a key-log hook saw them.
type Logged = std::sync::Arc<
    std::sync::Mutex<Vec<(u64, u64, crate::crypto::Secret, crate::crypto::IkeKeys)>>,
>;

fn key_log_into(logged: &Logged) -> super::KeyLog {
    let logged = logged.clone();
    std::sync::Arc::new(move |e: &super::KeyLogEntry<'_>| {
        let entry = (e.spi_i, e.spi_r, e.skeyseed.clone(), e.keys.clone());
        logged.lock().unwrap().push(entry);
    })
}

#[test]
fn the_key_log_sees_the_same_keys_at_both_ends_for_each_ike_sa() {
    let (log_a, log_b) = (Logged::default(), Logged::default());
    let (mut s, sa_a) = established(Faults::NONE, 35, |a, b| {
        a.key_log = Some(key_log_into(&log_a));
        b.key_log = Some(key_log_into(&log_b));
    });
    s.a.rekey_ike(s.now, sa_a).unwrap();
    let old_gone = |events: &[Event]| events.contains(&Event::Deleted { sa: sa_a });
    assert!(s.run_until(Duration::from_secs(5), |s| old_gone(&s.events_a)));
    let (a, b) = (log_a.lock().unwrap(), log_b.lock().unwrap());
    assert_eq!(a.len(), 2, "the initial exchange and the rekey");
    assert_eq!(*a, *b);
    assert_ne!(a[0].2, a[1].2, "the rekey has its own SKEYSEED");
    assert_eq!(a[0].0, sa_a.0, "the initial IKE SA's SPIi is ours");
}

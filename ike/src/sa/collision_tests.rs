//! Both ends rekey the same SA at once (RFC 7296 §2.8): the exchange with the lowest nonce
//! loses and its SA is deleted; exactly one successor remains, at both ends the same, on
//! a clean network and with loss, duplication and reordering.

use std::time::Duration;

use super::rekey_tests::{assert_rekeyed, deleted, established, live, two_deletes};
use super::sim::{children, Faults, Sim};
use super::{ChildSa, Event, SaId};

const ROUGH: Faults = Faults {
    loss: 20,
    duplicate: 20,
    jitter: Duration::from_millis(300),
};

fn faults(seed: u64) -> Faults {
    if seed.is_multiple_of(2) {
        Faults::NONE
    } else {
        ROUGH
    }
}

/// The IKE SAs each `IkeRekeyed` named as the new one.
fn successors(events: &[Event]) -> Vec<SaId> {
    (events.iter())
        .filter_map(|e| match e {
            Event::IkeRekeyed { new, .. } => Some(*new),
            _ => None,
        })
        .collect()
}

fn no_failure(s: &Sim) -> bool {
    !(s.events_a.iter().chain(&s.events_b))
        .any(|e| matches!(e, Event::Failed { .. } | Event::ChildRefused { .. }))
}

/// Every Child SA live at one end is live at the other with mirrored SPIs and keys: no
/// outbound SA lacks the peer's inbound one.
fn mirrored(s: &Sim) -> Result<(), String> {
    let (la, lb) = (live(&s.events_a), live(&s.events_b));
    for (mine, theirs, who) in [(&la, &lb, "a"), (&lb, &la, "b")] {
        for c in mine.iter() {
            let peer: Option<&ChildSa> = theirs.iter().find(|t| t.spi_in == c.spi_out);
            if !peer.is_some_and(|p| p.spi_out == c.spi_in && p.keys_in == c.keys_out) {
                return Err(format!(
                    "{who}'s Child SA {:08x} has no peer half",
                    c.spi_in
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn simultaneous_ike_sa_rekeys_leave_one_ike_sa_holding_the_child_sas() {
    for seed in 50..64 {
        let (mut s, sa_a) = established(faults(seed), seed, |_, _| {});
        let sa_b = children(&s.events_b)[0].sa;
        s.a.rekey_ike(s.now, sa_a).unwrap();
        s.b.rekey_ike(s.now, sa_b).unwrap();
        // Retransmissions (8 tries in the tests' config) end within 128 s, dead SAs go
        // 30 s later: a redundant IKE SA its initiator never learnt of lasts that long.
        s.run_until(Duration::from_secs(200), |_| false);
        let (na, nb) = (successors(&s.events_a), successors(&s.events_b));
        assert_eq!((na.len(), nb.len()), (1, 1), "seed {seed}: {na:?} / {nb:?}");
        assert_eq!(
            (s.a.ike_sa_count(), s.b.ike_sa_count()),
            (1, 1),
            "seed {seed}: {na:?} {:?} / {nb:?} {:?}",
            s.a.states(),
            s.b.states()
        );
        assert!(deleted(&s.events_a).is_empty() && deleted(&s.events_b).is_empty());
        assert!(no_failure(&s), "seed {seed}");
        for (events, old) in [(&s.events_a, sa_a), (&s.events_b, sa_b)] {
            assert!(events.contains(&Event::Deleted { sa: old }), "seed {seed}");
        }
        // The survivor is the same IKE SA at both ends: a Child SA rekey through it works.
        let child = children(&s.events_a)[0].spi_in;
        s.a.rekey_child(s.now, na[0], child).unwrap();
        assert!(
            s.run_until(Duration::from_secs(60), two_deletes),
            "seed {seed}"
        );
        let (new_a, new_b) = assert_rekeyed(&s);
        assert_eq!((new_a.sa, new_b.sa), (na[0], nb[0]), "seed {seed}");
    }
}

#[test]
fn simultaneous_child_sa_rekeys_keep_every_outbound_sa_paired_and_leave_one() {
    for seed in 70..84 {
        let (mut s, sa) = established(faults(seed), seed, |_, _| {});
        let (a0, b0) = (
            children(&s.events_a)[0].clone(),
            children(&s.events_b)[0].clone(),
        );
        s.a.rekey_child(s.now, sa, a0.spi_in).unwrap();
        s.b.rekey_child(s.now, b0.sa, b0.spi_in).unwrap();
        let broken = std::cell::RefCell::new(None);
        s.run_until(Duration::from_secs(60), |s| {
            // Checked after every step: a live Child SA at one end only may exist while
            // the Delete of the other end's half is in flight, never for a new one.
            let (la, lb) = (live(&s.events_a), live(&s.events_b));
            if la.is_empty() || lb.is_empty() {
                broken
                    .borrow_mut()
                    .get_or_insert(format!("no Child SA at {:?}", s.now));
            }
            false
        });
        assert_eq!(broken.into_inner(), None, "seed {seed}");
        let (la, lb) = (live(&s.events_a), live(&s.events_b));
        assert_eq!((la.len(), lb.len()), (1, 1), "seed {seed}");
        assert_eq!(mirrored(&s), Ok(()), "seed {seed}");
        assert_ne!(
            la[0].spi_in, a0.spi_in,
            "seed {seed}: the old Child SA is gone"
        );
        assert!(
            no_failure(&s),
            "seed {seed}: {:?} / {:?}",
            s.events_a,
            s.events_b
        );
    }
}

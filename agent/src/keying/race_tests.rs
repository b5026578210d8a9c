//! Both hosts get traffic for each other at the same instant: both initiate. Neither
//! INITIAL_CONTACT nor the duplicate IKE SAs may cost a packet, and one IKE SA remains.

use std::time::Duration;

use super::testnet::{Net, A, B, CLEAN, ROUGH};
use super::tests::{acquire, both_up, consistent, outbound_has_peer_inbound, settings};
use super::Settings;

#[test]
fn both_ends_acquiring_at_once_keep_one_ike_sa_and_every_outbound_paired() {
    let no_ike_rekey = Settings {
        ike_rekey_after: Duration::from_secs(3600),
        ..settings()
    };
    for seed in 60..72u64 {
        let faults = if seed.is_multiple_of(2) { CLEAN } else { ROUGH };
        let mut n = Net::new(no_ike_rekey, faults, seed);
        let now = n.now;
        assert!(n.a.acquire(now, &acquire(A, B, 1)));
        assert!(n.b.acquire(now, &acquire(B, A, 2)));
        // Checked from when both ends have one: a responder's first Child SA carries
        // traffic as soon as it answers, before the initiator has the response (and here
        // both ends are responders).
        let settled = |n: &Net| both_up(n) && consistent(n).is_ok();
        assert!(
            n.run_until(Duration::from_secs(60), settled, |_| ()),
            "seed {seed}"
        );
        // Deletes retransmit for up to 128 s in the tests' config; dead SAs go 30 s later.
        n.run_for(Duration::from_secs(200), outbound_has_peer_inbound);
        assert_eq!(
            (n.a.ike_sa_count(), n.b.ike_sa_count()),
            (1, 1),
            "seed {seed}"
        );
        for k in [&n.a, &n.b] {
            assert!(
                k.counters().failures.is_empty(),
                "seed {seed}: {:?}",
                k.counters()
            );
            assert_eq!(k.peers().count(), 1, "seed {seed}");
        }
    }
}

#[test]
fn both_ends_rekeying_the_ike_sa_at_once_keep_one_and_every_outbound_paired() {
    let no_ike_rekey = Settings {
        ike_rekey_after: Duration::from_secs(3600),
        ..settings()
    };
    for seed in 80..88u64 {
        let faults = if seed.is_multiple_of(2) { CLEAN } else { ROUGH };
        let mut n = Net::new(no_ike_rekey, faults, seed);
        let now = n.now;
        assert!(n.a.acquire(now, &acquire(A, B, 1)));
        let settled = |n: &Net| both_up(n) && consistent(n).is_ok();
        assert!(n.run_until(Duration::from_secs(60), settled, |_| ()));
        // Both ends' IKE SA rekey timers fire at the same instant.
        let now = n.now;
        for k in [&mut n.a, &mut n.b] {
            for ike in k.peers.values_mut().flat_map(|p| p.ikes.iter_mut()) {
                ike.rekey_at = Some(now);
            }
            k.handle_timeout(now);
        }
        // Long enough for Child SA rekeys through the survivor (36-40 s) and for the
        // redundant IKE SA to be deleted and forgotten.
        n.run_for(Duration::from_secs(200), outbound_has_peer_inbound);
        assert_eq!(
            (n.a.ike_sa_count(), n.b.ike_sa_count()),
            (1, 1),
            "seed {seed}"
        );
        for k in [&n.a, &n.b] {
            let c = k.counters();
            assert!(
                c.failures.is_empty() && c.children_refused == 0,
                "seed {seed}: {c:?}"
            );
            let (_, status) = k.peers().next().expect("the peer stays");
            assert!(
                status.rekeys >= 1,
                "seed {seed}: Child SAs rekeyed through the survivor"
            );
        }
    }
}

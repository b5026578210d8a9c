//! What the kernel says of negotiated SAs reaches keying: soft and hard expires rekey the
//! Child SA at once, with the peers' SAs matching at every step; inbound packet counters
//! that grow spare the peer liveness checks.

use std::time::Duration;

use super::testnet::{ip, Faults, Net, A, CLEAN, ROUGH};
use super::tests::{acquire, both_up, established, outbound, outbound_has_peer_inbound, settings};
use super::{Expiry, Keying, Settings};
use crate::model::{SaDir, SaKey};

/// The (inbound, outbound) kernel SA keys `k` wants for its live Child SA.
fn keys(k: &Keying) -> (SaKey, SaKey) {
    let out = outbound(k)[0].0;
    let inbound = (k.desired_states().into_iter())
        .filter(|(_, s)| s.meta.dir == SaDir::In)
        .map(|(key, _)| key)
        .max_by_key(|key| key.spi != out.spi)
        .expect("an inbound SA");
    (inbound, out)
}

/// Both sides use an outbound SA other than `old_a` / `old_b`.
fn moved_on(n: &Net, old_a: SaKey, old_b: SaKey) -> bool {
    let (a, b) = (outbound(&n.a), outbound(&n.b));
    a.len() == 1 && b.len() == 1 && a[0].0 != old_a && b[0].0 != old_b
}

#[test]
fn a_soft_expire_rekeys_the_child_sa_at_once_on_either_side() {
    for (seed, faults) in [(11, CLEAN), (12, ROUGH), (13, ROUGH)] {
        for on_a in [true, false] {
            let mut n = established(faults, seed);
            let (old_a, old_b) = (keys(&n.a).1, keys(&n.b).1);
            let now = n.now;
            let (side, key) = if on_a {
                (&mut n.a, old_a)
            } else {
                (&mut n.b, old_b)
            };
            assert_eq!(side.expire(now, key, false), Expiry::Rekey);
            side.handle_timeout(now);
            // Well before the planned rekey (36-40 s after the Child SA was made).
            let rekeyed = n.run_until(
                Duration::from_secs(20),
                |n| moved_on(n, old_a, old_b),
                outbound_has_peer_inbound,
            );
            assert!(rekeyed, "seed {seed}, on A: {on_a}");
            let side = if on_a { &n.a } else { &n.b };
            assert_eq!(side.counters().kernel_expires, 1);
            n.run_for(Duration::from_secs(10), outbound_has_peer_inbound);
        }
    }
}

#[test]
fn a_hard_expired_sa_is_not_installed_again_and_its_child_sa_is_replaced() {
    for (seed, faults) in [(21, CLEAN), (22, ROUGH)] {
        let mut n = established(faults, seed);
        let (inbound_b, old_b) = keys(&n.b);
        let old_a = keys(&n.a).1;
        let now = n.now;
        assert_eq!(n.b.expire(now, inbound_b, true), Expiry::Rekey);
        assert!(
            !n.b.desired_states().contains_key(&inbound_b),
            "the kernel removed it: it must not come back with the same keys"
        );
        n.b.handle_timeout(now);
        assert!(n.run_until(
            Duration::from_secs(20),
            |n| moved_on(n, old_a, old_b),
            |_| ()
        ));
        n.run_for(Duration::from_secs(10), outbound_has_peer_inbound);
        assert!(!n.b.desired_states().contains_key(&inbound_b));
        assert!(
            !n.a.desired_states().contains_key(&old_a),
            "A dropped it too"
        );
    }
}

#[test]
fn an_expire_of_an_sa_keying_does_not_hold_changes_nothing() {
    let mut n = established(Faults::NONE, 31);
    let before = n.a.desired_states();
    let stranger = SaKey {
        dst: ip(A),
        spi: 0x0bad_0001,
    };
    let now = n.now;
    assert_eq!(n.a.expire(now, stranger, true), Expiry::Unknown);
    assert_eq!(n.a.desired_states(), before);
    assert_eq!(n.a.counters().kernel_expires, 0);
}

#[test]
fn growing_inbound_counters_spare_a_busy_peer_liveness_checks() {
    let quiet = Settings {
        rekey_after: Duration::from_secs(3600),
        ike_rekey_after: Duration::from_secs(7200),
        dpd_idle: Duration::from_secs(30),
        ..settings()
    };
    for esp_flows in [true, false] {
        let mut n = Net::new(quiet, CLEAN, 41);
        assert!(n.a.acquire(n.now, &acquire(A, "10.0.0.2", 7)));
        assert!(n.run_until(Duration::from_secs(60), both_up, |_| ()));
        let (inbound, _) = keys(&n.a);
        let mut probes = 0;
        for step in 1..=12u64 {
            n.now += Duration::from_secs(10);
            if esp_flows {
                n.a.note_packets(n.now, inbound, step * 1000);
            }
            if n.a.poll_timeout().is_some_and(|t| t <= n.now) {
                n.a.handle_timeout(n.now);
            }
            while n.a.poll_transmit(n.now).is_some() {
                probes += 1;
            }
        }
        if esp_flows {
            assert_eq!(probes, 0, "ESP arrived every 10 s: no liveness check");
        } else {
            assert!(probes > 0, "an idle peer is probed after 30 s");
        }
    }
}

#[test]
fn a_counter_that_does_not_grow_proves_nothing() {
    let mut n = established(CLEAN, 42);
    let (inbound, _) = keys(&n.a);
    n.a.note_packets(n.now, inbound, 5);
    let before = n.a.poll_timeout();
    n.now += Duration::from_secs(10);
    n.a.note_packets(n.now, inbound, 5);
    assert_eq!(
        n.a.poll_timeout(),
        before,
        "the same count: the DPD timer stays"
    );
    n.a.note_packets(n.now, inbound, 6);
    assert!(n.a.poll_timeout() > before, "a grown count moves it");
}

#[test]
fn both_sides_expiring_at_once_rekey_in_a_collision_with_every_outbound_paired() {
    for seed in 50..58u64 {
        let faults = if seed.is_multiple_of(2) { CLEAN } else { ROUGH };
        let mut n = established(faults, seed);
        let (old_a, old_b) = (keys(&n.a).1, keys(&n.b).1);
        let now = n.now;
        // Both kernels reach the soft lifetime together: both ends rekey the Child SA.
        n.a.expire(now, old_a, false);
        n.b.expire(now, old_b, false);
        n.a.handle_timeout(now);
        n.b.handle_timeout(now);
        assert!(
            n.run_until(
                Duration::from_secs(30),
                |n| moved_on(n, old_a, old_b),
                outbound_has_peer_inbound
            ),
            "seed {seed}"
        );
        n.run_for(Duration::from_secs(20), outbound_has_peer_inbound);
        for k in [&n.a, &n.b] {
            let inbound = (k.desired_states().into_values())
                .filter(|s| s.meta.dir == SaDir::In)
                .count();
            assert_eq!(
                inbound, 1,
                "seed {seed}: one Child SA left, the old one retired"
            );
            assert_eq!(k.counters().children_refused, 0, "seed {seed}");
        }
    }
}

//! How the loop answers a kernel XFRM event, without I/O: drift, a missed rotation, an
//! acquire for a known or unknown peer, lost notifications.

use std::net::IpAddr;

use crate::kernel::events::XfrmEvent;
use crate::model::Desired;

/// What a kernel event asks the loop to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing of ours is concerned.
    Ignore,
    /// Someone else changed or removed an owned object (or flushed): reconcile now.
    Drift,
    /// An owned SA reached its soft lifetime: the schedule was missed (clock step, agent
    /// stopped); reconcile now, which moves to the current epoch.
    SoftExpire,
    /// Traffic to a peer we know has no SA (e.g. just flushed): reconcile now.
    KnownAcquire(IpAddr),
    /// Traffic to an address outside the inventory hit a `require` policy.
    UnknownAcquire(IpAddr),
    /// Notifications were lost: observe everything again.
    Resync,
}

/// Decide how to answer one event (our own writes are filtered before this).
///
/// Larval states (SPI 0) made by the kernel for an acquire are never ours: their expire
/// events are ignored, so they never count as drift.
pub fn react(ev: &XfrmEvent, desired: &Desired, known: &dyn Fn(IpAddr) -> bool) -> Reaction {
    match ev {
        XfrmEvent::SaFlushed | XfrmEvent::PolicyFlushed => Reaction::Drift,
        XfrmEvent::SaAdded(k) | XfrmEvent::SaUpdated(k) | XfrmEvent::SaDeleted(k) => {
            if desired.states.contains_key(k) {
                Reaction::Drift
            } else {
                Reaction::Ignore
            }
        }
        XfrmEvent::PolicyAdded(k) | XfrmEvent::PolicyUpdated(k) | XfrmEvent::PolicyDeleted(k) => {
            if desired.policies.contains_key(k) {
                Reaction::Drift
            } else {
                Reaction::Ignore
            }
        }
        XfrmEvent::Expire { key, .. } if key.spi == 0 => Reaction::Ignore,
        XfrmEvent::Expire { key, hard } => match (desired.states.contains_key(key), hard) {
            (false, _) => Reaction::Ignore,
            (true, false) => Reaction::SoftExpire,
            (true, true) => Reaction::Drift,
        },
        XfrmEvent::Acquire { dst, .. } if known(*dst) => Reaction::KnownAcquire(*dst),
        XfrmEvent::Acquire { dst, .. } => Reaction::UnknownAcquire(*dst),
        XfrmEvent::Resync => Reaction::Resync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SaKey;

    #[test]
    fn larval_and_foreign_events_are_not_drift() {
        use crate::plan::{self, testkit, LocalAddrs, Timestamp};
        let p = testkit::seed();
        let id = testkit::identity(&p, 1);
        let d = plan::desired(
            &p,
            &id,
            &LocalAddrs::new(),
            Timestamp::from_secs(1e9 as u64),
        )
        .expect("desired");
        let ours = *d.states.keys().next().expect("site has SAs");
        let known = |a: IpAddr| a == ours.dst;
        let larval = SaKey { spi: 0, ..ours };
        let foreign = SaKey {
            spi: 0x1234,
            ..ours
        };
        let r = |e| react(&e, &d, &known);
        assert_eq!(
            r(XfrmEvent::Expire {
                key: larval,
                hard: true
            }),
            Reaction::Ignore
        );
        assert_eq!(r(XfrmEvent::SaDeleted(foreign)), Reaction::Ignore);
        assert_eq!(r(XfrmEvent::SaDeleted(ours)), Reaction::Drift);
        assert_eq!(r(XfrmEvent::SaFlushed), Reaction::Drift);
        assert_eq!(
            r(XfrmEvent::Expire {
                key: ours,
                hard: false
            }),
            Reaction::SoftExpire
        );
        let unknown: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            r(XfrmEvent::Acquire {
                src: "10.0.0.1".parse().unwrap(),
                dst: unknown,
                sel: None,
                policy: None
            }),
            Reaction::UnknownAcquire(unknown)
        );
    }
}

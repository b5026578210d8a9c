//! Packets that wait for a negotiated SA, and releasing them as soon as it is installed.
//!
//! With `net.core.xfrm_larval_drop = 0` a packet that hits an outbound policy whose
//! template finds no SA is held in that policy's queue (`polq`, at most 100 packets)
//! instead of dropped. The kernel looks the queue up again only on a timer that starts at
//! 100 ms and doubles up to 60 s (net/xfrm/xfrm_policy.c, `xdst_queue_output`,
//! `xfrm_policy_queue_process`): an SA installed at 1.0 s would release the packets at
//! 1.5 s. Writing the same policy again (XFRM_MSG_UPDPOLICY) moves its queue to the new
//! policy object and runs it at once (`xfrm_policy_insert` → `xfrm_policy_requeue`), so
//! after a keying reconcile the daemon rewrites the policies that raised acquires for a
//! peer that now has an outbound SA.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::daemon::ike::Negotiated;
use crate::model::{Desired, Dir, Op, OpKind, PolicyKey};

/// A queue left alone longer than this was purged by the kernel (its timer doubles from
/// 100 ms to 60 s, about 100 s in all): nothing is left to release.
const FORGET_AFTER: Duration = Duration::from_secs(120);

/// Outbound policies that raised an acquire for a peer keyed over IKEv2, by peer, with
/// when they last did.
#[derive(Debug, Default)]
pub struct Waiting(BTreeMap<(IpAddr, PolicyKey), Instant>);

impl Waiting {
    /// An acquire: packets to `remote` may wait in `policy`'s queue.
    pub fn note(&mut self, remote: IpAddr, policy: PolicyKey, now: Instant) {
        if policy.dir == Dir::Out {
            self.0.insert((remote, policy), now);
        }
    }

    /// The rewrites that release the packets waiting for a peer that now has an outbound
    /// negotiated SA (the policy as desired, unchanged); those entries are done. Entries
    /// past [`FORGET_AFTER`] are dropped.
    pub fn releases(
        &mut self,
        negotiated: &Negotiated,
        desired: &Desired,
        now: Instant,
    ) -> Vec<Op> {
        let keyed = |peer: &IpAddr| negotiated.keys().any(|k| k.dst == *peer);
        let mut ops: Vec<Op> = Vec::new();
        self.0.retain(|(peer, key), at| {
            if now.saturating_duration_since(*at) > FORGET_AFTER {
                return false;
            }
            if !keyed(peer) {
                return true;
            }
            let Some(p) = desired.policies.get(key) else {
                tracing::warn!(%key, %peer, "the policy an acquire named is not desired: its queue is left to the kernel's timer");
                return false;
            };
            {
                if !ops
                    .iter()
                    .any(|o| matches!(&o.kind, OpKind::UpdatePolicy(k, _) if k == key))
                {
                    ops.push(Op {
                        kind: OpKind::UpdatePolicy(*key, p.spec.clone()),
                        label: format!("release packets waiting for {peer}"),
                    });
                }
            }
            false
        });
        ops
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_policy(d: &Desired) -> PolicyKey {
        d.policies
            .keys()
            .find(|k| k.dir == Dir::Out)
            .copied()
            .expect("an outbound policy")
    }

    #[test]
    fn a_peer_with_an_outbound_sa_gets_its_policy_rewritten_once() {
        let d = crate::daemon::ike::seed_desired();
        let key = out_policy(&d);
        let (sa_key, sa) = d.states.iter().next().expect("an SA");
        let (peer, other): (IpAddr, IpAddr) = (sa_key.dst, "192.0.2.99".parse().unwrap());
        let t0 = Instant::now();
        let mut w = Waiting::default();
        w.note(peer, key, t0);
        w.note(other, key, t0);
        let inbound = PolicyKey {
            dir: Dir::In,
            ..key
        };
        w.note(peer, inbound, t0);
        // Nothing negotiated yet: nothing to release, everything still waits.
        assert!(w.releases(&Negotiated::default(), &d, t0).is_empty());
        let neg = Negotiated::new(BTreeMap::from([(*sa_key, sa.clone())]));
        let ops = w.releases(&neg, &d, t0);
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(
            ops[0].kind,
            OpKind::UpdatePolicy(key, d.policies[&key].spec.clone())
        );
        assert!(w.releases(&neg, &d, t0).is_empty(), "released once");
        assert!(!w.is_empty(), "the other peer still waits");
    }

    #[test]
    fn queues_the_kernel_purged_are_forgotten() {
        let d = crate::daemon::ike::seed_desired();
        let key = out_policy(&d);
        let (sa_key, sa) = d.states.iter().next().expect("an SA");
        let t0 = Instant::now();
        let mut w = Waiting::default();
        w.note(sa_key.dst, key, t0);
        let neg = Negotiated::new(BTreeMap::from([(*sa_key, sa.clone())]));
        let later = t0 + FORGET_AFTER + Duration::from_secs(1);
        assert!(w.releases(&neg, &d, later).is_empty());
        assert!(w.is_empty());
    }
}

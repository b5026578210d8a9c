//! The incremental compile against the definition: after every edit of a random sequence,
//! the compiler's result equals a fresh full compile of the same inputs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use policy_schema::{Action, Cluster, Encapsulation, Endpoint, Host, Policy, Protocol};
use proptest::prelude::*;

use super::super::{desired, LocalAddrs, Timestamp};
use super::{Compiled, Compiler};
use crate::keys::Identity;
use crate::model::{Desired, DesiredSa, Observed, ObservedSa, SaMeta};
use crate::plan::diff::diff;
use crate::plan::diff::diff_touched;
use crate::plan::testkit::{self, identity, seed};

/// Mid-epoch for the default one-hour interval.
const T: u64 = 1_800_001_800;
/// The cluster address h0 may hold.
const VIP: &str = "10.10.0.200";

fn addr(i: u32) -> String {
    // Inside the intranet zone (10.10.0.0/24) or outside it (10.10.1.0/24).
    format!("10.10.{}.{}", (i / 40) % 2, 1 + i % 40)
}

fn v6(i: u32) -> String {
    format!("fd00:10::{:x}", 1 + i % 40)
}

/// Rule sets: 0 any ↔ intranet zone; 1 a hub naming every host (the benchmark's shape);
/// 2 the hub and a port rule with another cipher; 3 the hub and an overlapping prefix.
fn rules(kind: u8, n: usize) -> Vec<policy_schema::Rule> {
    let zone = testkit::rule(
        "intranet",
        vec![Endpoint::Any],
        vec![Endpoint::Zone("intranet".into())],
        Action::Require,
    );
    let hub = || {
        let to = (1..n).map(|i| Endpoint::Host(format!("h{i}"))).collect();
        testkit::rule(
            "hub",
            vec![Endpoint::Host("h0".into())],
            to,
            Action::Require,
        )
    };
    match kind {
        0 => vec![zone],
        1 => vec![hub()],
        2 => vec![testkit::port_rule("db", "h1"), hub()],
        _ => {
            let mut wide = testkit::rule(
                "wide",
                vec![Endpoint::Prefix(testkit::net("10.10.0.0/28"))],
                vec![Endpoint::Host("h0".into())],
                Action::Request,
            );
            wide.protocol = Some(Protocol::Udp);
            vec![wide, hub()]
        }
    }
}

/// `n` hosts h0..; h0 is us (key seed 1). Optionally a cluster with h0 as a member.
fn inventory(n: usize, kind: u8, cluster: bool, flags: &[(bool, bool)]) -> Policy {
    let mut p = seed();
    p.hosts = (0..n)
        .map(|i| host(i as u32, i as u32, flags[i % flags.len()]))
        .collect();
    p.rules = rules(kind, n);
    if cluster {
        p.clusters.push(Cluster {
            name: "vip".into(),
            addresses: vec![VIP.parse().unwrap()],
            public_key: testkit::key(99).public(),
            members: vec!["h0".into(), "h1".into()],
            encapsulation: Encapsulation::None,
        });
    }
    p
}

fn host(i: u32, at: u32, (dual, udp): (bool, bool)) -> policy_schema::Host {
    let (a4, a6) = (addr(at), v6(at));
    let addrs: Vec<&str> = if dual { vec![&a4, &a6] } else { vec![&a4] };
    let mut h = testkit::host(&format!("h{i}"), &addrs, i + 1);
    if udp {
        h.encapsulation = Encapsulation::Udp;
    }
    h
}

#[derive(Clone, Debug)]
enum Edit {
    /// Host `i` (never h0) to another address slot.
    Move(usize, u32),
    Add(u32, bool),
    Remove(usize),
    Rename(usize),
    Rekey(usize, u32),
    ToggleUdp(usize),
    ToggleV6(usize),
    Swap(usize, usize),
    /// Seconds forward (some cross rotation steps).
    Wait(u64),
    /// Hold or release the cluster address.
    Hold(bool),
    /// A new identity object, adopting the old one's caches (a reload).
    Reload,
    Nothing,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (1usize..64, 0u32..80).prop_map(|(i, a)| Edit::Move(i, a)),
        1 => (0u32..80, any::<bool>()).prop_map(|(a, d)| Edit::Add(a, d)),
        1 => (1usize..64).prop_map(Edit::Remove),
        1 => (1usize..64).prop_map(Edit::Rename),
        1 => (1usize..64, 100u32..200).prop_map(|(i, k)| Edit::Rekey(i, k)),
        1 => (1usize..64).prop_map(Edit::ToggleUdp),
        1 => (1usize..64).prop_map(Edit::ToggleV6),
        1 => (1usize..64, 1usize..64).prop_map(|(i, j)| Edit::Swap(i, j)),
        2 => prop::sample::select(vec![1u64, 17, 600, 1790, 1805, 1830, 3600]).prop_map(Edit::Wait),
        1 => any::<bool>().prop_map(Edit::Hold),
        1 => Just(Edit::Reload),
        1 => Just(Edit::Nothing),
    ]
}

/// The world one edit changes: the policy, the clock, the addresses held, the identity.
struct World {
    p: Arc<Policy>,
    t: u64,
    local: LocalAddrs,
    id: Identity,
    next: u32,
}

impl World {
    fn new(p: Policy, cluster_key: bool) -> World {
        let mut id = identity(&p, 1);
        if cluster_key && !p.clusters.is_empty() {
            let path = std::path::Path::new("t");
            id.add_cluster_key(&p, "vip", testkit::key(99), path)
                .unwrap();
        }
        World {
            p: Arc::new(p),
            t: T,
            local: LocalAddrs::new(),
            id,
            next: 1000,
        }
    }

    fn apply(&mut self, e: &Edit) {
        match *e {
            Edit::Wait(s) => self.t += s,
            Edit::Hold(true) => {
                self.local.insert(VIP.parse::<IpAddr>().unwrap());
            }
            Edit::Hold(false) => self.local.clear(),
            Edit::Reload => {
                let mut id = Identity::resolve(&self.p, testkit::key(1), None).unwrap();
                if self.id.has_cluster_key("vip") {
                    let path = std::path::Path::new("t");
                    id.add_cluster_key(&self.p, "vip", testkit::key(99), path)
                        .unwrap();
                }
                self.id = id;
            }
            Edit::Nothing => {}
            _ => {
                // A new policy value (the compiler holds the last one).
                self.next += 1;
                edit_hosts(&mut Arc::make_mut(&mut self.p).hosts, e, self.next);
            }
        }
    }

    /// The compiler's result must be the full compile's, exactly, and a patch must name
    /// every key whose object differs from the last result's (`prev`, then updated).
    fn check(
        &self,
        c: &mut Compiler,
        prev: &mut Option<Desired>,
    ) -> Result<Compiled, TestCaseError> {
        let now = Timestamp::from_secs(self.t);
        let want = desired(&self.p, &self.id, &self.local, now).unwrap();
        c.desired(&self.p, &self.id, &self.local, now).unwrap();
        let (got, how) = (c.last().unwrap(), c.how().cloned().unwrap());
        prop_assert_eq!(&want.policies, &got.policies, "{:?}", how);
        prop_assert!(want == *got, "{:?}", how);
        prop_assert_eq!(
            matches!(how, Compiled::Patched { .. }),
            c.touched().is_some()
        );
        if let (Some(before), Some(touched)) = (prev.as_ref(), c.touched()) {
            for k in changed_keys(&before.policies, &want.policies, |a, b| a == b) {
                prop_assert!(
                    touched.policies.contains(&k),
                    "{:?}: policy {} not named",
                    how,
                    k
                );
            }
            let same_sa = |a: &DesiredSa, b: &DesiredSa| {
                a.spec == b.spec
                    && SaMeta {
                        initial_seq: b.meta.initial_seq,
                        ..a.meta.clone()
                    } == b.meta
            };
            for k in changed_keys(&before.states, &want.states, same_sa) {
                prop_assert!(touched.states.contains(&k), "{:?}: SA {} not named", how, k);
            }
            // With the kernel holding the last result, the diff of the touched keys is the
            // full diff.
            let kernel = installed(before);
            let own = &self.p.ownership;
            prop_assert_eq!(
                diff(&want, &kernel, own),
                diff_touched(&want, touched, &kernel, own, &|_, _| true),
                "{:?}",
                how
            );
        }
        *prev = Some(want);
        Ok(how)
    }
}

/// The kernel as it is after `d` was installed.
fn installed(d: &Desired) -> Observed {
    Observed {
        policies: (d.policies.iter())
            .map(|(k, p)| (*k, p.spec.clone()))
            .collect(),
        states: (d.states.iter())
            .map(|(k, s)| {
                (
                    *k,
                    ObservedSa {
                        spec: s.spec.clone(),
                        stats: Default::default(),
                    },
                )
            })
            .collect(),
        ..Observed::default()
    }
}

/// The keys whose values differ between `a` and `b` (in one only, or unequal by `same`).
fn changed_keys<K: Ord + Copy, V>(
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
) -> Vec<K> {
    let mut out: Vec<K> = a
        .iter()
        .filter(|(k, v)| b.get(k).is_none_or(|w| !same(v, w)))
        .map(|(k, _)| *k)
        .collect();
    out.extend(b.keys().filter(|k| !a.contains_key(k)).copied());
    out
}

/// Apply a host edit; `next` numbers new names and keys.
fn edit_hosts(hosts: &mut Vec<Host>, e: &Edit, next: u32) {
    let n = hosts.len();
    if n < 2 {
        return;
    }
    let pick = |i: usize| 1 + i % (n - 1);
    match *e {
        Edit::Move(i, a) => hosts[pick(i)].addresses[0] = addr(a).parse().unwrap(),
        Edit::Add(a, dual) => hosts.push(host(next, a, (dual, false))),
        Edit::Remove(i) if n > 2 => {
            hosts.remove(pick(i));
        }
        Edit::Rename(i) => hosts[pick(i)].name = format!("h{next}"),
        Edit::Rekey(i, k) => hosts[pick(i)].public_key = testkit::key(k).public(),
        Edit::ToggleUdp(i) => {
            let h = &mut hosts[pick(i)];
            h.encapsulation = match h.encapsulation {
                Encapsulation::Udp => Encapsulation::None,
                Encapsulation::None => Encapsulation::Udp,
            };
        }
        Edit::ToggleV6(i) => {
            let h = &mut hosts[pick(i)];
            match h.addresses.len() {
                1 => h.addresses.push(v6(next + i as u32).parse().unwrap()),
                _ => h.addresses.truncate(1),
            }
        }
        Edit::Swap(i, j) => hosts.swap(pick(i), pick(j)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// After every edit of a sequence, the patched result equals a full compile.
    #[test]
    fn incremental_equals_full(
        n in 2usize..14,
        kind in 0u8..4,
        cluster in any::<bool>(),
        cluster_key in any::<bool>(),
        slots in prop::sample::select(vec![0u32, 24, 40]),
        flags in proptest::collection::vec((any::<bool>(), any::<bool>()), 1..6),
        edits in proptest::collection::vec(edit(), 1..24),
    ) {
        let mut p = inventory(n, kind, cluster, &flags);
        if slots > 0 {
            // Few SPI slots: linear probing moves addresses when others come and go.
            p.ownership.spi = (0x4000_0000, 0x4000_0000 + slots * 256 - 1);
        }
        let mut w = World::new(p, cluster_key);
        let mut c = Compiler::new();
        let mut prev = None;
        w.check(&mut c, &mut prev)?;
        for e in &edits {
            w.apply(e);
            let how = w.check(&mut c, &mut prev)?;
            // `PLAN_HOW=1 cargo test … -- --nocapture` shows which edits took the patch.
            if std::env::var_os("PLAN_HOW").is_some() {
                eprintln!("HOW {e:?} {how:?}");
            }
        }
    }
}

/// A hub of 40 hosts, compiled once: the compiler, the world and the full result.
fn hub40() -> (Compiler, World) {
    let flags = [(false, false), (true, false), (false, true)];
    let w = World::new(inventory(40, 1, false, &flags), false);
    let mut c = Compiler::new();
    w.check(&mut c, &mut None).unwrap();
    (c, w)
}

#[test]
fn moving_one_host_patches_one_peer() {
    let (mut c, mut w) = hub40();
    w.apply(&Edit::Move(7, 75));
    let how = w.check(&mut c, &mut None).unwrap();
    assert!(
        matches!(
            how,
            Compiled::Patched {
                peers: 1..=3,
                prefixes: 2
            }
        ),
        "{how:?}"
    );
}

#[test]
fn nothing_changed_patches_nothing_but_sequence_numbers() {
    let (mut c, mut w) = hub40();
    w.apply(&Edit::Wait(17));
    let how = w.check(&mut c, &mut None).unwrap();
    assert_eq!(
        how,
        Compiled::Patched {
            peers: 0,
            prefixes: 0
        }
    );
    w.apply(&Edit::Wait(1790));
    assert!(matches!(
        w.check(&mut c, &mut None).unwrap(),
        Compiled::Full(_)
    ));
}

#[test]
fn an_unknown_host_keeps_the_last_result() {
    let (mut c, w) = hub40();
    let mut p = (*w.p).clone();
    p.hosts.remove(0);
    let p = Arc::new(p);
    let now = Timestamp::from_secs(w.t);
    assert!(c.desired(&p, &w.id, &w.local, now).is_err());
    assert!(c.last().is_some());
}

/// A reload gives the compiler a new `Identity` value with the same keys: the pair secrets
/// and expanded SA keys carry over (none recomputed), even through a full compile; a new
/// host key drops the old key's pairs.
#[test]
fn pair_secrets_outlive_the_identity_value() {
    let p = Arc::new(seed());
    let local = LocalAddrs::new();
    let now = Timestamp::from_secs(T);
    let mut c = Compiler::new();
    c.desired(&p, &identity(&p, 1), &local, now).unwrap();
    let kept = c.carry.pairs.counts();
    assert!(kept.0 > 0 && kept.1 > 0, "{kept:?}");
    let later = Timestamp::from_secs(T + 3600);
    c.desired(&p, &identity(&p, 1), &local, later).unwrap();
    assert!(matches!(c.how(), Some(Compiled::Full(_))));
    let (pairs, _) = c.carry.pairs.counts();
    assert_eq!(pairs, kept.0, "no pair recomputed or dropped");
    let mut q = (*p).clone();
    q.hosts[0].public_key = testkit::key(77).public();
    let q = Arc::new(q);
    let rekeyed = Identity::resolve(&q, testkit::key(77), None).unwrap();
    c.desired(&q, &rekeyed, &local, later).unwrap();
    assert_eq!(
        c.carry.pairs.counts().0,
        kept.0,
        "the old key's pairs replaced"
    );
    assert_eq!(
        c.carry.spis.as_ref().map(|s| s.is_collision_free()),
        Some(true)
    );
}

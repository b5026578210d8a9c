//! Compiler tests: the seed scenario by hand, and properties over random inventories.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use policy_schema::{Action, Encapsulation, Endpoint, Policy, PortRange, Protocol};
use proptest::prelude::*;

use super::{desired, Timestamp};
use crate::keys::Identity;
use crate::model::{Desired, DesiredSa, Dir, PolicyAction, SaDir, SaKey, SaSpec};
use crate::plan::testkit::{self, identity, seed};

/// Mid-epoch for the default one-hour interval.
const T: u64 = 1_800_001_800;

fn plan(p: &Policy, seed: u32, t: u64) -> Desired {
    desired(
        p,
        &identity(p, seed),
        &BTreeSet::new(),
        Timestamp::from_secs(t),
    )
    .expect("plan")
}

fn kernel_view(d: &Desired) -> (Vec<String>, BTreeMap<SaKey, SaSpec>) {
    let pols = d
        .policies
        .iter()
        .map(|(k, p)| format!("{k} {:?}", p.spec))
        .collect();
    let sas = d.states.iter().map(|(k, s)| (*k, s.spec.clone())).collect();
    (pols, sas)
}

#[test]
fn seed_site_has_sas_with_every_member_and_family() {
    let p = seed();
    let d = plan(&p, 1, T);
    let peers: BTreeSet<_> = d.states.values().map(|s| s.meta.peer.as_str()).collect();
    assert_eq!(peers, BTreeSet::from(["db", "mp"]));
    // Per peer: 2 families × (1 out + 1 in) in mid-epoch.
    assert_eq!(d.states.len(), 8, "{:#?}", d.states.keys());
    for s in d.states.values() {
        let udp = s.meta.peer == "mp";
        assert_eq!(s.spec.encap.is_some(), udp, "{}", s.meta.peer);
        assert!(s.spec.esn);
        // Pinned to the pair's addresses.
        assert!(s.spec.sel.src.prefix_len() == 32 || s.spec.sel.src.prefix_len() == 128);
    }
}

#[test]
fn seed_site_policies_are_catch_alls_not_per_peer() {
    let p = seed();
    let d = plan(&p, 1, T);
    let protect: Vec<_> = d
        .policies
        .iter()
        .filter(|(_, p)| matches!(p.spec.action, PolicyAction::Protect(_)))
        .collect();
    // One in + one out per local address (v4, v6): "any ↔ my address".
    assert_eq!(protect.len(), 4, "{protect:#?}");
    for (k, _) in &protect {
        let remote = if k.dir == Dir::Out {
            k.sel.dst
        } else {
            k.sel.src
        };
        assert_eq!(remote.prefix_len(), 0);
    }
    // Exemptions beat the rule.
    let rule_prio = protect[0].1.spec.priority;
    assert!(d
        .policies
        .values()
        .filter(|p| p.spec.action == PolicyAction::Allow)
        .all(|p| p.spec.priority < rule_prio));
}

#[test]
fn mp_covers_only_the_intranet_and_client_gets_nothing() {
    let p = seed();
    let d = plan(&p, 3, T);
    for (k, pol) in &d.policies {
        if let PolicyAction::Protect(_) = pol.spec.action {
            let remote = if k.dir == Dir::Out {
                k.sel.dst
            } else {
                k.sel.src
            };
            assert!(
                remote.to_string().starts_with("10.10.0.")
                    || remote.to_string().starts_with("fd00:10::"),
                "{k}"
            );
        }
    }
    assert!(d.states.values().all(|s| s.spec.encap.is_some()));
}

#[test]
fn both_ends_compute_the_same_sa() {
    let p = seed();
    let site = plan(&p, 1, T);
    let db = plan(&p, 2, T);
    let mut matched = 0;
    for (k, s) in site.states.iter().filter(|(_, s)| s.meta.peer == "db") {
        let other = db.states.get(k).expect("peer has the mirror SA");
        assert_eq!(other.spec, s.spec);
        assert_ne!(other.meta.dir, s.meta.dir);
        matched += 1;
    }
    assert_eq!(matched, 4);
}

#[test]
fn port_rule_pins_protocol_and_port() {
    let mut p = seed();
    p.hosts.truncate(2);
    p.rules = vec![{
        let mut r = testkit::rule(
            "web",
            vec![Endpoint::Host("site".into())],
            vec![Endpoint::Host("db".into())],
            Action::Require,
        );
        r.protocol = Some(Protocol::Tcp);
        r.ports = vec![PortRange::single(80)];
        r
    }];
    let d = plan(&p, 2, T); // db is the server
    for s in d.states.values() {
        assert_eq!(s.spec.sel.proto, 6);
        match s.meta.dir {
            SaDir::Out => assert_eq!(s.spec.sel.sport.port, 80),
            SaDir::In => assert_eq!(s.spec.sel.dport.port, 80),
        }
    }
}

/// The seed with a cluster "sql" at `addresses`, db its only member; db's identity with
/// the cluster key.
fn sql_cluster_on_db(addresses: &[&str]) -> (Policy, Identity) {
    let mut p = seed();
    p.clusters.push(policy_schema::Cluster {
        name: "sql".into(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        public_key: testkit::key(99).public(),
        members: vec!["db".into()],
        encapsulation: Encapsulation::None,
    });
    let mut id = identity(&p, 2);
    id.add_cluster_key(&p, "sql", testkit::key(99), std::path::Path::new("t"))
        .unwrap();
    (p, id)
}

#[test]
fn cluster_sas_only_while_the_address_is_held() {
    let (p, id) = sql_cluster_on_db(&["10.10.0.100"]);
    let now = Timestamp::from_secs(T);
    let idle = desired(&p, &id, &BTreeSet::new(), now).unwrap();
    // Not held: the cluster address is an ordinary peer (another member holds it).
    let vip_as_peer = |d: &Desired| {
        d.states
            .values()
            .filter(|s| s.meta.peer == "cluster:sql")
            .count()
    };
    assert_eq!(vip_as_peer(&idle), 2);
    assert!(idle
        .states
        .iter()
        .all(|(k, s)| !(s.meta.dir == SaDir::In && k.dst.to_string() == "10.10.0.100")));
    let held: BTreeSet<_> = ["10.10.0.100".parse().unwrap()].into();
    let active = desired(&p, &id, &held, now).unwrap();
    assert_eq!(vip_as_peer(&active), 0);
    let vip: Vec<_> = active
        .states
        .iter()
        .filter(|(k, s)| {
            k.dst.to_string() == "10.10.0.100" || s.spec.src.to_string() == "10.10.0.100"
        })
        .collect();
    // site and mp over v4: one out + one in each.
    assert_eq!(vip.len(), 4, "{vip:#?}");
    // The peer (site) has the matching SAs towards the cluster address.
    let site = plan(&p, 1, T);
    for (k, s) in vip.iter().filter(|(_, s)| s.meta.peer == "site") {
        assert_eq!(site.states.get(k).map(|x| &x.spec), Some(&s.spec));
    }
    // Policies do not depend on holding the address.
    assert_eq!(kernel_view(&idle).0, kernel_view(&active).0);
}

#[test]
fn cluster_sas_follow_each_address_not_the_whole_cluster() {
    let (p, id) = sql_cluster_on_db(&["10.10.0.100", "fd00:10::100"]);
    let now = Timestamp::from_secs(T);
    let with = |d: &Desired, vip: &str| -> BTreeMap<SaKey, SaSpec> {
        d.states
            .iter()
            .filter(|(k, s)| k.dst.to_string() == vip || s.spec.src.to_string() == vip)
            .map(|(k, s)| (*k, s.spec.clone()))
            .collect()
    };
    let (v4, v6) = ("10.10.0.100", "fd00:10::100");
    let both: BTreeSet<_> = [v4.parse().unwrap(), v6.parse().unwrap()].into();
    let all = desired(&p, &id, &both, now).unwrap();
    // site and mp per family: one out + one in each.
    assert_eq!((with(&all, v4).len(), with(&all, v6).len()), (4, 4));
    // SAs *as* the cluster at `vip`: outbound from it, inbound to it.
    let as_vip = |d: &Desired, vip: &str| {
        (d.states.iter())
            .filter(|(k, s)| match s.meta.dir {
                SaDir::Out => s.spec.src.to_string() == vip,
                SaDir::In => k.dst.to_string() == vip,
            })
            .count()
    };
    // Only the IPv4 address here (the IPv6 one still on another member, or not moved
    // yet): no SA as the IPv6 address, whose holder sends on the same SPIs.
    let only_v4: BTreeSet<_> = [v4.parse().unwrap()].into();
    let part = desired(&p, &id, &only_v4, now).unwrap();
    assert_eq!(as_vip(&part, v6), 0, "{:#?}", with(&part, v6));
    // The held address's SAs are the same either way.
    assert_eq!(with(&part, v4), with(&all, v4));
    let only_v6: BTreeSet<_> = [v6.parse().unwrap()].into();
    let part = desired(&p, &id, &only_v6, now).unwrap();
    assert_eq!(as_vip(&part, v4), 0, "{:#?}", with(&part, v4));
    assert_eq!(with(&part, v6), with(&all, v6));
}

#[test]
fn a_member_reaches_its_cluster_addresses_held_by_another_member() {
    // site is a member too and holds the IPv6 address; db holds the IPv4 one.
    let (mut p, db) = sql_cluster_on_db(&["10.10.0.100", "fd00:10::100"]);
    p.clusters[0].members.push("site".into());
    let mut site = identity(&p, 1);
    site.add_cluster_key(&p, "sql", testkit::key(99), std::path::Path::new("t"))
        .unwrap();
    let now = Timestamp::from_secs(T);
    let at = |a: &str| -> BTreeSet<IpAddr> { [a.parse().unwrap()].into() };
    let on_db = desired(&p, &db, &at("10.10.0.100"), now).unwrap();
    let on_site = desired(&p, &site, &at("fd00:10::100"), now).unwrap();
    // db reaches the IPv6 cluster address from its own IPv6 address, as a peer…
    let db_with_vip6: BTreeMap<SaKey, &DesiredSa> = (on_db.states.iter())
        .filter(|(_, s)| s.meta.peer == "cluster:sql")
        .map(|(k, s)| (*k, s))
        .collect();
    assert_eq!(db_with_vip6.len(), 2, "one out, one in: {db_with_vip6:#?}");
    // …and site, holding it, has the other end of each (same key, same keys and SPI).
    for (k, s) in &db_with_vip6 {
        let there = on_site.states.get(k).expect("the holder has the other end");
        assert_eq!(there.meta.peer, "db");
        assert_eq!(there.spec.alg, s.spec.alg);
        assert_ne!(there.meta.dir, s.meta.dir);
    }
    // Neither pairs a cluster address with another of the same cluster.
    for d in [&on_db, &on_site] {
        assert!(!d.states.iter().any(|(k, s)| {
            let vip = |a: IpAddr| p.clusters[0].addresses.contains(&a);
            vip(k.dst) && vip(s.spec.src)
        }));
    }
}

/// A random inventory: n hosts in 10.0.0.0/16 (some dual-stack, some over UDP), one zone,
/// an isolation rule plus a port rule with another cipher.
fn inventory() -> impl Strategy<Value = Policy> {
    (
        2usize..7,
        proptest::collection::vec((any::<bool>(), any::<bool>()), 7),
        0usize..3,
    )
        .prop_map(|(n, flags, extra)| {
            let mut p = seed();
            p.hosts = (0..n)
                .map(|i| {
                    let v4 = format!("10.10.0.{}", 10 + i);
                    let v6 = format!("fd00:10::{:x}", 10 + i);
                    let addrs: Vec<&str> = if flags[i].0 {
                        vec![&v4, &v6]
                    } else {
                        vec![&v4]
                    };
                    let mut h = testkit::host(&format!("h{i}"), &addrs, i as u32 + 1);
                    if flags[i].1 {
                        h.encapsulation = Encapsulation::Udp;
                    }
                    h
                })
                .collect();
            if extra > 0 {
                p.rules.insert(0, testkit::port_rule("db-port", "h0"));
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A's outbound SA is exactly B's inbound SA (key, SPI, algorithm, selector), both ways.
    #[test]
    fn outbound_equals_peer_inbound(p in inventory(), t in 0u64..2_000_000_000) {
        let plans: Vec<Desired> = (0..p.hosts.len()).map(|i| plan(&p, i as u32 + 1, t)).collect();
        for d in &plans {
            for (k, s) in d.states.iter().filter(|(_, s)| s.meta.dir == SaDir::Out) {
                let peer = plans.iter().find(|x| x.host == s.meta.peer).unwrap();
                let mirror = peer.states.get(k);
                prop_assert_eq!(mirror.map(|m| &m.spec), Some(&s.spec), "{} -> {}", d.host, s.meta.peer);
                prop_assert_eq!(mirror.unwrap().meta.dir, SaDir::In);
            }
        }
    }

    /// No two SAs of one host share (destination, SPI): counting what should exist finds
    /// exactly what the map holds (an overwrite would lose one).
    #[test]
    fn inbound_spis_unique_per_host(p in inventory(), t in 0u64..2_000_000_000) {
        for i in 0..p.hosts.len() {
            let d = plan(&p, i as u32 + 1, t);
            let view = super::epoch::Timeline::from_defaults(&p.defaults).view(t);
            let me = &p.hosts[i];
            let mut expected = 0;
            for peer in p.hosts.iter().filter(|h| h.name != me.name) {
                for a in &me.addresses {
                    for b in peer.addresses.iter().filter(|b| b.is_ipv4() == a.is_ipv4()) {
                        let profiles = if p.rules.len() == 2 && (me.name == "h0" || peer.name == "h0") && a.is_ipv4() == b.is_ipv4() { 2 } else { 1 };
                        expected += profiles * (1 + view.inbound.len());
                    }
                }
            }
            prop_assert_eq!(d.states.len(), expected, "host {}", me.name);
            let spis: BTreeSet<_> = d.states.keys().collect();
            prop_assert_eq!(spis.len(), d.states.len());
        }
    }

    /// The file's host order does not matter.
    #[test]
    fn independent_of_host_order(p in inventory(), t in 0u64..2_000_000_000, rot in 0usize..7) {
        let mut q = p.clone();
        let n = q.hosts.len();
        q.hosts.rotate_left(rot % n);
        q.hosts.reverse();
        for i in 0..n {
            prop_assert_eq!(plan(&p, i as u32 + 1, t), plan(&q, i as u32 + 1, t));
        }
    }

    /// What the kernel sees only changes at next_change.
    #[test]
    fn changes_only_at_next_change(p in inventory(), t in 0u64..2_000_000_000, k in 0u64..4000) {
        let d = plan(&p, 1, t);
        let next = d.next_change.expect("SAs exist").secs();
        prop_assert!(next > t);
        let u = (t + k).min(next - 1);
        prop_assert_eq!(kernel_view(&d), kernel_view(&plan(&p, 1, u)));
        prop_assert_ne!(kernel_view(&d).1, kernel_view(&plan(&p, 1, next)).1);
    }

    /// Whatever a peer within the clock skew sends on, we hold the inbound SA for it.
    #[test]
    fn overlap_never_leaves_a_gap(p in inventory(), t in 10u64..2_000_000_000, skew in -10i64..=10) {
        let me = plan(&p, 1, t);
        for j in 1..p.hosts.len() {
            let peer = plan(&p, j as u32 + 1, (t as i64 + skew) as u64);
            for (k, s) in peer.states.iter().filter(|(_, s)| s.meta.dir == SaDir::Out && s.meta.peer == "h0") {
                prop_assert_eq!(me.states.get(k).map(|m| &m.spec), Some(&s.spec));
            }
        }
    }
}

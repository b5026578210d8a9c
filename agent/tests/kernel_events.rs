//! Event listeners on this machine's kernel, in throw-away namespaces: XFRM policy events
//! (added, deleted, flushed), an overrun reported as Resync, address events.

mod support;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use agent::engine::reconcile;
use agent::kernel::addrs::{AddrEvent, AddrEvents};
use agent::kernel::events::{XfrmEvent, XfrmEvents};
use agent::kernel::{self};
use policy_schema::Ownership;
use support::ns::{privileged, TestNetns};
use support::*;

/// Wait (poll(2) on the fd, no sleeps) until `done` holds for the events seen so far.
fn wait<E: Clone>(
    fd: i32,
    mut next: impl FnMut() -> Vec<E>,
    done: impl Fn(&[E]) -> bool,
) -> Vec<E> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        seen.extend(next());
        if done(&seen) {
            return seen;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; saw {} events", seen.len());
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
    }
}

#[test]
fn policy_events_and_overrun() {
    if !privileged("policy_events_and_overrun") {
        return;
    }
    let ns = TestNetns::new("ev");
    let d = desired_from(SAMPLE_POLICIES);
    let keys: Vec<_> = d.policies.keys().copied().collect();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let name = ns.name.clone();
    let h = std::thread::spawn(move || {
        kernel::netns::enter(&name).unwrap();
        let mut ev = XfrmEvents::open().unwrap();
        let fd = ev.as_raw_fd();
        let mut sock = kernel::open().unwrap();
        assert!(
            reconcile(&mut sock, &d, &Ownership::default(), false)
                .unwrap()
                .verified
        );
        let seen = wait(
            fd,
            || ev.poll().unwrap(),
            |s| keys.iter().all(|k| s.contains(&XfrmEvent::PolicyAdded(*k))),
        );
        assert!(!seen.contains(&XfrmEvent::Resync));
        tx.send(()).unwrap();
        wait(
            fd,
            || ev.poll().unwrap(),
            |s| s.contains(&XfrmEvent::PolicyFlushed),
        );
        // Overrun: a tiny receive buffer and 2000 unread notifications.
        ev.set_rcvbuf(2048);
        let many = desired_from(
            &(0..2000)
                .map(|i| {
                    format!(
                    "policy dir=out src=10.0.0.1/32 dst=10.{}.{}.1/32 prio=0x10100 action=block",
                    i / 250, i % 250)
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        assert!(
            reconcile(&mut sock, &many, &Ownership::default(), false)
                .unwrap()
                .verified
        );
        wait(
            fd,
            || ev.poll().unwrap(),
            |s| s.contains(&XfrmEvent::Resync),
        );
    });
    rx.recv().unwrap();
    ns.ip(&["xfrm", "policy", "flush"]);
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn address_events() {
    if !privileged("address_events") {
        return;
    }
    let ns = TestNetns::new("addr");
    let name = ns.name.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (tx2, rx2) = std::sync::mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        kernel::netns::enter(&name).unwrap();
        let mut ev = AddrEvents::open().unwrap();
        let fd = ev.as_raw_fd();
        tx.send(()).unwrap();
        let a = "10.77.0.1".parse().unwrap();
        let b = "fd77::1".parse().unwrap();
        wait(
            fd,
            || ev.poll().unwrap(),
            |s| s.contains(&AddrEvent::Added(a)) && s.contains(&AddrEvent::Added(b)),
        );
        let local = kernel::addrs::local_addrs().unwrap();
        assert!(local.contains(&a) && local.contains(&b), "{local:?}");
        tx2.send(()).unwrap();
        wait(
            fd,
            || ev.poll().unwrap(),
            |s| s.contains(&AddrEvent::Removed(a)),
        );
    });
    rx.recv().unwrap();
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["addr", "add", "10.77.0.1/24", "dev", "lo"]);
    ns.ip(&["addr", "add", "fd77::1/64", "dev", "lo", "nodad"]);
    rx2.recv().unwrap();
    ns.ip(&["addr", "del", "10.77.0.1/24", "dev", "lo"]);
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
}

/// IPv6 subnets behind IPv4 gateways: the kernel's acquire for a tunnel policy with an
/// IPv6 selector and an IPv4 template names the gateways in IPv4 (10.93.0.2, not the
/// `a5d:2::` that decoding with the selector's family gives).
#[test]
fn a_cross_family_tunnel_acquire_names_the_outer_addresses() {
    if !privileged("a_cross_family_tunnel_acquire_names_the_outer_addresses") {
        return;
    }
    let ns = TestNetns::new("acq");
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["link", "set", "v0", "up"]);
    ns.ip(&["link", "set", "v1", "up"]);
    ns.ip(&["addr", "add", "10.93.0.1/24", "dev", "v0"]);
    ns.ip(&["addr", "add", "fd00:1::1/64", "dev", "v0", "nodad"]);
    ns.ip(&["route", "add", "fd00:2::/64", "dev", "v0"]);
    let tunnel = "xfrm policy add src fd00:1::/64 dst fd00:2::/64 dir out \
                  tmpl src 10.93.0.1 dst 10.93.0.2 proto esp mode tunnel";
    ns.ip(&tunnel
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>());
    let seen = ns.run(|| {
        let mut ev = XfrmEvents::open().unwrap();
        let fd = ev.as_raw_fd();
        let s = std::net::UdpSocket::bind("[fd00:1::1]:0").unwrap();
        // Dropped by the policy (no SA); the kernel asks for one.
        let _ = s.send_to(b"x", "[fd00:2::5]:9");
        wait(
            fd,
            || ev.poll().unwrap(),
            |s| s.iter().any(|e| matches!(e, XfrmEvent::Acquire { .. })),
        )
    });
    let acquire = seen
        .iter()
        .find(|e| matches!(e, XfrmEvent::Acquire { .. }))
        .unwrap();
    let XfrmEvent::Acquire {
        src,
        dst,
        sel,
        policy,
    } = acquire
    else {
        unreachable!()
    };
    assert_eq!(src.to_string(), "10.93.0.1");
    assert_eq!(dst.to_string(), "10.93.0.2");
    let sel = sel.expect("the selector decodes");
    assert_eq!(sel.dst.to_string(), "fd00:2::5/128");
    // The policy the packet hit (the daemon rewrites it to release queued packets).
    let policy = policy.expect("the acquire names its policy");
    assert_eq!(policy.dir, agent::model::Dir::Out);
    assert_eq!(
        (policy.sel.src.to_string(), policy.sel.dst.to_string()),
        ("fd00:1::/64".to_string(), "fd00:2::/64".to_string())
    );
}

/// The policy an acquire names is the desired policy's key as the agent wrote it (the
/// daemon looks it up to rewrite that policy and release the packets queued on it).
#[test]
fn an_acquire_names_the_desired_policy_it_hit() {
    if !privileged("an_acquire_names_the_desired_policy_it_hit") {
        return;
    }
    let ns = TestNetns::new("acqkey");
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["link", "set", "v0", "up"]);
    ns.ip(&["link", "set", "v1", "up"]);
    ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "v0"]);
    let d = desired_from(SAMPLE_POLICIES);
    let keys: Vec<_> = d.policies.keys().copied().collect();
    let seen = ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert!(
            reconcile(&mut sock, &d, &Ownership::default(), false)
                .unwrap()
                .verified
        );
        let mut ev = XfrmEvents::open().unwrap();
        let fd = ev.as_raw_fd();
        let s = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
        // The `intranet` rule requires ESP and no SA exists: the kernel asks for one.
        let _ = s.send_to(b"x", "10.0.0.2:9");
        wait(
            fd,
            || ev.poll().unwrap(),
            |s| s.iter().any(|e| matches!(e, XfrmEvent::Acquire { .. })),
        )
    });
    let policy = seen.iter().find_map(|e| match e {
        XfrmEvent::Acquire { policy, .. } => Some(*policy),
        _ => None,
    });
    let policy = policy.flatten().expect("the acquire names its policy");
    assert!(
        keys.contains(&policy),
        "{policy} is not a desired policy key"
    );
    assert_eq!(policy.to_string(), "policy out 10.0.0.0/24 -> 10.0.0.0/24");
}

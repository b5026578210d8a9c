//! The daemon's IKEv2 driver (sockets, keying, timers) between two namespaces over veth:
//! two drivers negotiate a Child SA over real UDP 500 sockets and report matching SAs and
//! status; a peer from another CA is refused and counted; a silent peer fails by timeout
//! on tokio's paused clock. The host kernel has no ESP, so no SA is written here (the
//! reconciler's side is covered in UML). Skips without root.
//!   cargo test -p agent --test daemon_ike_netns

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agent::daemon::ike::view::IkeView;
use agent::daemon::ike::{IkeDriver, Negotiated};
use agent::ike_setup::IkeSetup;
use agent::kernel::ike_sockets::IkePorts;
use agent::keying::{lifetime, Acquire, Admission, Settings, Terms};
use agent::model::{SaDir, Selector};
use ike::cert::testpki::{config, Pki};
use ike::rng::SeededRng;
use support::ns::{privileged, TestNetns};
use tokio::time::{sleep_until, Instant};

const A: &str = "10.97.0.1";
const B: &str = "10.97.0.2";
const REQID: u32 = 0x7a00_0020;
/// Generous: only a broken exchange takes this long (real time).
const LIMIT: Duration = Duration::from_secs(30);
/// Past the initiator's whole retransmit schedule (0.5 s doubling, 8 sends: 127.5 s), on
/// the paused clock.
const PAUSED_LIMIT: Duration = Duration::from_secs(600);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Keys the pair (local, remote) over IKEv2; admits every authenticated peer.
struct Pair(IpAddr, IpAddr);

impl Admission for Pair {
    fn terms(&self, local: IpAddr, remote: IpAddr) -> Option<Terms> {
        ((local, remote) == (self.0, self.1))
            .then(|| Terms::transport(REQID, 64, lifetime(Duration::from_secs(3600))))
    }
    fn admit(&self, _: &ike::sa::Admission<'_>) -> bool {
        true
    }
}

fn topology() -> (TestNetns, TestNetns) {
    TestNetns::veth_pair(("dike1", "dike2"), (A, B))
}

/// What a driver ended with.
struct End {
    negotiated: Negotiated,
    view: IkeView,
}

/// A driver at `me` keying with `peer`, with credentials and trust `cfg`; with
/// `acquire` it starts the exchange. Runs until `done` or [`LIMIT`]; with `paused`, on
/// tokio's paused clock (which jumps whenever the driver waits, so only with no peer).
fn drive(
    ns: &TestNetns,
    cfg: ike::sa::Config,
    (me, peer, seed): (&'static str, &'static str, u8),
    (acquire, paused): (bool, bool),
    done: fn(&Negotiated, &IkeView) -> bool,
) -> std::thread::JoinHandle<End> {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        agent::kernel::netns::enter(&name).expect("enter netns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(paused)
            .build()
            .unwrap();
        rt.block_on(async move {
            let setup = IkeSetup {
                config: cfg,
                admission: Arc::new(Pair(ip(me), ip(peer))),
                settings: Settings::default(),
            };
            let now = || Instant::now().into_std();
            let mut d = IkeDriver::open(
                setup,
                Box::new(SeededRng::new(u64::from(seed))),
                IkePorts::default(),
                false,
                now(),
            )
            .expect("open IKE sockets");
            let mut negotiated = Negotiated::default();
            if acquire {
                let a = Acquire {
                    local: ip(me),
                    remote: ip(peer),
                    sel: Selector::between(
                        format!("{me}/32").parse().unwrap(),
                        format!("{peer}/32").parse().unwrap(),
                    ),
                    seq: 0,
                };
                negotiated = d.on_acquires(now(), &[a]).unwrap_or_default();
                d.release(now());
            }
            let end = Instant::now() + if paused { PAUSED_LIMIT } else { LIMIT };
            while Instant::now() < end && !done(&negotiated, &d.view(now(), 0)) {
                let wake = d.next_deadline(now()).map_or(end, Instant::from_std);
                let changed = tokio::select! {
                    r = d.recv() => d.on_datagram(now(), &r.expect("recv")),
                    _ = sleep_until(wake.min(end)) => d.on_timeout(now()),
                };
                // As the daemon does: the SAs are "installed" (kept here), then what
                // keying held for them is sent.
                if let Some(n) = changed {
                    negotiated = n;
                }
                d.release(now());
            }
            End {
                view: d.view(now(), 0),
                negotiated,
            }
        })
    })
}

fn both_ways(n: &Negotiated, _: &IkeView) -> bool {
    let dirs = |d| n.values().filter(|s| s.meta.dir == d).count();
    dirs(SaDir::In) == 1 && dirs(SaDir::Out) == 1
}

#[test]
fn two_drivers_negotiate_matching_sas_over_real_sockets() {
    if !privileged("two_drivers_negotiate_matching_sas_over_real_sockets") {
        return;
    }
    let (n1, n2) = topology();
    let pki = Pki::new("Corp CA", 1);
    let b = drive(
        &n2,
        config(&pki, &pki, B, 32),
        (B, A, 32),
        (false, false),
        both_ways,
    );
    let a = drive(
        &n1,
        config(&pki, &pki, A, 31),
        (A, B, 31),
        (true, false),
        both_ways,
    );
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert!(both_ways(&a.negotiated, &a.view), "A: {:?}", a.view);
    assert!(both_ways(&b.negotiated, &b.view), "B: {:?}", b.view);
    let spi = |e: &End, dir| {
        let (k, s) = (e.negotiated.iter())
            .find(|(_, s)| s.meta.dir == dir)
            .unwrap();
        assert_eq!(s.spec.reqid, REQID, "owned by the rule's reqid");
        (k.spi, k.dst, s.spec.src)
    };
    assert_eq!(
        spi(&a, SaDir::Out),
        spi(&b, SaDir::In),
        "A→B is B's inbound"
    );
    assert_eq!(
        spi(&b, SaDir::Out),
        spi(&a, SaDir::In),
        "B→A is A's inbound"
    );
    for (e, peer) in [(&a, B), (&b, A)] {
        let [p] = e.view.peers.as_slice() else {
            panic!("one peer: {:?}", e.view)
        };
        assert_eq!(p.address, Some(ip(peer)));
        assert_eq!(p.authority, "corp");
        assert_eq!(p.identity, peer, "identity from its certificate");
        assert!(p.established_unix.is_some());
        assert!(e.view.certificate_not_after.is_some_and(|t| t > 0));
        assert!(e.view.failures.is_empty(), "{:?}", e.view.failures);
    }
}

fn failed(_: &Negotiated, v: &IkeView) -> bool {
    !v.failures.is_empty()
}

#[test]
fn a_peer_from_another_ca_is_refused_and_counted() {
    if !privileged("a_peer_from_another_ca_is_refused_and_counted") {
        return;
    }
    let (n1, n2) = topology();
    let (corp, rogue) = (Pki::new("Corp CA", 1), Pki::new("Rogue CA", 2));
    // B (the responder) trusts only corp; A's certificate is from rogue.
    let b = drive(
        &n2,
        config(&corp, &corp, B, 32),
        (B, A, 32),
        (false, false),
        failed,
    );
    let a = drive(
        &n1,
        config(&rogue, &corp, A, 31),
        (A, B, 31),
        (true, false),
        failed,
    );
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert!(b.negotiated.is_empty() && a.negotiated.is_empty());
    assert_eq!(b.view.failures.get("auth-failed"), Some(&1), "{:?}", b.view);
    assert!(b.view.peers.is_empty(), "{:?}", b.view.peers);
}

#[test]
fn a_silent_peer_fails_by_timeout_on_the_paused_clock() {
    if !privileged("a_silent_peer_fails_by_timeout_on_the_paused_clock") {
        return;
    }
    let (n1, _n2) = topology();
    let pki = Pki::new("Corp CA", 1);
    // Nobody runs IKE at B: A retransmits (0.5 s, doubling, 8 tries) and gives up.
    let a = drive(
        &n1,
        config(&pki, &pki, A, 31),
        (A, B, 31),
        (true, true),
        failed,
    );
    let a = a.join().unwrap();
    assert_eq!(a.view.failures.get("timeout"), Some(&1), "{:?}", a.view);
    assert!(a.negotiated.is_empty());
    assert!(a.view.peers.is_empty(), "the peer is dropped: {:?}", a.view);
}

#[test]
fn a_policy_without_ike_opens_no_ike_socket() {
    use support::daemon::{rig, view, Daemon};
    let Some((ns, files)) = rig("a_policy_without_ike_opens_no_ike_socket", "noike") else {
        return;
    };
    let _d = Daemon::start(&ns, &files, &[]);
    let v = view(&ns).expect("the daemon answers");
    assert!(v["ike"].is_null(), "no IKE view: {}", v["ike"]);
    // UDP 500 is free in the daemon's namespace: nothing listens for IKE.
    let free = ns.run(|| std::net::UdpSocket::bind("0.0.0.0:500").is_ok());
    assert!(free, "UDP 500 is held without IKE");
}

//! The IKE sockets between two namespaces over veth, under `require` policies for all UDP
//! between them (no exemption for IKE): datagrams on 500 and 4500, IPv4 and IPv6, arrive
//! with the local address they were sent to, the NAT-T marker is added and stripped, NAT
//! keepalives never reach the caller, and answers leave from the address asked on. Runs
//! on the host kernel (no ESP needed); skips without root.
//!   cargo test -p agent --test ike_sockets_netns

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use agent::kernel::ike_sockets::{Datagram, IkePorts, IkeSockets};
use ike::sa::Transmit;
use support::ns::{privileged, TestNetns};

/// Generous: only a broken path takes this long.
const LIMIT: Duration = Duration::from_secs(30);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `f` on a new thread inside namespace `name`, on a current-thread tokio runtime.
fn spawn_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let name = name.to_string();
    std::thread::spawn(move || {
        agent::kernel::netns::enter(&name).expect("enter netns");
        f()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    (tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build())
    .unwrap()
}

/// A counter of /proc/net/xfrm_stat as the namespace's own thread sees it.
fn xfrm_counter(ns: &TestNetns, name: &'static str) -> u64 {
    let text = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/xfrm_stat").unwrap());
    agent::report::peers::parse_xfrm_stat(&text)
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Two namespaces over veth: ns1 10.98.0.1 + .11, fd98::1; ns2 10.98.0.2 + .3, fd98::2;
/// each with `require` (ESP template, no SA) for all UDP between them, both ways.
fn topology() -> (TestNetns, TestNetns) {
    let (n1, n2) = (TestNetns::new("ike1"), TestNetns::new("ike2"));
    n1.ip(&[
        "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &n2.name,
    ]);
    let addrs = [
        (&n1, "va", ["10.98.0.1/24", "10.98.0.11/24", "fd98::1/64"]),
        (&n2, "vb", ["10.98.0.2/24", "10.98.0.3/24", "fd98::2/64"]),
    ];
    for (n, dev, list) in addrs {
        for a in list {
            n.ip(&["addr", "add", a, "dev", dev, "nodad"]);
        }
        n.ip(&["link", "set", dev, "up"]);
        n.ip(&["link", "set", "lo", "up"]);
        for net in ["10.98.0.0/24", "fd98::/64"] {
            for dir in ["in", "out"] {
                n.ip(&[
                    "xfrm",
                    "policy",
                    "add",
                    "dir",
                    dir,
                    "src",
                    net,
                    "dst",
                    net,
                    "proto",
                    "udp",
                    "tmpl",
                    "proto",
                    "esp",
                    "mode",
                    "transport",
                ]);
            }
        }
    }
    (n1, n2)
}

/// What ns1 sends (source, destination, IKE bytes); keepalives go in between.
fn messages() -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    vec![
        (addr("10.98.0.11:500"), addr("10.98.0.3:500"), vec![1; 40]),
        (addr("10.98.0.1:4500"), addr("10.98.0.2:4500"), vec![2; 40]),
        (addr("[fd98::1]:500"), addr("[fd98::2]:500"), vec![3; 40]),
        (addr("[fd98::1]:4500"), addr("[fd98::2]:4500"), vec![4; 40]),
    ]
}

/// ns2: answer each IKE message from the address it came to, until `n` arrived.
fn responder(ns: &TestNetns, n: usize) -> JoinHandle<Vec<Datagram>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = spawn_in(&ns.name, move || {
        runtime().block_on(async move {
            let socks = IkeSockets::open(IkePorts::default(), true).expect("open IKE sockets");
            ready_tx.send(()).unwrap();
            let mut got = Vec::new();
            while got.len() < n {
                let d = tokio::time::timeout(LIMIT, socks.recv()).await;
                let d = d.expect("an IKE datagram in time").expect("recv");
                let answer = Transmit {
                    from: d.to,
                    to: d.from,
                    payload: d.payload.iter().map(|b| b ^ 0x80).collect(),
                };
                socks.send(&answer).await.expect("answer");
                got.push(d);
            }
            got
        })
    });
    ready_rx.recv_timeout(LIMIT).expect("responder ready");
    h
}

/// ns1: send each message (a keepalive first on 4500) and wait for its answer.
fn initiator(ns: &TestNetns) -> Vec<Datagram> {
    spawn_in(&ns.name, move || {
        runtime().block_on(async move {
            let socks = IkeSockets::open(IkePorts::default(), true).expect("open IKE sockets");
            let stray = Transmit {
                from: addr("10.98.0.1:501"),
                to: addr("10.98.0.2:500"),
                payload: vec![9; 40],
            };
            let err = socks.send(&stray).await.expect_err("no socket on port 501");
            assert_eq!(err.kind(), std::io::ErrorKind::AddrNotAvailable);
            let mut answers = Vec::new();
            for (from, to, payload) in messages() {
                if from.port() == 4500 {
                    socks.send_keepalive(from, to).await.expect("keepalive");
                }
                socks
                    .send(&Transmit { from, to, payload })
                    .await
                    .expect("send");
                let d = tokio::time::timeout(LIMIT, socks.recv()).await;
                answers.push(d.expect("an answer in time").expect("recv"));
            }
            answers
        })
    })
    .join()
    .unwrap()
}

#[test]
fn ike_passes_require_policies_with_addresses_and_framing_intact() {
    if !privileged("ike_passes_require_policies_with_addresses_and_framing_intact") {
        return;
    }
    let (n1, n2) = topology();

    // The control: plain UDP between the two is caught by the require policy.
    let before = xfrm_counter(&n1, "XfrmOutNoStates");
    n1.run(|| {
        let plain = std::net::UdpSocket::bind("10.98.0.1:0").unwrap();
        let _ = plain.send_to(b"plain", "10.98.0.2:500");
    });
    let caught = xfrm_counter(&n1, "XfrmOutNoStates");
    assert!(
        caught > before,
        "plain UDP was not caught: {before} -> {caught}"
    );

    let server = responder(&n2, messages().len());
    let answers = initiator(&n1);
    let got = server.join().unwrap();

    let sent = messages();
    assert_eq!(got.len(), sent.len());
    for ((from, to, payload), d) in sent.iter().zip(&got) {
        assert_eq!((d.from, d.to), (*from, *to), "addresses as sent");
        assert_eq!(&d.payload, payload, "marker stripped, keepalive dropped");
    }
    for ((from, to, payload), a) in sent.iter().zip(&answers) {
        assert_eq!(
            (a.from, a.to),
            (*to, *from),
            "answered from the address asked on"
        );
        let back: Vec<u8> = payload.iter().map(|b| b ^ 0x80).collect();
        assert_eq!(a.payload, back);
    }
    let after = xfrm_counter(&n1, "XfrmOutNoStates");
    assert_eq!(after, caught, "no IKE datagram was caught by the policy");
    let v6: IpAddr = "fd98::2".parse().unwrap();
    assert!(got.iter().any(|d| d.to.ip() == v6));
}

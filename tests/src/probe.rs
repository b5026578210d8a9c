//! Traffic for the matrix: an echo server and a prober, run inside the lab hosts by the
//! `lab-probe` binary (one process per host and phase: processes are slow under UML).
//!
//! The prober reads one [`Batch`] (JSON) on stdin and prints one JSON array of [`Result`]s.
//! Each probe is bracketed by wall-clock timestamps so the captures can be cut per probe.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// One connection attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    pub id: usize,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// "icmp", "tcp" or "udp".
    pub proto: String,
    pub port: u16,
}

/// What the prober is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Batch {
    /// Run all probes at once (only for probes whose windows need not be told apart).
    pub concurrent: bool,
    pub timeout_ms: u64,
    /// Quiet time after each probe, inside its window (lets the last TCP ACK go out).
    pub settle_ms: u64,
    pub probes: Vec<Probe>,
}

/// The outcome of one probe.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Result {
    pub id: usize,
    /// The echo came back intact.
    pub ok: bool,
    pub detail: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Run a batch and return one result per probe, in input order.
pub fn run_batch(b: &Batch) -> Vec<Result> {
    let timeout = Duration::from_millis(b.timeout_ms);
    let settle = Duration::from_millis(b.settle_ms);
    if b.concurrent {
        let handles: Vec<_> = b
            .probes
            .iter()
            .cloned()
            .map(|p| std::thread::spawn(move || run_one(&p, timeout, settle)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    } else {
        b.probes
            .iter()
            .map(|p| run_one(p, timeout, settle))
            .collect()
    }
}

fn run_one(p: &Probe, timeout: Duration, settle: Duration) -> Result {
    let start_ns = now_ns();
    let payload = format!("xfrm-lab probe {} {} -> {}\n", p.id, p.src, p.dst).into_bytes();
    let r = match p.proto.as_str() {
        "tcp" => tcp(p, &payload, timeout),
        "udp" => udp(p, &payload, timeout),
        "icmp" => icmp(p, &payload, timeout),
        other => Err(std::io::Error::other(format!("unknown protocol {other}"))),
    };
    std::thread::sleep(settle);
    let (ok, detail) = match r {
        Ok(()) => (true, "echoed".to_string()),
        Err(e) => (false, e.to_string()),
    };
    Result {
        id: p.id,
        ok,
        detail,
        start_ns,
        end_ns: now_ns(),
    }
}

fn domain(a: &IpAddr) -> Domain {
    if a.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

fn tcp(p: &Probe, payload: &[u8], timeout: Duration) -> std::io::Result<()> {
    let s = Socket::new(domain(&p.dst), Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SocketAddr::new(p.src, 0).into())?;
    s.connect_timeout(&SocketAddr::new(p.dst, p.port).into(), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut stream: std::net::TcpStream = s.into();
    stream.write_all(payload)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::new();
    stream.read_to_end(&mut back)?;
    expect_echo(payload, &back)
}

fn udp(p: &Probe, payload: &[u8], timeout: Duration) -> std::io::Result<()> {
    let s = UdpSocket::bind(SocketAddr::new(p.src, 0))?;
    s.connect(SocketAddr::new(p.dst, p.port))?;
    s.set_read_timeout(Some(timeout))?;
    s.send(payload)?;
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf)?;
    expect_echo(payload, &buf[..n])
}

/// ICMP echo over a ping socket (no raw socket; provision/net opens ping_group_range).
fn icmp(p: &Probe, payload: &[u8], timeout: Duration) -> std::io::Result<()> {
    let (proto, request, reply) = if p.dst.is_ipv6() {
        (Protocol::ICMPV6, 128u8, 129u8)
    } else {
        (Protocol::ICMPV4, 8u8, 0u8)
    };
    let s = Socket::new(domain(&p.dst), Type::DGRAM, Some(proto))?;
    s.bind(&SocketAddr::new(p.src, 0).into())?;
    s.connect(&SockAddr::from(SocketAddr::new(p.dst, 0)))?;
    let seq = (p.id as u16).to_be_bytes();
    let mut msg = vec![request, 0, 0, 0, 0, 0, seq[0], seq[1]];
    msg.extend_from_slice(payload);
    s.send(&msg)?;
    let deadline = Instant::now() + timeout;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        let n = s.recv(&mut buf)?;
        // SAFETY: recv initialised the first n bytes.
        let got: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        if n >= 8 && got[0] == reply && got[6..8] == seq {
            return expect_echo(payload, &got[8..]);
        }
    }
}

fn expect_echo(sent: &[u8], back: &[u8]) -> std::io::Result<()> {
    if sent == back {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "echo mismatch: sent {} bytes, got {}",
            sent.len(),
            back.len()
        )))
    }
}

/// The UDP port capture markers are sent to on the loopback (discard).
pub const MARK_PORT: u16 = 9;

/// A socket bound to `at`; with `freebind` the address need not be configured yet (a
/// cluster's virtual address, served by whichever member holds it).
fn bound(at: SocketAddr, ty: Type, proto: Protocol, freebind: bool) -> std::io::Result<Socket> {
    let s = Socket::new(domain(&at.ip()), ty, Some(proto))?;
    if freebind {
        if at.is_ipv6() {
            s.set_freebind_v6(true)?;
        } else {
            s.set_freebind_v4(true)?;
        }
    }
    if ty == Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.bind(&at.into())?;
    Ok(s)
}

/// Serve TCP and UDP echo on every (address, port) until `control` reaches EOF.
/// Specific addresses, not a wildcard: a UDP reply must leave from the address that was
/// asked (a router has several). Each `mark` line on `control` sends one datagram to
/// 127.0.0.1:9 and answers `marked`: a capture that has seen it has seen everything sent
/// before it (libpcap delivers packets in order). `announce DEV ADDR` announces ADDR on
/// DEV (gratuitous ARP or unsolicited Neighbor Advertisement, [`crate::garp`]) and answers
/// `announced`.
pub fn serve(
    addrs: &[IpAddr],
    tcp_ports: &[u16],
    udp_ports: &[u16],
    freebind: bool,
    control: impl std::io::BufRead,
) -> std::io::Result<()> {
    for a in addrs {
        for &port in tcp_ports {
            let s = bound(
                SocketAddr::new(*a, port),
                Type::STREAM,
                Protocol::TCP,
                freebind,
            )?;
            s.listen(128)?;
            let l: TcpListener = s.into();
            std::thread::spawn(move || {
                for conn in l.incoming().flatten() {
                    std::thread::spawn(move || echo_tcp(conn));
                }
            });
        }
        for &port in udp_ports {
            let s: UdpSocket = bound(
                SocketAddr::new(*a, port),
                Type::DGRAM,
                Protocol::UDP,
                freebind,
            )?
            .into();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            });
        }
    }
    println!("ready");
    std::io::stdout().flush()?;
    let marker = UdpSocket::bind("127.0.0.1:0")?;
    for line in control.lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["mark"] => {
                marker.send_to(b"xfrm-lab mark", ("127.0.0.1", MARK_PORT))?;
                println!("marked");
            }
            // From a process already running in the host: no process start (slow under
            // UML) between taking an address and announcing it.
            ["announce", dev, addr] => match addr.parse() {
                Ok(a) => match crate::garp::announce(dev, a) {
                    Ok(()) => println!("announced"),
                    Err(e) => println!("announce failed: {e}"),
                },
                Err(e) => println!("announce failed: {addr}: {e}"),
            },
            _ => {}
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}

fn echo_tcp(mut c: std::net::TcpStream) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut data = Vec::new();
    if c.read_to_end(&mut data).is_ok() {
        let _ = c.write_all(&data);
    }
}

//! IKEv2 initiator load for `scripts/bench-ike`: many peers, one per source address, each
//! running IKE_SA_INIT + IKE_AUTH (+ one Child SA) with the responder under test, built on
//! the `ike` crate's sans-I/O endpoint. The same load for xfrm-agent and for charon.
//!
//! ike_load --remote IP --first IP --seq N --burst M --cert F --key F --ca F --crl F
//!          [--id FQDN] [--rss-pid PID] [--settle-ms MS]
//!
//! Peers use the addresses --first, --first+1, … (they must exist on this host): first N
//! handshakes one after the other (latency-bound rate), then M more started at once (the
//! burst: time until all are established). Nothing is deleted: every IKE SA stays up at
//! the responder. With --rss-pid, the responder's VmRSS is read (/proc/PID/status) before
//! the burst and --settle-ms after its last handshake: the memory the burst's SAs hold.
//! Prints `key=value` lines (`seq …`, `burst …`, `rss …`); times are printed, never judged.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use ike::cert::{CertVerifier, RevocationMode};
use ike::codec::{Id, IdType};
use ike::crypto::{Cipher, DhGroup};
use ike::sa::{Config, Endpoint, Event, Retransmit, SaId};

const IKE_PORT: u16 = 500;

struct Args {
    remote: IpAddr,
    first: Ipv4Addr,
    seq: usize,
    burst: usize,
    cert: String,
    key: String,
    ca: String,
    crl: String,
    id: String,
    rss_pid: Option<u32>,
    settle: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut kv: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else {
            bail!("unexpected argument {k}");
        };
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        kv.insert(name.to_string(), v);
    }
    let mut take = |k: &str| kv.remove(k).with_context(|| format!("--{k} is required"));
    let args = Args {
        remote: take("remote")?.parse()?,
        first: take("first")?.parse()?,
        seq: take("seq")?.parse()?,
        burst: take("burst")?.parse()?,
        cert: take("cert")?,
        key: take("key")?,
        ca: take("ca")?,
        crl: take("crl")?,
        id: take("id").unwrap_or_else(|_| "load.bench".into()),
        rss_pid: take("rss-pid").ok().map(|p| p.parse()).transpose()?,
        settle: Duration::from_millis(take("settle-ms").map_or(Ok(1000), |s| s.parse())?),
    };
    if let Some(k) = kv.keys().next() {
        bail!("unknown option --{k}");
    }
    Ok(args)
}

/// The OS's randomness.
struct Urandom(std::fs::File);

impl ike::Rng for Urandom {
    fn fill(&mut self, out: &mut [u8]) {
        self.0.read_exact(out).expect("/dev/urandom");
    }
}

/// The initiators' configuration: one identity and certificate for every peer (both
/// responders admit it by CA, and neither folds IKE SAs by identity: charon has
/// `unique = never`), one suite so both responders do the same work.
fn config(a: &Args) -> anyhow::Result<Config> {
    let read = |p: &str| std::fs::read(p).with_context(|| p.to_string());
    let mut verifier = CertVerifier::new();
    verifier.add_authority(
        "bench",
        &[&read(&a.ca)?],
        &[&read(&a.crl)?],
        RevocationMode::Strict,
    )?;
    let key = ike::auth::SigningKey::from_pem(&read(&a.key)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.key))?;
    let pem = read(&a.cert)?;
    let (_, cert) = x509_parser::pem::parse_x509_pem(&pem).context("certificate PEM")?;
    let id = Id {
        id_type: IdType::FQDN,
        data: a.id.as_bytes().to_vec(),
    };
    let mut c = Config::new(key, vec![cert.contents], id, verifier);
    c.ike_ciphers = vec![Cipher::AesGcm16 { bits: 128 }];
    c.esp_ciphers = vec![Cipher::AesGcm16 { bits: 128 }];
    c.groups = vec![DhGroup::Curve25519];
    // A loaded one-CPU UML answers late: retransmit slowly rather than add to the load.
    c.retransmit = Retransmit {
        initial: Duration::from_secs(2),
        max_tries: 6,
    };
    c.check().context("our certificate, key and identity")?;
    Ok(c)
}

/// One UDP socket on port 500 per peer address.
struct Sockets {
    socks: Vec<UdpSocket>,
    by_addr: HashMap<SocketAddr, usize>,
}

impl Sockets {
    fn bind(first: Ipv4Addr, n: usize) -> anyhow::Result<Sockets> {
        raise_fd_limit(n + 64);
        let mut s = Sockets {
            socks: Vec::with_capacity(n),
            by_addr: HashMap::new(),
        };
        for i in 0..n {
            let ip = Ipv4Addr::from(u32::from(first) + i as u32);
            let addr = SocketAddr::new(IpAddr::V4(ip), IKE_PORT);
            let sock = UdpSocket::bind(addr).with_context(|| format!("bind {addr}"))?;
            sock.set_nonblocking(true)?;
            s.by_addr.insert(addr, i);
            s.socks.push(sock);
        }
        Ok(s)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.socks[i].local_addr().expect("bound")
    }

    fn send(&self, t: &ike::sa::Transmit) -> anyhow::Result<()> {
        let i = *self
            .by_addr
            .get(&t.from)
            .with_context(|| format!("no socket for {} (NAT-T is not used here)", t.from))?;
        // A full queue under the burst is a loss; the endpoint retransmits.
        let _ = self.socks[i].send_to(&t.payload, t.to);
        Ok(())
    }

    /// Waits up to `timeout` for datagrams; returns (from, to, bytes) of all queued ones.
    fn recv(&self, timeout: Duration) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut fds: Vec<libc::pollfd> = (self.socks.iter())
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.as_millis().min(1000) as i32;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let mut out = Vec::new();
        if n <= 0 {
            return out;
        }
        let mut buf = vec![0u8; 65535];
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            while let Ok((len, from)) = self.socks[i].recv_from(&mut buf) {
                out.push((from, self.addr(i), buf[..len].to_vec()));
            }
        }
        out
    }
}

fn raise_fd_limit(want: usize) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && (r.rlim_cur as usize) < want {
            r.rlim_cur = r.rlim_max.max(want as libc::rlim_t);
            r.rlim_max = r.rlim_cur;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// The outcome of one phase: handshake times, failures, wall time until the last one.
#[derive(Default)]
struct Phase {
    done_ms: Vec<f64>,
    failed: Vec<String>,
    wall: Duration,
}

/// Drives the endpoint: starts the peers `range` at most `window` at a time and returns
/// once each has its Child SA or has failed.
fn run_phase(
    ep: &mut Endpoint,
    socks: &Sockets,
    remote: IpAddr,
    range: std::ops::Range<usize>,
    window: usize,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let total = range.len();
    let mut next = range.start;
    let mut started: HashMap<SaId, Instant> = HashMap::new();
    let mut phase = Phase::default();
    while phase.done_ms.len() + phase.failed.len() < total {
        let now = Instant::now();
        while next < range.end && started.len() < window {
            let sa = ep.initiate(
                now,
                socks.addr(next),
                SocketAddr::new(remote, IKE_PORT),
                None,
            );
            started.insert(sa, now);
            next += 1;
        }
        flush(ep, socks)?;
        let wait = ep.poll_timeout().map_or(Duration::from_millis(100), |t| {
            t.saturating_duration_since(now)
        });
        let mut events = Vec::new();
        for (from, to, bytes) in socks.recv(wait) {
            events.extend(ep.handle(Instant::now(), from, to, &bytes));
        }
        events.extend(ep.handle_timeout(Instant::now()));
        for e in events {
            let (sa, failure) = match e {
                Event::ChildSaReady(c) if c.rekeyed.is_none() => (c.sa, None),
                Event::Failed { sa, reason } => (sa, Some(reason.to_string())),
                Event::ChildRefused { sa, notify } => (sa, Some(format!("child refused {notify}"))),
                _ => continue,
            };
            let Some(t0) = started.remove(&sa) else {
                continue;
            };
            match failure {
                None => phase.done_ms.push(t0.elapsed().as_secs_f64() * 1e3),
                Some(f) => phase.failed.push(f),
            }
        }
        flush(ep, socks)?;
    }
    phase.wall = start.elapsed();
    Ok(phase)
}

fn flush(ep: &mut Endpoint, socks: &Sockets) -> anyhow::Result<()> {
    while let Some(t) = ep.poll_transmit(Instant::now()) {
        socks.send(&t)?;
    }
    Ok(())
}

/// Keeps answering the responder (retransmitted requests, liveness checks) for `d`.
fn serve_for(ep: &mut Endpoint, socks: &Sockets, d: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        for (from, to, bytes) in socks.recv(Duration::from_millis(50)) {
            ep.handle(Instant::now(), from, to, &bytes);
        }
        ep.handle_timeout(Instant::now());
        flush(ep, socks)?;
    }
    Ok(())
}

fn vm_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

fn report(label: &str, p: &Phase) {
    let mut ms = p.done_ms.clone();
    ms.sort_by(f64::total_cmp);
    let pct = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q) as usize).copied();
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    let wall = p.wall.as_secs_f64();
    println!(
        "{label} ok={} failed={} wall_s={wall:.2} rate={:.1} p50_ms={} p90_ms={} max_ms={}",
        ms.len(),
        p.failed.len(),
        ms.len() as f64 / wall,
        f(pct(0.5)),
        f(pct(0.9)),
        f(ms.last().copied()),
    );
    if let Some(first) = p.failed.first() {
        println!("{label}-first-failure {first}");
    }
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let socks = Sockets::bind(a.first, a.seq + a.burst)?;
    let rng = Urandom(std::fs::File::open("/dev/urandom")?);
    let mut ep = Endpoint::new(
        config(&a)?,
        Box::new(rng),
        Instant::now(),
        SystemTime::now(),
    );
    let rss = |when: &str| -> anyhow::Result<Option<u64>> {
        let Some(pid) = a.rss_pid else {
            return Ok(None);
        };
        let kb = vm_rss_kb(pid)?;
        println!("rss-{when} kb={kb}");
        Ok(Some(kb))
    };
    rss("start")?;
    let seq = run_phase(&mut ep, &socks, a.remote, 0..a.seq, 1)?;
    report("seq", &seq);
    serve_for(&mut ep, &socks, a.settle)?;
    let before = rss("before-burst")?;
    let burst = run_phase(&mut ep, &socks, a.remote, a.seq..a.seq + a.burst, a.burst)?;
    report("burst", &burst);
    serve_for(&mut ep, &socks, a.settle)?;
    if let (Some(b), Some(after)) = (before, rss("after-burst")?) {
        let n = burst.done_ms.len().max(1) as f64;
        println!(
            "rss-per-sa bytes={:.0} sas={}",
            (after as f64 - b as f64) * 1024.0 / n,
            burst.done_ms.len()
        );
    }
    println!("ike-sas-held {}", ep.ike_sa_count());
    Ok(())
}

//! One IKEv2 handshake over UDP, as initiator or responder, for the strongSwan interop
//! check in the lab (`ike/lab/interop.sh`): prints the peer, the Child SA (SPIs, keys) and,
//! for each IKE SA, SKEYSEED and SK_* (`keymat` lines, through `Config::key_log`: test keys
//! only; the library never logs them), and `listening` once its sockets are bound.
//!
//! lab_peer initiate|respond LOCAL_IP REMOTE_IP CERT KEY CA CRL [rekey|await-rekey]   (files PEM)
//!
//! CERT holds our certificate, then any intermediates to send; CRL one CRL per issuer.
//!
//! With `rekey`, the IKE SA is rekeyed once the Child SA is up, then the Child SA through
//! the new IKE SA (CREATE_CHILD_SA with PFS); with `await-rekey`, it waits until the peer
//! has done both (and deleted the old SAs).
//!
//! Listens on ports 500 and 4500 (IKE there carries the 4-byte non-ESP marker, RFC 3948).

use std::fs;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ike::cert::{CertVerifier, RevocationMode};
use ike::codec::Id;
use ike::sa::{Config, Endpoint, Event, KeyLogEntry};

/// The OS's randomness.
struct UrandomRng(fs::File);

impl ike::Rng for UrandomRng {
    fn fill(&mut self, out: &mut [u8]) {
        self.0.read_exact(out).expect("/dev/urandom");
    }
}

/// Every PEM block of `path` (DER): our certificate first, then intermediates to send.
fn pem_ders(path: &str) -> Vec<Vec<u8>> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ders: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .map(|pem| pem.expect("PEM").contents)
        .collect();
    assert!(!ders.is_empty(), "{path}: no PEM certificate");
    ders
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Our sockets on ports 500 and 4500.
struct Sockets {
    ike: UdpSocket,
    natt: UdpSocket,
}

impl Sockets {
    fn bind(ip: IpAddr) -> Sockets {
        let ike = UdpSocket::bind(SocketAddr::new(ip, 500)).expect("bind 500");
        let natt = UdpSocket::bind(SocketAddr::new(ip, 4500)).expect("bind 4500");
        for s in [&ike, &natt] {
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        }
        Sockets { ike, natt }
    }

    fn send(&self, t: &ike::sa::Transmit) {
        if t.from.port() == 4500 {
            let framed = [&[0u8; 4][..], &t.payload].concat();
            self.natt.send_to(&framed, t.to).expect("send 4500");
        } else {
            self.ike.send_to(&t.payload, t.to).expect("send 500");
        }
    }

    /// One IKE datagram: (from, to, bytes); ESP on 4500 (non-zero marker) is skipped.
    fn recv(&self, buf: &mut [u8]) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        for (s, marker) in [(&self.ike, false), (&self.natt, true)] {
            if let Ok((n, from)) = s.recv_from(buf) {
                let to = s.local_addr().unwrap();
                match (marker, buf[..n].split_at_checked(4)) {
                    (false, _) => return Some((from, to, buf[..n].to_vec())),
                    (true, Some((m, rest))) if m == [0u8; 4] => {
                        return Some((from, to, rest.to_vec()))
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.last().map(String::as_str) {
        Some(m @ ("rekey" | "await-rekey")) => m.to_string(),
        _ => String::new(),
    };
    if !mode.is_empty() {
        args.pop();
    }
    let (rekey, waits_for_rekey) = (mode == "rekey", !mode.is_empty());
    let [role, local, remote, cert, key, ca, crl] = <[String; 7]>::try_from(args)
        .expect("usage: initiate|respond LOCAL_IP REMOTE_IP CERT KEY CA CRL [rekey|await-rekey]");
    let (local_ip, remote_ip): (IpAddr, IpAddr) = (local.parse().unwrap(), remote.parse().unwrap());
    let mut verifier = CertVerifier::new();
    verifier
        .add_authority(
            "lab",
            &[&fs::read(&ca).unwrap()],
            &[&fs::read(&crl).unwrap()],
            RevocationMode::Strict,
        )
        .expect("CA and CRL");
    let key = ike::auth::SigningKey::from_pem(&fs::read(&key).unwrap()).expect("key");
    let mut config = Config::new(key, pem_ders(&cert), Id::from_ip(local_ip), verifier);
    config.key_log = Some(Arc::new(print_keymat));
    let rng = UrandomRng(fs::File::open("/dev/urandom").unwrap());
    let start = Instant::now();
    let mut ep = Endpoint::new(config, Box::new(rng), start, SystemTime::now());
    let sockets = Sockets::bind(local_ip);
    println!("listening on {local_ip} ports 500 and 4500");
    if role == "initiate" {
        let (local, remote) = (
            SocketAddr::new(local_ip, 500),
            SocketAddr::new(remote_ip, 500),
        );
        ep.initiate(start, local, remote, Some(Id::from_ip(remote_ip)));
    }
    let mut buf = vec![0u8; 65535];
    let mut done_at = None;
    let (mut ike_rekey_of, mut new_sa, mut child_rekey_in, mut child_spi) = (None, None, None, 0);
    loop {
        let now = Instant::now();
        let mut events = ep.handle_timeout(now);
        // Requests wait for the exchange before them (window size 1): retry until accepted.
        if let Some(more) = ike_rekey_of.and_then(|sa| ep.rekey_ike(now, sa)) {
            println!("IKE rekey requested");
            ike_rekey_of = None;
            events.extend(more);
        }
        if let Some(more) = child_rekey_in.and_then(|sa| ep.rekey_child(now, sa, child_spi)) {
            println!("Child SA rekey requested");
            child_rekey_in = None;
            events.extend(more);
        }
        if let Some((from, to, bytes)) = sockets.recv(&mut buf) {
            events.extend(ep.handle(Instant::now(), from, to, &bytes));
        }
        while let Some(t) = ep.poll_transmit(Instant::now()) {
            sockets.send(&t);
        }
        for event in events {
            let finished = match &event {
                Event::ChildSaReady(c) if c.rekeyed.is_none() => {
                    child_spi = c.spi_in;
                    ike_rekey_of = Some(c.sa).filter(|_| rekey);
                    !waits_for_rekey
                }
                Event::IkeRekeyed { new, .. } => {
                    new_sa = Some(*new);
                    false
                }
                // The old IKE SA is gone: rekey the Child SA through the new one.
                Event::Deleted { .. } => {
                    child_rekey_in = new_sa.filter(|_| rekey);
                    false
                }
                Event::ChildDeleted { .. } => waits_for_rekey,
                Event::PeerAuthenticated { .. } | Event::ChildSaReady(_) => false,
                _ => true,
            };
            report(event);
            if finished {
                done_at.get_or_insert(Instant::now());
            }
        }
        while let Some(t) = ep.poll_transmit(Instant::now()) {
            sockets.send(&t);
        }
        // Linger after the Child SA to answer retransmissions and liveness checks.
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            return;
        }
        if start.elapsed() > Duration::from_secs(60) {
            println!("failed: no Child SA within 60 s");
            std::process::exit(1);
        }
    }
}

/// One line per IKE SA, named as charon's `ike = 4` log names them (no SK_ai/ar with an AEAD).
fn print_keymat(e: &KeyLogEntry<'_>) {
    let k = e.keys;
    let named = [
        ("SKEYSEED", e.skeyseed),
        ("Sk_d", &k.sk_d),
        ("Sk_ai", &k.sk_ai),
        ("Sk_ar", &k.sk_ar),
        ("Sk_ei", &k.sk_ei),
        ("Sk_er", &k.sk_er),
        ("Sk_pi", &k.sk_pi),
        ("Sk_pr", &k.sk_pr),
    ];
    let keys: Vec<String> = named
        .iter()
        .filter(|(_, s)| !s.expose().is_empty())
        .map(|(name, s)| format!("{name}={}", hex(s.expose())))
        .collect();
    println!(
        "keymat spi_i={:016x} spi_r={:016x} {}",
        e.spi_i,
        e.spi_r,
        keys.join(" ")
    );
}

fn report(event: Event) {
    match event {
        Event::PeerAuthenticated {
            authority, subject, ..
        } => println!("peer authority={authority} subject=\"{subject}\""),
        Event::ChildSaReady(c) => {
            let rekeyed = c.rekeyed.map_or("none".to_string(), |s| format!("{s:08x}"));
            println!(
                "child spi_in={:08x} spi_out={:08x} cipher={:?} remote={} rekeyed={rekeyed}",
                c.spi_in, c.spi_out, c.cipher, c.remote
            );
            println!("key_in={}", hex(c.keys_in.enc.expose()));
            println!("key_out={}", hex(c.keys_out.enc.expose()));
        }
        other => println!("event {other:?}"),
    }
}

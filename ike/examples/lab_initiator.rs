//! One IKEv2 handshake over UDP as initiator, for the strongSwan interop check in the lab
//! (`ike/lab/interop.sh`): prints the peer and the Child SA (SPIs and keys) it negotiated.
//!
//! lab_initiator LOCAL REMOTE CERT KEY CA CRL   (addresses as ip:port; files PEM)

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use ike::cert::{CertVerifier, RevocationMode};
use ike::codec::Id;
use ike::sa::{Config, Endpoint, Event};

/// The OS's randomness.
struct UrandomRng(fs::File);

impl ike::Rng for UrandomRng {
    fn fill(&mut self, out: &mut [u8]) {
        self.0.read_exact(out).expect("/dev/urandom");
    }
}

fn pem_der(path: &str) -> Vec<u8> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    x509_parser::pem::parse_x509_pem(&bytes)
        .expect("PEM")
        .1
        .contents
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [local, remote, cert, key, ca, crl] =
        <[String; 6]>::try_from(args).expect("usage: LOCAL REMOTE CERT KEY CA CRL");
    let (local, remote): (SocketAddr, SocketAddr) =
        (local.parse().unwrap(), remote.parse().unwrap());
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
    let config = Config::new(key, vec![pem_der(&cert)], Id::from_ip(local.ip()), verifier);
    let rng = UrandomRng(fs::File::open("/dev/urandom").unwrap());
    let start = Instant::now();
    let mut ep = Endpoint::new(config, Box::new(rng), start, SystemTime::now());
    let socket = UdpSocket::bind(local).expect("bind");
    ep.initiate(start, local, remote, Some(Id::from_ip(remote.ip())));
    let mut buf = vec![0u8; 65535];
    loop {
        let now = Instant::now();
        let mut events = ep.handle_timeout(now);
        while let Some(t) = ep.poll_transmit(now) {
            socket.send_to(&t.payload, t.to).expect("send");
        }
        let wait = ep
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
        socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            events.extend(ep.handle(Instant::now(), from, local, &buf[..n]));
        }
        while let Some(t) = ep.poll_transmit(Instant::now()) {
            socket.send_to(&t.payload, t.to).expect("send");
        }
        for event in events {
            match event {
                Event::PeerAuthenticated {
                    authority, subject, ..
                } => {
                    println!(
                        "peer authority={authority} subject=\"{subject}\" after_ms={}",
                        start.elapsed().as_millis()
                    )
                }
                Event::ChildSaReady(c) => {
                    println!(
                        "child spi_in={:08x} spi_out={:08x} cipher={:?}",
                        c.spi_in, c.spi_out, c.cipher
                    );
                    println!("key_in={}", hex(c.keys_in.enc.expose()));
                    println!("key_out={}", hex(c.keys_out.enc.expose()));
                    return;
                }
                other => {
                    println!("failed {other:?}");
                    std::process::exit(1);
                }
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            println!("failed: no Child SA within 30 s");
            std::process::exit(1);
        }
    }
}

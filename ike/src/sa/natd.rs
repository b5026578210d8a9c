//! NAT detection (RFC 7296 §2.23): hashes of each end's address and port in IKE_SA_INIT;
//! a mismatch means a NAT rewrote it, and then IKE moves to port 4500 and ESP goes in UDP.
//! `Config::force_encap` sends a false source hash so both ends encapsulate anyway (as
//! strongSwan's `encap = yes` does), for paths that drop IP protocol 50.

use std::net::{IpAddr, SocketAddr};

use sha1::{Digest, Sha1};

use super::endpoint::Ctx;
use super::ike_sa::{find_notifies, IkeSa};
use crate::codec::{notify, Notify, Payload};
use crate::rng::random_vec;

/// The NAT-T port.
pub(super) const NATT_PORT: u16 = 4500;

fn hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    h.update(&ip);
    h.update(addr.port().to_be_bytes());
    h.finalize().to_vec()
}

/// Our NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for a message from `local` to `remote`.
pub(super) fn payloads(
    sa: &IkeSa,
    ctx: &mut Ctx<'_>,
    local: SocketAddr,
    remote: SocketAddr,
) -> [Payload; 2] {
    let source = if ctx.config.force_encap {
        random_vec(ctx.rng, 20) // pretend a NAT is in front of us
    } else {
        hash(sa.spi_i, sa.spi_r, local)
    };
    [
        Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, source)),
        Payload::Notify(Notify::new(
            notify::NAT_DETECTION_DESTINATION_IP,
            hash(sa.spi_i, sa.spi_r, remote),
        )),
    ]
}

/// Whether `payloads` carry NAT detection at all.
pub(super) fn present(payloads: &[Payload]) -> bool {
    find_notifies(payloads, notify::NAT_DETECTION_DESTINATION_IP)
        .next()
        .is_some()
}

/// Records what the peer's NAT detection says about a message it sent from `remote` to
/// `local` (SPIs as in that message): whether each side is behind a NAT.
pub(super) fn detect(
    sa: &mut IkeSa,
    ctx: &Ctx<'_>,
    payloads: &[Payload],
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) {
    let their_source = hash(sa.spi_i, spi_r, remote);
    let our_address = hash(sa.spi_i, spi_r, local);
    sa.nat_remote = !find_notifies(payloads, notify::NAT_DETECTION_SOURCE_IP)
        .any(|h| h == their_source.as_slice());
    sa.nat_local = ctx.config.force_encap
        || find_notifies(payloads, notify::NAT_DETECTION_DESTINATION_IP)
            .any(|h| h != our_address.as_slice());
}

/// Moves the SA's addresses to port 4500 (the initiator does this for IKE_AUTH on a NAT).
pub(super) fn float(sa: &mut IkeSa) {
    sa.local.set_port(NATT_PORT);
    sa.remote.set_port(NATT_PORT);
}

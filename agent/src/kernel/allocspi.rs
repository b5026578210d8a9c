//! XFRM_MSG_ALLOCSPI: an inbound SPI chosen by the kernel within a range, held by a larval
//! state until the SA replaces it. An IKE responder or initiator needs its inbound SPI
//! before the keys exist; taking it from the kernel (as strongSwan's `get_spi` does)
//! guarantees it collides with no SA of this namespace, static ones included, as long as
//! the range is kept apart from the static SAs' SPI slots.
//!
//! The kernel (net/xfrm/xfrm_user.c, xfrm_alloc_userspi) looks the larval state up by the
//! acquire's sequence number when one is given (`seq`), else finds or creates one for the
//! addresses and reqid; it answers with the state (XFRM_MSG_NEWSA) carrying the SPI. The
//! larval state expires after `net.core.xfrm_acq_expires` seconds (30 by default) unless
//! the SA is installed over it with XFRM_MSG_UPDSA under the same SPI. Works without ESP
//! support in the kernel (nothing about the algorithm is known yet).

use std::net::IpAddr;

use netlink_packet_xfrm as x;
use netlink_packet_xfrm::{state, XfrmMessage};

use super::encode::{family, mode_num, to_request};
use super::{parse, KernelError, NlSocket};
use crate::model::{Mode, IPPROTO_ESP};

/// What an inbound SPI is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRequest {
    /// The peer (the SA's source).
    pub src: IpAddr,
    /// Our address (the SA's destination).
    pub dst: IpAddr,
    pub mode: Mode,
    pub reqid: u32,
    /// The acquire's sequence number (0: none).
    pub seq: u32,
    /// The SPI range, inclusive; the kernel refuses min > max and treats min = max as
    /// "exactly this SPI".
    pub min: u32,
    pub max: u32,
}

/// The request's netlink form.
pub fn request(r: &SpiRequest) -> XfrmMessage {
    let info = x::UserSaInfo {
        id: x::Id {
            daddr: x::Address::from_ip(&r.dst),
            spi: 0,
            proto: IPPROTO_ESP,
        },
        saddr: x::Address::from_ip(&r.src),
        seq: r.seq,
        reqid: r.reqid,
        family: family(&r.dst),
        mode: mode_num(r.mode),
        ..x::UserSaInfo::default()
    };
    XfrmMessage::AllocSpi(state::AllocSpiMessage {
        spi_info: x::UserSpiInfo {
            info,
            min: r.min,
            max: r.max,
        },
        nlas: vec![],
    })
}

/// Ask the kernel for an inbound SPI in `r`'s range.
pub fn alloc_spi(sock: &mut NlSocket, r: &SpiRequest) -> Result<u32, KernelError> {
    let mut spi = None;
    let acks = sock.transact_with(&[to_request(&request(r), 0)], |_, m| {
        if let Some(XfrmMessage::AddSa(s)) = parse(m) {
            spi = Some(s.user_sa_info.id.spi);
        }
    })?;
    if let Some(Err(nack)) = acks.into_iter().next() {
        return Err(KernelError::Nack(nack));
    }
    spi.ok_or_else(|| KernelError::Decode("ALLOCSPI answered without a state".into()))
}

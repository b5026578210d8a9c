//! This namespace's addresses (RTM_GETADDR over a raw NETLINK_ROUTE socket) → LocalAddrs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_sys::constants::NETLINK_ROUTE;

use super::error::KernelError;
use super::socket::{NlSocket, RawMsg};
use crate::plan::LocalAddrs;

const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// sizeof(struct ifaddrmsg).
const IFADDRMSG_LEN: usize = 8;

/// Every address configured in this namespace (loopback included).
pub fn local_addrs() -> Result<LocalAddrs, KernelError> {
    let mut sock = NlSocket::open(NETLINK_ROUTE)?;
    let mut out = LocalAddrs::new();
    // ifaddrmsg with family AF_UNSPEC: both families.
    sock.dump(
        RTM_GETADDR,
        &[0u8; IFADDRMSG_LEN],
        |m| {
            if let Some(a) = parse_addr(m) {
                out.insert(a);
            }
            Ok(())
        },
        || {},
    )?;
    Ok(out)
}

/// The address of an RTM_NEWADDR/RTM_DELADDR message: IFA_LOCAL when present (on
/// point-to-point links IFA_ADDRESS is the peer), else IFA_ADDRESS.
pub fn parse_addr(m: &RawMsg<'_>) -> Option<IpAddr> {
    if m.ty != RTM_NEWADDR && m.ty != RTM_NEWADDR + 1 {
        return None;
    }
    let p = m.payload;
    if p.len() < IFADDRMSG_LEN {
        return None;
    }
    let family = p[0];
    let (mut local, mut address) = (None, None);
    let mut off = IFADDRMSG_LEN;
    while off + 4 <= p.len() {
        let len = u16::from_ne_bytes([p[off], p[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([p[off + 2], p[off + 3]]);
        if len < 4 || off + len > p.len() {
            break;
        }
        let v = &p[off + 4..off + len];
        let ip = match (family as i32, v.len()) {
            (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
            (libc::AF_INET6, 16) => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
            _ => None,
        };
        match ty {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            _ => {}
        }
        off += (len + 3) & !3;
    }
    local.or(address)
}

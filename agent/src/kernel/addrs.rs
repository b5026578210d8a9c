//! This namespace's addresses (RTM_GETADDR over a raw NETLINK_ROUTE socket) → LocalAddrs.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::constants::NETLINK_ROUTE;
use netlink_sys::Socket;

use super::error::KernelError;
use super::socket::{NlSocket, RawMsg};
use crate::plan::LocalAddrs;

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
/// rtnetlink multicast groups (include/uapi/linux/rtnetlink.h).
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
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
    if m.ty != RTM_NEWADDR && m.ty != RTM_DELADDR {
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

/// An address appeared or went away (cluster failover moves addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrEvent {
    Added(IpAddr),
    Removed(IpAddr),
    /// Events were lost (overrun): read the whole address list again.
    Resync,
}

/// Non-blocking listener for RTM_NEWADDR/RTM_DELADDR, for tokio's AsyncFd.
pub struct AddrEvents {
    sock: Socket,
    buf: Vec<u8>,
}

impl AddrEvents {
    /// Subscribe in the current network namespace.
    pub fn open() -> Result<AddrEvents, KernelError> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.add_membership(RTNLGRP_IPV4_IFADDR)?;
        sock.add_membership(RTNLGRP_IPV6_IFADDR)?;
        sock.set_non_blocking(true)?;
        super::events::set_rcvbuf(sock.as_raw_fd());
        Ok(AddrEvents {
            sock,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Everything queued now; never blocks.
    pub fn poll(&mut self) -> Result<Vec<AddrEvent>, KernelError> {
        let mut out = Vec::new();
        loop {
            match super::events::recv(self.sock.as_raw_fd(), &mut self.buf) {
                Ok(n) => {
                    for m in super::socket::parse_msgs(&self.buf[..n])? {
                        let Some(a) = parse_addr(&m) else { continue };
                        out.push(if m.ty == RTM_NEWADDR {
                            AddrEvent::Added(a)
                        } else {
                            AddrEvent::Removed(a)
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.push(AddrEvent::Resync),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsRawFd for AddrEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

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
/// The full 32-bit flags (ifaddrmsg's `ifa_flags` holds only the low 8).
const IFA_FLAGS: u16 = 8;
/// include/uapi/linux/if_addr.h.
const IFA_F_OPTIMISTIC: u32 = 0x04;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;
/// sizeof(struct ifaddrmsg).
const IFADDRMSG_LEN: usize = 8;

/// Every address configured in this namespace (loopback included) that the kernel uses:
/// not an IPv6 address still in duplicate address detection (tentative, unless optimistic)
/// or one that failed it. Such an address stays listed, but the kernel neither delivers
/// to it nor sends from it (RFC 4862 §5.4), so this host does not hold it: a cluster
/// address added without `nodad` counts once DAD completes (the kernel announces that
/// with another RTM_NEWADDR), and one that failed DAD because another member still has
/// it never counts.
pub fn local_addrs() -> Result<LocalAddrs, KernelError> {
    let mut sock = NlSocket::open(NETLINK_ROUTE)?;
    let mut out = LocalAddrs::new();
    // ifaddrmsg with family AF_UNSPEC: both families.
    sock.dump(
        RTM_GETADDR,
        &[0u8; IFADDRMSG_LEN],
        |m| {
            if let Some((a, flags)) = parse(m) {
                if usable(flags) {
                    out.insert(a);
                }
            }
            Ok(())
        },
        || {},
    )?;
    Ok(out)
}

/// The index of the interface `addr` is configured on (None: not configured here).
pub fn interface_of(addr: IpAddr) -> Result<Option<u32>, KernelError> {
    let mut sock = NlSocket::open(NETLINK_ROUTE)?;
    let mut found = None;
    sock.dump(
        RTM_GETADDR,
        &[0u8; IFADDRMSG_LEN],
        |m| {
            if parse(m).is_some_and(|(a, _)| a == addr) {
                // struct ifaddrmsg { family, prefixlen, flags, scope; u32 index }.
                let i = &m.payload[4..8];
                found = found.or(Some(u32::from_ne_bytes([i[0], i[1], i[2], i[3]])));
            }
            Ok(())
        },
        // A restarted dump sees every address again; the first match is as good.
        || {},
    )?;
    Ok(found)
}

/// Whether the kernel uses an address with these `IFA_F_*` flags.
fn usable(flags: u32) -> bool {
    flags & IFA_F_DADFAILED == 0 && (flags & IFA_F_TENTATIVE == 0 || flags & IFA_F_OPTIMISTIC != 0)
}

/// The address of an RTM_NEWADDR/RTM_DELADDR message: IFA_LOCAL when present (on
/// point-to-point links IFA_ADDRESS is the peer), else IFA_ADDRESS.
pub fn parse_addr(m: &RawMsg<'_>) -> Option<IpAddr> {
    parse(m).map(|(a, _)| a)
}

/// The address of an address message and its flags (IFA_FLAGS when present, else
/// ifaddrmsg's 8-bit `ifa_flags`).
fn parse(m: &RawMsg<'_>) -> Option<(IpAddr, u32)> {
    if m.ty != RTM_NEWADDR && m.ty != RTM_DELADDR {
        return None;
    }
    let p = m.payload;
    if p.len() < IFADDRMSG_LEN {
        return None;
    }
    let family = p[0];
    let mut flags = u32::from(p[2]);
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
            IFA_FLAGS if v.len() == 4 => flags = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Some((local.or(address)?, flags))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWADDR payload for `addr` with `ifa_flags` and, if given, IFA_FLAGS.
    fn newaddr(addr: Ipv6Addr, ifa_flags: u8, full: Option<u32>) -> Vec<u8> {
        let mut p = vec![libc::AF_INET6 as u8, 64, ifa_flags, 0, 2, 0, 0, 0];
        p.extend_from_slice(&20u16.to_ne_bytes());
        p.extend_from_slice(&IFA_ADDRESS.to_ne_bytes());
        p.extend_from_slice(&addr.octets());
        if let Some(f) = full {
            p.extend_from_slice(&8u16.to_ne_bytes());
            p.extend_from_slice(&IFA_FLAGS.to_ne_bytes());
            p.extend_from_slice(&f.to_ne_bytes());
        }
        p
    }

    fn msg(payload: &[u8]) -> RawMsg<'_> {
        RawMsg {
            ty: RTM_NEWADDR,
            flags: 0,
            seq: 0,
            pid: 0,
            payload,
        }
    }

    #[test]
    fn tentative_and_dad_failed_addresses_are_not_held() {
        let vip: Ipv6Addr = "fd00:10::100".parse().unwrap();
        let held = |p: Vec<u8>| parse(&msg(&p)).map(|(a, f)| (a, usable(f)));
        // `ip addr add` without nodad: tentative first, then plain once DAD passed.
        assert_eq!(
            held(newaddr(vip, 0x40, Some(0x40))),
            Some((vip.into(), false))
        );
        assert_eq!(held(newaddr(vip, 0, Some(0))), Some((vip.into(), true)));
        // Another member has it: DAD failed, the address stays listed.
        assert_eq!(
            held(newaddr(vip, 0x48, Some(0x48))),
            Some((vip.into(), false))
        );
        // Optimistic DAD: usable while tentative.
        assert_eq!(
            held(newaddr(vip, 0x44, Some(0x44))),
            Some((vip.into(), true))
        );
        // nodad (IFA_F_NODAD, 0x02), and a kernel without IFA_FLAGS.
        assert_eq!(
            held(newaddr(vip, 0x02, Some(0x02))),
            Some((vip.into(), true))
        );
        assert_eq!(held(newaddr(vip, 0x40, None)), Some((vip.into(), false)));
        // IFA_FLAGS wins over the 8-bit field (IFA_F_NOPREFIXROUTE 0x200 fits only there).
        assert_eq!(
            held(newaddr(vip, 0x40, Some(0x200))),
            Some((vip.into(), true))
        );
        assert_eq!(
            parse_addr(&msg(&newaddr(vip, 0x48, None))),
            Some(vip.into())
        );
    }
}

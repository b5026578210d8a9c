//! recvmsg/sendmsg with packet info: which of our addresses a datagram was sent to
//! (IP_PKTINFO / IPV6_RECVPKTINFO) and which of our addresses to send from (the same
//! control message on sendmsg). An IKE daemon on a wildcard socket needs both: a host
//! with several addresses must answer from the address it was asked on (RFC 7296 §2.11),
//! and the Child SA's selectors name that address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use super::encap::{setsockopt_int, sockaddr};

/// Ask the kernel to report each datagram's destination address.
pub(super) fn enable(fd: RawFd, v6: bool) -> io::Result<()> {
    if v6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
    }
}

/// One datagram read into the caller's buffer.
#[derive(Debug)]
pub(super) struct Received {
    pub len: usize,
    pub from: SocketAddr,
    /// The destination address of the datagram (one of ours).
    pub local: Option<IpAddr>,
    /// The datagram was longer than the buffer.
    pub truncated: bool,
}

/// Control buffer room for one in6_pktinfo (the larger of the two), 8-byte aligned.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Read one datagram (non-blocking: WouldBlock when none is queued).
pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero sockaddr_storage and msghdr are valid.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut ctl = Control([0; 64]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.0.as_mut_ptr().cast();
    msg.msg_controllen = ctl.0.len();
    // SAFETY: every pointer in msg refers to a live buffer of the stated length.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = socket_addr(&from)
        .ok_or_else(|| io::Error::other("datagram from an address of another family"))?;
    Ok(Received {
        len: n as usize,
        from,
        // SAFETY: msg's control fields describe what the kernel wrote into ctl.
        local: unsafe { destination(&msg) },
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}

/// The destination address from the pktinfo control message, if any.
///
/// # Safety
/// `msg` must be a msghdr recvmsg filled in, its control buffer still alive.
unsafe fn destination(msg: &libc::msghdr) -> Option<IpAddr> {
    let mut c = libc::CMSG_FIRSTHDR(msg);
    while !c.is_null() {
        let data = libc::CMSG_DATA(c);
        match ((*c).cmsg_level, (*c).cmsg_type) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(data.cast());
                return Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)).into());
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                let info: libc::in6_pktinfo = std::ptr::read_unaligned(data.cast());
                return Some(Ipv6Addr::from(info.ipi6_addr.s6_addr).into());
            }
            _ => {}
        }
        c = libc::CMSG_NXTHDR(msg, c);
    }
    None
}

fn socket_addr(st: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let p = (st as *const libc::sockaddr_storage).cast::<u8>();
    match i32::from(st.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(p.cast()) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read_unaligned(p.cast()) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let port = u16::from_be(a.sin6_port);
            Some(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into())
        }
        _ => None,
    }
}

/// Send `parts` (gathered: e.g. the non-ESP marker, then the message) to `to`, from our
/// address `from` unless it is unspecified (then the routing table picks). Non-blocking.
pub(super) fn send(fd: RawFd, parts: &[&[u8]], to: SocketAddr, from: IpAddr) -> io::Result<usize> {
    let (mut name, namelen) = sockaddr(to);
    let mut iov: Vec<libc::iovec> = (parts.iter())
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut ctl = Control([0; 64]);
    // SAFETY: all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = namelen;
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    if !from.is_unspecified() {
        msg.msg_control = ctl.0.as_mut_ptr().cast();
        // SAFETY: msg's control buffer is ctl, large enough for one pktinfo message.
        msg.msg_controllen = unsafe { source(&mut msg, from) };
    }
    // SAFETY: every pointer in msg refers to a live buffer of the stated length.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Write the pktinfo control message that picks `from` as source; its length.
///
/// # Safety
/// `msg.msg_control` must point to at least 64 writable, 8-byte aligned bytes.
unsafe fn source(msg: &mut libc::msghdr, from: IpAddr) -> usize {
    let (level, ty, size) = match from {
        IpAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            std::mem::size_of::<libc::in_pktinfo>(),
        ),
        IpAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            std::mem::size_of::<libc::in6_pktinfo>(),
        ),
    };
    msg.msg_controllen = libc::CMSG_SPACE(size as u32) as usize;
    let c = libc::CMSG_FIRSTHDR(msg);
    (*c).cmsg_level = level;
    (*c).cmsg_type = ty;
    (*c).cmsg_len = libc::CMSG_LEN(size as u32) as usize;
    let data = libc::CMSG_DATA(c);
    match from {
        IpAddr::V4(a) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            std::ptr::write_unaligned(data.cast(), info);
        }
        IpAddr::V6(a) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                ipi6_ifindex: 0,
            };
            std::ptr::write_unaligned(data.cast(), info);
        }
    }
    msg.msg_controllen
}

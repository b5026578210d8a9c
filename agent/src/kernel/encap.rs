//! The ESP-in-UDP socket (RFC 3948): a UDP socket on port 4500 with UDP_ENCAP_ESPINUDP, so
//! the kernel decapsulates ESP arriving in UDP for our encap SAs. Without such a socket an
//! ESP-in-UDP datagram is plain UDP to a closed port, checked against the catch-all
//! "require" in-policy and dropped (XfrmInTmplMismatch).
//!
//! The socket also gets a per-socket policy bypass (IP_XFRM_POLICY / IPV6_XFRM_POLICY with
//! an ALLOW policy for in and out, as IKE daemons do), so what reaches it as plain UDP
//! (NAT-keepalives, non-ESP markers) is not dropped by that catch-all policy.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use netlink_packet_core::Emitable;
use netlink_packet_xfrm as x;

use crate::model::NAT_T_PORT;

/// UDP_ENCAP socket option and ESP-in-UDP type (include/uapi/linux/udp.h).
const UDP_ENCAP: libc::c_int = 100;
const UDP_ENCAP_ESPINUDP: libc::c_int = 2;
/// IP_XFRM_POLICY (linux/in.h) and IPV6_XFRM_POLICY (linux/in6.h).
const IP_XFRM_POLICY: libc::c_int = 17;
const IPV6_XFRM_POLICY: libc::c_int = 35;

fn setsockopt_bytes(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &[u8]) -> io::Result<()> {
    // SAFETY: fd is a valid socket; v is a readable buffer of v.len() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            v.as_ptr().cast(),
            v.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt_bytes(fd, level, name, &v.to_ne_bytes())
}

/// An xfrm_userpolicy_info that lets everything through, for one direction. The selector
/// family must be set (xfrm_compile_policy → verify_newpolicy_info rejects AF_UNSPEC).
fn bypass_policy(dir: u8, family: u16) -> Vec<u8> {
    let info = x::UserPolicyInfo {
        selector: x::Selector {
            family,
            ..x::Selector::default()
        },
        lifetime_cfg: x::LifetimeConfig::default(),
        lifetime_cur: x::Lifetime::default(),
        priority: 0,
        index: 0,
        direction: dir,
        action: x::XFRM_POLICY_ALLOW,
        flags: 0,
        share: x::XFRM_SHARE_ANY,
    };
    let mut buf = vec![0u8; info.buffer_len()];
    info.emit(&mut buf);
    buf
}

/// Open the encapsulation socket for IPv4 (`v6 = false`) or IPv6 on `port` (4500 unless
/// testing), with the kernel decapsulating and the per-socket policy bypass in place.
pub fn open_encap_socket(v6: bool, port: u16) -> io::Result<UdpSocket> {
    let sock = bypassing_udp_socket(v6, true)?;
    bind(&sock, wildcard(v6, port))?;
    Ok(sock)
}

/// The wildcard address of the family, on `port`.
pub(super) fn wildcard(v6: bool, port: u16) -> SocketAddr {
    if v6 {
        (Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, port).into()
    }
}

/// An unbound UDP socket (IPv6: v6only) whose traffic bypasses the SPD both ways, and,
/// with `espinudp`, whose ESP-in-UDP datagrams the kernel decapsulates.
pub(super) fn bypassing_udp_socket(v6: bool, espinudp: bool) -> io::Result<UdpSocket> {
    let (domain, family) = if v6 {
        (libc::AF_INET6, x::AF_INET6)
    } else {
        (libc::AF_INET, x::AF_INET)
    };
    // SAFETY: plain socket(2) call; the fd is owned by UdpSocket right after.
    let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid UDP socket nobody else owns.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let (level, opt) = if v6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
        (libc::IPPROTO_IPV6, IPV6_XFRM_POLICY)
    } else {
        (libc::IPPROTO_IP, IP_XFRM_POLICY)
    };
    for dir in [x::XFRM_POLICY_IN, x::XFRM_POLICY_OUT] {
        setsockopt_bytes(fd, level, opt, &bypass_policy(dir, family))?;
    }
    if espinudp {
        setsockopt_int(fd, libc::IPPROTO_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)?;
    }
    Ok(sock)
}

pub(super) fn bind(sock: &UdpSocket, addr: SocketAddr) -> io::Result<()> {
    // std has no bind for an existing socket; do it by hand.
    let (storage, len) = sockaddr(addr);
    // SAFETY: valid socket, storage holds `len` bytes of a sockaddr.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `addr` as the C socket address the kernel takes, with its length.
pub(super) fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: zeroed sockaddr_in is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            // SAFETY: sockaddr_storage is larger than sockaddr_in.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sa) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: zeroed sockaddr_in6 is valid.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_addr.s6_addr = a.ip().octets();
            sa.sin6_scope_id = a.scope_id();
            // SAFETY: sockaddr_storage is larger than sockaddr_in6.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sa) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (st, len as libc::socklen_t)
}

/// Open the sockets a host needs: IPv4 always, IPv6 when it has IPv6 encapsulated SAs.
pub fn open_encap_sockets(v6_needed: bool) -> io::Result<Vec<UdpSocket>> {
    let mut out = vec![open_encap_socket(false, NAT_T_PORT)?];
    if v6_needed {
        out.push(open_encap_socket(true, NAT_T_PORT)?);
    }
    Ok(out)
}

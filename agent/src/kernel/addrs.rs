//! This namespace's addresses (RTM_GETADDR over a raw NETLINK_ROUTE socket) → LocalAddrs.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{NetlinkSerializable, ParseableParametrized};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::constants::NETLINK_ROUTE;
use netlink_sys::Socket;

use super::error::KernelError;
use super::socket::{NlSocket, RawMsg};
use crate::plan::LocalAddrs;

/// rtnetlink multicast groups (include/uapi/linux/rtnetlink.h); netlink-packet-route does
/// not export them.
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;

/// Every address configured in this namespace (loopback included) that the kernel uses:
/// not an IPv6 address still in duplicate address detection (tentative, unless optimistic)
/// or one that failed it. Such an address stays listed, but the kernel neither delivers
/// to it nor sends from it (RFC 4862 §5.4), so this host does not hold it: a cluster
/// address added without `nodad` counts once DAD completes (the kernel announces that
/// with another RTM_NEWADDR), and one that failed DAD because another member still has
/// it never counts.
pub fn local_addrs() -> Result<LocalAddrs, KernelError> {
    let mut out = LocalAddrs::new();
    dump_addrs(|a| {
        if a.usable {
            out.insert(a.addr);
        }
    })?;
    Ok(out)
}

/// The index of the interface `addr` is configured on (None: not configured here).
pub fn interface_of(addr: IpAddr) -> Result<Option<u32>, KernelError> {
    let mut found = None;
    // A restarted dump sees every address again; the first match is as good.
    dump_addrs(|a| {
        if a.addr == addr {
            found = found.or(Some(a.index));
        }
    })?;
    Ok(found)
}

/// One configured address as an address message tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Configured {
    addr: IpAddr,
    /// The interface index.
    index: u32,
    /// Whether the kernel uses it (see `usable`).
    usable: bool,
    /// RTM_NEWADDR (else RTM_DELADDR).
    added: bool,
}

/// RTM_GETADDR dump of both families, each address message handed to `each`.
fn dump_addrs(mut each: impl FnMut(Configured)) -> Result<(), KernelError> {
    let mut sock = NlSocket::open(NETLINK_ROUTE)?;
    // The default message is an ifaddrmsg with family AF_UNSPEC: both families.
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    let mut payload = vec![0u8; request.buffer_len()];
    request.serialize(&mut payload);
    sock.dump(
        request.message_type(),
        &payload,
        |m| {
            if let Some(a) = parse(m) {
                each(a);
            }
            Ok(())
        },
        || {},
    )
}

/// Whether the kernel uses an address with these `IFA_F_*` flags.
fn usable(flags: AddressFlags) -> bool {
    !flags.contains(AddressFlags::Dadfailed)
        && (!flags.contains(AddressFlags::Tentative) || flags.contains(AddressFlags::Optimistic))
}

/// The address of an RTM_NEWADDR/RTM_DELADDR message (see `parse`).
pub fn parse_addr(m: &RawMsg<'_>) -> Option<IpAddr> {
    parse(m).map(|a| a.addr)
}

/// An RTM_NEWADDR/RTM_DELADDR message decoded. Its address is IFA_LOCAL when present (on
/// point-to-point links IFA_ADDRESS is the peer), else IFA_ADDRESS; its flags are IFA_FLAGS
/// when present, else ifaddrmsg's 8-bit `ifa_flags`. Anything else, a malformed message, or
/// an address of another family than the message's (the crate goes by the attribute's
/// length), is None.
fn parse(m: &RawMsg<'_>) -> Option<Configured> {
    let (msg, added) = match RouteNetlinkMessage::parse_with_param(m.payload, m.ty).ok()? {
        RouteNetlinkMessage::NewAddress(msg) => (msg, true),
        RouteNetlinkMessage::DelAddress(msg) => (msg, false),
        _ => return None,
    };
    let family = msg.header.family;
    let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    let (mut local, mut address) = (None, None);
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(a),
            AddressAttribute::Address(a) => address = Some(a),
            AddressAttribute::Flags(f) => flags = f,
            _ => {}
        }
    }
    let addr = local.or(address)?;
    let family_matches = match addr {
        IpAddr::V4(_) => family == AddressFamily::Inet,
        IpAddr::V6(_) => family == AddressFamily::Inet6,
    };
    if !family_matches {
        return None;
    }
    Some(Configured {
        addr,
        index: msg.header.index,
        usable: usable(flags),
        added,
    })
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
                        let Some(a) = parse(&m) else { continue };
                        out.push(if a.added {
                            AddrEvent::Added(a.addr)
                        } else {
                            AddrEvent::Removed(a.addr)
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
    use std::net::Ipv6Addr;

    use super::*;

    /// The raw wire values, so the test checks the crate's decoding against the kernel ABI
    /// (include/uapi/linux/if_addr.h, rtnetlink.h).
    const RTM_NEWADDR: u16 = 20;
    const IFA_ADDRESS: u16 = 1;
    const IFA_FLAGS: u16 = 8;

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
        let held = |p: Vec<u8>| parse(&msg(&p)).map(|a| (a.addr, a.usable));
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
            parse(&msg(&newaddr(vip, 0x48, None))).map(|a| (a.addr, a.index, a.added)),
            Some((vip.into(), 2, true))
        );
    }

    #[test]
    fn truncated_or_foreign_messages_are_ignored() {
        let vip: Ipv6Addr = "fd00:10::100".parse().unwrap();
        let p = newaddr(vip, 0, None);
        // Cut inside the header, and inside the address attribute.
        assert_eq!(parse(&msg(&p[..6])), None);
        assert_eq!(parse(&msg(&p[..20])), None);
        // A link message (RTM_NEWLINK) is not an address message.
        let link = RawMsg { ty: 16, ..msg(&p) };
        assert_eq!(parse(&link), None);
        // An IPv6 address in a message that says AF_INET.
        let mut v4 = p.clone();
        v4[0] = libc::AF_INET as u8;
        assert_eq!(parse_addr(&msg(&v4)), None);
    }
}

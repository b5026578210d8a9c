//! Announcing an address this host just took over (a cluster address moved here): one
//! gratuitous ARP request for IPv4 (RFC 5227 §3, as `arping -U` sends), one unsolicited
//! Neighbor Advertisement with the override flag for IPv6 (RFC 4861 §7.2.6), on the
//! interface that holds it, so neighbours stop sending to the old holder's MAC address.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addrs;

const ETH_P_ARP: u16 = 0x0806;
const ARPHRD_ETHER: u16 = 1;
/// ICMPv6 Neighbor Advertisement, its override flag, the target link-layer address option.
const ND_NEIGHBOR_ADVERT: u8 = 136;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LL_ADDR: u8 = 2;

/// A file descriptor closed on drop.
struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn socket(domain: i32, ty: i32, proto: i32) -> io::Result<Fd> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Fd(fd))
}

fn check(r: isize) -> io::Result<()> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The Ethernet address of interface `ifindex` (None: not Ethernet, e.g. loopback).
fn hw_addr(ifindex: u32) -> io::Result<Option<[u8; 6]>> {
    let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: ifreq is plain data; if_indextoname writes at most IFNAMSIZ bytes into it,
    // and SIOCGIFHWADDR fills its union for the named interface.
    unsafe {
        let mut req: libc::ifreq = zeroed();
        if libc::if_indextoname(ifindex, req.ifr_name.as_mut_ptr()).is_null() {
            return Err(io::Error::last_os_error());
        }
        check(libc::ioctl(s.0, libc::SIOCGIFHWADDR, &mut req) as isize)?;
        let sa = req.ifr_ifru.ifru_hwaddr;
        if sa.sa_family != ARPHRD_ETHER {
            return Ok(None);
        }
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok(Some(mac))
    }
}

/// A gratuitous ARP request: sender and target protocol address both `ip`, broadcast.
pub fn arp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    let mut f = [0u8; 28];
    f[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    f[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    f[4] = 6;
    f[5] = 4;
    f[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    f[8..14].copy_from_slice(&mac);
    f[14..18].copy_from_slice(&ip.octets());
    f[24..28].copy_from_slice(&ip.octets());
    f
}

fn send_arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    let proto = ETH_P_ARP.to_be();
    let s = socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto))?;
    // SAFETY: sockaddr_ll is plain data, sized as passed.
    unsafe {
        let mut to: libc::sockaddr_ll = zeroed();
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = proto;
        to.sll_ifindex = ifindex as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let f = arp_frame(mac, ip);
        check(libc::sendto(
            s.0,
            f.as_ptr().cast(),
            f.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        ))
    }
}

/// An unsolicited Neighbor Advertisement for `ip` (checksum left to the kernel, which
/// computes it on ICMPv6 raw sockets).
pub fn na_message(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = ND_NEIGHBOR_ADVERT;
    m[4] = NA_FLAG_OVERRIDE;
    m[8..24].copy_from_slice(&ip.octets());
    m[24] = ND_OPT_TARGET_LL_ADDR;
    m[25] = 1; // in units of 8 bytes
    m[26..32].copy_from_slice(&mac);
    m
}

fn setsockopt_int(s: &Fd, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: an int option of its size.
    let r = unsafe {
        libc::setsockopt(
            s.0,
            level,
            name,
            (&v as *const i32).cast(),
            size_of::<i32>() as u32,
        )
    };
    check(r as isize)
}

fn send_na(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    let s = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
    // ND messages must arrive with hop limit 255 (RFC 4861 §7.1.2).
    setsockopt_int(&s, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
    setsockopt_int(
        &s,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        ifindex as i32,
    )?;
    // SAFETY: sockaddr_in6 is plain data, sized as passed.
    unsafe {
        let mut from: libc::sockaddr_in6 = zeroed();
        from.sin6_family = libc::AF_INET6 as u16;
        from.sin6_addr.s6_addr = ip.octets();
        check(libc::bind(
            s.0,
            (&from as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as u32,
        ) as isize)?;
        let mut to: libc::sockaddr_in6 = zeroed();
        to.sin6_family = libc::AF_INET6 as u16;
        to.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
        to.sin6_scope_id = ifindex;
        let m = na_message(mac, ip);
        check(libc::sendto(
            s.0,
            m.as_ptr().cast(),
            m.len(),
            0,
            (&to as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as u32,
        ))
    }
}

/// Announce `ip` on the interface it is configured on. Ok(false): nothing to announce on
/// (not configured here, or not on an Ethernet interface).
pub fn announce(ip: IpAddr) -> anyhow::Result<bool> {
    let Some(ifindex) = addrs::interface_of(ip)? else {
        return Ok(false);
    };
    let Some(mac) = hw_addr(ifindex)? else {
        return Ok(false);
    };
    match ip {
        IpAddr::V4(a) => send_arp(ifindex, mac, a)?,
        IpAddr::V6(a) => send_na(ifindex, mac, a)?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_say_who_has_the_address_now() {
        let mac = [2, 0, 0, 0, 0, 9];
        let arp = arp_frame(mac, "10.10.0.50".parse().unwrap());
        assert_eq!(&arp[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&arp[8..14], &mac);
        assert_eq!(&arp[14..18], &[10, 10, 0, 50]);
        assert_eq!(&arp[18..24], &[0; 6]);
        assert_eq!(&arp[24..28], &[10, 10, 0, 50]);
        let ip: Ipv6Addr = "fd00:10::50".parse().unwrap();
        let na = na_message(mac, ip);
        assert_eq!(
            (na[0], na[1], na[4]),
            (136, 0, 0x20),
            "NA, override, unsolicited"
        );
        assert_eq!(&na[8..24], &ip.octets());
        assert_eq!(&na[24..26], &[2, 1]);
        assert_eq!(&na[26..32], &mac);
    }
}

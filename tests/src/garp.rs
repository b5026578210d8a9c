//! Announcing a virtual address that just moved, as failover managers (keepalived,
//! Pacemaker's IPaddr2) do: neighbours that have the address cached point it at the new
//! holder's MAC at once instead of after their entry goes stale.
//!
//! - IPv4: a gratuitous ARP. Linux accepts it for an existing entry whatever `arp_accept`
//!   says (RFC 5227 announcement semantics).
//! - IPv6: an unsolicited Neighbor Advertisement (RFC 4861 §7.2.6) to all nodes, with the
//!   override flag and the target link-layer address option. Linux updates an existing
//!   entry to the new address (state STALE: the next packet goes there and is then
//!   confirmed by a unicast probe); without an entry it ignores the advertisement
//!   (`accept_untracked_na` 0), and resolution asks the segment, where only the new holder
//!   answers.
//!
//! Run inside the host that just took the address (`lab-probe announce DEV ADDR`); the lab
//! machine has no arping or ndsend, and one more package for one packet is not worth it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// The override flag (RFC 4861 §4.4): replace the cached link-layer address.
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;
/// Neighbor Discovery option: target link-layer address (RFC 4861 §4.6.1).
const ND_OPT_TARGET_LL_ADDR: u8 = 2;
/// ff02::1, and its Ethernet multicast address (RFC 2464 §7: 33:33 + low 32 bits).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// The ARP announcement: a request whose sender and target address are both `addr`.
pub fn announcement(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p.extend_from_slice(&[6, 4]);
    p.extend_from_slice(&1u16.to_be_bytes()); // request
    p.extend_from_slice(&mac);
    p.extend_from_slice(&addr.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&addr.octets());
    p
}

/// The unsolicited Neighbor Advertisement of `addr` at `mac`: a whole IPv6 packet from
/// `addr` to ff02::1, hop limit 255 (receivers drop ND with any other, RFC 4861 §7.1.2).
pub fn neighbor_advertisement(mac: [u8; 6], addr: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[ND_NEIGHBOR_ADVERT, 0, 0, 0]); // type, code, checksum
    icmp.extend_from_slice(&NA_FLAG_OVERRIDE.to_be_bytes()); // not router, not solicited
    icmp.extend_from_slice(&addr.octets());
    icmp.extend_from_slice(&[ND_OPT_TARGET_LL_ADDR, 1]); // length in units of 8 bytes
    icmp.extend_from_slice(&mac);
    let sum = icmpv6_checksum(addr, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut p = Vec::with_capacity(40 + icmp.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[IPPROTO_ICMPV6, 255]);
    p.extend_from_slice(&addr.octets());
    p.extend_from_slice(&ALL_NODES.octets());
    p.extend_from_slice(&icmp);
    p
}

/// The ICMPv6 checksum over the pseudo-header (RFC 8200 §8.1) and `msg` (its checksum
/// field zero).
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40 + msg.len() + 1);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    pseudo.extend_from_slice(msg);
    !ones_complement_sum(&pseudo)
}

/// The 16-bit one's complement sum of `data` (RFC 1071), odd length padded with zero.
fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// Announce `addr` on `dev` once: a gratuitous ARP for IPv4, an unsolicited Neighbor
/// Advertisement for IPv6.
pub fn announce(dev: &str, addr: IpAddr) -> std::io::Result<()> {
    let mac = std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))
        .ok()
        .and_then(|s| parse_mac(&s))
        .ok_or_else(|| std::io::Error::other(format!("no MAC address for {dev}")))?;
    match addr {
        IpAddr::V4(a) => send_frame(dev, ETH_P_ARP, [0xff; 6], &announcement(mac, a)),
        IpAddr::V6(a) => send_frame(
            dev,
            ETH_P_IPV6,
            ALL_NODES_MAC,
            &neighbor_advertisement(mac, a),
        ),
    }
}

/// Send `pkt` as one Ethernet frame of type `proto` to `to` on `dev` (the kernel adds the
/// Ethernet header; no IP stack, so no XFRM policy, sees it).
fn send_frame(dev: &str, proto: u16, to: [u8; 6], pkt: &[u8]) -> std::io::Result<()> {
    let name = std::ffi::CString::new(dev).map_err(std::io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let proto = proto.to_be();
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&to);
    // SAFETY: buffer and address are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            std::ptr::from_ref(&sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0x58, 0x41, 10, 0, 11];

    #[test]
    fn announcement_names_the_address_twice() {
        let p = announcement(MAC, Ipv4Addr::new(10, 10, 0, 100));
        assert_eq!(p.len(), 28);
        assert_eq!(&p[14..18], &[10, 10, 0, 100]);
        assert_eq!(&p[24..28], &[10, 10, 0, 100]);
        assert_eq!(&p[8..14], &MAC);
        assert_eq!(parse_mac("02:58:41:0a:00:0b\n"), Some(MAC));
    }

    #[test]
    fn neighbor_advertisement_overrides_from_the_address_to_all_nodes() {
        let vip: Ipv6Addr = "fd00:10::100".parse().unwrap();
        let p = neighbor_advertisement(MAC, vip);
        assert_eq!(p.len(), 40 + 32);
        // IPv6 header: version 6, payload 32, ICMPv6, hop limit 255, VIP → ff02::1.
        assert_eq!(p[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 32);
        assert_eq!((p[6], p[7]), (58, 255));
        assert_eq!(&p[8..24], &vip.octets());
        assert_eq!(&p[24..40], &ALL_NODES.octets());
        let icmp = &p[40..];
        assert_eq!((icmp[0], icmp[1]), (136, 0));
        // Override only: not a router, not solicited (a solicited NA to a multicast
        // destination is dropped, RFC 4861 §7.1.2).
        assert_eq!(&icmp[4..8], &[0x20, 0, 0, 0]);
        assert_eq!(&icmp[8..24], &vip.octets());
        assert_eq!(&icmp[24..26], &[2, 1]);
        assert_eq!(&icmp[26..32], &MAC);
        // A receiver's check: the sum over pseudo-header and message, checksum included,
        // is all ones.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[8..40]);
        pseudo.extend_from_slice(&32u32.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        assert_eq!(ones_complement_sum(&pseudo), 0xffff);
    }

    #[test]
    fn checksum_matches_a_known_value() {
        // RFC 1071 §3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            ones_complement_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        // Odd length: the last byte is the high half of a zero-padded word.
        assert_eq!(ones_complement_sum(&[0xff, 0xff, 0x01]), 0x0100);
    }
}

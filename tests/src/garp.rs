//! A gratuitous ARP, as failover managers (keepalived, Pacemaker's IPaddr2) send when a
//! virtual address moves to a new holder: neighbours that have the address cached point it
//! at the new holder's MAC at once instead of after their entry goes stale. Linux accepts
//! it for an existing entry whatever `arp_accept` says (RFC 5227 announcement semantics).
//!
//! Run inside the host that just took the address (`lab-probe garp DEV ADDR`); the lab
//! machine has no arping, and one more package for one packet is not worth it.

use std::net::Ipv4Addr;

const ETH_P_ARP: u16 = 0x0806;

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

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// Broadcast one announcement of `addr` on `dev`.
pub fn send(dev: &str, addr: Ipv4Addr) -> std::io::Result<()> {
    let mac = std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))
        .ok()
        .and_then(|s| parse_mac(&s))
        .ok_or_else(|| std::io::Error::other(format!("no MAC address for {dev}")))?;
    let name = std::ffi::CString::new(dev).map_err(std::io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let proto = ETH_P_ARP.to_be();
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = proto;
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let pkt = announcement(mac, addr);
    // SAFETY: buffer and address are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            std::ptr::from_ref(&to).cast(),
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

    #[test]
    fn announcement_names_the_address_twice() {
        let p = announcement([2, 0x58, 0x41, 10, 0, 11], Ipv4Addr::new(10, 10, 0, 100));
        assert_eq!(p.len(), 28);
        assert_eq!(&p[14..18], &[10, 10, 0, 100]);
        assert_eq!(&p[24..28], &[10, 10, 0, 100]);
        assert_eq!(&p[8..14], &[2, 0x58, 0x41, 10, 0, 11]);
        assert_eq!(
            parse_mac("02:58:41:0a:00:0b\n"),
            Some([2, 0x58, 0x41, 10, 0, 11])
        );
    }
}

//! A small pcap reader: just enough to classify the lab's packets (ESP, ESP-in-UDP, clear
//! TCP/UDP/ICMP) from `tcpdump -i any -y LINUX_SLL2 -w` files, without spawning a process
//! per question (processes are slow under UML). Hand-written on purpose: `tcpdump -i any`
//! writes LINUX_SLL2 frames, which etherparse (0.21) does not decode, and pcap-file would
//! replace only the record loop below, its current line being a release candidate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{bail, ensure};

/// What a packet carries, as far as the matrix cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Esp {
        spi: u32,
    },
    /// ESP in UDP: a UDP datagram with port 4500 whose payload does not start with the
    /// four zero bytes of the non-ESP marker (RFC 3948 section 2.2).
    EspUdp {
        spi: u32,
    },
    Tcp {
        sport: u16,
        dport: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP or ICMPv6 with its type.
    Icmp {
        typ: u8,
    },
    Other {
        proto: u8,
    },
}

/// One captured IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Sent by the capturing host (SLL2 packet type PACKET_OUTGOING).
    pub outgoing: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub kind: Kind,
}

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL2: u32 = 276;
const PACKET_OUTGOING: u8 = 4;
const NAT_T_PORT: u16 = 4500;

/// Parse a whole pcap file; frames that are not IPv4/IPv6 are skipped. A file cut short
/// (the capture was stopped mid-write) ends at the last complete record.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Vec<Packet>> {
    ensure!(
        bytes.len() >= 24,
        "pcap file too short ({} bytes)",
        bytes.len()
    );
    let magic = u32::from_le_bytes(bytes[0..4].try_into()?);
    let (be, nanos) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        m => bail!("not a pcap file (magic {m:#x})"),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a: [u8; 4] = b[i..i + 4].try_into().expect("4 bytes");
        if be {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let linktype = u32_at(bytes, 20) & 0x0fff_ffff;
    ensure!(
        linktype == LINKTYPE_LINUX_SLL2 || linktype == LINKTYPE_ETHERNET,
        "unsupported pcap link type {linktype}"
    );
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let (sec, frac, caplen) = (
            u32_at(bytes, off),
            u32_at(bytes, off + 4),
            u32_at(bytes, off + 8) as usize,
        );
        let body = off + 16;
        if body + caplen > bytes.len() {
            break;
        }
        let ts_ns = sec as u64 * 1_000_000_000
            + if nanos {
                frac as u64
            } else {
                frac as u64 * 1000
            };
        if let Some(p) = frame(&bytes[body..body + caplen], linktype, ts_ns) {
            out.push(p);
        }
        off = body + caplen;
    }
    Ok(out)
}

fn frame(f: &[u8], linktype: u32, ts_ns: u64) -> Option<Packet> {
    let (ethertype, outgoing, l3) = if linktype == LINKTYPE_LINUX_SLL2 {
        // SLL2: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8).
        (be16(f, 0)?, *f.get(10)? == PACKET_OUTGOING, f.get(20..)?)
    } else {
        (be16(f, 12)?, false, f.get(14..)?)
    };
    let (src, dst, proto, l4) = match ethertype {
        0x0800 => ipv4(l3)?,
        0x86dd => ipv6(l3)?,
        _ => return None,
    };
    Some(Packet {
        ts_ns,
        outgoing,
        src,
        dst,
        kind: transport(proto, l4),
    })
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn ipv4(b: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    let ihl = (*b.first()? & 0x0f) as usize * 4;
    let src = Ipv4Addr::from(be32(b, 12)?);
    let dst = Ipv4Addr::from(be32(b, 16)?);
    Some((src.into(), dst.into(), *b.get(9)?, b.get(ihl..)?))
}

fn ipv6(b: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    let src: [u8; 16] = b.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = b.get(24..40)?.try_into().ok()?;
    let mut next = *b.get(6)?;
    let mut off = 40;
    // Skip extension headers (hop-by-hop, routing, fragment, destination options).
    while matches!(next, 0 | 43 | 44 | 60) {
        let h = b.get(off..)?;
        let len = if next == 44 {
            8
        } else {
            (*h.get(1)? as usize + 1) * 8
        };
        next = *h.first()?;
        off += len;
    }
    Some((
        Ipv6Addr::from(src).into(),
        Ipv6Addr::from(dst).into(),
        next,
        b.get(off..)?,
    ))
}

fn transport(proto: u8, l4: &[u8]) -> Kind {
    let ports = || Some((be16(l4, 0)?, be16(l4, 2)?));
    match proto {
        50 => match be32(l4, 0) {
            Some(spi) => Kind::Esp { spi },
            None => Kind::Other { proto },
        },
        6 => ports().map_or(Kind::Other { proto }, |(sport, dport)| Kind::Tcp {
            sport,
            dport,
        }),
        17 => match ports() {
            Some((sport, dport)) if sport == NAT_T_PORT || dport == NAT_T_PORT => match be32(l4, 8)
            {
                Some(spi) if spi != 0 && l4.len() > 9 => Kind::EspUdp { spi },
                _ => Kind::Udp { sport, dport },
            },
            Some((sport, dport)) => Kind::Udp { sport, dport },
            None => Kind::Other { proto },
        },
        1 | 58 => l4
            .first()
            .map_or(Kind::Other { proto }, |&typ| Kind::Icmp { typ }),
        _ => Kind::Other { proto },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(linktype: u32, frames: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![];
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&[2, 0, 4, 0]);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&262_144u32.to_le_bytes());
        v.extend_from_slice(&linktype.to_le_bytes());
        for (usec, f) in frames {
            v.extend_from_slice(&7u32.to_le_bytes());
            v.extend_from_slice(&usec.to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    fn sll2(ethertype: u16, pkttype: u8, l3: &[u8]) -> Vec<u8> {
        let mut f = ethertype.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, pkttype, 6]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(l3);
        f
    }

    fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 10, 0, 10, 10, 20, 0, 20,
        ];
        h.extend_from_slice(l4);
        h
    }

    #[test]
    fn classifies_esp_esp_in_udp_ike_and_tcp() {
        let esp = v4(50, &[0x40, 0, 0, 1, 0, 0, 0, 1, 0xaa]);
        let mut nat_t = vec![0x11, 0x94, 0x11, 0x94, 0, 20, 0, 0];
        nat_t.extend_from_slice(&[0x40, 0, 0, 2, 0, 0, 0, 1, 0xbb]);
        let mut ike = vec![0x11, 0x94, 0x11, 0x94, 0, 20, 0, 0];
        ike.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
        let tcp = v4(6, &[0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 0]);
        let file = pcap(
            LINKTYPE_LINUX_SLL2,
            &[
                (1, sll2(0x0800, 4, &esp)),
                (2, sll2(0x0800, 0, &v4(17, &nat_t))),
                (3, sll2(0x0800, 4, &v4(17, &ike))),
                (4, sll2(0x0800, 4, &tcp)),
            ],
        );
        let p = parse(&file).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].kind, Kind::Esp { spi: 0x4000_0001 });
        assert!(p[0].outgoing && !p[1].outgoing);
        assert_eq!(p[0].ts_ns, 7_000_001_000);
        assert_eq!(p[1].kind, Kind::EspUdp { spi: 0x4000_0002 });
        assert_eq!(
            p[2].kind,
            Kind::Udp {
                sport: 4500,
                dport: 4500
            }
        );
        assert_eq!(
            p[3].kind,
            Kind::Tcp {
                sport: 50000,
                dport: 443
            }
        );
        assert_eq!(p[3].dst, "10.20.0.20".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_skips_extension_headers_and_reads_icmpv6() {
        let mut l3 = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        l3.extend_from_slice(&"fd00:10::10".parse::<Ipv6Addr>().unwrap().octets());
        l3.extend_from_slice(&"fd00:20::20".parse::<Ipv6Addr>().unwrap().octets());
        l3.extend_from_slice(&[58, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop, then ICMPv6
        l3.extend_from_slice(&[128, 0, 0, 0]);
        let p = parse(&pcap(LINKTYPE_LINUX_SLL2, &[(0, sll2(0x86dd, 4, &l3))])).unwrap();
        assert_eq!(p[0].kind, Kind::Icmp { typ: 128 });
        assert_eq!(p[0].src, "fd00:10::10".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn truncated_tail_and_foreign_frames_are_skipped() {
        let arp = sll2(0x0806, 0, &[0; 28]);
        let mut file = pcap(
            LINKTYPE_LINUX_SLL2,
            &[(0, arp), (1, sll2(0x0800, 4, &v4(1, &[8, 0])))],
        );
        file.extend_from_slice(&[1, 2, 3]);
        let p = parse(&file).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, Kind::Icmp { typ: 8 });
        assert!(parse(&[0; 10]).is_err());
    }
}

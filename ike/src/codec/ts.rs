//! Traffic selector payloads (RFC 7296 §3.13).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reader::{Reader, Writer};
use super::{DecodeError, DecodeErrorKind};

/// One traffic selector (§3.13.1), an address and port range for one IP protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSelector {
    /// IP protocol number, 0 = any.
    pub protocol: u8,
    /// First port.
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
    /// First address (IPv4 or IPv6, same family as `end`).
    pub start: IpAddr,
    /// Last address.
    pub end: IpAddr,
}

impl TrafficSelector {
    /// All ports and protocols of one host.
    pub fn host(addr: IpAddr) -> TrafficSelector {
        TrafficSelector {
            protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: addr,
            end: addr,
        }
    }
}

const TS_IPV4_ADDR_RANGE: u8 = 7;
const TS_IPV6_ADDR_RANGE: u8 = 8;

pub(super) fn decode_selectors(r: &mut Reader<'_>) -> Result<Vec<TrafficSelector>, DecodeError> {
    let count = r.u8("TS count")?;
    r.take(3, "TS reserved")?;
    let selectors = (0..count)
        .map(|_| decode_selector(r))
        .collect::<Result<Vec<_>, _>>()?;
    if r.remaining() != 0 {
        return Err(r.error(DecodeErrorKind::BadLength("TS payload")));
    }
    Ok(selectors)
}

fn decode_selector(r: &mut Reader<'_>) -> Result<TrafficSelector, DecodeError> {
    let ts_type = r.u8("TS type")?;
    let protocol = r.u8("TS protocol")?;
    let len = usize::from(r.u16("TS length")?);
    let mut body = r.sub(
        len.checked_sub(4)
            .ok_or_else(|| r.error(DecodeErrorKind::BadLength("TS")))?,
        "TS",
    )?;
    let start_port = body.u16("TS start port")?;
    let end_port = body.u16("TS end port")?;
    let (start, end) = match ts_type {
        TS_IPV4_ADDR_RANGE => (
            IpAddr::V4(Ipv4Addr::from(body.array::<4>("TS address")?)),
            IpAddr::V4(Ipv4Addr::from(body.array::<4>("TS address")?)),
        ),
        TS_IPV6_ADDR_RANGE => (
            IpAddr::V6(Ipv6Addr::from(body.array::<16>("TS address")?)),
            IpAddr::V6(Ipv6Addr::from(body.array::<16>("TS address")?)),
        ),
        _ => return Err(body.error(DecodeErrorKind::Invalid("TS type"))),
    };
    if body.remaining() != 0 {
        return Err(body.error(DecodeErrorKind::BadLength("TS")));
    }
    Ok(TrafficSelector {
        protocol,
        start_port,
        end_port,
        start,
        end,
    })
}

pub(super) fn encode_selectors(selectors: &[TrafficSelector], out: &mut Vec<u8>) {
    out.push(u8::try_from(selectors.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&[0, 0, 0]);
    for ts in selectors {
        let ts_type = if ts.start.is_ipv4() {
            TS_IPV4_ADDR_RANGE
        } else {
            TS_IPV6_ADDR_RANGE
        };
        let start = out.len();
        out.push(ts_type);
        out.push(ts.protocol);
        let len_at = out.len_placeholder();
        out.extend_from_slice(&ts.start_port.to_be_bytes());
        out.extend_from_slice(&ts.end_port.to_be_bytes());
        for addr in [ts.start, ts.end] {
            match addr {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        out.patch_len(len_at, start);
    }
}

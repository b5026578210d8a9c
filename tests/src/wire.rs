//! What a stream looked like on the wire: for a UDP flow between two addresses, the
//! packets each end *sent* (its own capture, outgoing), split into clear (the flow's UDP
//! port visible) and protected (ESP, ESP-in-UDP), and the SPIs it used over time.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::pcap::{Kind, Packet};

/// A UDP flow: `client` sends to `server:port`, the server echoes back.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub client: IpAddr,
    pub server: IpAddr,
    pub port: u16,
}

/// Packets one end sent to the other within a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// The flow itself in clear (UDP with the flow's port on the right side).
    pub clear: usize,
    pub esp: usize,
    pub esp_udp: usize,
}

impl Sent {
    pub fn protected(&self) -> usize {
        self.esp + self.esp_udp
    }
}

fn is_clear(p: &Packet, flow: &Flow, from_client: bool) -> bool {
    match p.kind {
        Kind::Udp { sport, dport } => {
            if from_client {
                dport == flow.port
            } else {
                sport == flow.port
            }
        }
        _ => false,
    }
}

/// What `from` sent to `to` in `[t0, t1]`, from the capture of the host that sent it.
pub fn sent(packets: &[Packet], flow: &Flow, from_client: bool, t0: u64, t1: u64) -> Sent {
    let (me, peer) = if from_client {
        (flow.client, flow.server)
    } else {
        (flow.server, flow.client)
    };
    let mut n = Sent::default();
    for p in packets
        .iter()
        .filter(|p| p.outgoing && p.src == me && p.dst == peer && p.ts_ns >= t0 && p.ts_ns <= t1)
    {
        match p.kind {
            Kind::Esp { .. } => n.esp += 1,
            Kind::EspUdp { .. } => n.esp_udp += 1,
            _ => n.clear += usize::from(is_clear(p, flow, from_client)),
        }
    }
    n
}

/// When `from` sent the flow in clear within `[t0, t1]` (its own capture).
pub fn clear_times(
    packets: &[Packet],
    flow: &Flow,
    from_client: bool,
    t0: u64,
    t1: u64,
) -> Vec<u64> {
    let (me, peer) = if from_client {
        (flow.client, flow.server)
    } else {
        (flow.server, flow.client)
    };
    packets
        .iter()
        .filter(|p| p.outgoing && p.src == me && p.dst == peer && p.ts_ns >= t0 && p.ts_ns <= t1)
        .filter(|p| is_clear(p, flow, from_client))
        .map(|p| p.ts_ns)
        .collect()
}

/// Both ends of a flow: (client sent, server sent), each from its own host's capture.
pub fn both(
    captures: &BTreeMap<String, Vec<Packet>>,
    client_host: &str,
    server_host: &str,
    flow: &Flow,
    t0: u64,
    t1: u64,
) -> (Sent, Sent) {
    let none = Vec::new();
    let c = captures.get(client_host).unwrap_or(&none);
    let s = captures.get(server_host).unwrap_or(&none);
    (sent(c, flow, true, t0, t1), sent(s, flow, false, t0, t1))
}

/// The SPIs of protected packets `from` sent to `to`, in capture order, with repeats
/// collapsed: each entry is (first seen ns, SPI). Its length minus one is the number of
/// times the sender switched SA on the wire.
pub fn spi_runs(packets: &[Packet], from: IpAddr, to: IpAddr) -> Vec<(u64, u32)> {
    let mut runs: Vec<(u64, u32)> = Vec::new();
    for p in packets
        .iter()
        .filter(|p| p.outgoing && p.src == from && p.dst == to)
    {
        let spi = match p.kind {
            Kind::Esp { spi } | Kind::EspUdp { spi } => spi,
            _ => continue,
        };
        if runs.last().map(|r| r.1) != Some(spi) {
            runs.push((p.ts_ns, spi));
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ts: u64, out: bool, src: [u8; 4], dst: [u8; 4], kind: Kind) -> Packet {
        Packet {
            ts_ns: ts,
            outgoing: out,
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            kind,
        }
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    #[test]
    fn clear_is_the_flow_port_only_and_sent_by_the_capturing_host() {
        let flow = Flow {
            client: A.into(),
            server: B.into(),
            port: 5001,
        };
        let ps = [
            pkt(
                1,
                true,
                A,
                B,
                Kind::Udp {
                    sport: 40000,
                    dport: 5001,
                },
            ),
            pkt(
                2,
                true,
                A,
                B,
                Kind::Udp {
                    sport: 4500,
                    dport: 4500,
                },
            ),
            pkt(3, true, A, B, Kind::Esp { spi: 7 }),
            pkt(
                4,
                false,
                A,
                B,
                Kind::Udp {
                    sport: 40000,
                    dport: 5001,
                },
            ),
            pkt(
                5,
                true,
                B,
                A,
                Kind::Udp {
                    sport: 5001,
                    dport: 40000,
                },
            ),
            pkt(9, true, A, B, Kind::EspUdp { spi: 8 }),
        ];
        let s = sent(&ps, &flow, true, 0, 5);
        assert_eq!((s.clear, s.esp, s.esp_udp), (1, 1, 0));
        assert_eq!(sent(&ps, &flow, false, 0, 10).clear, 1);
        assert_eq!(sent(&ps, &flow, true, 6, 10).esp_udp, 1);
    }

    #[test]
    fn spi_runs_count_switches() {
        let ps = [
            pkt(1, true, A, B, Kind::Esp { spi: 7 }),
            pkt(2, true, A, B, Kind::Esp { spi: 7 }),
            pkt(3, true, B, A, Kind::Esp { spi: 9 }),
            pkt(4, true, A, B, Kind::Esp { spi: 8 }),
            pkt(5, true, A, B, Kind::Esp { spi: 8 }),
        ];
        assert_eq!(spi_runs(&ps, A.into(), B.into()), vec![(1, 7), (4, 8)]);
    }
}

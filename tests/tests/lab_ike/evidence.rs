//! What the IKE lab judges by: captures (what crossed `fw`, what each end sent in clear),
//! the kernel's XFRM counters, and the streams' per-datagram record.

use std::collections::BTreeMap;
use std::net::IpAddr;

use e2e::pcap::{Kind, Packet};

use e2e::stream::Report;
use e2e::wire;

/// What crossed `fw` between `a` and `b` (either way) that is neither IKE (UDP 500/4500)
/// nor ESP-in-UDP; and how many ESP-in-UDP packets did.
pub fn on_the_path(fw: &[Packet], a: IpAddr, b: IpAddr) -> (Vec<String>, usize) {
    let mut other = Vec::new();
    let mut esp_udp = 0;
    for p in fw
        .iter()
        .filter(|p| (p.src == a && p.dst == b) || (p.src == b && p.dst == a))
    {
        match p.kind {
            Kind::EspUdp { .. } => esp_udp += 1,
            Kind::Udp { sport, dport }
                if [500, 4500].contains(&sport) && [500, 4500].contains(&dport) => {}
            k => other.push(format!("{} → {} {k:?}", p.src, p.dst)),
        }
    }
    (other, esp_udp)
}

/// TCP or UDP with clear ports that `from` sent to `to` (its own capture).
pub fn clear_sent(packets: &[Packet], from: IpAddr, to: IpAddr) -> usize {
    packets
        .iter()
        .filter(|p| p.outgoing && p.src == from && p.dst == to)
        .filter(|p| match p.kind {
            Kind::Tcp { .. } => true,
            Kind::Udp { sport, dport } => {
                ![500, 4500].contains(&sport) && ![500, 4500].contains(&dport)
            }
            _ => false,
        })
        .count()
}

/// The /proc/net/xfrm_stat counters that changed between two readings.
pub fn stat_delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> String {
    let changed: Vec<String> = b
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(a.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k} +{d}"))
        })
        .collect();
    if changed.is_empty() {
        "none".into()
    } else {
        changed.join(", ")
    }
}

pub fn describe(name: &str, r: &Report) -> String {
    format!(
        "{name}: {} sent, {} lost, {} send errors, sender stalls {} ({} not sent)",
        r.sent(),
        r.lost(),
        r.send_errors,
        r.stalls,
        r.skipped
    )
}

/// One stream's losses, each outage timed against the SA switches both ends made on the
/// wire (their own captures): a loss at a switch is a rekey that broke.
pub fn losses_at_switches(
    packets: &BTreeMap<String, Vec<Packet>>,
    rep: &Report,
    ends: [(&str, IpAddr, IpAddr); 2],
    t0: u64,
) -> String {
    let switches_at: Vec<f64> = ends
        .iter()
        .flat_map(|(h, a, b)| wire::spi_runs(&packets[*h], *a, *b).into_iter().skip(1))
        .map(|(ts, _)| ts.saturating_sub(t0) as f64 / 1e9)
        .collect();
    let outages: Vec<String> = rep
        .outages()
        .iter()
        .map(|o| {
            let at = rep.sent_ns[o.first_seq].saturating_sub(t0) as f64 / 1e9;
            format!("{} lost from {at:.2} s", o.lost)
        })
        .collect();
    format!(
        "{} lost ({}); SA switches on the wire at {switches_at:.2?} s",
        rep.lost(),
        outages.join(", ")
    )
}

//! Classification and verdicts on synthetic captures.

use super::*;
use crate::oracle::Stance;
use policy_schema::Action;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn cell(outcome: Outcome, proto: Proto, port: u16) -> Cell {
    Cell {
        src: "site".into(),
        dst: "db".into(),
        family: Family::V4,
        flow: Flow {
            src: ip("10.10.0.10"),
            dst: ip("10.10.0.11"),
            proto,
            port,
        },
        expect: Expectation {
            outcome,
            src: Stance::Rule(Action::Require),
            dst: Stance::Rule(Action::Require),
            esp_blocked_by_firewall: false,
        },
    }
}

fn pkt(ts: u64, outgoing: bool, src: &str, dst: &str, kind: Kind) -> Packet {
    Packet {
        ts_ns: ts,
        outgoing,
        src: ip(src),
        dst: ip(dst),
        kind,
    }
}

fn captures(site: Vec<Packet>, db: Vec<Packet>) -> BTreeMap<String, Vec<Packet>> {
    BTreeMap::from([("site".to_string(), site), ("db".to_string(), db)])
}

#[test]
fn esp_both_ways_in_the_window_is_esp() {
    let c = cell(Outcome::Esp, Proto::Tcp, 443);
    let caps = captures(
        vec![
            pkt(10, true, "10.10.0.10", "10.10.0.11", Kind::Esp { spi: 1 }),
            pkt(11, false, "10.10.0.11", "10.10.0.10", Kind::Esp { spi: 2 }),
            pkt(
                99,
                true,
                "10.10.0.10",
                "10.10.0.11",
                Kind::Tcp {
                    sport: 5,
                    dport: 443,
                },
            ),
        ],
        vec![pkt(
            11,
            true,
            "10.10.0.11",
            "10.10.0.10",
            Kind::Esp { spi: 2 },
        )],
    );
    let n = count(&c, &caps, 5, 50);
    assert_eq!((n.esp_by_src, n.esp_by_dst, n.clear_by_src), (1, 1, 0));
    assert_eq!(classify(true, &n), Some(Outcome::Esp));
    let obs = Observation {
        ok: true,
        detail: String::new(),
        counts: n,
        outcome: classify(true, &n),
    };
    assert_eq!(verdict(&c, &obs), Verdict::Pass);
}

#[test]
fn a_clear_packet_from_a_requiring_end_fails_even_when_dropped() {
    let c = cell(Outcome::Dropped, Proto::Tcp, 443);
    let caps = captures(
        vec![pkt(
            10,
            true,
            "10.10.0.10",
            "10.10.0.11",
            Kind::Tcp {
                sport: 5,
                dport: 443,
            },
        )],
        vec![],
    );
    let n = count(&c, &caps, 0, 50);
    let obs = Observation {
        ok: false,
        detail: "timed out".into(),
        counts: n,
        outcome: classify(false, &n),
    };
    assert!(matches!(verdict(&c, &obs), Verdict::Fail(m) if m.contains("clear")));
}

#[test]
fn reverse_direction_clear_of_another_flow_is_not_counted() {
    // db -> site:443 packets must not count for site -> db:443.
    let c = cell(Outcome::Clear, Proto::Tcp, 443);
    let caps = captures(
        vec![pkt(
            10,
            true,
            "10.10.0.10",
            "10.10.0.11",
            Kind::Tcp {
                sport: 443,
                dport: 40000,
            },
        )],
        vec![],
    );
    assert_eq!(count(&c, &caps, 0, 50).clear_by_src, 0);
}

#[test]
fn a_dropped_esp_udp_cell_fails() {
    let c = cell(Outcome::EspUdp, Proto::Udp, 53);
    let n = Counts {
        udp_by_src: 3,
        ..Counts::default()
    };
    let obs = Observation {
        ok: false,
        detail: "timed out".into(),
        counts: n,
        outcome: classify(false, &n),
    };
    // The daemon holds the UDP 4500 socket: no known gap any more.
    assert!(matches!(verdict(&c, &obs), Verdict::Fail(_)));
}

#[test]
fn an_echo_without_any_packet_fits_nothing() {
    assert_eq!(classify(true, &Counts::default()), None);
    let icmp = cell(Outcome::Clear, Proto::Icmp, 0);
    let caps = captures(
        vec![pkt(
            1,
            true,
            "10.10.0.10",
            "10.10.0.11",
            Kind::Icmp { typ: 8 },
        )],
        vec![pkt(
            2,
            true,
            "10.10.0.11",
            "10.10.0.10",
            Kind::Icmp { typ: 0 },
        )],
    );
    let n = count(&icmp, &caps, 0, 5);
    assert_eq!(classify(true, &n), Some(Outcome::Clear));
}

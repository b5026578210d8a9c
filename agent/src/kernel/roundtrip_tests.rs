//! Encode → netlink bytes → parse → decode gives back the same model values, for every
//! attribute we use (policies and SAs, v4 and v6, marks, tunnel templates, encap, both
//! algorithm kinds), and ownership is classified as specified.

use netlink_packet_core::ParseableParametrized;
use netlink_packet_xfrm::XfrmMessage;
use policy_schema::Ownership;

use super::decode::{self, Decoded};
use super::encode;
use crate::model::*;
use crate::secret::Secret;

const R: u32 = 0x7a00_0001;

fn reparse(op: &OpKind) -> XfrmMessage {
    let req = encode::op_request(op);
    XfrmMessage::parse_with_param(&req.payload[..], req.ty).expect("parses")
}

fn policy_roundtrip(k: PolicyKey, s: PolicySpec) -> Decoded<PolicyKey, PolicySpec> {
    match reparse(&OpKind::AddPolicy(k, s)) {
        XfrmMessage::AddPolicy(m) => decode::policy(&m, &Ownership::default()),
        other => panic!("unexpected {other:?}"),
    }
}

fn sa_roundtrip(k: SaKey, s: SaSpec, seq: u64) -> Decoded<SaKey, ObservedSa> {
    match reparse(&OpKind::AddSa(k, s, seq)) {
        XfrmMessage::AddSa(m) => decode::sa(&m, &Ownership::default()),
        other => panic!("unexpected {other:?}"),
    }
}

fn sel(src: &str, dst: &str) -> Selector {
    Selector::between(src.parse().unwrap(), dst.parse().unwrap())
}

fn tmpl(level: Level, tunnel: Option<(&str, &str)>) -> Template {
    Template {
        mode: if tunnel.is_some() {
            Mode::Tunnel
        } else {
            Mode::Transport
        },
        reqid: R,
        level,
        tunnel: tunnel.map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())),
    }
}

#[test]
fn policies_roundtrip() {
    let mut tcp = sel("10.0.0.0/24", "10.1.0.0/16");
    tcp.proto = 6;
    tcp.dport = PortMatch::exact(22);
    tcp.sport = PortMatch {
        port: 16992,
        mask: 0xfffc,
    };
    let cases = vec![
        (Dir::Out, tcp, None, PolicyAction::Allow),
        (
            Dir::In,
            sel("::/0", "fd00::1/128"),
            None,
            PolicyAction::Block,
        ),
        (
            Dir::Out,
            sel("0.0.0.0/0", "10.0.0.0/8"),
            Some(Mark { value: 1, mask: 1 }),
            PolicyAction::Block,
        ),
        (
            Dir::Fwd,
            sel("10.2.0.0/16", "10.3.0.0/16"),
            None,
            PolicyAction::Protect(
                vec![tmpl(Level::Required, Some(("192.0.2.1", "192.0.2.2")))].into(),
            ),
        ),
        (
            Dir::Out,
            sel("fd00::/64", "fd01::/64"),
            None,
            PolicyAction::Protect(vec![tmpl(Level::Use, None)].into()),
        ),
        (
            Dir::In,
            sel("fd00::/64", "fd01::/64"),
            None,
            PolicyAction::Protect(vec![tmpl(Level::Required, Some(("fd00::1", "fd01::1")))].into()),
        ),
    ];
    for (dir, sel, mark, action) in cases {
        let k = PolicyKey { dir, sel, mark };
        let s = PolicySpec {
            priority: 0x10010,
            action,
        };
        assert_eq!(policy_roundtrip(k, s.clone()), Decoded::Owned(k, s));
    }
}

#[test]
fn policy_ownership() {
    let k = PolicyKey {
        dir: Dir::Out,
        sel: sel("10.0.0.0/8", "10.0.0.0/8"),
        mark: None,
    };
    let out_of_band = PolicySpec {
        priority: 100,
        action: PolicyAction::Allow,
    };
    assert_eq!(policy_roundtrip(k, out_of_band), Decoded::Foreign(k));
    let mut t = tmpl(Level::Required, None);
    t.reqid = 5;
    let foreign_reqid = PolicySpec {
        priority: 0x10010,
        action: PolicyAction::Protect(vec![t].into()),
    };
    assert_eq!(policy_roundtrip(k, foreign_reqid), Decoded::Foreign(k));
}

fn gcm() -> Algorithm {
    Algorithm::Aead {
        name: "rfc4106(gcm(aes))".into(),
        key: Secret::new((0..20).collect()),
        icv_bits: 128,
    }
}

fn cbc() -> Algorithm {
    Algorithm::EncAuth {
        enc_name: "cbc(aes)".into(),
        enc_key: Secret::new(vec![7; 16]),
        auth_name: "hmac(sha256)".into(),
        auth_key: Secret::new(vec![9; 32]),
        trunc_bits: 128,
    }
}

fn spec(src: &str, dst: &str, alg: Algorithm, encap: Option<Encap>) -> SaSpec {
    let s: std::net::IpAddr = src.parse().unwrap();
    let d: std::net::IpAddr = dst.parse().unwrap();
    SaSpec {
        src: s,
        reqid: R,
        mode: Mode::Transport,
        sel: Selector::between(s.into(), d.into()),
        alg,
        replay_window: 1024,
        esn: true,
        encap,
        lifetime: Lifetime {
            soft_secs: 3600,
            hard_secs: 3700,
        },
    }
}

#[test]
fn states_roundtrip() {
    let cases = vec![
        ("10.0.0.1", "10.0.0.2", gcm(), None),
        (
            "10.0.0.1",
            "10.0.0.2",
            cbc(),
            Some(Encap {
                sport: 4500,
                dport: 4500,
            }),
        ),
        ("fd00::1", "fd00::2", gcm(), None),
        ("fd00::1", "fd00::2", cbc(), None),
    ];
    for (i, (src, dst, alg, encap)) in cases.into_iter().enumerate() {
        let k = SaKey {
            dst: dst.parse().unwrap(),
            spi: 0x4000_0100 + i as u32,
        };
        let s = spec(src, dst, alg, encap);
        match sa_roundtrip(k, s.clone(), 1 << 40) {
            Decoded::Owned(k2, o) => {
                assert_eq!(k2, k);
                assert_eq!(o.spec, s);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn esn_replay_state_is_encoded() {
    let k = SaKey {
        dst: "10.0.0.2".parse().unwrap(),
        spi: 0x4000_0001,
    };
    let XfrmMessage::AddSa(m) = reparse(&OpKind::AddSa(
        k,
        spec("10.0.0.1", "10.0.0.2", gcm(), None),
        (3 << 32) | 5,
    )) else {
        panic!()
    };
    assert_eq!(m.user_sa_info.replay_window, 0);
    let esn = m
        .nlas
        .iter()
        .find_map(|a| match a {
            netlink_packet_xfrm::XfrmAttrs::ReplayStateEsn(r) => Some(r.clone()),
            _ => None,
        })
        .expect("ESN attribute");
    assert_eq!((esn.oseq, esn.oseq_hi), (5, 3));
    assert_eq!((esn.bmp_len, esn.replay_window), (32, 1024));
}

#[test]
fn sa_ownership() {
    let mk = |spi, reqid| {
        let k = SaKey {
            dst: "10.0.0.2".parse().unwrap(),
            spi,
        };
        let mut s = spec("10.0.0.1", "10.0.0.2", gcm(), None);
        s.reqid = reqid;
        (k, sa_roundtrip(k, s, 0))
    };
    let (k, d) = mk(0x100, R);
    assert_eq!(d, Decoded::Foreign(k), "SPI outside range");
    let (k, d) = mk(0x4000_0001, 1);
    assert_eq!(d, Decoded::Foreign(k), "reqid outside range");
    let (_, d) = mk(0, R);
    assert_eq!(d, Decoded::Skip, "larval SA (SPI 0)");
}

#[test]
fn a_wide_window_without_esn_goes_in_the_bitmap_attribute() {
    let k = SaKey {
        dst: "10.0.0.2".parse().unwrap(),
        spi: 0x4000_0002,
    };
    let mut s = spec("10.0.0.1", "10.0.0.2", gcm(), None);
    s.esn = false;
    let XfrmMessage::AddSa(m) = reparse(&OpKind::AddSa(k, s.clone(), 0)) else {
        panic!()
    };
    // The legacy field would be capped at 32 by the kernel; with the attribute it is 0.
    assert_eq!((m.user_sa_info.replay_window, m.user_sa_info.flags), (0, 0));
    assert_eq!(
        decode::sa(&m, &Ownership::default()),
        Decoded::Owned(
            k,
            ObservedSa {
                spec: s.clone(),
                stats: SaStats::default()
            }
        )
    );
    s.replay_window = 32;
    let XfrmMessage::AddSa(m) = reparse(&OpKind::AddSa(k, s, 0)) else {
        panic!()
    };
    assert_eq!(
        m.user_sa_info.replay_window, 32,
        "a narrow window stays in the legacy field"
    );
}

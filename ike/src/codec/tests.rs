//! Round trips for every payload, and malformed input that must fail cleanly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>())
            .prop_map(|(attr_type, value)| Attribute::Short { attr_type, value }),
        (0u16..0x8000, bytes(8))
            .prop_map(|(attr_type, value)| Attribute::Long { attr_type, value }),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (any::<u8>(), any::<u16>(), vec(attribute(), 0..3)).prop_map(
        |(transform_type, id, attributes)| Transform {
            transform_type,
            id,
            attributes,
        },
    )
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (any::<u8>(), any::<u8>(), bytes(9), vec(transform(), 0..6)).prop_map(
        |(number, protocol, spi, transforms)| Proposal {
            number,
            protocol,
            spi,
            transforms,
        },
    )
}

fn ip_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))),
    ]
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    (any::<u8>(), any::<u16>(), any::<u16>(), ip_pair()).prop_map(
        |(protocol, start_port, end_port, (start, end))| TrafficSelector {
            protocol,
            start_port,
            end_port,
            start,
            end,
        },
    )
}

fn id() -> impl Strategy<Value = Id> {
    (any::<u8>(), bytes(40)).prop_map(|(id_type, data)| Id { id_type, data })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        vec(proposal(), 1..4).prop_map(Payload::Sa),
        (any::<u16>(), bytes(70)).prop_map(|(group, data)| Payload::Ke(Ke { group, data })),
        id().prop_map(Payload::IdI),
        id().prop_map(Payload::IdR),
        (any::<u8>(), bytes(300))
            .prop_map(|(encoding, data)| Payload::Cert(Cert { encoding, data })),
        (any::<u8>(), bytes(60)).prop_map(|(encoding, authorities)| Payload::CertReq(CertReq {
            encoding,
            authorities
        })),
        (any::<u8>(), bytes(100)).prop_map(|(method, data)| Payload::Auth(Auth { method, data })),
        vec(any::<u8>(), 16..=256).prop_map(Payload::Nonce),
        (any::<u8>(), bytes(9), any::<u16>(), bytes(40)).prop_map(
            |(protocol, spi, notify_type, data)| {
                Payload::Notify(Notify {
                    protocol,
                    spi,
                    notify_type,
                    data,
                })
            }
        ),
        (any::<u8>(), 0u8..9, 0usize..5).prop_flat_map(|(protocol, spi_size, n)| {
            vec(vec(any::<u8>(), usize::from(spi_size)), n).prop_map(move |spis| {
                Payload::Delete(Delete {
                    protocol,
                    spi_size,
                    spis,
                })
            })
        }),
        vec(selector(), 0..4).prop_map(Payload::TsI),
        vec(selector(), 0..4).prop_map(Payload::TsR),
        (200u8.., bytes(50))
            .prop_map(|(payload_type, body)| Payload::Unknown { payload_type, body }),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(|(spi_i, spi_r, exchange, flags, message_id)| Header {
            spi_i,
            spi_r,
            exchange,
            flags,
            message_id,
        })
}

fn message() -> impl Strategy<Value = Message> {
    (
        header(),
        vec(payload(), 0..6),
        proptest::option::of((any::<u8>(), bytes(64))),
        proptest::option::of((any::<u8>(), any::<u16>(), any::<u16>(), bytes(64))),
    )
        .prop_map(|(header, mut payloads, sk, skf)| {
            if let Some((first_inner, body)) = sk {
                payloads.push(Payload::Sk { first_inner, body });
            } else if let Some((first_inner, number, total, body)) = skf {
                payloads.push(Payload::Skf {
                    first_inner,
                    number,
                    total,
                    body,
                });
            }
            Message { header, payloads }
        })
}

proptest! {
    #[test]
    fn every_payload_round_trips(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(decode_message(&bytes), Ok(m));
    }

    #[test]
    fn inner_chain_round_trips(payloads in vec(payload(), 0..6)) {
        let (first, bytes) = encode_payloads(&payloads);
        prop_assert_eq!(decode_payloads(first, &bytes), Ok(payloads));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(600)) {
        let _ = decode_message(&data);
    }

    #[test]
    fn mutated_messages_never_panic(m in message(), flips in vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = m.encode();
        for (at, x) in flips {
            let len = bytes.len();
            bytes[at % len] ^= x;
        }
        let _ = decode_message(&bytes);
        for cut in 0..bytes.len() {
            let _ = decode_message(&bytes[..cut]);
        }
    }
}

fn sample() -> Message {
    Message {
        header: Header {
            spi_i: 1,
            spi_r: 0,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            message_id: 0,
        },
        payloads: vec![
            Payload::Nonce(vec![7; 32]),
            Payload::Notify(Notify::new(notify::USE_TRANSPORT_MODE, vec![])),
        ],
    }
}

#[test]
fn truncation_is_located() {
    let bytes = sample().encode();
    let err = decode_message(&bytes[..bytes.len() - 1]).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::BadLength("message"));
    assert_eq!(err.at, HEADER_LEN);
}

#[test]
fn wrong_major_version_is_reported() {
    let mut bytes = sample().encode();
    bytes[17] = 0x10;
    assert_eq!(
        decode_message(&bytes).unwrap_err().kind,
        DecodeErrorKind::UnsupportedVersion(1)
    );
}

/// A message with an extra payload of type `ptype` (critical or not) spliced in first.
fn with_foreign_payload(ptype: u8, critical: bool) -> Vec<u8> {
    let mut bytes = sample().encode();
    let first = bytes[16];
    bytes[16] = ptype;
    let foreign = [first, if critical { 0x80 } else { 0 }, 0, 6, 0xaa, 0xbb];
    bytes.splice(HEADER_LEN..HEADER_LEN, foreign);
    let len = u32::try_from(bytes.len()).unwrap();
    bytes[24..28].copy_from_slice(&len.to_be_bytes());
    bytes
}

#[test]
fn unknown_non_critical_and_vendor_id_are_skipped() {
    for ptype in [250, payload_type::VENDOR_ID] {
        let m = decode_message(&with_foreign_payload(ptype, false)).unwrap();
        assert_eq!(m.payloads, sample().payloads);
        assert_eq!(m.unsupported_critical(), None);
    }
}

#[test]
fn unknown_critical_is_reported() {
    let m = decode_message(&with_foreign_payload(250, true)).unwrap();
    assert_eq!(m.unsupported_critical(), Some(250));
}

#[test]
fn short_nonce_is_refused() {
    let mut m = sample();
    m.payloads[0] = Payload::Nonce(vec![1; 8]);
    assert_eq!(
        decode_message(&m.encode()).unwrap_err().kind,
        DecodeErrorKind::BadLength("nonce")
    );
}

#[test]
fn key_length_attribute_is_found() {
    let t = Transform::with_key_length(1, 20, 256);
    assert_eq!(t.key_length(), Some(256));
    assert_eq!(Transform::new(1, 20).key_length(), None);
}

#[test]
fn skf_fields_sit_where_rfc_7383_puts_them() {
    let m = Message {
        header: sample().header,
        payloads: vec![Payload::Skf {
            first_inner: payload_type::IDI,
            number: 2,
            total: 3,
            body: vec![0xaa; 5],
        }],
    };
    let bytes = m.encode();
    // Generic header (next = first inner payload, length 13), Fragment Number, Total.
    assert_eq!(bytes[16], payload_type::SKF);
    assert_eq!(&bytes[28..36], &[payload_type::IDI, 0, 0, 13, 0, 2, 0, 3]);
    assert_eq!(decode_message(&bytes), Ok(m));
    // An SKF too short for its two counters is a located error.
    let mut short = bytes[..31].to_vec();
    short[31 - 3..].copy_from_slice(&[0, 0, 3]);
    let len = u32::try_from(short.len()).unwrap();
    short[24..28].copy_from_slice(&len.to_be_bytes());
    assert!(decode_message(&short).is_err());
}

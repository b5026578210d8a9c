//! IKE fragmentation (RFC 7383): splitting and reassembly under loss, duplication,
//! reordering and forgery; bounds; IKE_AUTH with an RSA-4096 chain across a 1280-byte path.

use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;

use super::fragment::{receive, seal_message, Fragmentation, Outcome, Reassembly};
use super::sim::{Faults, Sim};
use super::tests::{addr, assert_matching_children_keys, both_ready, pair, A, B};
use super::*;
use crate::codec::{
    decode_message, encode_payloads, exchange, payload_type, Cert, Header, Notify, Payload,
};
use crate::crypto::Cipher;
use crate::rng::SeededRng;

const ENC: [u8; 20] = [7; 20]; // AES-128 key + GCM salt, or an AES-CBC-128 key's first 16
const INTEG: [u8; 32] = [9; 32];

fn keys(cipher: Cipher) -> (Cipher, &'static [u8], &'static [u8]) {
    match cipher {
        Cipher::AesGcm16 { .. } => (cipher, &ENC[..], &[]),
        Cipher::AesCbcHmacSha256 { .. } => (cipher, &ENC[..16], &INTEG[..]),
    }
}

fn header(message_id: u32) -> Header {
    Header {
        spi_i: 1,
        spi_r: 2,
        exchange: exchange::IKE_AUTH,
        flags: 0x08,
        message_id,
    }
}

fn inner(cert_len: usize, notifies: usize) -> Vec<Payload> {
    let mut p = vec![Payload::Cert(Cert {
        encoding: Cert::X509_SIGNATURE,
        data: (0..cert_len).map(|i| (i % 251) as u8).collect(),
    })];
    p.extend((0..notifies).map(|i| Payload::Notify(Notify::new(16384 + i as u16, vec![1; i]))));
    p
}

fn split(cipher: Cipher, payloads: &[Payload], limit: usize, id: u32, seed: u64) -> Vec<Vec<u8>> {
    let (first, bytes) = encode_payloads(payloads);
    let mut rng = SeededRng::new(seed);
    seal_message(
        keys(cipher),
        &header(id),
        (first, &bytes),
        Some(limit),
        &mut rng,
    )
}

fn feed(
    slot: &mut Option<Reassembly>,
    limits: &Fragmentation,
    cipher: Cipher,
    d: &[u8],
) -> Outcome {
    let msg = decode_message(d).expect("fragments decode");
    receive(slot, limits, keys(cipher), d, &msg)
}

fn cipher_of(n: u8) -> Cipher {
    match n % 2 {
        0 => Cipher::AesGcm16 { bits: 128 },
        _ => Cipher::AesCbcHmacSha256 { bits: 128 },
    }
}

/// A copy of fragment `d` with one byte of its encrypted part changed.
fn tampered(d: &[u8], at: usize) -> Vec<u8> {
    let mut t = d.to_vec();
    let i = 36 + at % (t.len() - 36);
    t[i] ^= 0x40;
    t
}

/// A fragment that claims more fragments than the real message, sealed with the wrong key.
fn forged(d: &[u8]) -> Vec<u8> {
    let msg = decode_message(d).unwrap();
    let mut rng = SeededRng::new(99);
    let wrong = [1u8; 20];
    crate::crypto::seal_skf(
        Cipher::AesGcm16 { bits: 128 },
        &wrong,
        &[],
        &msg.header,
        payload_type::CERT,
        (1, 60),
        b"attacker",
        &mut rng,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any message split into fragments and delivered in any order, with duplicates and
    /// interleaved tampered or forged fragments, reassembles exactly.
    #[test]
    fn fragments_reassemble_exactly_despite_order_duplicates_and_forgery(
        cert_len in 0usize..6000,
        notifies in 0usize..6,
        limit in 150usize..1300,
        c in any::<u8>(),
        order in proptest::collection::vec(any::<u32>(), 0..200),
        noise in proptest::collection::vec((any::<u16>(), 0u8..3), 0..30),
    ) {
        let cipher = cipher_of(c);
        let payloads = inner(cert_len, notifies);
        let fragments = split(cipher, &payloads, limit, 5, u64::from(c));
        prop_assert!(fragments.iter().all(|f| f.len() <= limit) || fragments.len() == 1);
        // Every fragment at least once, then random extra copies, then shuffled by `order`.
        let mut wire: Vec<Vec<u8>> = fragments.clone();
        for (i, o) in order.iter().enumerate() {
            if i % 2 == 0 {
                wire.push(fragments[*o as usize % fragments.len()].clone());
            }
        }
        for (i, o) in order.iter().enumerate() {
            let n = wire.len();
            wire.swap(i % n, *o as usize % n);
        }
        for (at, kind) in &noise {
            let real = &fragments[usize::from(*at) % fragments.len()];
            if decode_message(real).unwrap().payloads.last().map(Payload::type_number)
                != Some(payload_type::SKF)
            {
                continue;
            }
            let bad = if *kind == 0 { forged(real) } else { tampered(real, usize::from(*at)) };
            wire.insert(usize::from(*at) % (wire.len() + 1), bad);
        }
        if fragments.len() == 1 {
            return Ok(()); // small enough to go whole: nothing to reassemble
        }
        let limits = Fragmentation { max_fragments: u16::MAX, ..Fragmentation::default() };
        let mut slot = None;
        let mut done = Vec::new();
        for d in &wire {
            if let Outcome::Complete(p) = feed(&mut slot, &limits, cipher, d) {
                done.push(p);
            }
        }
        // Copies arriving after completion may complete it again here; in an IKE SA the
        // message ID has moved on by then and they are dropped before reassembly.
        prop_assert!(!done.is_empty());
        for p in &done {
            prop_assert_eq!(p, &payloads);
        }
    }
}

#[test]
fn a_forged_or_tampered_fragment_is_refused_and_changes_nothing() {
    let cipher = Cipher::AesCbcHmacSha256 { bits: 128 };
    let payloads = inner(3000, 2);
    let fragments = split(cipher, &payloads, 600, 1, 3);
    assert!(fragments.len() > 3, "{}", fragments.len());
    let limits = Fragmentation::default();
    let mut slot = None;
    assert_eq!(
        feed(&mut slot, &limits, cipher, &fragments[0]),
        Outcome::Incomplete
    );
    // A bigger Total Fragments would restart reassembly if it were believed.
    assert_eq!(
        feed(&mut slot, &limits, cipher, &forged(&fragments[1])),
        Outcome::Dropped("integrity check failed")
    );
    assert_eq!(
        feed(&mut slot, &limits, cipher, &tampered(&fragments[1], 5)),
        Outcome::Dropped("integrity check failed")
    );
    let mut last = Outcome::Incomplete;
    for f in &fragments[1..] {
        last = feed(&mut slot, &limits, cipher, f);
    }
    assert_eq!(last, Outcome::Complete(payloads));
}

#[test]
fn too_many_fragments_and_oversized_messages_are_refused() {
    let cipher = Cipher::AesGcm16 { bits: 128 };
    let fragments = split(cipher, &inner(3000, 0), 400, 1, 4);
    let n = u16::try_from(fragments.len()).unwrap();
    let few = Fragmentation {
        max_fragments: n - 1,
        ..Fragmentation::default()
    };
    let mut slot = None;
    assert_eq!(
        feed(&mut slot, &few, cipher, &fragments[0]),
        Outcome::Dropped("too many fragments")
    );
    assert!(slot.is_none(), "nothing kept");
    let small = Fragmentation {
        max_message: 1000,
        ..Fragmentation::default()
    };
    let outcomes: Vec<Outcome> = fragments
        .iter()
        .map(|f| feed(&mut slot, &small, cipher, f))
        .collect();
    assert!(outcomes.contains(&Outcome::Dropped("reassembled message too big")));
    assert!(!outcomes.iter().any(|o| matches!(o, Outcome::Complete(_))));
}

#[test]
fn fewer_total_fragments_than_seen_is_dropped() {
    let cipher = Cipher::AesGcm16 { bits: 128 };
    let payloads = inner(3000, 0);
    let big = split(cipher, &payloads, 1200, 1, 5);
    let small = split(cipher, &payloads, 500, 1, 6);
    assert!(small.len() > big.len());
    let limits = Fragmentation::default();
    let mut slot = None;
    assert_eq!(
        feed(&mut slot, &limits, cipher, &small[0]),
        Outcome::Incomplete
    );
    assert_eq!(
        feed(&mut slot, &limits, cipher, &big[0]),
        Outcome::Dropped("fewer total fragments than before")
    );
    // And the other way: the peer re-fragmented smaller, so the larger count wins.
    let mut slot = None;
    let mut last = feed(&mut slot, &limits, cipher, &big[0]);
    for f in &small {
        last = feed(&mut slot, &limits, cipher, f);
    }
    assert_eq!(last, Outcome::Complete(payloads));
}

fn skf_delivered(s: &Sim) -> usize {
    s.delivered
        .iter()
        .filter(|(_, _, d)| d.get(16) == Some(&payload_type::SKF))
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// IKE_AUTH in fragments, both ways, over a lossy, duplicating, reordering network.
    /// IKE_SA_INIT is never fragmented (RFC 7383 §2.5.1): at 324 bytes + 28 of headers it
    /// needs a path of 352 bytes, so the path starts at 360.
    #[test]
    fn ike_auth_in_fragments_survives_a_rough_network(seed in 0u64..1000, size in 360usize..700) {
        let faults = Faults { loss: 20, duplicate: 20, jitter: Duration::from_millis(300) };
        let mut s = pair(faults, seed, |a, b| {
            a.fragmentation.size = size;
            b.fragmentation.size = size;
            a.retransmit.max_tries = 12;
            b.retransmit.max_tries = 12;
        });
        s.mtu = Some(size);
        s.a.initiate(s.now, addr(A), addr(B), None);
        prop_assert!(s.run_until(Duration::from_secs(600), both_ready));
        assert_matching_children_keys(&s);
        prop_assert!(skf_delivered(&s) > 0);
    }
}

#[test]
fn without_fragmentation_no_fragments_are_sent() {
    let mut s = pair(Faults::NONE, 1, |a, _| a.fragmentation.enabled = false);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(s.run_until(Duration::from_secs(10), both_ready));
    assert_eq!(skf_delivered(&s), 0);
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa4096/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A host with a leaf of the RSA-4096 chain root → intermediate → leaf (made by make.sh).
fn rsa_config(ip: &str) -> Config {
    let key = crate::auth::SigningKey::from_pem(&fixture(&format!("host-{ip}.key"))).unwrap();
    let certs = vec![
        fixture(&format!("host-{ip}.der")),
        fixture("intermediate.der"),
    ];
    let mut verifier = crate::cert::CertVerifier::new();
    let root = fixture("root.pem");
    verifier
        .add_authority("corp", &[&root], &[], crate::cert::RevocationMode::Relaxed)
        .unwrap();
    let id = crate::codec::Id::from_ip(ip.parse().unwrap());
    let c = Config::new(key, certs, id, verifier);
    c.check()
        .expect("fixture certificate carries the identity and key");
    c
}

/// Two hosts with the RSA-4096 chain, over a path that drops datagrams above 1280 bytes.
fn rsa_pair(fragmentation: bool) -> Sim {
    let (mut ca, mut cb) = (rsa_config("10.0.0.1"), rsa_config("10.0.0.2"));
    ca.fragmentation.enabled = fragmentation;
    cb.fragmentation.enabled = fragmentation;
    // 2027-06-01: inside the fixtures' validity (made 2026-12-07, ten years).
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000);
    let start = Instant::now();
    let a = Endpoint::new(ca, Box::new(SeededRng::new(1)), start, wall);
    let b = Endpoint::new(cb, Box::new(SeededRng::new(2)), start, wall);
    let mut s = Sim::new(a, b, addr(A), addr(B), start, Faults::NONE, 7);
    s.mtu = Some(1280);
    s
}

#[test]
fn rsa_4096_chain_crosses_a_1280_byte_path_only_in_fragments() {
    let mut s = rsa_pair(false);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(!s.run_until(Duration::from_secs(60), both_ready));
    assert!(
        s.events_a.iter().any(|e| matches!(
            e,
            Event::Failed {
                reason: FailReason::Timeout,
                ..
            }
        )),
        "{:?}",
        s.events_a
    );

    let mut s = rsa_pair(true);
    s.a.initiate(s.now, addr(A), addr(B), None);
    assert!(
        s.run_until(Duration::from_secs(60), both_ready),
        "{:?}",
        s.events_a
    );
    assert_matching_children_keys(&s);
    assert!(
        skf_delivered(&s) >= 4,
        "both IKE_AUTH messages went in fragments"
    );
    assert!(s.delivered.iter().all(|(_, _, d)| d.len() + 28 <= 1280));
}

fn drain(ep: &mut Endpoint, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| ep.poll_transmit(now))
        .map(|t| t.payload)
        .collect()
}

/// RFC 7383 §2.6.1: a lost fragmented request is retransmitted as all its fragments, and
/// the responder answers a retransmission once, on its fragment 1, with all of its own.
#[test]
fn retransmissions_carry_every_fragment_and_are_answered_on_fragment_1() {
    let mut s = pair(Faults::NONE, 3, |a, b| {
        a.fragmentation.size = 400;
        b.fragmentation.size = 400;
    });
    let (a, b, now) = (addr(A), addr(B), s.now);
    s.a.initiate(now, a, b, None);
    for init in drain(&mut s.a, now) {
        s.b.handle(now, a, b, &init);
    }
    for init in drain(&mut s.b, now) {
        s.a.handle(now, b, a, &init);
    }
    let request = drain(&mut s.a, now);
    assert!(
        request.len() > 2,
        "IKE_AUTH in fragments: {}",
        request.len()
    );
    let later = now + Duration::from_secs(1);
    s.a.handle_timeout(later);
    assert_eq!(drain(&mut s.a, later), request, "every fragment, unchanged");
    for f in &request {
        s.b.handle(later, a, b, f);
    }
    let response = drain(&mut s.b, later);
    assert!(response.len() > 1, "IKE_AUTH response in fragments");
    s.b.handle(later, a, b, &request[1]);
    assert!(
        drain(&mut s.b, later).is_empty(),
        "no answer to a later fragment"
    );
    s.b.handle(later, a, b, &request[0]);
    assert_eq!(
        drain(&mut s.b, later),
        response,
        "fragment 1 brings the whole response"
    );
}

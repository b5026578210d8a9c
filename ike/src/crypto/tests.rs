//! Known-answer tests (RFC 4231, RFC 7748, RFC 5903, GCM spec) and SK round trips.

use super::*;
use crate::codec::{decode_message, exchange, payload_type, Header, Payload};
use crate::rng::SeededRng;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn hmac_sha256_rfc4231() {
    let out = prf(&[0x0b; 20], &[b"Hi There"]);
    assert_eq!(
        out[..],
        hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    );
    let out = prf(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
    assert_eq!(
        out[..],
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
}

#[test]
fn prf_plus_follows_section_2_13() {
    let (k, s) = (b"key".as_slice(), b"seed".as_slice());
    let t1 = prf(k, &[s, &[1]]);
    let t2 = prf(k, &[&t1[..], s, &[2]]);
    let t3 = prf(k, &[&t2[..], s, &[3]]);
    let want = [&t1[..], &t2[..], &t3[..10]].concat();
    assert_eq!(prf_plus(k, &[s], 74).unwrap().expose(), &want[..]);
    assert!(prf_plus(k, &[s], 255 * PRF_LEN).is_some());
    assert!(prf_plus(k, &[s], 255 * PRF_LEN + 1).is_none());
}

#[test]
fn x25519_rfc7748_section_6_1() {
    let a = KeyShare::from_private(
        DhGroup::Curve25519,
        &arr(&hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        )),
    )
    .unwrap();
    let b = KeyShare::from_private(
        DhGroup::Curve25519,
        &arr(&hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        )),
    )
    .unwrap();
    assert_eq!(
        a.public(),
        hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    );
    assert_eq!(
        b.public(),
        hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    );
    let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(a.agree(b.public()).unwrap().expose(), &shared[..]);
    assert_eq!(b.agree(a.public()).unwrap().expose(), &shared[..]);
}

#[test]
fn ecp256_rfc5903_section_8_1() {
    let i = KeyShare::from_private(
        DhGroup::Ecp256,
        &arr(&hex(
            "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
        )),
    )
    .unwrap();
    let r = KeyShare::from_private(
        DhGroup::Ecp256,
        &arr(&hex(
            "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
        )),
    )
    .unwrap();
    assert_eq!(i.public(), hex("DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180 5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"));
    assert_eq!(r.public(), hex("D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63 56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"));
    let shared = hex("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");
    assert_eq!(i.agree(r.public()).unwrap().expose(), &shared[..]);
    assert_eq!(r.agree(i.public()).unwrap().expose(), &shared[..]);
}

fn arr(v: &[u8]) -> [u8; 32] {
    v.try_into().unwrap()
}

#[test]
fn attacker_points_are_refused() {
    let mut rng = SeededRng::new(1);
    let x = KeyShare::generate(DhGroup::Curve25519, &mut rng);
    // Low-order points of Curve25519 (0, 1, and an order-8 point): all-zero shared secret.
    let order8 = hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    for point in [
        [0u8; 32].to_vec(),
        {
            let mut p = [0u8; 32];
            p[0] = 1;
            p.to_vec()
        },
        order8,
    ] {
        assert_eq!(x.agree(&point), Err(DhError::LowOrder));
    }
    assert!(matches!(x.agree(&[9; 31]), Err(DhError::BadLength { .. })));

    let p = KeyShare::generate(DhGroup::Ecp256, &mut rng);
    let mut off_curve = p.public().to_vec();
    off_curve[63] ^= 1;
    assert_eq!(p.agree(&off_curve), Err(DhError::InvalidPoint));
    assert_eq!(p.agree(&[0u8; 64]), Err(DhError::InvalidPoint));
    assert!(matches!(
        p.agree(&[4u8; 65]),
        Err(DhError::BadLength { .. })
    ));
}

#[test]
fn aes256_gcm_spec_test_case_16() {
    // Key with the nonce's first 4 bytes as the RFC 4106 salt, the other 8 as the IV.
    let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308 cafebabe");
    let mut buf = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
    let tag = sk::gcm_seal(
        &key,
        &hex("facedbaddecaf888"),
        &hex("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
        &mut buf,
    );
    assert_eq!(buf, hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"));
    assert_eq!(tag[..], hex("76fc6ece0f4e1768cddf8853bb2d551b"));
}

#[test]
fn secrets_are_redacted() {
    let s = Secret::new(vec![0x41; 8]);
    assert_eq!(format!("{s:?}"), "Secret(8 bytes, redacted)");
    let k = derive_ike_keys(Cipher::AesGcm16 { bits: 128 }, &s, &[1; 32], &[2; 32], 1, 2);
    assert!(!format!("{k:?}").contains("65"));
}

#[test]
fn key_lengths_follow_the_suite() {
    let seed = skeyseed(&[1; 32], &[2; 32], &[3; 32]);
    let gcm = derive_ike_keys(
        Cipher::AesGcm16 { bits: 128 },
        &seed,
        &[1; 32],
        &[2; 32],
        1,
        2,
    );
    assert_eq!(
        (
            gcm.sk_d.len(),
            gcm.sk_ai.len(),
            gcm.sk_ei.len(),
            gcm.sk_pr.len()
        ),
        (32, 0, 20, 32)
    );
    let cbc = derive_ike_keys(
        Cipher::AesCbcHmacSha256 { bits: 256 },
        &seed,
        &[1; 32],
        &[2; 32],
        1,
        2,
    );
    assert_eq!(
        (cbc.sk_ai.len(), cbc.sk_ar.len(), cbc.sk_ei.len()),
        (32, 32, 32)
    );
    // SK_d is the first prf+ block, whatever the suite.
    assert_eq!(gcm.sk_d, cbc.sk_d);
    let child = child_keymat(
        &gcm.sk_d,
        Cipher::AesGcm16 { bits: 256 },
        None,
        &[1; 32],
        &[2; 32],
    );
    assert_eq!(child.initiator_to_responder.enc.len(), 36);
    assert!(child.responder_to_initiator.integ.is_empty());
    let pfs = child_keymat(
        &gcm.sk_d,
        Cipher::AesGcm16 { bits: 256 },
        Some(&[9; 32]),
        &[1; 32],
        &[2; 32],
    );
    assert_ne!(pfs, child);
    // KEYMAT is one prf+ stream: i->r encryption key first, then r->i.
    let stream = prf_plus(gcm.sk_d.expose(), &[&[1; 32], &[2; 32]], 72).unwrap();
    assert_eq!(
        child.responder_to_initiator.enc.expose(),
        &stream.expose()[36..]
    );
}

fn header() -> Header {
    Header {
        spi_i: 7,
        spi_r: 9,
        exchange: exchange::IKE_AUTH,
        flags: 0x08,
        message_id: 1,
    }
}

#[test]
fn sk_round_trips_and_refuses_tampering() {
    let inner = vec![
        Payload::Nonce(vec![5; 20]),
        Payload::Auth(crate::codec::Auth {
            method: 14,
            data: vec![1, 2, 3],
        }),
    ];
    let (first, bytes) = crate::codec::encode_payloads(&inner);
    let mut rng = SeededRng::new(2);
    for cipher in [
        Cipher::AesGcm16 { bits: 128 },
        Cipher::AesGcm16 { bits: 256 },
        Cipher::AesCbcHmacSha256 { bits: 128 },
        Cipher::AesCbcHmacSha256 { bits: 256 },
    ] {
        let enc = vec![3u8; cipher.enc_key_len()];
        let integ = vec![4u8; cipher.integ_key_len()];
        let wire = seal_sk(cipher, &enc, &integ, &header(), first, &bytes, &mut rng);
        let msg = decode_message(&wire).unwrap();
        assert_eq!(msg.payloads.len(), 1);
        assert_eq!(
            open_sk(cipher, &enc, &integ, &wire, &msg),
            Ok(inner.clone()),
            "{cipher:?}"
        );
        for at in [5, 30, wire.len() / 2, wire.len() - 1] {
            let mut bad = wire.clone();
            bad[at] ^= 0x40;
            if let Ok(m) = decode_message(&bad) {
                assert_eq!(
                    open_sk(cipher, &enc, &integ, &bad, &m),
                    Err(SkError::Integrity),
                    "{cipher:?} byte {at}"
                );
            }
        }
        let wrong = vec![5u8; cipher.enc_key_len()];
        let wrong_integ = vec![6u8; cipher.integ_key_len()];
        assert_eq!(
            open_sk(cipher, &wrong, &wrong_integ, &wire, &msg),
            Err(SkError::Integrity)
        );
    }
}

#[test]
fn sk_of_random_bytes_never_panics() {
    let cipher = Cipher::AesCbcHmacSha256 { bits: 128 };
    for len in 0..80 {
        let h = header().to_bytes(payload_type::SK, (28 + 4 + len) as u32);
        let mut wire = h.to_vec();
        wire.extend_from_slice(&[payload_type::NONCE, 0, 0, (4 + len) as u8]);
        wire.extend(std::iter::repeat_n(0xa5, len));
        let msg = decode_message(&wire).unwrap();
        assert!(open_sk(cipher, &[0; 16], &[0; 32], &wire, &msg).is_err());
        assert!(open_sk(Cipher::AesGcm16 { bits: 128 }, &[0; 20], &[], &wire, &msg).is_err());
    }
}

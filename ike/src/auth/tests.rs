//! Sign/verify round trips for every method; forged and misdirected signatures refused.

use super::*;
use crate::codec::{Auth, IdType};

const RSA_PEM: &[u8] = include_bytes!("../../testdata/rsa2048.pem");

fn keys() -> Vec<SigningKey> {
    vec![
        SigningKey::EcdsaP256(p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap()),
        SigningKey::from_pem(RSA_PEM).unwrap(),
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9; 32])),
    ]
}

fn other_key(k: &SigningKey) -> SigningKey {
    match k {
        SigningKey::EcdsaP256(_) => {
            SigningKey::EcdsaP256(p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap())
        }
        SigningKey::Rsa(_) => {
            let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rsa1024.pem"))
                .unwrap();
            let small = x509_parser::pem::parse_x509_pem(&pem).unwrap().1;
            SigningKey::Rsa(Box::new(
                rsa::PrivateKey::from_pkcs1_der(&small.contents).unwrap(),
            ))
        }
        SigningKey::Ed25519(_) => {
            SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[10; 32]))
        }
    }
}

fn octets() -> Vec<u8> {
    let id = Id {
        id_type: IdType::FQDN,
        data: b"a.example".to_vec(),
    };
    auth_octets(
        b"IKE_SA_INIT bytes",
        &[5; 32],
        &Secret::new(vec![1; 32]),
        &id,
    )
}

#[test]
fn octets_are_message_nonce_and_maced_id() {
    let id = Id {
        id_type: IdType::FQDN,
        data: b"a.example".to_vec(),
    };
    let o = octets();
    let mac = prf(&[1; 32], &[&[2, 0, 0, 0], b"a.example"]);
    assert_eq!(o, [&b"IKE_SA_INIT bytes"[..], &[5; 32], &mac[..]].concat());
    assert_ne!(
        o,
        auth_octets(
            b"IKE_SA_INIT bytes",
            &[5; 32],
            &Secret::new(vec![2; 32]),
            &id
        )
    );
}

#[test]
fn every_key_and_method_round_trips_and_refuses_forgeries() {
    let with_7427 = parse_hash_algorithms(&signature_hash_algorithms().data);
    for key in keys() {
        for hashes in [&with_7427[..], &[]] {
            let Ok(auth) = key.sign(&octets(), hashes) else {
                assert!(matches!(key, SigningKey::Ed25519(_)) && hashes.is_empty());
                continue;
            };
            let peer = PeerKey::of(&key);
            assert_eq!(
                peer.verify(&auth, &octets()),
                Ok(()),
                "{key:?} {}",
                auth.method
            );
            // Signature over different octets.
            let mut other = octets();
            other[0] ^= 1;
            assert_eq!(peer.verify(&auth, &other), Err(AuthError::BadSignature));
            // Forged: one bit of the signature flipped.
            let mut forged = auth.clone();
            let last = forged.data.len() - 1;
            forged.data[last] ^= 1;
            assert!(peer.verify(&forged, &octets()).is_err());
            // Signed by another key of the same kind.
            let intruder = other_key(&key).sign(&octets(), hashes).unwrap();
            assert!(peer.verify(&intruder, &octets()).is_err(), "{key:?}");
        }
    }
}

#[test]
fn method_follows_what_the_peer_announced() {
    let [ec, rsa, ed] = <[SigningKey; 3]>::try_from(keys()).unwrap();
    let old = ec.sign(&octets(), &[]).unwrap();
    assert_eq!((old.method, old.data.len()), (method::ECDSA_P256, 64));
    let new = ec.sign(&octets(), &[hash::SHA2_256]).unwrap();
    assert_eq!(new.method, method::DIGITAL_SIGNATURE);
    assert_eq!(&new.data[1..13], ALG_ECDSA_SHA256);
    assert_eq!(rsa.sign(&octets(), &[]).unwrap().method, method::RSA);
    assert_eq!(
        rsa.sign(&octets(), &[hash::SHA2_256]).unwrap().data[..16],
        [&[15u8][..], ALG_RSA_SHA256].concat()[..]
    );
    assert_eq!(
        ed.sign(&octets(), &[hash::SHA2_256]),
        Err(AuthError::NoCommonScheme)
    );
}

#[test]
fn wrong_methods_and_algorithms_are_refused() {
    let [ec, rsa, _] = <[SigningKey; 3]>::try_from(keys()).unwrap();
    let ec_peer = PeerKey::of(&ec);
    let rsa_auth = rsa.sign(&octets(), &[]).unwrap();
    assert_eq!(
        ec_peer.verify(&rsa_auth, &octets()),
        Err(AuthError::KeyMismatch)
    );
    let rsa_ds = rsa.sign(&octets(), &[hash::SHA2_256]).unwrap();
    assert_eq!(
        ec_peer.verify(&rsa_ds, &octets()),
        Err(AuthError::KeyMismatch)
    );
    let psk = Auth {
        method: 2,
        data: vec![0; 32],
    };
    assert_eq!(
        ec_peer.verify(&psk, &octets()),
        Err(AuthError::UnsupportedMethod(2))
    );
    let mut unknown = ec.sign(&octets(), &[hash::SHA2_256]).unwrap();
    unknown.data[12] = 3; // ecdsa-with-SHA384
    assert_eq!(
        ec_peer.verify(&unknown, &octets()),
        Err(AuthError::UnsupportedAlgorithm)
    );
    for data in [vec![], vec![200], vec![12, 0x30]] {
        let a = Auth {
            method: method::DIGITAL_SIGNATURE,
            data,
        };
        assert_eq!(ec_peer.verify(&a, &octets()), Err(AuthError::Malformed));
    }
}

#[test]
fn small_rsa_keys_are_refused() {
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rsa1024.pem")).unwrap();
    assert_eq!(
        SigningKey::from_pem(&pem).unwrap_err(),
        KeyError::TooSmall(1024)
    );
    assert!(matches!(
        SigningKey::from_pem(b"not pem"),
        Err(KeyError::Pem(_))
    ));
}

//! Each way a certificate can be wrong is refused with its own reason.

use super::testpki::{now, Pki, TestKey};
use super::*;
use crate::codec::IdType;

fn ip_id(s: &str) -> Id {
    Id::from_ip(s.parse().unwrap())
}

struct Lab {
    ca: Pki,
    verifier: CertVerifier,
    key: TestKey,
}

/// CA "corp" with a CRL that revokes serial 66, strict revocation.
fn lab() -> Lab {
    let ca = Pki::new("Corp CA", 1);
    let mut verifier = CertVerifier::new();
    verifier
        .add_authority(
            "corp",
            &[&ca.ca_der],
            &[&ca.crl(&[66], 2030)],
            RevocationMode::Strict,
        )
        .unwrap();
    Lab {
        ca,
        verifier,
        key: TestKey::new(20),
    }
}

#[test]
fn a_valid_leaf_is_accepted_under_each_identity_type() {
    let lab = lab();
    let leaf = lab.ca.leaf(&lab.key, 10, |_| {});
    let (_, parsed) = X509Certificate::from_der(&leaf).unwrap();
    let ids = [
        ip_id("10.0.0.1"),
        Id {
            id_type: IdType::FQDN,
            data: b"A.Example".to_vec(),
        },
        Id {
            id_type: IdType::RFC822_ADDR,
            data: b"a@example".to_vec(),
        },
        Id {
            id_type: IdType::DER_ASN1_DN,
            data: parsed.subject().as_raw().to_vec(),
        },
    ];
    for id in ids {
        let peer = lab.verifier.verify(&leaf, &[], &id, now()).unwrap();
        assert_eq!(peer.authority, "corp");
        assert!(peer.subject.contains("host a"), "{}", peer.subject);
        assert!(matches!(peer.key, PeerKey::EcdsaP256(_)));
    }
}

#[test]
fn each_defect_has_its_own_reason() {
    let lab = lab();
    let id = ip_id("10.0.0.1");
    let check = |leaf: Vec<u8>, id: &Id| lab.verifier.verify(&leaf, &[], id, now()).unwrap_err();
    use rcgen::{date_time_ymd, ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku};
    let expired = lab
        .ca
        .leaf(&lab.key, 11, |p| p.not_after = date_time_ymd(2026, 1, 1));
    assert_eq!(check(expired, &id), CertError::Expired);
    let future = lab
        .ca
        .leaf(&lab.key, 12, |p| p.not_before = date_time_ymd(2027, 1, 1));
    assert_eq!(check(future, &id), CertError::NotYetValid);
    assert_eq!(
        check(lab.ca.leaf(&lab.key, 66, |_| {}), &id),
        CertError::Revoked
    );
    let other_ca = Pki::new("Other CA", 2);
    assert_eq!(
        check(other_ca.leaf(&lab.key, 13, |_| {}), &id),
        CertError::UnknownIssuer
    );
    let wrong_ku = lab
        .ca
        .leaf(&lab.key, 14, |p| p.key_usages = vec![Ku::KeyEncipherment]);
    assert_eq!(check(wrong_ku, &id), CertError::KeyUsage);
    let wrong_eku = lab.ca.leaf(&lab.key, 15, |p| {
        p.extended_key_usages = vec![Eku::CodeSigning]
    });
    assert_eq!(check(wrong_eku, &id), CertError::ExtendedKeyUsage);
    let mismatch = check(lab.ca.leaf(&lab.key, 16, |_| {}), &ip_id("10.0.0.99"));
    assert!(
        matches!(&mismatch, CertError::IdMismatch { id, subject } if id == "10.0.0.99" && subject.contains("host a"))
    );
    // An attacker's CA with the same name and key identifier: the signature gives it away.
    let forger = Pki::new("Corp CA", 99);
    assert_eq!(
        check(forger.leaf(&lab.key, 17, |_| {}), &id),
        CertError::BadSignature
    );
}

#[test]
fn a_chain_through_an_intermediate_needs_the_intermediate() {
    let root = Pki::new("Corp CA", 1);
    let sub = root.intermediate("Corp Hosts CA", 3);
    let key = TestKey::new(20);
    let leaf = sub.leaf(&key, 30, |_| {});
    let mut v = CertVerifier::new();
    v.add_authority(
        "corp",
        &[&root.ca_der],
        &[&root.crl(&[], 2030), &sub.crl(&[], 2030)],
        RevocationMode::Strict,
    )
    .unwrap();
    let id = ip_id("10.0.0.1");
    assert!(v
        .verify(&leaf, std::slice::from_ref(&sub.ca_der), &id, now())
        .is_ok());
    assert_eq!(
        v.verify(&leaf, &[], &id, now()).unwrap_err(),
        CertError::UnknownIssuer
    );
    // The intermediate's CRL revokes the leaf.
    let mut revoking = CertVerifier::new();
    revoking
        .add_authority(
            "corp",
            &[&root.ca_der],
            &[&root.crl(&[], 2030), &sub.crl(&[30], 2030)],
            RevocationMode::Strict,
        )
        .unwrap();
    assert_eq!(
        revoking
            .verify(&leaf, std::slice::from_ref(&sub.ca_der), &id, now())
            .unwrap_err(),
        CertError::Revoked
    );
}

#[test]
fn eku_absent_or_ipsec_ike_is_accepted() {
    let lab = lab();
    let id = ip_id("10.0.0.1");
    let none = lab.ca.leaf(&lab.key, 20, |p| p.extended_key_usages.clear());
    assert!(lab.verifier.verify(&none, &[], &id, now()).is_ok());
    let ike = lab.ca.leaf(&lab.key, 21, |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::Other(vec![
            1, 3, 6, 1, 5, 5, 7, 3, 17,
        ])]
    });
    assert!(lab.verifier.verify(&ike, &[], &id, now()).is_ok());
}

#[test]
fn crls_are_enforced_by_mode_and_expiry() {
    let ca = Pki::new("Corp CA", 1);
    let key = TestKey::new(20);
    let leaf = ca.leaf(&key, 10, |_| {});
    let id = ip_id("10.0.0.1");
    let verify = |crls: &[&[u8]], mode| {
        let mut v = CertVerifier::new();
        v.add_authority("corp", &[&ca.ca_der], crls, mode).unwrap();
        v.verify(&leaf, &[], &id, now()).map(|_| ())
    };
    assert_eq!(
        verify(&[], RevocationMode::Strict),
        Err(CertError::RevocationUnknown)
    );
    assert_eq!(verify(&[], RevocationMode::Relaxed), Ok(()));
    let stale = ca.crl(&[], 2026);
    assert_eq!(
        verify(&[&stale], RevocationMode::Relaxed),
        Err(CertError::CrlExpired)
    );
    // A CRL of another issuer does not count as the CA's.
    let other_crl = Pki::new("Other CA", 98).crl(&[], 2030);
    assert_eq!(
        verify(&[&other_crl], RevocationMode::Strict),
        Err(CertError::RevocationUnknown)
    );
}

#[test]
fn pem_input_and_certreq_hashes() {
    let ca = Pki::new("Corp CA", 1);
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(&ca.ca_der)
    );
    let mut v = CertVerifier::new();
    v.add_authority("corp", &[pem.as_bytes()], &[], RevocationMode::Relaxed)
        .unwrap();
    let (_, c) = X509Certificate::from_der(&ca.ca_der).unwrap();
    assert_eq!(
        v.certreq_authorities(),
        Sha1::digest(c.public_key().raw).to_vec()
    );
    assert!(v
        .add_authority("bad", &[b"not a cert"], &[], RevocationMode::Relaxed)
        .is_err());
}

fn base64_lines(der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in der.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s.as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_crl_not_signed_by_the_authority_is_refused() {
    let ca = Pki::new("Corp CA", 1);
    let add = |crl: &[u8]| {
        CertVerifier::new().add_authority("corp", &[&ca.ca_der], &[crl], RevocationMode::Strict)
    };
    // A CRL in our CA's name signed with another CA's key (forged) is refused at load.
    let forged = Pki::new("Corp CA", 3).crl(&[10], 2030);
    let e = add(&forged).unwrap_err();
    assert!(
        matches!(&e, CertError::Malformed(m) if m.contains("is not signed by that CA certificate's key")),
        "{e}"
    );
    assert!(add(&ca.crl(&[10], 2030)).is_ok());
    let mut v = CertVerifier::new();
    v.add_authority(
        "corp",
        &[&ca.ca_der],
        &[&ca.crl_numbered(&[], 2030, 7)],
        RevocationMode::Strict,
    )
    .unwrap();
    let info: Vec<_> = v.crls().cloned().collect();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].authority, "corp");
    assert_eq!(info[0].number, Some(vec![7]));
    let next = rcgen::date_time_ymd(2030, 1, 1).unix_timestamp();
    assert_eq!(info[0].next_update, Some(next));
}

//! Test PKIs made with rcgen, signing with RustCrypto P-256 keys (rcgen without ring).
//! For tests only (this crate's, and the agent's through the `testkit` feature).

use std::time::{Duration, SystemTime};

/// For certificate edits in other crates' tests.
pub use rcgen;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use rsa::signature::Signer;

/// A P-256 key that rcgen can sign with.
pub struct TestKey {
    pub sk: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl TestKey {
    /// A key determined by `seed`.
    pub fn new(seed: u8) -> TestKey {
        let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let public = p256::PublicKey::from(*sk.verifying_key())
            .to_sec1_bytes()
            .to_vec();
        TestKey { sk, public }
    }

    /// The same key as our `auth::SigningKey`.
    pub fn signing_key(&self) -> crate::auth::SigningKey {
        crate::auth::SigningKey::EcdsaP256(self.sk.clone())
    }
}

impl rcgen::PublicKeyData for TestKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TestKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: p256::ecdsa::Signature = self.sk.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// A CA and what it issues.
pub struct Pki {
    key: TestKey,
    params: CertificateParams,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
}

/// 2026-06-01, the tests' "now".
pub fn now() -> SystemTime {
    let secs = date_time_ymd(2026, 6, 1).unix_timestamp();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs.try_into().unwrap())
}

impl Pki {
    /// A CA named `cn`, its key from `seed`.
    pub fn new(cn: &str, seed: u8) -> Pki {
        let key = TestKey::new(seed);
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "IKE test");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2040, 1, 1);
        params.key_identifier_method = KeyIdMethod::PreSpecified(vec![seed; 20]);
        params.serial_number = Some(SerialNumber::from(u64::from(seed)));
        let ca_der = params.self_signed(&key).unwrap().der().to_vec();
        Pki {
            key,
            params,
            ca_der,
        }
    }

    /// A CA named `cn` (key from `seed`) issued by this one.
    pub fn intermediate(&self, cn: &str, seed: u8) -> Pki {
        let mut sub = Pki::new(cn, seed);
        sub.ca_der = sub
            .params
            .signed_by(&sub.key, &Issuer::new(self.params.clone(), &self.key))
            .unwrap()
            .der()
            .to_vec();
        sub
    }

    /// A host certificate for 10.0.0.1 / a.example / a@example, adjusted by `edit`.
    pub fn leaf(
        &self,
        key: &TestKey,
        serial: u64,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::OrganizationName, "IKE test");
        p.distinguished_name.push(DnType::CommonName, "host a");
        p.subject_alt_names = vec![
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
            SanType::DnsName("a.example".try_into().unwrap()),
            SanType::Rfc822Name("a@example".try_into().unwrap()),
        ];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = date_time_ymd(2025, 1, 1);
        p.not_after = date_time_ymd(2030, 1, 1);
        p.serial_number = Some(SerialNumber::from(serial));
        p.key_identifier_method = KeyIdMethod::PreSpecified(vec![serial as u8; 20]);
        edit(&mut p);
        p.signed_by(key, &Issuer::new(self.params.clone(), &self.key))
            .unwrap()
            .der()
            .to_vec()
    }

    /// A CRL listing `revoked` serials, valid until `next_update` (year).
    pub fn crl(&self, revoked: &[u64], next_update_year: i32) -> Vec<u8> {
        self.crl_numbered(revoked, next_update_year, 1)
    }

    /// [`Pki::crl`] with crlNumber `number`.
    pub fn crl_numbered(&self, revoked: &[u64], next_update_year: i32, number: u64) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2025, 6, 1),
            next_update: date_time_ymd(next_update_year, 1, 1),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&s| RevokedCertParams {
                    serial_number: SerialNumber::from(s),
                    revocation_time: date_time_ymd(2025, 7, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::PreSpecified(vec![1; 20]),
        };
        params
            .signed_by(&Issuer::new(self.params.clone(), &self.key))
            .unwrap()
            .der()
            .to_vec()
    }
}

/// A config for the host at `ip` (its certificate's IP SAN and identity), certified by
/// `pki`, trusting `trust` as authority `corp` (strict revocation, empty CRL), its key from
/// `key_seed`, retransmitting 8 times from 0.5 s.
pub fn config(pki: &Pki, trust: &Pki, ip: &str, key_seed: u8) -> crate::sa::Config {
    let key = TestKey::new(key_seed);
    let ip_addr: std::net::IpAddr = ip.parse().unwrap();
    let cert = pki.leaf(&key, u64::from(key_seed), |p| {
        p.subject_alt_names = vec![rcgen::SanType::IpAddress(ip_addr)];
    });
    let mut verifier = crate::cert::CertVerifier::new();
    verifier
        .add_authority(
            "corp",
            &[&trust.ca_der],
            &[&trust.crl(&[], 2030)],
            crate::cert::RevocationMode::Strict,
        )
        .unwrap();
    let mut c = crate::sa::Config::new(
        key.signing_key(),
        vec![cert],
        crate::codec::Id::from_ip(ip_addr),
        verifier,
    );
    c.retransmit = crate::sa::Retransmit {
        initial: Duration::from_millis(500),
        max_tries: 8,
    };
    c
}

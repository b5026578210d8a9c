use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rcgen::{CertificateParams, DnType, SanType};

use super::*;
use crate::keys::KeyError;

/// A P-256 key rcgen signs with (rcgen is built without ring).
struct TestKey(p256::ecdsa::SigningKey, Vec<u8>);

impl TestKey {
    fn new(seed: u8) -> TestKey {
        let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let public = p256::PublicKey::from(*sk.verifying_key())
            .to_sec1_bytes()
            .to_vec();
        TestKey(sk, public)
    }
    fn sec1_pem(&self) -> String {
        let sk = p256::SecretKey::from(&self.0);
        sk.to_sec1_pem(LineEnding::LF).unwrap().to_string()
    }
    fn pkcs8_pem(&self) -> String {
        let sk = p256::SecretKey::from(&self.0);
        sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    }
    /// A self-signed certificate for `cn`, with `ip` as subjectAltName.
    fn cert_pem(&self, cn: &str, ip: &str) -> String {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = vec![SanType::IpAddress(ip.parse().unwrap())];
        p.serial_number = Some(rcgen::SerialNumber::from(u64::from(self.1[1])));
        p.self_signed(self).unwrap().pem()
    }
}

impl rcgen::PublicKeyData for TestKey {
    fn der_bytes(&self) -> &[u8] {
        &self.1
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TestKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: p256::ecdsa::Signature = self.0.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// A scratch folder, removed on drop (also for `ike_setup`'s tests).
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    pub(crate) fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("xa-cred-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    pub(crate) fn file(
        &self,
        name: &str,
        bytes: &(impl AsRef<[u8]> + ?Sized),
        mode: u32,
    ) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A folder with a certificate (0644) and its SEC1 key (0600).
fn matching_pair(tag: &str) -> (Dir, TestKey, PathBuf, PathBuf) {
    let d = Dir::new(tag);
    let k = TestKey::new(7);
    let cert = d.file("host.pem", &k.cert_pem("host-a", "10.0.0.1"), 0o644);
    let key = d.file("k.key", &k.sec1_pem(), 0o600);
    (d, k, cert, key)
}

#[test]
fn a_matching_pair_loads_with_the_subject_as_identity() {
    let d = Dir::new("ok");
    let k = TestKey::new(7);
    let cert = d.file("host.pem", &k.cert_pem("host-a", "10.0.0.1"), 0o644);
    for (name, pem) in [("sec1.key", k.sec1_pem()), ("pkcs8.key", k.pkcs8_pem())] {
        let key = d.file(name, &pem, 0o600);
        let c = HostCredentials::load(&cert, &key, None).unwrap();
        assert_eq!(c.certificates.len(), 1);
        assert_eq!(c.id.id_type, IdType::DER_ASN1_DN);
        assert_eq!(c.subject, "CN=host-a");
        assert!(matches!(c.key, SigningKey::EcdsaP256(_)));
    }
    let key = d.file("k.key", &k.sec1_pem(), 0o400);
    let ip = Id::from_ip("10.0.0.1".parse().unwrap());
    let c = HostCredentials::load(&cert, &key, Some(ip.clone())).unwrap();
    assert_eq!(c.id, ip);
}

#[test]
fn a_chain_keeps_our_certificate_first() {
    let d = Dir::new("chain");
    let k = TestKey::new(7);
    let pem = k.cert_pem("host-a", "10.0.0.1") + &TestKey::new(9).cert_pem("ca", "10.0.0.9");
    let cert = d.file("chain.pem", &pem, 0o644);
    let key = d.file("k.key", &k.sec1_pem(), 0o600);
    let c = HostCredentials::load(&cert, &key, None).unwrap();
    assert_eq!(c.certificates.len(), 2);
    assert_eq!(c.subject, "CN=host-a");
}

#[test]
fn a_key_readable_by_group_or_others_is_refused_with_the_fix() {
    let d = Dir::new("mode");
    let k = TestKey::new(7);
    let cert = d.file("host.pem", &k.cert_pem("host-a", "10.0.0.1"), 0o644);
    for mode in [0o640, 0o644, 0o604] {
        let key = d.file("k.key", &k.sec1_pem(), mode);
        let err = HostCredentials::load(&cert, &key, None).unwrap_err();
        assert!(
            matches!(err, CredentialError::KeyFile(KeyError::Permissions { mode: m, .. }) if m == mode),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("{mode:04o}")) && text.contains("chmod 600"),
            "{text}"
        );
        assert!(text.contains("k.key"), "{text}");
    }
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let d = Dir::new("mismatch");
    let cert = d.file(
        "host.pem",
        &TestKey::new(7).cert_pem("host-a", "10.0.0.1"),
        0o644,
    );
    let key = d.file("other.key", &TestKey::new(8).sec1_pem(), 0o600);
    let err = HostCredentials::load(&cert, &key, None).unwrap_err();
    assert!(matches!(err, CredentialError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("do not belong together"), "{err}");
}

#[test]
fn an_identity_the_certificate_does_not_carry_is_refused() {
    let (_d, _, cert, key) = matching_pair("id");
    let wrong = Id::from_ip("10.0.0.2".parse().unwrap());
    let err = HostCredentials::load(&cert, &key, Some(wrong)).unwrap_err();
    assert!(
        matches!(
            &err,
            CredentialError::Mismatch {
                reason: ike::cert::CertError::IdMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn garbage_is_refused_with_the_file_and_the_reason() {
    let (d, k, cert, key) = matching_pair("garbage");
    let junk = d.file("junk", "not a certificate\n", 0o600);
    let bad_der = d.file(
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        0o644,
    );
    let key_as_cert = d.file("keycert.pem", &k.sec1_pem(), 0o644);

    let err = HostCredentials::load(&junk, &key, None).unwrap_err();
    assert!(
        err.to_string().contains("no PEM CERTIFICATE block"),
        "{err}"
    );
    let err = HostCredentials::load(&bad_der, &key, None).unwrap_err();
    assert!(
        err.to_string().contains("not an X.509 certificate"),
        "{err}"
    );
    let err = HostCredentials::load(&key_as_cert, &key, None).unwrap_err();
    assert!(err.to_string().contains("not a CERTIFICATE"), "{err}");
    let err = HostCredentials::load(&cert, &junk, None).unwrap_err();
    assert!(matches!(err, CredentialError::Key { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("private key {}", junk.display())),
        "{err}"
    );
    let err = HostCredentials::load(&cert, &d.0.join("absent"), None).unwrap_err();
    assert!(
        matches!(err, CredentialError::KeyFile(KeyError::Read { .. })),
        "{err}"
    );
    let err = HostCredentials::load(&d.0.join("absent"), &key, None).unwrap_err();
    assert!(
        matches!(err, CredentialError::CertificateFile { .. }),
        "{err}"
    );
    let err = HostCredentials::load(&cert, Path::new("/dev/zero"), None).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

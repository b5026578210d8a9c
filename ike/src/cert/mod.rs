//! Peer certificates: chain to named trust anchors, validity at a given time, CRLs,
//! key usage, extended key usage, and the peer's IKE identity. Nothing is fetched: the
//! CA certificates and CRLs come in as bytes.

mod algs;
mod crl;
mod identity;
pub use identity::display_id;
#[cfg(any(test, feature = "testkit"))]
pub mod testpki;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, UnixTime};
use sha1::{Digest, Sha1};
use webpki::{
    CertRevocationList, ExpirationPolicy, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::auth::PeerKey;
use crate::codec::Id;

/// What happens when no CRL of an issuer is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationMode {
    /// A certificate whose issuer has no CRL loaded is refused.
    Strict,
    /// Such a certificate is accepted; loaded CRLs are still enforced.
    Relaxed,
}

/// Why a peer certificate was refused (one reason per failure, for counting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not a parseable X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// notAfter is before now.
    #[error("certificate expired")]
    Expired,
    /// notBefore is after now.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// Listed in its issuer's CRL.
    #[error("certificate revoked")]
    Revoked,
    /// No configured authority issued it.
    #[error("issuer is not a trusted authority")]
    UnknownIssuer,
    /// Names a trusted CA as issuer but the CA's key did not sign it.
    #[error("certificate signature does not verify (forged)")]
    BadSignature,
    /// A CRL is past its nextUpdate.
    #[error("CRL expired")]
    CrlExpired,
    /// Strict revocation and no CRL covers the chain.
    #[error("revocation status unknown")]
    RevocationUnknown,
    /// Key usage present without digitalSignature.
    #[error("key usage lacks digitalSignature")]
    KeyUsage,
    /// Extended key usage present without serverAuth, clientAuth or ipsecIKE.
    #[error("extended key usage allows neither serverAuth, clientAuth nor ipsecIKE")]
    ExtendedKeyUsage,
    /// The IKE identity is not the subject DN nor a subjectAltName of the certificate.
    #[error("identity {id} does not match certificate {subject}")]
    IdMismatch {
        /// The identity the peer claimed.
        id: String,
        /// The certificate's subject.
        subject: String,
    },
    /// The certificate's key is not usable (type or size).
    #[error("unsupported key: {0}")]
    Key(String),
    /// Any other chain failure (webpki's reason).
    #[error("chain not valid: {0}")]
    Chain(String),
}

/// A peer that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedPeer {
    /// Name of the authority that admitted it.
    pub authority: String,
    /// Subject DN, for logs and status.
    pub subject: String,
    /// Key to verify its AUTH payload with.
    pub key: PeerKey,
    /// notAfter, seconds since the Unix epoch: its SAs must not outlive it.
    pub not_after: i64,
}

struct Authority {
    name: String,
    anchors: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    crl_info: Vec<CrlInfo>,
    mode: RevocationMode,
}

/// What a loaded CRL says about itself: for warnings ahead of its nextUpdate and for
/// refusing a replacement older than it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The authority it was loaded for.
    pub authority: String,
    /// Its issuer DN (one of the authority's CA certificates).
    pub issuer: String,
    /// Its crlNumber (RFC 5280 §5.2.3: increases with each CRL of an issuer), if any.
    pub number: Option<Vec<u8>>,
    /// Its nextUpdate (Unix seconds), if any.
    pub next_update: Option<i64>,
}

/// Verifies peer certificates against named authorities.
#[derive(Default)]
pub struct CertVerifier {
    authorities: Vec<Authority>,
}

impl CertVerifier {
    /// A verifier that trusts nothing yet.
    pub fn new() -> CertVerifier {
        CertVerifier::default()
    }

    /// Adds authority `name`: CA certificates and CRLs, each PEM (possibly several) or DER.
    pub fn add_authority(
        &mut self,
        name: &str,
        ca_certs: &[&[u8]],
        crls: &[&[u8]],
        mode: RevocationMode,
    ) -> Result<(), CertError> {
        let mut anchors = Vec::new();
        for ca in ca_certs.iter().flat_map(|b| der_items(b)) {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(ca.as_slice()))
                .map_err(|e| CertError::Malformed(format!("CA certificate: {e}")))?;
            anchors.push(CertificateDer::from(ca));
        }
        let mut crl_info = Vec::new();
        let crls = crls
            .iter()
            .flat_map(|b| der_items(b))
            .map(|der| {
                crl_info.push(crl::check(name, &der, &anchors)?);
                OwnedCertRevocationList::from_der(&der)
                    .map(CertRevocationList::from)
                    .map_err(|e| CertError::Malformed(format!("CRL: {e}")))
            })
            .collect::<Result<_, _>>()?;
        self.authorities.push(Authority {
            name: name.to_string(),
            anchors,
            crls,
            crl_info,
            mode,
        });
        Ok(())
    }

    /// Every loaded CRL, authority by authority.
    pub fn crls(&self) -> impl Iterator<Item = &CrlInfo> {
        self.authorities.iter().flat_map(|a| &a.crl_info)
    }

    /// Each authority's name and revocation mode.
    pub fn authorities(&self) -> impl Iterator<Item = (&str, RevocationMode)> {
        self.authorities.iter().map(|a| (a.name.as_str(), a.mode))
    }

    /// SHA-1 hashes of every anchor's SubjectPublicKeyInfo, concatenated (CERTREQ data).
    pub fn certreq_authorities(&self) -> Vec<u8> {
        let spki_hash = |der: &CertificateDer<'_>| {
            X509Certificate::from_der(der)
                .ok()
                .map(|(_, c)| Sha1::digest(c.public_key().raw).to_vec())
        };
        self.authorities
            .iter()
            .flat_map(|a| a.anchors.iter().filter_map(spki_hash))
            .flatten()
            .collect()
    }

    /// Verifies `end_entity` (DER) with `intermediates` for `peer_id` at time `now`.
    pub fn verify(
        &self,
        end_entity: &[u8],
        intermediates: &[Vec<u8>],
        peer_id: &Id,
        now: SystemTime,
    ) -> Result<VerifiedPeer, CertError> {
        let (_, cert) = X509Certificate::from_der(end_entity)
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let mut first_error = CertError::UnknownIssuer;
        for authority in &self.authorities {
            match authority.verify_chain(end_entity, intermediates, now) {
                Ok(()) => return finish(&authority.name, &cert, peer_id),
                Err(CertError::UnknownIssuer) => {}
                Err(e) if first_error == CertError::UnknownIssuer => first_error = e,
                Err(_) => {}
            }
        }
        if first_error == CertError::UnknownIssuer && self.names_trusted_issuer(&cert) {
            // Issued in a trusted CA's name, but that CA's key did not sign it.
            return Err(CertError::BadSignature);
        }
        Err(first_error)
    }

    fn names_trusted_issuer(&self, cert: &X509Certificate<'_>) -> bool {
        let issuer = cert.issuer().as_raw();
        self.authorities.iter().flat_map(|a| &a.anchors).any(|der| {
            X509Certificate::from_der(der).is_ok_and(|(_, ca)| ca.subject().as_raw() == issuer)
        })
    }
}

impl Authority {
    fn verify_chain(
        &self,
        end_entity: &[u8],
        intermediates: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<(), CertError> {
        let anchors = self
            .anchors
            .iter()
            .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
            .collect::<Vec<_>>();
        let ee_der = CertificateDer::from(end_entity);
        let ee = webpki::EndEntityCert::try_from(&ee_der)
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let inter: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(builder) => Some(
                builder
                    .with_depth(RevocationCheckDepth::Chain)
                    .with_expiration_policy(ExpirationPolicy::Enforce)
                    .with_status_policy(match self.mode {
                        RevocationMode::Strict => UnknownStatusPolicy::Deny,
                        RevocationMode::Relaxed => UnknownStatusPolicy::Allow,
                    })
                    .build(),
            ),
            Err(_) if self.mode == RevocationMode::Strict => {
                return Err(CertError::RevocationUnknown)
            }
            Err(_) => None,
        };
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        ee.verify_for_usage(
            algs::ALGORITHMS,
            &anchors,
            &inter,
            UnixTime::since_unix_epoch(since_epoch),
            identity::IkeEku,
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(map_webpki)
    }
}

/// Checks our own certificate against our identity and private key (at load time).
pub fn check_own(
    certificate: &[u8],
    id: &Id,
    key: &crate::auth::SigningKey,
) -> Result<(), CertError> {
    let (_, cert) =
        X509Certificate::from_der(certificate).map_err(|e| CertError::Malformed(e.to_string()))?;
    identity::check(&cert, id)?;
    let public =
        PeerKey::from_spki_der(cert.public_key().raw).map_err(|e| CertError::Key(e.to_string()))?;
    let probe = b"xfrm-agent key check";
    let hashes = [crate::auth::hash::SHA2_256, crate::auth::hash::IDENTITY];
    let signed = key
        .sign(probe, &hashes)
        .map_err(|e| CertError::Key(e.to_string()))?;
    public
        .verify(&signed, probe)
        .map_err(|_| CertError::Key("the private key does not belong to the certificate".into()))
}

fn finish(
    authority: &str,
    cert: &X509Certificate<'_>,
    peer_id: &Id,
) -> Result<VerifiedPeer, CertError> {
    if let Ok(Some(ku)) = cert.key_usage() {
        if !ku.value.digital_signature() {
            return Err(CertError::KeyUsage);
        }
    }
    identity::check(cert, peer_id)?;
    let key =
        PeerKey::from_spki_der(cert.public_key().raw).map_err(|e| CertError::Key(e.to_string()))?;
    Ok(VerifiedPeer {
        authority: authority.to_string(),
        subject: cert.subject().to_string(),
        key,
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn map_webpki(e: webpki::Error) -> CertError {
    use webpki::Error as W;
    match e {
        W::CertExpired { .. } => CertError::Expired,
        W::CertNotValidYet { .. } => CertError::NotYetValid,
        W::CertRevoked => CertError::Revoked,
        W::UnknownIssuer => CertError::UnknownIssuer,
        W::InvalidSignatureForPublicKey => CertError::BadSignature,
        W::CrlExpired { .. } => CertError::CrlExpired,
        W::UnknownRevocationStatus => CertError::RevocationUnknown,
        W::RequiredEkuNotFoundContext(_) => CertError::ExtendedKeyUsage,
        other => CertError::Chain(format!("{other:?}")),
    }
}

/// The DER items in `bytes`: every PEM block if it is PEM, else `bytes` itself.
fn der_items(bytes: &[u8]) -> Vec<Vec<u8>> {
    if !bytes.starts_with(b"-----BEGIN") && !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return vec![bytes.to_vec()];
    }
    x509_parser::pem::Pem::iter_from_buffer(bytes)
        .filter_map(Result::ok)
        .map(|p| p.contents)
        .collect()
}

/// The notAfter (Unix seconds) of certificate `der`, if it parses.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

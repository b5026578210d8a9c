//! This host's IKE credentials: its certificate (PEM, chain allowed) and private key (PEM:
//! PKCS#8, SEC1 or PKCS#1), read through the safe file reader, the key refused when group
//! or others can read it, and the pair checked to belong together at load time, so a
//! mismatch is one clear error rather than failed handshakes later.

use std::path::{Path, PathBuf};

use ike::auth::SigningKey;
use ike::codec::{Id, IdType};
use policy_schema::file::read_regular;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate chain or key file larger than this is not one (and is not read).
pub const MAX_CREDENTIAL_FILE_SIZE: u64 = 1 << 20;

/// Why the host's credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("certificate {path}: {reason}")]
    CertificateFile {
        path: PathBuf,
        reason: policy_schema::ReadError,
    },
    /// Unreadable, or readable by group or others.
    #[error(transparent)]
    KeyFile(crate::keys::KeyError),
    #[error("certificate {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("private key {path}: {reason}")]
    Key {
        path: PathBuf,
        reason: ike::auth::KeyError,
    },
    #[error(
        "certificate {cert} and private key {key} do not belong together: {reason} \
         (give the key the certificate was issued for)"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: ike::cert::CertError,
    },
}

/// The host's certificate chain, key and IKE identity, as the `ike` crate takes them.
#[derive(Debug)]
pub struct HostCredentials {
    /// Our private key.
    pub key: SigningKey,
    /// Our certificate (DER) first, then the intermediates the file holds, in file order.
    pub certificates: Vec<Vec<u8>>,
    /// Our IKE identity: the one asked for, else our certificate's subject DN.
    pub id: Id,
    /// Our certificate's subject, for logs and status.
    pub subject: String,
    /// Our certificate's notAfter, seconds since the Unix epoch (for the expiry metric).
    pub not_after: i64,
}

impl HostCredentials {
    /// Read `cert` and `key`; `id` (default: the certificate's subject DN) must be named
    /// by the certificate, and the key must be the certificate's.
    pub fn load(
        cert: &Path,
        key: &Path,
        id: Option<Id>,
    ) -> Result<HostCredentials, CredentialError> {
        let certificates = read_chain(cert)?;
        let signing = read_key(key)?;
        let cert_err = |reason: String| CredentialError::Certificate {
            path: cert.into(),
            reason,
        };
        let (_, parsed) =
            X509Certificate::from_der(&certificates[0]).map_err(|e| cert_err(e.to_string()))?;
        let id = id.unwrap_or_else(|| Id {
            id_type: IdType::DER_ASN1_DN,
            data: parsed.subject().as_raw().to_vec(),
        });
        ike::cert::check_own(&certificates[0], &id, &signing).map_err(|reason| {
            CredentialError::Mismatch {
                cert: cert.into(),
                key: key.into(),
                reason,
            }
        })?;
        Ok(HostCredentials {
            subject: parsed.subject().to_string(),
            not_after: parsed.validity().not_after.timestamp(),
            key: signing,
            certificates,
            id,
        })
    }
}

/// Every `CERTIFICATE` block of a PEM file, each a parseable X.509 certificate; at least one.
fn read_chain(path: &Path) -> Result<Vec<Vec<u8>>, CredentialError> {
    let file_err = |reason| CredentialError::CertificateFile {
        path: path.into(),
        reason,
    };
    let snap = read_regular(path, MAX_CREDENTIAL_FILE_SIZE).map_err(file_err)?;
    let err = |reason: String| CredentialError::Certificate {
        path: path.into(),
        reason,
    };
    let mut chain = Vec::new();
    for (i, pem) in x509_parser::pem::Pem::iter_from_buffer(&snap.bytes).enumerate() {
        let pem = pem.map_err(|e| err(format!("PEM block {}: {e}", i + 1)))?;
        if pem.label != "CERTIFICATE" {
            return Err(err(format!(
                "PEM block {} is a {:?}, not a CERTIFICATE",
                i + 1,
                pem.label
            )));
        }
        X509Certificate::from_der(&pem.contents).map_err(|e| {
            err(format!(
                "PEM block {}: not an X.509 certificate: {e}",
                i + 1
            ))
        })?;
        chain.push(pem.contents);
    }
    if chain.is_empty() {
        return Err(err("no PEM CERTIFICATE block in the file".into()));
    }
    Ok(chain)
}

/// The private key, refused before reading when group or others can read the file.
fn read_key(path: &Path) -> Result<SigningKey, CredentialError> {
    let bytes = crate::keys::read_private_file(path, MAX_CREDENTIAL_FILE_SIZE)
        .map_err(CredentialError::KeyFile)?;
    SigningKey::from_pem(&bytes).map_err(|reason| CredentialError::Key {
        path: path.into(),
        reason,
    })
}

#[cfg(test)]
pub(crate) mod tests;

//! AUTH payloads (RFC 7296 §2.15): the signed octets, and signatures with methods 1
//! (RSA PKCS#1 v1.5 with SHA-1, as strongSwan and Windows read it), 9 (ECDSA P-256 with
//! SHA-256, r||s) and 14 (RFC 7427 with an AlgorithmIdentifier; Ed25519 per RFC 8420).

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

use crate::codec::{Auth, Id, Notify};
use crate::crypto::{prf, Secret};

/// AUTH method numbers.
pub mod method {
    /// RSA Digital Signature (PKCS#1 v1.5, SHA-1).
    pub const RSA: u8 = 1;
    /// ECDSA with SHA-256 on P-256 (RFC 4754).
    pub const ECDSA_P256: u8 = 9;
    /// Digital Signature (RFC 7427).
    pub const DIGITAL_SIGNATURE: u8 = 14;
}

/// Hash algorithm numbers of the SIGNATURE_HASH_ALGORITHMS notify (RFC 7427, RFC 8420).
pub mod hash {
    pub const SHA1: u16 = 1;
    pub const SHA2_256: u16 = 2;
    pub const SHA2_384: u16 = 3;
    pub const SHA2_512: u16 = 4;
    pub const IDENTITY: u16 = 5;
}

// DER AlgorithmIdentifiers (RFC 7427 Appendix A, RFC 8420).
const ALG_RSA_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const ALG_RSA_SHA384: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
const ALG_RSA_SHA512: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// Smallest RSA modulus accepted from a peer, in bytes (2048 bits).
const MIN_RSA_BYTES: usize = 256;

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// An AUTH method we do not implement (e.g. PSK).
    #[error("AUTH method {0} is not supported")]
    UnsupportedMethod(u8),
    /// RFC 7427 data with an AlgorithmIdentifier we do not accept.
    #[error("signature algorithm not supported")]
    UnsupportedAlgorithm,
    /// The method or algorithm does not fit the certificate's key.
    #[error("signature algorithm does not match the peer's key")]
    KeyMismatch,
    /// The AUTH data is not a signature.
    #[error("malformed AUTH data")]
    Malformed,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// We cannot sign in a way the peer announced it accepts.
    #[error("no signature scheme in common with the peer")]
    NoCommonScheme,
}

/// Why a key was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or an unexpected PEM label.
    #[error("not a PEM private key ({0})")]
    Pem(String),
    /// PEM, but not an ECDSA P-256, RSA or Ed25519 key.
    #[error("unsupported or malformed key")]
    Unsupported,
    /// An RSA key below 2048 bits.
    #[error("RSA key of {0} bits is too small (2048 minimum)")]
    TooSmall(usize),
}

/// The octets an AUTH payload signs: message | peer's nonce | prf(SK_p, ID').
pub fn auth_octets(real_message: &[u8], peer_nonce: &[u8], sk_p: &Secret, id: &Id) -> Vec<u8> {
    let maced_id = prf(sk_p.expose(), &[&id.body_bytes()]);
    [real_message, peer_nonce, &maced_id[..]].concat()
}

/// The SIGNATURE_HASH_ALGORITHMS notify we send: the hashes we verify with.
pub fn signature_hash_algorithms() -> Notify {
    let hashes = [
        hash::SHA2_256,
        hash::SHA2_384,
        hash::SHA2_512,
        hash::IDENTITY,
    ];
    let data = hashes.iter().flat_map(|h| h.to_be_bytes()).collect();
    Notify::new(crate::codec::notify::SIGNATURE_HASH_ALGORITHMS, data)
}

/// Parses the data of a peer's SIGNATURE_HASH_ALGORITHMS notify.
pub fn parse_hash_algorithms(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// Our private key.
pub enum SigningKey {
    /// ECDSA on P-256.
    EcdsaP256(p256::ecdsa::SigningKey),
    /// RSA, 2048 bits or more.
    Rsa(Box<rsa::PrivateKey>),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            SigningKey::EcdsaP256(_) => "EcdsaP256",
            SigningKey::Rsa(_) => "Rsa",
            SigningKey::Ed25519(_) => "Ed25519",
        };
        write!(f, "SigningKey::{kind}(redacted)")
    }
}

impl SigningKey {
    /// Loads a PEM key: SEC1 `EC PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, KeyError> {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
        let der = zeroize::Zeroizing::new(pem.contents);
        let key = match pem.label.as_str() {
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                .map(|k| SigningKey::EcdsaP256(k.into()))
                .map_err(|_| KeyError::Unsupported)?,
            "RSA PRIVATE KEY" => rsa::PrivateKey::from_pkcs1_der(&der)
                .map(|k| SigningKey::Rsa(Box::new(k)))
                .map_err(|_| KeyError::Unsupported)?,
            "PRIVATE KEY" => Self::from_pkcs8_der(&der)?,
            other => return Err(KeyError::Pem(format!("label {other}"))),
        };
        if let SigningKey::Rsa(k) = &key {
            if k.size() < MIN_RSA_BYTES {
                return Err(KeyError::TooSmall(k.size() * 8));
            }
        }
        Ok(key)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            return Ok(SigningKey::EcdsaP256(k.into()));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(SigningKey::Ed25519(k));
        }
        rsa::PrivateKey::from_pkcs8_der(der)
            .map(|k| SigningKey::Rsa(Box::new(k)))
            .map_err(|_| KeyError::Unsupported)
    }

    /// Signs `octets`: RFC 7427 when the peer announced a hash we can use, else the old method.
    pub fn sign(&self, octets: &[u8], peer_hashes: &[u16]) -> Result<Auth, AuthError> {
        let auth = |method, data| Ok(Auth { method, data });
        let ds = |alg: &[u8], sig: &[u8]| {
            let len = u8::try_from(alg.len()).unwrap_or(0);
            auth(method::DIGITAL_SIGNATURE, [&[len][..], alg, sig].concat())
        };
        match self {
            SigningKey::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(octets);
                if peer_hashes.contains(&hash::SHA2_256) {
                    ds(ALG_ECDSA_SHA256, sig.to_der().as_bytes())
                } else {
                    auth(method::ECDSA_P256, sig.to_bytes().to_vec())
                }
            }
            SigningKey::Rsa(k) => {
                if peer_hashes.contains(&hash::SHA2_256) {
                    let s = rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone()).sign(octets);
                    ds(ALG_RSA_SHA256, &s.to_bytes())
                } else {
                    let s = rsa::pkcs1v15::SigningKey::<Sha1>::new((**k).clone()).sign(octets);
                    auth(method::RSA, s.to_vec())
                }
            }
            SigningKey::Ed25519(k) if peer_hashes.contains(&hash::IDENTITY) => {
                ds(ALG_ED25519, &k.sign(octets).to_bytes())
            }
            SigningKey::Ed25519(_) => Err(AuthError::NoCommonScheme),
        }
    }
}

/// A peer's public key, taken from its (verified) certificate.
#[derive(Debug, Clone)]
pub enum PeerKey {
    /// ECDSA on P-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// RSA.
    Rsa(rsa::PublicKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PeerKey {
    /// The key in a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Result<PeerKey, KeyError> {
        if let Ok(k) = p256::PublicKey::from_public_key_der(spki) {
            return Ok(PeerKey::EcdsaP256(k.into()));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(spki) {
            return Ok(PeerKey::Ed25519(k));
        }
        let k = rsa::PublicKey::from_public_key_der(spki).map_err(|_| KeyError::Unsupported)?;
        if k.size() < MIN_RSA_BYTES {
            return Err(KeyError::TooSmall(k.size() * 8));
        }
        Ok(PeerKey::Rsa(k))
    }

    /// Our verifying key for `key` (to test, and to check a configured key pair).
    pub fn of(key: &SigningKey) -> PeerKey {
        match key {
            SigningKey::EcdsaP256(k) => PeerKey::EcdsaP256(*k.verifying_key()),
            SigningKey::Rsa(k) => PeerKey::Rsa(k.to_public_key()),
            SigningKey::Ed25519(k) => PeerKey::Ed25519(k.verifying_key()),
        }
    }

    /// Verifies the peer's AUTH payload over `octets`.
    pub fn verify(&self, auth: &Auth, octets: &[u8]) -> Result<(), AuthError> {
        match (auth.method, self) {
            (method::RSA, PeerKey::Rsa(k)) => rsa_verify::<Sha1>(k, octets, &auth.data),
            (method::ECDSA_P256, PeerKey::EcdsaP256(k)) => {
                let sig = p256::ecdsa::Signature::from_slice(&auth.data)
                    .map_err(|_| AuthError::Malformed)?;
                k.verify(octets, &sig).map_err(|_| AuthError::BadSignature)
            }
            (method::RSA | method::ECDSA_P256, _) => Err(AuthError::KeyMismatch),
            (method::DIGITAL_SIGNATURE, _) => self.verify_digital_signature(&auth.data, octets),
            (other, _) => Err(AuthError::UnsupportedMethod(other)),
        }
    }

    fn verify_digital_signature(&self, data: &[u8], octets: &[u8]) -> Result<(), AuthError> {
        let (&len, rest) = data.split_first().ok_or(AuthError::Malformed)?;
        let len = usize::from(len);
        let alg = rest.get(..len).ok_or(AuthError::Malformed)?;
        let sig = rest.get(len..).ok_or(AuthError::Malformed)?;
        let is_rsa = [ALG_RSA_SHA256, ALG_RSA_SHA384, ALG_RSA_SHA512].contains(&alg);
        if !is_rsa && alg != ALG_ECDSA_SHA256 && alg != ALG_ED25519 {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        match self {
            PeerKey::Rsa(k) if alg == ALG_RSA_SHA256 => rsa_verify::<Sha256>(k, octets, sig),
            PeerKey::Rsa(k) if alg == ALG_RSA_SHA384 => rsa_verify::<Sha384>(k, octets, sig),
            PeerKey::Rsa(k) if alg == ALG_RSA_SHA512 => rsa_verify::<Sha512>(k, octets, sig),
            PeerKey::EcdsaP256(k) if alg == ALG_ECDSA_SHA256 => {
                let sig =
                    p256::ecdsa::Signature::from_der(sig).map_err(|_| AuthError::Malformed)?;
                k.verify(octets, &sig).map_err(|_| AuthError::BadSignature)
            }
            PeerKey::Ed25519(k) if alg == ALG_ED25519 => {
                let sig =
                    ed25519_dalek::Signature::from_slice(sig).map_err(|_| AuthError::Malformed)?;
                k.verify_strict(octets, &sig)
                    .map_err(|_| AuthError::BadSignature)
            }
            _ => Err(AuthError::KeyMismatch),
        }
    }
}

fn rsa_verify<D>(key: &rsa::PublicKey, octets: &[u8], sig: &[u8]) -> Result<(), AuthError>
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| AuthError::Malformed)?;
    rsa::pkcs1v15::VerifyingKey::<D>::new(key.clone())
        .verify(octets, &sig)
        .map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests;

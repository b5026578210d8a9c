//! Cipher suites as the kernel knows them, and the per-SA key derivation.

use std::net::IpAddr;

use policy_schema::{Cipher, Encapsulation, Mode};

use super::net::addr_bytes;
use crate::keys::{PairKey, KDF_LABEL};
use crate::model::Algorithm;

/// Key lengths of a suite: (encryption or AEAD key incl. salt, authentication key).
fn key_lengths(c: Cipher) -> (usize, usize) {
    match c {
        // RFC 4106: AES key + 4-byte salt.
        Cipher::AesGcm128 => (16 + 4, 0),
        Cipher::AesGcm256 => (32 + 4, 0),
        // RFC 7634: 256-bit key + 4-byte salt.
        Cipher::Chacha20Poly1305 => (32 + 4, 0),
        // RFC 3602 AES-128-CBC + RFC 4868 HMAC-SHA-256-128.
        Cipher::AesCbcHmacSha256 => (16, 32),
        // RFC 2451 3DES-CBC + RFC 2404 HMAC-SHA-1-96.
        Cipher::TripleDesHmacSha1 => (24, 20),
    }
}

/// Everything that makes one SA's key unique: who sends to whom, when, and how.
pub struct SaContext<'a> {
    pub cipher: Cipher,
    pub mode: Mode,
    pub encap: Encapsulation,
    pub epoch: u64,
    pub src: &'a IpAddr,
    pub dst: &'a IpAddr,
}

impl SaContext<'_> {
    /// HKDF info: version label, purpose, suite, epoch and both addresses in direction order,
    /// so A→B and B→A get unrelated keys and nothing is reused across epochs or suites.
    fn info(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(96);
        info.extend_from_slice(KDF_LABEL);
        info.extend_from_slice(b" esp-sa ");
        info.extend_from_slice(self.cipher.as_str().as_bytes());
        info.push(b' ');
        info.extend_from_slice(self.mode.as_str().as_bytes());
        info.push(match self.encap {
            Encapsulation::None => b'0',
            Encapsulation::Udp => b'u',
        });
        info.extend_from_slice(&self.epoch.to_be_bytes());
        info.extend_from_slice(&addr_bytes(self.src));
        info.extend_from_slice(&addr_bytes(self.dst));
        info
    }

    /// The kernel algorithm with its derived key.
    pub fn algorithm(&self, pair: &PairKey) -> Algorithm {
        let (enc_len, auth_len) = key_lengths(self.cipher);
        let material = pair.expand(&self.info(), enc_len + auth_len);
        let bytes = material.expose();
        let enc = || crate::secret::Secret::new(bytes[..enc_len].to_vec());
        let auth = || crate::secret::Secret::new(bytes[enc_len..].to_vec());
        match self.cipher {
            Cipher::AesGcm128 | Cipher::AesGcm256 => Algorithm::Aead {
                name: "rfc4106(gcm(aes))".into(),
                key: enc(),
                icv_bits: 128,
            },
            Cipher::Chacha20Poly1305 => Algorithm::Aead {
                name: "rfc7539esp(chacha20,poly1305)".into(),
                key: enc(),
                icv_bits: 128,
            },
            Cipher::AesCbcHmacSha256 => Algorithm::EncAuth {
                enc_name: "cbc(aes)".into(),
                enc_key: enc(),
                auth_name: "hmac(sha256)".into(),
                auth_key: auth(),
                trunc_bits: 128,
            },
            Cipher::TripleDesHmacSha1 => Algorithm::EncAuth {
                enc_name: "cbc(des3_ede)".into(),
                enc_key: enc(),
                auth_name: "hmac(sha1)".into(),
                auth_key: auth(),
                trunc_bits: 96,
            },
        }
    }
}

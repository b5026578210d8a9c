//! Cipher suites as the kernel knows them, and the per-SA key derivation.

use std::net::IpAddr;

use policy_schema::{Cipher, Encapsulation, Mode};

use super::carry::{DerivationId, Pair};
use super::net::addr_tagged;
use super::spi::profile;
use crate::keys::KDF_LABEL;
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
    /// The oldest epoch still in force: the pair may forget keys of earlier ones.
    pub oldest_epoch: u64,
}

impl SaContext<'_> {
    /// HKDF info: version label, purpose, suite, epoch and both addresses in direction order,
    /// so A→B and B→A get unrelated keys and nothing is reused across epochs or suites.
    /// Built on the stack: this runs once per SA, tens of thousands of times per compile.
    fn info(&self, buf: &mut [u8; 128]) -> usize {
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            buf[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        put(KDF_LABEL);
        put(b" esp-sa ");
        put(self.cipher.as_str().as_bytes());
        put(b" ");
        put(self.mode.as_str().as_bytes());
        put(match self.encap {
            Encapsulation::None => b"0",
            Encapsulation::Udp => b"u",
        });
        put(&self.epoch.to_be_bytes());
        put(&addr_tagged(self.src));
        put(&addr_tagged(self.dst));
        n
    }

    /// The kernel algorithm with its derived key (expanded once per pair and SA, then
    /// remembered by the pair: the info binds nothing but the id's fields).
    pub fn algorithm(&self, pair: &mut Pair) -> Algorithm {
        let id = DerivationId {
            profile: profile(self.cipher, self.mode, self.encap),
            epoch: self.epoch,
            src: *self.src,
            dst: *self.dst,
        };
        let keys = pair.remembered(id, self.oldest_epoch, |pair| {
            let (enc_len, auth_len) = key_lengths(self.cipher);
            let mut buf = [0u8; 128];
            let n = self.info(&mut buf);
            pair.expand_split(&buf[..n], enc_len, auth_len)
        });
        let mut keys = Some(keys);
        let mut take = || keys.take().expect("one algorithm per SA");
        match self.cipher {
            Cipher::AesGcm128 | Cipher::AesGcm256 => Algorithm::Aead {
                name: "rfc4106(gcm(aes))".into(),
                key: take().0,
                icv_bits: 128,
            },
            Cipher::Chacha20Poly1305 => Algorithm::Aead {
                name: "rfc7539esp(chacha20,poly1305)".into(),
                key: take().0,
                icv_bits: 128,
            },
            Cipher::AesCbcHmacSha256 => {
                let (enc_key, auth_key) = take();
                Algorithm::EncAuth {
                    enc_name: "cbc(aes)".into(),
                    enc_key,
                    auth_name: "hmac(sha256)".into(),
                    auth_key,
                    trunc_bits: 128,
                }
            }
            Cipher::TripleDesHmacSha1 => {
                let (enc_key, auth_key) = take();
                Algorithm::EncAuth {
                    enc_name: "cbc(des3_ede)".into(),
                    enc_key,
                    auth_name: "hmac(sha1)".into(),
                    auth_key,
                    trunc_bits: 96,
                }
            }
        }
    }
}

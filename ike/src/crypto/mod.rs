//! Key exchange, key derivation and SK payload protection (RFC 7296 §2.13–2.17, §3.14).
//!
//! Provider: RustCrypto (pure Rust; the tree already uses its x25519-dalek, sha2, zeroize).

mod dh;
mod keys;
mod prf;
mod secret;
mod sk;
#[cfg(test)]
mod tests;

pub use dh::{DhError, DhGroup, KeyShare};
pub use keys::{
    child_keymat, derive_ike_keys, rekey_skeyseed, skeyseed, ChildKeys, DirectionKeys, IkeKeys,
};
pub use prf::{prf, prf_plus, PRF_LEN};
pub use secret::Secret;
pub use sk::{
    open_sk, open_skf, seal_sk, seal_skf, skf_capacity, FragmentIndex, OpenedFragment, SkError,
};

/// Transform type and ID numbers (IANA "IKEv2 Parameters").
pub mod transform {
    pub const ENCR: u8 = 1;
    pub const PRF: u8 = 2;
    pub const INTEG: u8 = 3;
    pub const DH: u8 = 4;
    pub const ESN: u8 = 5;
    pub const ENCR_AES_CBC: u16 = 12;
    pub const ENCR_AES_GCM_16: u16 = 20;
    pub const PRF_HMAC_SHA2_256: u16 = 5;
    pub const AUTH_HMAC_SHA2_256_128: u16 = 12;
    pub const ESN_NONE: u16 = 0;
}

/// An encryption algorithm, for the IKE SA or ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-GCM with a 16-byte ICV (RFC 4106 / RFC 5282); key bits 128 or 256.
    AesGcm16 {
        /// Key length in bits.
        bits: u16,
    },
    /// AES-CBC with HMAC-SHA2-256-128 integrity; key bits 128 or 256.
    AesCbcHmacSha256 {
        /// Key length in bits.
        bits: u16,
    },
}

impl Cipher {
    /// Length of the encryption key material: key, plus a 4-byte salt for GCM.
    pub fn enc_key_len(self) -> usize {
        match self {
            Cipher::AesGcm16 { bits } => usize::from(bits / 8) + 4,
            Cipher::AesCbcHmacSha256 { bits } => usize::from(bits / 8),
        }
    }

    /// Length of the integrity key (none for an AEAD).
    pub fn integ_key_len(self) -> usize {
        match self {
            Cipher::AesGcm16 { .. } => 0,
            Cipher::AesCbcHmacSha256 { .. } => 32,
        }
    }

    /// The transforms that propose this cipher (ENCR, and INTEG when not an AEAD).
    pub fn transforms(self) -> Vec<crate::codec::Transform> {
        use crate::codec::Transform as T;
        match self {
            Cipher::AesGcm16 { bits } => {
                vec![T::with_key_length(
                    transform::ENCR,
                    transform::ENCR_AES_GCM_16,
                    bits,
                )]
            }
            Cipher::AesCbcHmacSha256 { bits } => vec![
                T::with_key_length(transform::ENCR, transform::ENCR_AES_CBC, bits),
                T::new(transform::INTEG, transform::AUTH_HMAC_SHA2_256_128),
            ],
        }
    }

    /// The cipher named by an ENCR transform and the INTEG transform chosen with it.
    pub fn from_transforms(encr: &crate::codec::Transform, integ: Option<u16>) -> Option<Cipher> {
        let bits = encr.key_length()?;
        if bits != 128 && bits != 256 {
            return None;
        }
        match (encr.id, integ) {
            (transform::ENCR_AES_GCM_16, None) => Some(Cipher::AesGcm16 { bits }),
            (transform::ENCR_AES_CBC, Some(transform::AUTH_HMAC_SHA2_256_128)) => {
                Some(Cipher::AesCbcHmacSha256 { bits })
            }
            _ => None,
        }
    }

    /// Whether this is an AEAD (no separate INTEG transform).
    pub fn is_aead(self) -> bool {
        matches!(self, Cipher::AesGcm16 { .. })
    }
}

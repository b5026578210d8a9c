//! Diffie-Hellman groups 14 (MODP-2048, RFC 3526), 19 (ECP-256, RFC 5903) and 31
//! (Curve25519, RFC 8031).

use zeroize::Zeroizing;

use super::{modp, Secret};
use crate::rng::Rng;

/// A supported Diffie-Hellman group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 14, the 2048-bit MODP group (RFC 3526 §3).
    Modp2048,
    /// Group 19, 256-bit random ECP group (NIST P-256).
    Ecp256,
    /// Group 31, Curve25519.
    Curve25519,
}

impl DhGroup {
    /// The IANA transform ID.
    pub fn number(self) -> u16 {
        match self {
            DhGroup::Modp2048 => 14,
            DhGroup::Ecp256 => 19,
            DhGroup::Curve25519 => 31,
        }
    }

    /// The group with IANA transform ID `n`, if supported.
    pub fn from_number(n: u16) -> Option<DhGroup> {
        match n {
            14 => Some(DhGroup::Modp2048),
            19 => Some(DhGroup::Ecp256),
            31 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }

    /// Length of a public value in a KE payload.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => modp::LEN,
            DhGroup::Ecp256 => 64,
            DhGroup::Curve25519 => 32,
        }
    }
}

/// Why a peer's public value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    /// The KE data has the wrong length for the group.
    #[error("public value is {got} bytes, group needs {expected}")]
    BadLength {
        /// What the group needs.
        expected: usize,
        /// What came.
        got: usize,
    },
    /// Not a point on the curve.
    #[error("public value is not a point on the curve")]
    InvalidPoint,
    /// A low-order point: the shared secret would be all zero (RFC 8031 §2).
    #[error("public value is a low-order point")]
    LowOrder,
    /// A MODP value outside 1 < y < p − 1 (RFC 6989 §2.1).
    #[error("public value is not within 1 < y < p - 1")]
    OutOfRange,
}

enum Private {
    Modp2048(modp::Private),
    Ecp256(p256::SecretKey),
    Curve25519(x25519_dalek::StaticSecret),
}

/// Our ephemeral half of one key exchange.
pub struct KeyShare {
    group: DhGroup,
    private: Private,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl KeyShare {
    /// A fresh key pair for `group` from `rng`.
    pub fn generate(group: DhGroup, rng: &mut dyn Rng) -> KeyShare {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rng.fill(&mut bytes[..]);
            // Only P-256 (scalar 0 or >= n) and MODP (x < 2) can refuse: ~2^-32 at most.
            if let Some(share) = KeyShare::from_private(group, &bytes) {
                return share;
            }
        }
    }

    /// The key pair with private value `private` (for known-answer tests); for MODP-2048
    /// it is the exponent, big-endian.
    pub fn from_private(group: DhGroup, private: &[u8; 32]) -> Option<KeyShare> {
        let (private, public) = match group {
            DhGroup::Modp2048 => {
                let (sk, public) = modp::Private::new(private)?;
                (Private::Modp2048(sk), public)
            }
            DhGroup::Ecp256 => {
                let sk = p256::SecretKey::from_slice(private).ok()?;
                let point = sk.public_key().to_sec1_bytes();
                // SEC1 uncompressed is 0x04 || x || y; IKE carries x || y (RFC 5903 §7).
                let xy = point.get(1..)?.to_vec();
                (Private::Ecp256(sk), xy)
            }
            DhGroup::Curve25519 => {
                let sk = x25519_dalek::StaticSecret::from(*private);
                let public = x25519_dalek::PublicKey::from(&sk).to_bytes().to_vec();
                (Private::Curve25519(sk), public)
            }
        };
        Some(KeyShare {
            group,
            private,
            public,
        })
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Our public value, as carried in the KE payload.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret g^ir with the peer's public value, after validating it.
    pub fn agree(&self, peer: &[u8]) -> Result<Secret, DhError> {
        let expected = self.group.public_len();
        if peer.len() != expected {
            return Err(DhError::BadLength {
                expected,
                got: peer.len(),
            });
        }
        match &self.private {
            Private::Modp2048(sk) => sk.agree(peer),
            Private::Ecp256(sk) => {
                let sec1 = [&[0x04u8][..], peer].concat();
                // Decoding checks that the point is on the curve and not the identity.
                let point =
                    p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| DhError::InvalidPoint)?;
                let shared = sk.diffie_hellman(&point);
                Ok(Secret::new(shared.raw_secret_bytes().to_vec()))
            }
            Private::Curve25519(sk) => {
                let mut u = [0u8; 32];
                u.copy_from_slice(peer);
                let shared = sk.diffie_hellman(&x25519_dalek::PublicKey::from(u));
                if !shared.was_contributory() {
                    return Err(DhError::LowOrder);
                }
                Ok(Secret::new(shared.as_bytes().to_vec()))
            }
        }
    }
}

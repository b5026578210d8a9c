//! DH group 14: the 2048-bit MODP group of RFC 3526 §3 (generator 2), which Windows'
//! IKEv2 offers next to group 19.

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U2048, U256};
use zeroize::Zeroizing;

use super::{DhError, Secret};

/// Bytes of a public value and of the shared secret: the modulus' length (RFC 7296 §3.4
/// and §2.14 left-pad both to it).
pub(super) const LEN: usize = 256;

/// p = 2^2048 − 2^1984 − 1 + 2^64·(⌊2^1918·π⌋ + 124476), a safe prime (RFC 3526 §3).
pub(super) const P: Odd<U2048> = Odd::<U2048>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
));

const PARAMS: FixedMontyParams<{ U2048::LIMBS }> = FixedMontyParams::new_vartime(P);

/// Our private exponent. 256 bits: RFC 3526 §8 rates this group at 110–160 bits of
/// strength, and NIST SP 800-56A wants an exponent of at least twice the strength.
pub(super) struct Private(Zeroizing<U256>);

impl Private {
    /// The key pair with exponent `x` (big-endian); `None` for x < 2, whose public value
    /// (1 or 2^0) a peer would refuse anyway.
    pub(super) fn new(x: &[u8; 32]) -> Option<(Private, Vec<u8>)> {
        let x = Zeroizing::new(U256::from_be_slice(x));
        if *x <= U256::ONE {
            return None;
        }
        let y = FixedMontyForm::new(&U2048::from_u8(2), &PARAMS)
            .pow(&*x)
            .retrieve();
        Some((Private(x), y.to_be_bytes().as_slice().to_vec()))
    }

    /// g^xy with the peer's public value `peer` (`LEN` bytes), after checking
    /// 1 < y < p − 1 (RFC 6989 §2.1: for a safe prime the range check is the whole test;
    /// 0, 1 and p − 1 would force the secret into {0, 1, p − 1}).
    pub(super) fn agree(&self, peer: &[u8]) -> Result<Secret, DhError> {
        let y = U2048::from_be_slice(peer);
        let p_minus_1 = P.get_copy().wrapping_sub(&U2048::ONE);
        if y <= U2048::ONE || y >= p_minus_1 {
            return Err(DhError::OutOfRange);
        }
        let z = Zeroizing::new(FixedMontyForm::new(&y, &PARAMS).pow(&*self.0).retrieve());
        let bytes = Zeroizing::new(z.to_be_bytes());
        Ok(Secret::new(bytes.as_slice().to_vec()))
    }
}

//! SKEYSEED and the IKE SA keys (§2.14), Child SA KEYMAT (§2.17).

use super::prf::{prf, prf_plus, PRF_LEN};
use super::{Cipher, Secret};

/// The seven keys of an IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeKeys {
    /// Derives Child SA keys and the next SKEYSEED.
    pub sk_d: Secret,
    /// Integrity key for messages from the original initiator (empty with an AEAD).
    pub sk_ai: Secret,
    /// Integrity key for messages from the original responder.
    pub sk_ar: Secret,
    /// Encryption key (with salt for GCM) for messages from the original initiator.
    pub sk_ei: Secret,
    /// Encryption key for messages from the original responder.
    pub sk_er: Secret,
    /// Key for the initiator's AUTH octets.
    pub sk_pi: Secret,
    /// Key for the responder's AUTH octets.
    pub sk_pr: Secret,
}

/// SKEYSEED = prf(Ni | Nr, g^ir).
pub fn skeyseed(ni: &[u8], nr: &[u8], shared: &[u8]) -> Secret {
    let key = [ni, nr].concat();
    Secret::new(prf(&key, &[shared]).to_vec())
}

/// SKEYSEED of a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr) (§2.18).
pub fn rekey_skeyseed(old_sk_d: &[u8], shared: &[u8], ni: &[u8], nr: &[u8]) -> Secret {
    Secret::new(prf(old_sk_d, &[shared, ni, nr]).to_vec())
}

/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
pub fn derive_ike_keys(
    cipher: Cipher,
    skeyseed: &Secret,
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let (a, e) = (cipher.integ_key_len(), cipher.enc_key_len());
    let lens = [PRF_LEN, a, a, e, e, PRF_LEN, PRF_LEN];
    let total = lens.iter().sum();
    let seed: [&[u8]; 4] = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()];
    // At most 7 * 36 bytes: far below prf+'s limit.
    let stream = prf_plus(skeyseed.expose(), &seed, total).unwrap_or_default();
    let mut parts = split(stream.expose(), &lens).into_iter();
    let mut next = || parts.next().unwrap_or_default();
    IkeKeys {
        sk_d: next(),
        sk_ai: next(),
        sk_ar: next(),
        sk_ei: next(),
        sk_er: next(),
        sk_pi: next(),
        sk_pr: next(),
    }
}

/// Keys of one direction of a Child SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionKeys {
    /// Encryption key (with the 4-byte salt last for GCM, as the kernel's rfc4106 wants).
    pub enc: Secret,
    /// Integrity key (empty for an AEAD).
    pub integ: Secret,
}

/// Both directions of a Child SA; "initiator" is the initiator of the exchange that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildKeys {
    /// Protects traffic from the exchange initiator to the responder.
    pub initiator_to_responder: DirectionKeys,
    /// Protects traffic from the responder to the exchange initiator.
    pub responder_to_initiator: DirectionKeys,
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), split enc/integ i→r, then enc/integ r→i.
pub fn child_keymat(
    sk_d: &Secret,
    cipher: Cipher,
    pfs_shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
) -> ChildKeys {
    let (e, a) = (cipher.enc_key_len(), cipher.integ_key_len());
    let lens = [e, a, e, a];
    let seed: Vec<&[u8]> = pfs_shared.into_iter().chain([ni, nr]).collect();
    let stream = prf_plus(sk_d.expose(), &seed, lens.iter().sum()).unwrap_or_default();
    let mut parts = split(stream.expose(), &lens).into_iter();
    let mut next = || parts.next().unwrap_or_default();
    ChildKeys {
        initiator_to_responder: DirectionKeys {
            enc: next(),
            integ: next(),
        },
        responder_to_initiator: DirectionKeys {
            enc: next(),
            integ: next(),
        },
    }
}

fn split(stream: &[u8], lens: &[usize]) -> Vec<Secret> {
    let mut at = 0usize;
    lens.iter()
        .map(|&n| {
            let part = stream.get(at..at + n).unwrap_or_default().to_vec();
            at += n;
            Secret::new(part)
        })
        .collect()
}

//! The Encrypted and Authenticated payload (RFC 7296 §3.14; AES-GCM per RFC 5282) and its
//! fragment, SKF (RFC 7383 §2.5): the same protection over one piece of the inner chain,
//! with Fragment Number and Total Fragments inside the authenticated header.

use aes::{Aes128, Aes256};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use cbc::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Cipher;
use crate::codec::{
    decode_payloads, payload_type, DecodeError, Header, Message, Payload, HEADER_LEN,
};
use crate::rng::Rng;

const GCM_IV: usize = 8;
const ICV: usize = 16;
const BLOCK: usize = 16;
const SK_HEADER: usize = 4;

/// Why an SK payload could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    /// The message has no SK payload.
    #[error("no encrypted payload")]
    Missing,
    /// Too short for IV, one block and ICV, or not whole blocks.
    #[error("encrypted payload has a bad length")]
    BadLength,
    /// The ICV or GCM tag did not verify.
    #[error("integrity check failed")]
    Integrity,
    /// The pad length runs past the plaintext.
    #[error("bad padding")]
    Padding,
    /// The decrypted payload chain is malformed.
    #[error("inner payloads: {0}")]
    Inner(DecodeError),
}

/// Length of SKF's Fragment Number and Total Fragments fields.
const SKF_FIELDS: usize = 4;

/// Builds a whole message whose only payload is SK around `inner` (chain starting `first_inner`).
pub fn seal_sk(
    cipher: Cipher,
    enc_key: &[u8],
    integ_key: &[u8],
    header: &Header,
    first_inner: u8,
    inner: &[u8],
    rng: &mut dyn Rng,
) -> Vec<u8> {
    let keys = (enc_key, integ_key);
    seal(
        cipher,
        keys,
        header,
        (payload_type::SK, first_inner),
        &[],
        inner,
        rng,
    )
}

/// Which fragment an SKF payload is: (Fragment Number, Total Fragments), both from 1.
pub type FragmentIndex = (u16, u16);

/// Builds a whole message whose only payload is SKF: fragment `index` of an inner chain,
/// `piece` its bytes (`first_inner` is the chain's first payload type in fragment 1, else 0).
#[allow(clippy::too_many_arguments)] // the same inputs as seal_sk, plus the fragment index
pub fn seal_skf(
    cipher: Cipher,
    enc_key: &[u8],
    integ_key: &[u8],
    header: &Header,
    first_inner: u8,
    index: FragmentIndex,
    piece: &[u8],
    rng: &mut dyn Rng,
) -> Vec<u8> {
    let mut fields = [0u8; SKF_FIELDS];
    fields[..2].copy_from_slice(&index.0.to_be_bytes());
    fields[2..].copy_from_slice(&index.1.to_be_bytes());
    let keys = (enc_key, integ_key);
    let kind = (payload_type::SKF, first_inner);
    seal(cipher, keys, header, kind, &fields, piece, rng)
}

/// The most inner-chain bytes one SKF message of at most `limit` bytes can carry (0 if none).
pub fn skf_capacity(cipher: Cipher, limit: usize) -> usize {
    let iv_len = if cipher.is_aead() { GCM_IV } else { BLOCK };
    let room = limit.saturating_sub(HEADER_LEN + SK_HEADER + SKF_FIELDS + iv_len + ICV);
    // One byte is the Pad Length; CBC also pads the plaintext to whole blocks.
    if cipher.is_aead() {
        room.saturating_sub(1)
    } else {
        (room / BLOCK * BLOCK).saturating_sub(1)
    }
}

/// Seals `inner` as payload `kind` = (type, next payload) after the extra header `fields`.
fn seal(
    cipher: Cipher,
    (enc_key, integ_key): (&[u8], &[u8]),
    header: &Header,
    (ptype, first_inner): (u8, u8),
    fields: &[u8],
    inner: &[u8],
    rng: &mut dyn Rng,
) -> Vec<u8> {
    let iv_len = if cipher.is_aead() { GCM_IV } else { BLOCK };
    let pad = if cipher.is_aead() {
        0
    } else {
        (BLOCK - (inner.len() + 1) % BLOCK) % BLOCK
    };
    let mut plain = Zeroizing::new(Vec::with_capacity(inner.len() + pad + 1));
    plain.extend_from_slice(inner);
    plain.resize(inner.len() + pad, 0);
    plain.push(u8::try_from(pad).unwrap_or(0));
    let sk_len = SK_HEADER + fields.len() + iv_len + plain.len() + ICV;
    let total = HEADER_LEN + sk_len;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header.to_bytes(ptype, u32::try_from(total).unwrap_or(u32::MAX)));
    out.extend_from_slice(&[first_inner, 0]);
    out.extend_from_slice(&u16::try_from(sk_len).unwrap_or(u16::MAX).to_be_bytes());
    // RFC 7383 §2.5: Fragment Number and Total Fragments are authenticated (GCM: in the AAD).
    out.extend_from_slice(fields);
    let mut iv = vec![0u8; iv_len];
    rng.fill(&mut iv);
    let aad_len = out.len();
    out.extend_from_slice(&iv);
    let ct_at = out.len();
    out.extend_from_slice(&plain);
    match cipher {
        Cipher::AesGcm16 { .. } => {
            let (head, ct) = out.split_at_mut(ct_at);
            let tag = gcm_seal(enc_key, &iv, &head[..aad_len], ct);
            out.extend_from_slice(&tag);
        }
        Cipher::AesCbcHmacSha256 { .. } => {
            cbc_encrypt(enc_key, &iv, &mut out[ct_at..]);
            let icv = hmac_sha256(integ_key, &out);
            out.extend_from_slice(&icv[..ICV]);
        }
    }
    out
}

/// Verifies and decrypts the SK payload of `msg` (decoded from `datagram`); returns the inner payloads.
pub fn open_sk(
    cipher: Cipher,
    enc_key: &[u8],
    integ_key: &[u8],
    datagram: &[u8],
    msg: &Message,
) -> Result<Vec<Payload>, SkError> {
    let Some(Payload::Sk { first_inner, body }) = msg.payloads.last() else {
        return Err(SkError::Missing);
    };
    let plain = open_body(cipher, (enc_key, integ_key), datagram, body)?;
    decode_payloads(*first_inner, &plain).map_err(SkError::Inner)
}

/// A verified, decrypted SKF fragment.
pub struct OpenedFragment {
    /// The inner chain's first payload type (meaningful in fragment 1).
    pub first_inner: u8,
    /// (Fragment Number, Total Fragments).
    pub index: FragmentIndex,
    /// Its piece of the inner chain, padding removed.
    pub piece: Zeroizing<Vec<u8>>,
}

/// Verifies and decrypts the SKF payload of `msg` (decoded from `datagram`).
pub fn open_skf(
    cipher: Cipher,
    enc_key: &[u8],
    integ_key: &[u8],
    datagram: &[u8],
    msg: &Message,
) -> Result<OpenedFragment, SkError> {
    let Some(Payload::Skf {
        first_inner,
        number,
        total,
        body,
    }) = msg.payloads.last()
    else {
        return Err(SkError::Missing);
    };
    let piece = open_body(cipher, (enc_key, integ_key), datagram, body)?;
    Ok(OpenedFragment {
        first_inner: *first_inner,
        index: (*number, *total),
        piece,
    })
}

/// Checks and decrypts `body` (IV, ciphertext, ICV: the tail of `datagram`); returns the
/// plaintext without padding. Everything in `datagram` before `body` is authenticated.
fn open_body(
    cipher: Cipher,
    (enc_key, integ_key): (&[u8], &[u8]),
    datagram: &[u8],
    body: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SkError> {
    let aad_len = datagram
        .len()
        .checked_sub(body.len())
        .ok_or(SkError::BadLength)?;
    let aad = datagram.get(..aad_len).ok_or(SkError::BadLength)?;
    let mut plain = match cipher {
        Cipher::AesGcm16 { .. } => {
            let ct_len = body
                .len()
                .checked_sub(GCM_IV + ICV)
                .filter(|&n| n > 0)
                .ok_or(SkError::BadLength)?;
            let (iv, rest) = body.split_at(GCM_IV);
            let (ct, tag) = rest.split_at(ct_len);
            let mut buf = Zeroizing::new(ct.to_vec());
            gcm_open(enc_key, iv, aad, &mut buf, tag)?;
            buf
        }
        Cipher::AesCbcHmacSha256 { .. } => {
            let ct_len = body
                .len()
                .checked_sub(BLOCK + ICV)
                .ok_or(SkError::BadLength)?;
            if ct_len == 0 || ct_len % BLOCK != 0 {
                return Err(SkError::BadLength);
            }
            let signed_len = datagram.len() - ICV; // ICV <= body.len() <= datagram.len()
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(integ_key)
                .map_err(|_| SkError::Integrity)?;
            mac.update(&datagram[..signed_len]);
            mac.verify_truncated_left(&datagram[signed_len..])
                .map_err(|_| SkError::Integrity)?;
            let (iv, rest) = body.split_at(BLOCK);
            let mut buf = Zeroizing::new(rest[..ct_len].to_vec());
            cbc_decrypt(enc_key, iv, &mut buf)?;
            buf
        }
    };
    let pad = usize::from(*plain.last().ok_or(SkError::Padding)?);
    let inner_len = plain.len().checked_sub(pad + 1).ok_or(SkError::Padding)?;
    plain.truncate(inner_len);
    Ok(plain)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    super::prf::prf(key, &[data])
}

/// AES-GCM over `buf` in place; `key` ends with the 4-byte salt, nonce = salt | iv.
pub(crate) fn gcm_seal(key: &[u8], iv: &[u8], aad: &[u8], buf: &mut [u8]) -> [u8; ICV] {
    let (k, salt) = key.split_at(key.len().saturating_sub(4));
    let nonce = [salt, iv].concat();
    let tag = match k.len() {
        16 => gcm_seal_with::<Aes128Gcm>(k, &nonce, aad, buf),
        _ => gcm_seal_with::<Aes256Gcm>(k, &nonce, aad, buf),
    };
    tag.unwrap_or([0u8; ICV])
}

fn gcm_seal_with<A: AeadInOut + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Option<[u8; ICV]> {
    let aead = A::new_from_slice(key).ok()?;
    let tag = aead
        .encrypt_inout_detached(nonce.try_into().ok()?, aad, buf.into())
        .ok()?;
    tag.as_slice().try_into().ok()
}

fn gcm_open(key: &[u8], iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), SkError> {
    let (k, salt) = key.split_at(key.len().saturating_sub(4));
    let nonce = [salt, iv].concat();
    let ok = match k.len() {
        16 => gcm_open_with::<Aes128Gcm>(k, &nonce, aad, buf, tag),
        _ => gcm_open_with::<Aes256Gcm>(k, &nonce, aad, buf, tag),
    };
    ok.ok_or(SkError::Integrity)
}

fn gcm_open_with<A: AeadInOut + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Option<()> {
    let aead = A::new_from_slice(key).ok()?;
    aead.decrypt_inout_detached(
        nonce.try_into().ok()?,
        aad,
        buf.into(),
        tag.try_into().ok()?,
    )
    .ok()
}

fn cbc_encrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) {
    match key.len() {
        16 => cbc_encrypt_with::<Aes128>(key, iv, buf),
        _ => cbc_encrypt_with::<Aes256>(key, iv, buf),
    }
}

fn cbc_encrypt_with<C: BlockCipherEncrypt + KeyInit>(key: &[u8], iv: &[u8], buf: &mut [u8]) {
    let Ok(mut enc) = cbc::Encryptor::<C>::new_from_slices(key, iv) else {
        return;
    };
    for chunk in buf.chunks_exact_mut(BLOCK) {
        if let Ok(block) = chunk.try_into() {
            enc.encrypt_block(block);
        }
    }
}

fn cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), SkError> {
    match key.len() {
        16 => cbc_decrypt_with::<Aes128>(key, iv, buf),
        _ => cbc_decrypt_with::<Aes256>(key, iv, buf),
    }
}

fn cbc_decrypt_with<C: BlockCipherDecrypt + KeyInit>(
    key: &[u8],
    iv: &[u8],
    buf: &mut [u8],
) -> Result<(), SkError> {
    let mut dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| SkError::BadLength)?;
    for chunk in buf.chunks_exact_mut(BLOCK) {
        dec.decrypt_block(chunk.try_into().map_err(|_| SkError::BadLength)?);
    }
    Ok(())
}

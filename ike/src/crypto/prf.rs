//! PRF HMAC-SHA2-256 and prf+ (RFC 7296 §2.13).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Secret;

/// Output length of the PRF (HMAC-SHA2-256).
pub const PRF_LEN: usize = 32;

/// prf(key, data) = HMAC-SHA2-256.
pub fn prf(key: &[u8], data: &[&[u8]]) -> Zeroizing<[u8; PRF_LEN]> {
    // HMAC accepts any key length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    data.iter().for_each(|d| mac.update(d));
    let mut out = Zeroizing::new([0u8; PRF_LEN]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// prf+(key, seed) truncated to `len` bytes; `None` beyond 255 iterations.
pub fn prf_plus(key: &[u8], seed: &[&[u8]], len: usize) -> Option<Secret> {
    if len > 255 * PRF_LEN {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + PRF_LEN));
    let mut previous: Zeroizing<[u8; PRF_LEN]> = Zeroizing::new([0u8; PRF_LEN]);
    let mut counter = 1u8;
    while out.len() < len {
        let t_prev: &[u8] = if counter == 1 { &[] } else { &previous[..] };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
        parts.push(t_prev);
        parts.extend_from_slice(seed);
        let c = [counter];
        parts.push(&c);
        previous = prf(key, &parts);
        out.extend_from_slice(&previous[..]);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    Some(Secret::new(std::mem::take(&mut *out)))
}

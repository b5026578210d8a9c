//! Key material that never prints and is wiped when dropped.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// Secret bytes: `Debug` prints `[redacted]`, memory is zeroed when the last copy drops.
///
/// Shared, not copied, on clone: a compile hands the same SA key to the desired set and
/// to the pair's key memo (tens of thousands of SAs), so a clone must not allocate. An
/// empty secret (an AEAD's authentication key) holds no allocation at all.
#[derive(Clone, Default)]
pub struct Secret(Option<Arc<Zeroizing<Vec<u8>>>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        if bytes.is_empty() {
            return Secret(None);
        }
        Secret(Some(Arc::new(Zeroizing::new(bytes))))
    }
    pub fn expose(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }
    pub fn len(&self) -> usize {
        self.expose().len()
    }
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
    /// Lower-case hex, for `--show-keys` only.
    pub fn to_hex(&self) -> String {
        self.expose().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    /// Constant-time in the content (length is not secret).
    fn eq(&self, other: &Secret) -> bool {
        let (a, b) = (self.expose(), other.expose());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new(vec![1, 2, 3]);
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.to_hex(), "010203");
    }
}

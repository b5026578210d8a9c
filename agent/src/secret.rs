//! Key material that never prints and is wiped when dropped.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// Secret bytes: `Debug` prints `[redacted]`, memory is zeroed when the last copy drops.
///
/// Shared, not copied, on clone: a compile hands the same SA key to the desired set and
/// to the pair's key memo (tens of thousands of SAs), so a clone must not allocate.
#[derive(Clone, Default)]
pub struct Secret(Arc<Zeroizing<Vec<u8>>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Arc::new(Zeroizing::new(bytes)))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Lower-case hex, for `--show-keys` only.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
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
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
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

//! A bounds-checked cursor over received bytes: every read can fail, none can panic.

use super::{DecodeError, DecodeErrorKind};

/// Reads big-endian fields from a slice, remembering the absolute offset for errors.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, which start at absolute offset `base` of the datagram.
    pub(crate) fn new(bytes: &'a [u8], base: usize) -> Self {
        Reader {
            bytes,
            pos: 0,
            base,
        }
    }

    /// Absolute offset of the next byte (for error locations).
    pub(crate) fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// An error of `kind` at the current offset.
    pub(crate) fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            kind,
            at: self.offset(),
        }
    }

    /// The next `n` bytes, or a truncation error naming `what`.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.error(DecodeErrorKind::Truncated(what)))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.error(DecodeErrorKind::Truncated(what)))?;
        self.pos = end;
        Ok(slice)
    }

    /// A sub-reader over the next `n` bytes.
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        Ok(Reader::new(self.take(n, what)?, base))
    }

    /// All bytes not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        self.pos = self.bytes.len();
        rest
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

/// Appends big-endian fields; lengths are patched once the body is known.
pub(crate) trait Writer {
    /// Appends a u16 placeholder and returns its position for [`Writer::patch_len`].
    fn len_placeholder(&mut self) -> usize;
    /// Writes `self.len() - start_of_item` into the u16 at `at`.
    fn patch_len(&mut self, at: usize, item_start: usize);
}

impl Writer for Vec<u8> {
    fn len_placeholder(&mut self) -> usize {
        let at = self.len();
        self.extend_from_slice(&[0, 0]);
        at
    }

    fn patch_len(&mut self, at: usize, item_start: usize) {
        let len = u16::try_from(self.len().saturating_sub(item_start)).unwrap_or(u16::MAX);
        if let Some(slot) = self.get_mut(at..at.saturating_add(2)) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
    }
}

//! Reading an input file (the policy, a key) safely: never blocking, never anything but a
//! regular file, never more than a cap. A FIFO would block `open()` and `read()` forever,
//! a device (`/dev/zero`) or a file that keeps growing would be read until memory runs
//! out; a daemon must answer its control socket and repair drift meanwhile.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The default cap on a policy file: 16 MiB, 13 × a 10,000-host policy (about 1.2 MB). It
/// bounds what a broken or hostile file can make the parser allocate.
pub const DEFAULT_MAX_POLICY_SIZE: u64 = 16 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("is a {0}, not a regular file; refusing to read it")]
    NotRegular(&'static str),
    #[error("is larger than the limit of {max} bytes; refusing to read it")]
    TooLarge { max: u64 },
}

/// One version of a file as `stat` tells it apart: a rename puts another inode in place,
/// an in-place write changes the size or the times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileVersion {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Last content change (mtime) and last inode change (ctime), in ns since the epoch.
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileVersion {
    /// The version `m` describes.
    pub fn of(m: &Metadata) -> FileVersion {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileVersion {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    /// The file's version at `path` now (following symlinks).
    pub fn at(path: &Path) -> io::Result<FileVersion> {
        std::fs::metadata(path).map(|m| FileVersion::of(&m))
    }

    /// The later of the content and inode change times.
    pub fn changed_ns(&self) -> i128 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

/// A file's bytes and the version they were read from.
#[derive(Debug)]
pub struct Snapshot {
    pub bytes: Vec<u8>,
    pub version: FileVersion,
}

/// What kind of non-regular file `m` is, for the message (None: a regular file).
fn irregular_kind(m: &Metadata) -> Option<&'static str> {
    let t = m.file_type();
    match () {
        _ if t.is_file() => None,
        _ if t.is_dir() => Some("directory"),
        _ if t.is_fifo() => Some("FIFO (named pipe)"),
        _ if t.is_char_device() => Some("character device"),
        _ if t.is_block_device() => Some("block device"),
        _ if t.is_socket() => Some("socket"),
        _ => Some("special file"),
    }
}

/// Open `path` (following symlinks) for reading if it is a regular file. Checked before
/// opening (opening some devices has effects) and again on the open file (the name may
/// have been swapped in between). Opened non-blocking, so a FIFO swapped in cannot block.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), ReadError> {
    if let Some(kind) = irregular_kind(&std::fs::metadata(path)?) {
        return Err(ReadError::NotRegular(kind));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)?;
    let meta = file.metadata()?;
    match irregular_kind(&meta) {
        Some(kind) => Err(ReadError::NotRegular(kind)),
        None => Ok((file, meta)),
    }
}

/// O_NONBLOCK | O_NOCTTY (Linux values; the only target). O_NONBLOCK has no effect on a
/// regular file, so it need not be cleared after the check.
fn libc_flags() -> i32 {
    const O_NOCTTY: i32 = 0o400;
    const O_NONBLOCK: i32 = 0o4000;
    O_NONBLOCK | O_NOCTTY
}

/// Append at most `max` bytes of `file` to `out`; a file larger than that (also one that
/// grows while it is read) is refused without reading past the cap.
pub fn read_capped(file: &mut File, max: u64, out: &mut Vec<u8>) -> Result<(), ReadError> {
    let limit = max.saturating_add(1);
    let n = file.take(limit).read_to_end(out)?;
    if n as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(())
}

/// Read a regular file of at most `max` bytes, with the version it was read from.
pub fn read_regular(path: &Path, max: u64) -> Result<Snapshot, ReadError> {
    let (mut file, meta) = open_regular(path)?;
    if meta.len() > max {
        return Err(ReadError::TooLarge { max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    read_capped(&mut file, max, &mut bytes)?;
    Ok(Snapshot {
        bytes,
        version: FileVersion::of(&meta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ps-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_regular_files_up_to_the_cap_are_read() {
        let d = scratch("kinds");
        let f = d.join("p.toml");
        std::fs::write(&f, "version = 1\n").unwrap();
        let s = read_regular(&f, 12).unwrap();
        assert_eq!(s.bytes, b"version = 1\n");
        assert_eq!(s.version, FileVersion::at(&f).unwrap());
        let e = read_regular(&f, 11).unwrap_err().to_string();
        assert_eq!(
            e,
            "is larger than the limit of 11 bytes; refusing to read it"
        );
        assert!(read_regular(&d, 100)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
        // A device through a symlink is refused, not read until memory runs out.
        let link = d.join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_regular(&link, 100).unwrap_err().to_string();
        assert!(e.contains("is a character device"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = scratch("fifo");
        let f = d.join("p.toml");
        let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&f, 100).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    extern "C" {
        #[link_name = "mkfifo"]
        fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
    }

    #[test]
    fn a_file_growing_past_the_cap_is_refused() {
        let d = scratch("grow");
        let f = d.join("p.toml");
        std::fs::write(&f, "x").unwrap();
        let (mut file, _) = open_regular(&f).unwrap();
        std::fs::write(&f, vec![b'x'; 4096]).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            read_capped(&mut file, 100, &mut out),
            Err(ReadError::TooLarge { max: 100 })
        ));
        assert_eq!(out.len(), 101, "read one byte past the cap, no more");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

//! `--netns NAME`: act inside /run/netns/NAME, like `ip netns exec`.
//!
//! setns(2) moves only the calling thread, so this must run before any socket is opened and
//! before any other thread (tokio's runtime) starts; sockets opened afterwards stay bound to
//! that namespace for their lifetime.

use std::fs::File;
use std::os::fd::AsRawFd;

use super::error::KernelError;

/// Enter the named network namespace (a bind mount under /run/netns).
pub fn enter(name: &str) -> Result<(), KernelError> {
    let err = |error| KernelError::Netns {
        name: name.to_string(),
        error,
    };
    if name.contains('/') || name.is_empty() || name == "." || name == ".." {
        return Err(err(std::io::Error::other("not a namespace name")));
    }
    let f = File::open(format!("/run/netns/{name}")).map_err(err)?;
    // SAFETY: f is an open namespace file descriptor; setns does not keep the pointer.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Enter `name` when given.
pub fn enter_opt(name: Option<&str>) -> Result<(), KernelError> {
    match name {
        Some(n) => enter(n),
        None => Ok(()),
    }
}

/// Whether this process runs as root (reading SAs back, and every write, needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

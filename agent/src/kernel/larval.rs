//! `net.core.xfrm_larval_drop`: whether packets that hit a protecting policy while its SA
//! is being negotiated are dropped (1, the kernel's default) or wait in the policy's queue
//! (0). It is per network namespace; /proc/sys/net shows the namespace of the thread that
//! opens it, so this must run after `--netns` is entered.

use std::io;

const PATH: &str = "/proc/sys/net/core/xfrm_larval_drop";

/// The namespace's setting: `true` when such packets are dropped.
pub fn drops() -> io::Result<bool> {
    let text = std::fs::read_to_string(PATH)?;
    match text.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(io::Error::other(format!(
            "{PATH}: unexpected value {other:?}"
        ))),
    }
}

/// Set it (`true`: drop; `false`: queue).
pub fn set_drops(drop: bool) -> io::Result<()> {
    std::fs::write(PATH, if drop { "1\n" } else { "0\n" })
}

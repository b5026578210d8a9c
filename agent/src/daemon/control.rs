//! The daemon's control socket: an abstract unix socket, "@xfrm-agent", which exists per
//! network namespace. Binding it is also the single-instance lock (one agent per
//! namespace); connecting to it is how `status` finds the daemon's view. The daemon writes
//! one JSON object and closes; nothing is read from clients.

use std::io::{self, Read};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Duration;

const NAME: &[u8] = b"xfrm-agent";

/// Bind the control socket (fails with AddrInUse when another agent runs here).
pub fn bind() -> io::Result<UnixListener> {
    let l = UnixListener::bind_addr(&SocketAddr::from_abstract_name(NAME)?)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The running daemon's view as JSON text, or None when no daemon answers here.
pub fn query() -> io::Result<Option<String>> {
    let mut s = match UnixStream::connect_addr(&SocketAddr::from_abstract_name(NAME)?) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(e) => return Err(e),
    };
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(Some(out))
}

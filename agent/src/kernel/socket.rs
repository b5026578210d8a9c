//! A small netlink socket: batched requests with acks matched by sequence number, and dumps.
//!
//! Used for NETLINK_XFRM (policies, SAs) and NETLINK_ROUTE (addresses). Requests go out many
//! per sendmsg; every one carries NLM_F_ACK and its own sequence number, so a NACK names the
//! request that failed while the kernel goes on with the rest (netlink_rcv_skb acks each
//! message and continues after an error).

use std::io;
use std::os::fd::AsRawFd;

use netlink_sys::Socket;

use super::error::{KernelError, Nack};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
/// Set on dump messages when the table changed during the dump (include/uapi/linux/netlink.h).
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// Set on an error message whose extended-ack TLVs follow the echoed header.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const HDR_LEN: usize = 16;

/// Bytes per sendmsg. With NETLINK_CAP_ACK an ack is 36 bytes, so a full batch of small
/// requests produces far less than the receive buffer holds (an overflowing ack is dropped).
const BATCH_BYTES: usize = 64 * 1024;
const BATCH_MSGS: usize = 1024;
const SOCK_BUF: libc::c_int = 4 * 1024 * 1024;
const RX_BUF: usize = 1024 * 1024;

/// One netlink message as received.
#[derive(Debug, Clone, Copy)]
pub struct RawMsg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// Sender's port id: for a notification, the socket whose request caused it.
    pub pid: u32,
    pub payload: &'a [u8],
}

/// A request to send: message type, extra flags (NLM_F_REQUEST|NLM_F_ACK are added) and the
/// payload after the netlink header.
#[derive(Debug, Clone)]
pub struct Request {
    pub ty: u16,
    pub flags: u16,
    pub payload: Vec<u8>,
}

/// Split a received buffer into messages.
pub fn parse_msgs(buf: &[u8]) -> Result<Vec<RawMsg<'_>>, KernelError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + HDR_LEN <= buf.len() {
        let h = &buf[off..];
        let len = u32::from_ne_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
        if len < HDR_LEN || off + len > buf.len() {
            return Err(KernelError::Decode(format!("bad netlink length {len}")));
        }
        out.push(RawMsg {
            ty: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes(h[8..12].try_into().expect("4 bytes")),
            pid: u32::from_ne_bytes(h[12..16].try_into().expect("4 bytes")),
            payload: &h[HDR_LEN..len],
        });
        off += (len + 3) & !3;
    }
    Ok(out)
}

/// The errno and extended-ack text of an NLMSG_ERROR (0 = ack).
pub fn parse_error(msg: &RawMsg<'_>) -> (i32, Option<String>) {
    let p = msg.payload;
    if p.len() < 4 {
        return (libc::EIO, None);
    }
    // The kernel sends -errno; i32::MIN has no positive errno (found by fuzzing: negating
    // it overflowed): an error of unknown kind.
    let code = i32::from_ne_bytes(p[0..4].try_into().expect("4 bytes"))
        .checked_neg()
        .unwrap_or(libc::EIO);
    if code == 0 || msg.flags & NLM_F_ACK_TLVS == 0 {
        return (code, None);
    }
    // After the code: the request's header, and its payload too unless the ack is capped.
    let mut off = 4 + HDR_LEN;
    if msg.flags & NLM_F_CAPPED == 0 && p.len() >= 4 + 4 {
        let orig = u32::from_ne_bytes(p[4..8].try_into().expect("4 bytes")) as usize;
        off = 4 + ((orig + 3) & !3);
    }
    let mut text = None;
    while off + 4 <= p.len() {
        let alen = u16::from_ne_bytes([p[off], p[off + 1]]) as usize;
        let aty = u16::from_ne_bytes([p[off + 2], p[off + 3]]) & 0x3fff;
        if alen < 4 || off + alen > p.len() {
            break;
        }
        if aty == NLMSGERR_ATTR_MSG {
            let s = &p[off + 4..off + alen];
            let s = s.split(|b| *b == 0).next().unwrap_or(&[]);
            text = Some(String::from_utf8_lossy(s).into_owned());
        }
        off += (alen + 3) & !3;
    }
    (code, text)
}

/// A blocking netlink socket bound to the kernel.
pub struct NlSocket {
    sock: Socket,
    port: u32,
    seq: u32,
    rx: Vec<u8>,
}

impl NlSocket {
    /// Open a socket for `protocol` (netlink_sys::constants::NETLINK_XFRM / NETLINK_ROUTE).
    pub fn open(protocol: isize) -> Result<NlSocket, KernelError> {
        let mut sock = Socket::new(protocol)?;
        let port = sock.bind_auto()?.port_number();
        // Error strings such as "Requested type not found" come back with EXT_ACK; CAP_ACK
        // keeps each ack at 36 bytes instead of echoing the whole request.
        sock.set_ext_ack(true)?;
        sock.set_cap_ack(true)?;
        let fd = sock.as_raw_fd();
        set_buf(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
        set_buf(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
        // A kernel that never answers must not hang the agent forever.
        let tv = libc::timeval {
            tv_sec: 60,
            tv_usec: 0,
        };
        // SAFETY: fd is a valid socket and tv outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        let seq = std::process::id().wrapping_mul(7919) & 0x7fff_ffff;
        Ok(NlSocket {
            sock,
            port,
            seq,
            rx: vec![0; RX_BUF],
        })
    }

    /// This socket's netlink port id: the kernel stamps it on the notifications our
    /// requests cause, so an event listener can tell our own changes from others'.
    pub fn port_id(&self) -> u32 {
        self.port
    }

    fn send_raw(&self, buf: &[u8]) -> Result<(), KernelError> {
        let n = self.sock.send(buf, 0)?;
        if n != buf.len() {
            return Err(KernelError::Io(io::Error::other("short netlink send")));
        }
        Ok(())
    }

    /// Receive one datagram into the internal buffer and return its length.
    fn recv_raw(&mut self) -> Result<usize, KernelError> {
        // SAFETY: rx is a valid writable buffer of rx.len() bytes.
        let n = unsafe {
            libc::recv(
                self.sock.as_raw_fd(),
                self.rx.as_mut_ptr().cast(),
                self.rx.len(),
                0,
            )
        };
        if n < 0 {
            return Err(KernelError::Io(io::Error::last_os_error()));
        }
        Ok(n as usize)
    }

    /// Send every request (in order, batched) and return one result per request.
    pub fn transact(&mut self, reqs: &[Request]) -> Result<Vec<Result<(), Nack>>, KernelError> {
        self.transact_with(reqs, |_, _| {})
    }

    /// `transact`, handing `reply` every other message answering request `i` (what a GET
    /// returns, before its acknowledgement).
    pub fn transact_with(
        &mut self,
        reqs: &[Request],
        mut reply: impl FnMut(usize, &RawMsg<'_>),
    ) -> Result<Vec<Result<(), Nack>>, KernelError> {
        let mut results: Vec<Option<Result<(), Nack>>> = vec![None; reqs.len()];
        let mut buf = Vec::with_capacity(BATCH_BYTES + 4096);
        let mut i = 0;
        while i < reqs.len() {
            let start = i;
            let base = self.seq;
            buf.clear();
            while i < reqs.len() && i - start < BATCH_MSGS && buf.len() < BATCH_BYTES {
                let r = &reqs[i];
                let seq = base.wrapping_add((i - start) as u32);
                push_msg(
                    &mut buf,
                    r.ty,
                    NLM_F_REQUEST | NLM_F_ACK | r.flags,
                    seq,
                    self.port,
                    &r.payload,
                );
                i += 1;
            }
            self.seq = base.wrapping_add((i - start) as u32);
            self.send_raw(&buf)?;
            self.collect_acks(base, &mut results[start..i], &mut |j, m| {
                reply(start + j, m)
            })?;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every ack collected"))
            .collect())
    }

    fn collect_acks(
        &mut self,
        base: u32,
        slots: &mut [Option<Result<(), Nack>>],
        reply: &mut dyn FnMut(usize, &RawMsg<'_>),
    ) -> Result<(), KernelError> {
        let mut pending = slots.len();
        while pending > 0 {
            let n = self.recv_raw()?;
            for m in parse_msgs(&self.rx[..n])? {
                let idx = m.seq.wrapping_sub(base) as usize;
                if idx >= slots.len() || slots[idx].is_some() {
                    continue; // not an answer to this batch (late message of an old dump)
                }
                if m.ty != NLMSG_ERROR {
                    reply(idx, &m);
                    continue;
                }
                let (errno, message) = parse_error(&m);
                slots[idx] = Some(if errno == 0 {
                    Ok(())
                } else {
                    Err(Nack { errno, message })
                });
                pending -= 1;
            }
        }
        Ok(())
    }

    /// Dump a table; `each` sees every message. Restarts (up to 5 times) when the kernel
    /// flags the dump as interrupted by a concurrent change (NLM_F_DUMP_INTR).
    pub fn dump(
        &mut self,
        ty: u16,
        payload: &[u8],
        mut each: impl FnMut(&RawMsg<'_>) -> Result<(), KernelError>,
        mut restart: impl FnMut(),
    ) -> Result<(), KernelError> {
        for _ in 0..5 {
            if self.dump_once(ty, payload, &mut each)? {
                return Ok(());
            }
            restart();
        }
        Err(KernelError::Decode(
            "dump interrupted 5 times by concurrent changes".into(),
        ))
    }

    /// One dump; Ok(false) when interrupted.
    fn dump_once(
        &mut self,
        ty: u16,
        payload: &[u8],
        each: &mut impl FnMut(&RawMsg<'_>) -> Result<(), KernelError>,
    ) -> Result<bool, KernelError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut buf = Vec::with_capacity(HDR_LEN + payload.len() + 4);
        push_msg(
            &mut buf,
            ty,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            self.port,
            payload,
        );
        self.send_raw(&buf)?;
        let mut intr = false;
        loop {
            let n = self.recv_raw()?;
            let rx = std::mem::take(&mut self.rx);
            let res = dump_chunk(&rx[..n], seq, &mut intr, each);
            self.rx = rx;
            if res? {
                return Ok(!intr);
            }
        }
    }
}

/// Handle one received datagram of a dump; Ok(true) at NLMSG_DONE.
fn dump_chunk(
    buf: &[u8],
    seq: u32,
    intr: &mut bool,
    each: &mut impl FnMut(&RawMsg<'_>) -> Result<(), KernelError>,
) -> Result<bool, KernelError> {
    for m in parse_msgs(buf)? {
        if m.seq != seq {
            continue;
        }
        *intr |= m.flags & NLM_F_DUMP_INTR != 0;
        match m.ty {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let (errno, message) = parse_error(&m);
                return Err(KernelError::Nack(Nack { errno, message }));
            }
            _ => each(&m)?,
        }
    }
    Ok(false)
}

/// Append one message. `pid` is the sender's port id: XFRM copies the request header's
/// nlmsg_pid into the notifications it multicasts (xfrm_user.c `c.portid`), which is how
/// the daemon recognises, and ignores, the events of its own writes.
fn push_msg(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, pid: u32, payload: &[u8]) {
    let len = (HDR_LEN + payload.len()) as u32;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&pid.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Raise a socket buffer; the FORCE variant ignores rmem_max/wmem_max but needs
/// CAP_NET_ADMIN, so fall back to the plain one.
fn set_buf(fd: libc::c_int, force: libc::c_int, plain: libc::c_int) {
    let v: libc::c_int = SOCK_BUF;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let p = (&v as *const libc::c_int).cast();
    // SAFETY: fd is a valid socket, p points at a c_int of `len` bytes.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_with_ext_ack_text() {
        // nlmsgerr: code -93, capped header, then NLMSGERR_ATTR_MSG "Requested type not found".
        let mut p = Vec::new();
        p.extend_from_slice(&(-libc::EPROTONOSUPPORT).to_ne_bytes());
        p.extend_from_slice(&[0u8; HDR_LEN]);
        let text = b"Requested type not found\0";
        let alen = (4 + text.len()) as u16;
        p.extend_from_slice(&alen.to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        while !p.len().is_multiple_of(4) {
            p.push(0);
        }
        let mut buf = Vec::new();
        push_msg(
            &mut buf,
            NLMSG_ERROR,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            7,
            0,
            &p,
        );
        let msgs = parse_msgs(&buf).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].seq, 7);
        let (errno, msg) = parse_error(&msgs[0]);
        assert_eq!(errno, libc::EPROTONOSUPPORT);
        assert_eq!(msg.as_deref(), Some("Requested type not found"));
    }

    #[test]
    fn error_code_without_an_errno_is_eio() {
        let msg = RawMsg {
            ty: NLMSG_ERROR,
            flags: 0,
            seq: 1,
            pid: 0,
            payload: &i32::MIN.to_ne_bytes(),
        };
        assert_eq!(parse_error(&msg), (libc::EIO, None));
    }
}

//! XFRM event listener for the daemon: a second, non-blocking socket subscribed to the SA,
//! policy, expire and acquire groups, decoded into [`XfrmEvent`]s. Its fd can be driven by
//! tokio's AsyncFd. Not subscribed: XFRMNLGRP_AEVENTS (replay updates every few packets
//! per SA — noise). A receive-queue overrun (ENOBUFS) becomes [`XfrmEvent::Resync`]: events
//! were lost, so the daemon must dump and diff again.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_xfrm as x;
use netlink_packet_xfrm::{XfrmAttrs, XfrmMessage};
use netlink_sys::constants::NETLINK_XFRM;
use netlink_sys::Socket;

use super::decode;
use super::error::KernelError;
use super::socket::parse_msgs;
use crate::model::{Dir, PolicyKey, SaKey, Selector};

/// Something changed in the kernel's XFRM state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XfrmEvent {
    SaAdded(SaKey),
    SaUpdated(SaKey),
    SaDeleted(SaKey),
    SaFlushed,
    PolicyAdded(PolicyKey),
    PolicyUpdated(PolicyKey),
    PolicyDeleted(PolicyKey),
    PolicyFlushed,
    /// An SA reached its soft (rekey soon) or hard (gone) lifetime.
    Expire {
        key: SaKey,
        hard: bool,
    },
    /// Traffic hit a policy with no SA: the kernel asks for one (and made a larval SA).
    Acquire {
        src: IpAddr,
        dst: IpAddr,
        sel: Option<Selector>,
        /// The policy the packet hit: with `net.core.xfrm_larval_drop = 0` the packet waits
        /// in that policy's queue (`polq`) for the SA.
        policy: Option<PolicyKey>,
    },
    /// Events were lost (receive queue overrun): observe everything again.
    Resync,
}

fn ip(a: &x::Address, family: u16) -> Option<IpAddr> {
    match family {
        x::AF_INET => Some(IpAddr::V4(a.to_ipv4())),
        x::AF_INET6 => Some(IpAddr::V6(a.to_ipv6())),
        _ => None,
    }
}

fn sa_key(info: &x::UserSaInfo) -> Option<SaKey> {
    Some(SaKey {
        dst: ip(&info.id.daddr, info.family)?,
        spi: info.id.spi,
    })
}

fn policy_key(sel: &x::Selector, dir: u8, nlas: &[XfrmAttrs]) -> Option<PolicyKey> {
    let dir = match dir {
        x::XFRM_POLICY_IN => Dir::In,
        x::XFRM_POLICY_OUT => Dir::Out,
        x::XFRM_POLICY_FWD => Dir::Fwd,
        _ => return None,
    };
    Some(PolicyKey {
        dir,
        sel: decode::selector(sel, 0)?,
        mark: decode::mark(nlas),
    })
}

/// The family of an acquire's addresses (`id.daddr`, `saddr`). They are the larval SA's,
/// whose family is the template's (the kernel sets `x->props.family` from the template's
/// encap family), not the selector's: a tunnel carrying IPv6 between IPv4 gateways asks
/// for an SA to 10.93.0.2 under an IPv6 selector. The message carries the policy's
/// templates (XFRMA_TMPL): the one with this destination names the family, else the first
/// (transport mode: a wildcard destination), else the selector's.
fn acquire_family(a: &x::UserAcquire, nlas: &[XfrmAttrs]) -> u16 {
    let tmpls: Vec<&x::UserTemplate> = nlas
        .iter()
        .filter_map(|n| match n {
            XfrmAttrs::Template(t) => Some(t),
            _ => None,
        })
        .flatten()
        .filter(|t| matches!(t.family, x::AF_INET | x::AF_INET6))
        .collect();
    tmpls
        .iter()
        .find(|t| t.id.daddr == a.id.daddr)
        .or(tmpls.first())
        .map_or(a.selector.family, |t| t.family)
}

/// Decode one multicast message (None: not an event we report).
pub fn decode_event(ty: u16, payload: &[u8]) -> Option<XfrmEvent> {
    // Flush notifications carry little or nothing: the type is the event.
    match ty {
        x::XFRM_MSG_FLUSHSA => return Some(XfrmEvent::SaFlushed),
        x::XFRM_MSG_FLUSHPOLICY => return Some(XfrmEvent::PolicyFlushed),
        _ => {}
    }
    let msg = decode::message(ty, payload).ok()?;
    Some(match msg {
        XfrmMessage::AddSa(m) => XfrmEvent::SaAdded(sa_key(&m.user_sa_info)?),
        XfrmMessage::UpdateSa(m) => XfrmEvent::SaUpdated(sa_key(&m.user_sa_info)?),
        XfrmMessage::DeleteSa(m) => XfrmEvent::SaDeleted(SaKey {
            dst: ip(&m.user_sa_id.daddr, m.user_sa_id.family)?,
            spi: m.user_sa_id.spi,
        }),
        XfrmMessage::AddPolicy(m) => {
            let i = &m.user_policy_info;
            XfrmEvent::PolicyAdded(policy_key(&i.selector, i.direction, &m.nlas)?)
        }
        XfrmMessage::UpdatePolicy(m) => {
            let i = &m.user_policy_info;
            XfrmEvent::PolicyUpdated(policy_key(&i.selector, i.direction, &m.nlas)?)
        }
        XfrmMessage::DeletePolicy(m) => {
            // A delete by index (`ip xfrm policy delete dir D index N`) is notified with a
            // zeroed selector and only the index in the id; the deleted policy itself is in
            // the XFRMA_POLICY attribute (kernel xfrm_notify_policy, byid). Prefer it.
            let full = m.nlas.iter().find_map(|a| match a {
                XfrmAttrs::PolicyInfo(i) => Some((&i.selector, i.direction)),
                _ => None,
            });
            let i = &m.user_policy_id;
            let (sel, dir) = full.unwrap_or((&i.selector, i.direction));
            XfrmEvent::PolicyDeleted(policy_key(sel, dir, &m.nlas)?)
        }
        XfrmMessage::Expire(m) => XfrmEvent::Expire {
            key: sa_key(&m.expire.state)?,
            hard: m.expire.hard != 0,
        },
        XfrmMessage::Acquire(m) => {
            let a = &m.acquire;
            let outer = acquire_family(a, &m.nlas);
            XfrmEvent::Acquire {
                src: ip(&a.saddr, outer)?,
                dst: ip(&a.id.daddr, outer)?,
                sel: decode::selector(&a.selector, a.selector.family),
                policy: policy_key(&a.policy.selector, a.policy.direction, &m.nlas),
            }
        }
        _ => return None,
    })
}

/// The subscribed, non-blocking XFRM event socket.
pub struct XfrmEvents {
    sock: Socket,
    buf: Vec<u8>,
    ignore: Option<u32>,
}

impl XfrmEvents {
    /// Subscribe in the current network namespace.
    pub fn open() -> Result<XfrmEvents, KernelError> {
        let mut sock = Socket::new(NETLINK_XFRM)?;
        sock.bind_auto()?;
        for g in [
            x::XFRMNLGRP_SA,
            x::XFRMNLGRP_POLICY,
            x::XFRMNLGRP_EXPIRE,
            x::XFRMNLGRP_ACQUIRE,
        ] {
            sock.add_membership(g)?;
        }
        sock.set_non_blocking(true)?;
        set_rcvbuf(sock.as_raw_fd());
        Ok(XfrmEvents {
            sock,
            buf: vec![0; 256 * 1024],
            ignore: None,
        })
    }

    /// Drop notifications caused by requests of the socket with this port id (our own
    /// writes: they are not drift, and reacting to them would loop).
    pub fn ignore_sender(&mut self, port: u32) {
        self.ignore = Some(port);
    }

    /// Shrink the receive buffer (tests provoke an overrun with it).
    pub fn set_rcvbuf(&self, bytes: i32) {
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid socket; the pointer is to a c_int of `len` bytes.
        unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const libc::c_int).cast(),
                len,
            );
        }
    }

    /// Everything queued now (empty when nothing is); never blocks.
    pub fn poll(&mut self) -> Result<Vec<XfrmEvent>, KernelError> {
        let mut out = Vec::new();
        loop {
            match recv(self.sock.as_raw_fd(), &mut self.buf) {
                Ok(n) => {
                    for m in parse_msgs(&self.buf[..n])? {
                        if self.ignore.is_some_and(|p| p != 0 && p == m.pid) {
                            continue;
                        }
                        out.extend(decode_event(m.ty, m.payload));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.push(XfrmEvent::Resync),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsRawFd for XfrmEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid writable buffer of buf.len() bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub(crate) fn set_rcvbuf(fd: RawFd) {
    let v: libc::c_int = 4 * 1024 * 1024;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let p = (&v as *const libc::c_int).cast();
    // SAFETY: fd is a valid socket, p points at a c_int of `len` bytes.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::encode;
    use crate::model::{Mark, OpKind, PolicyAction, PolicySpec};

    /// A blocking policy with a mark, outside the default ownership band.
    fn marked_block() -> (PolicyKey, PolicySpec) {
        let k = PolicyKey {
            dir: Dir::Out,
            sel: Selector::between(
                "10.0.0.0/24".parse().unwrap(),
                "10.1.0.0/24".parse().unwrap(),
            ),
            mark: Some(Mark { value: 1, mask: 1 }),
        };
        let s = PolicySpec {
            priority: 1,
            action: PolicyAction::Block,
        };
        (k, s)
    }

    #[test]
    fn notifications_decode_to_keys() {
        let (k, s) = marked_block();
        // A NEWPOLICY / DELPOLICY notification has the body of the matching request.
        let r = encode::op_request(&OpKind::AddPolicy(k, s.clone()));
        assert_eq!(
            decode_event(r.ty, &r.payload),
            Some(XfrmEvent::PolicyAdded(k))
        );
        let r = encode::op_request(&OpKind::DelPolicy(k));
        assert_eq!(
            decode_event(r.ty, &r.payload),
            Some(XfrmEvent::PolicyDeleted(k))
        );
        // Deleted by index: the id has no selector, the XFRMA_POLICY attribute has it.
        let added = encode::policy_message(&k, &s);
        let mut by_index = encode::policy_id(&k);
        by_index.user_policy_id.selector = x::Selector::default();
        by_index.user_policy_id.index = 42;
        by_index
            .nlas
            .push(XfrmAttrs::PolicyInfo(added.user_policy_info));
        let r = encode::to_request(&XfrmMessage::DeletePolicy(by_index), 0);
        assert_eq!(
            decode_event(r.ty, &r.payload),
            Some(XfrmEvent::PolicyDeleted(k))
        );
        let sk = SaKey {
            dst: "fd00::2".parse().unwrap(),
            spi: 0x4000_0001,
        };
        let r = encode::op_request(&OpKind::DelSa(sk));
        assert_eq!(
            decode_event(r.ty, &r.payload),
            Some(XfrmEvent::SaDeleted(sk))
        );
        assert_eq!(
            decode_event(x::XFRM_MSG_FLUSHSA, &[50, 0, 0, 0]),
            Some(XfrmEvent::SaFlushed)
        );
    }

    /// An acquire of a cross-family tunnel: the selector of one family, the SA's (outer)
    /// addresses and template of the other.
    fn acquire(inner: (&str, &str), outer: (&str, &str)) -> Option<XfrmEvent> {
        let sel = Selector::between(inner.0.parse().unwrap(), inner.1.parse().unwrap());
        let (src, dst): (IpAddr, IpAddr) = (outer.0.parse().unwrap(), outer.1.parse().unwrap());
        let family = |a: IpAddr| if a.is_ipv4() { x::AF_INET } else { x::AF_INET6 };
        let mut m = x::AcquireMessage::default();
        m.acquire.id.daddr = x::Address::from_ip(&dst);
        m.acquire.saddr = x::Address::from_ip(&src);
        m.acquire.selector = encode::selector(&sel);
        m.acquire.policy.selector = encode::selector(&sel);
        m.acquire.policy.direction = x::XFRM_POLICY_OUT;
        let t = x::UserTemplate {
            id: x::Id {
                daddr: x::Address::from_ip(&dst),
                spi: 0,
                proto: 50,
            },
            family: family(dst),
            saddr: x::Address::from_ip(&src),
            reqid: 1,
            mode: 1,
            share: 0,
            optional: 0,
            aalgos: !0,
            ealgos: !0,
            calgos: !0,
        };
        m.nlas.push(XfrmAttrs::Template(vec![t]));
        let r = encode::to_request(&XfrmMessage::Acquire(m), 0);
        decode_event(x::XFRM_MSG_ACQUIRE, &r.payload)
    }

    #[test]
    fn acquire_addresses_decode_with_their_own_family() {
        let want = |src: &str, dst: &str, inner: (&str, &str)| {
            let sel = Selector::between(inner.0.parse().unwrap(), inner.1.parse().unwrap());
            XfrmEvent::Acquire {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                sel: Some(sel),
                // The policy whose queue holds the packet, so it can be re-written.
                policy: Some(PolicyKey {
                    dir: Dir::Out,
                    sel,
                    mark: None,
                }),
            }
        };
        // IPv6 subnets behind IPv4 gateways: 10.93.0.2, not a5d:2::.
        let v6_in_v4 = ("fd00:1::/64", "fd00:2::/64");
        assert_eq!(
            acquire(v6_in_v4, ("10.93.0.1", "10.93.0.2")),
            Some(want("10.93.0.1", "10.93.0.2", v6_in_v4))
        );
        let v4_in_v6 = ("10.1.0.0/24", "10.2.0.0/24");
        assert_eq!(
            acquire(v4_in_v6, ("fd93::1", "fd93::2")),
            Some(want("fd93::1", "fd93::2", v4_in_v6))
        );
        let same = ("10.1.0.5/32", "10.2.0.6/32");
        assert_eq!(
            acquire(same, ("10.1.0.5", "10.2.0.6")),
            Some(want("10.1.0.5", "10.2.0.6", same))
        );
    }

    #[test]
    fn event_and_dump_read_the_same_mark() {
        let (k, s) = marked_block();
        let mut m = encode::policy_message(&k, &s);
        m.nlas.push(XfrmAttrs::Mark(x::Mark { value: 2, mask: 2 }));
        let dumped = decode::policy(&m, &Default::default());
        let r = encode::to_request(&XfrmMessage::AddPolicy(m), 0);
        assert_eq!(
            decode_event(r.ty, &r.payload),
            Some(XfrmEvent::PolicyAdded(k))
        );
        assert_eq!(dumped, decode::Decoded::Foreign(k));
    }

    #[test]
    fn truncated_notifications_are_dropped_not_a_crash() {
        // The netlink crate slices these bodies unchecked (found by fuzzing).
        let body = encode::op_request(&OpKind::DelPolicy(PolicyKey {
            dir: Dir::In,
            sel: Selector::between("::/0".parse().unwrap(), "::/0".parse().unwrap()),
            mark: None,
        }))
        .payload;
        for ty in [
            x::XFRM_MSG_DELPOLICY,
            x::XFRM_MSG_NEWPOLICY,
            x::XFRM_MSG_NEWSA,
        ] {
            for len in [0, 8, 24, body.len() - 1] {
                assert_eq!(
                    decode_event(ty, &body[..len]),
                    None,
                    "type {ty}, {len} bytes"
                );
            }
        }
    }
}

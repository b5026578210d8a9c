//! The IKE sockets: UDP 500 and 4500 (RFC 7296 §2.23, RFC 3948), IPv4 and IPv6, on
//! tokio's reactor. Each socket bypasses the SPD both ways (so our own IKE is never
//! caught by a `require` policy, exemptions or not), reports the local address each
//! datagram arrived on, and sends from the address the engine chose.
//!
//! On 4500 the kernel decapsulates ESP-in-UDP itself (UDP_ENCAP_ESPINUDP) and hands us
//! only what starts with the 4-byte non-ESP marker (IKE), after eating 1-byte NAT
//! keepalives (net/ipv4/xfrm4_input.c). We strip the marker on receive, add it on send,
//! and drop keepalives and anything else ourselves too, should one get through.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use ike::sa::Transmit;
use tokio::io::Interest;

use super::{encap, pktinfo};
use crate::model::NAT_T_PORT;

/// The IKE port (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;
/// What precedes an IKE message on the NAT-T port (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// A NAT keepalive (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Receive buffer of each IKE socket. The daemon handles one request at a time (a DH
/// and a signature each), so a burst of new peers queues here: the kernel's default
/// (net.core.rmem_default, 208 KiB ≈ 100 queued datagrams) overflowed at 1,000 peers at
/// once, and every dropped IKE_SA_INIT cost its peer a retransmission timeout
/// (scripts/bench-ike, docs/benchmarks.md). 4 MiB holds a few thousand requests.
const RECEIVE_BUFFER: libc::c_int = 4 << 20;

/// The two ports (tests may move them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkePorts {
    /// Plain IKE: 500.
    pub ike: u16,
    /// NAT traversal, marker-framed IKE and ESP-in-UDP: 4500.
    pub natt: u16,
}

impl Default for IkePorts {
    fn default() -> IkePorts {
        IkePorts {
            ike: IKE_PORT,
            natt: NAT_T_PORT,
        }
    }
}

/// What a datagram that reached an IKE socket is.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// An IKE message (marker stripped).
    Ike(&'a [u8]),
    /// A NAT keepalive: nothing to do.
    Keepalive,
    /// On the NAT-T port without the marker (ESP with no SA, noise): dropped.
    NotIke,
}

/// Classify a datagram received on the NAT-T port (`natt`) or the IKE port.
pub fn classify(natt: bool, datagram: &[u8]) -> Inbound<'_> {
    if datagram == NAT_KEEPALIVE {
        return Inbound::Keepalive;
    }
    if !natt {
        return Inbound::Ike(datagram);
    }
    match datagram.strip_prefix(&NON_ESP_MARKER[..]) {
        Some(ike) => Inbound::Ike(ike),
        None => Inbound::NotIke,
    }
}

/// An IKE message received: the engine's `handle(now, from, to, payload)` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The peer.
    pub from: SocketAddr,
    /// Our address and port it was sent to.
    pub to: SocketAddr,
    /// The IKE message, without the non-ESP marker.
    pub payload: Vec<u8>,
}

/// One bound IKE socket.
pub struct IkeSocket {
    io: tokio::net::UdpSocket,
    natt: bool,
    bound: SocketAddr,
    dropped: AtomicU64,
}

impl IkeSocket {
    /// Open and bind to the wildcard address of the family on `port`; `natt` makes it the
    /// ESP-in-UDP socket with marker framing. Must run inside a tokio runtime.
    pub fn open(v6: bool, port: u16, natt: bool) -> io::Result<IkeSocket> {
        let sock = encap::bypassing_udp_socket(v6, natt)?;
        enlarge_receive_buffer(sock.as_raw_fd());
        pktinfo::enable(sock.as_raw_fd(), v6)?;
        encap::bind(&sock, encap::wildcard(v6, port))?;
        sock.set_nonblocking(true)?;
        Ok(IkeSocket {
            bound: sock.local_addr()?,
            io: tokio::net::UdpSocket::from_std(sock)?,
            natt,
            dropped: AtomicU64::new(0),
        })
    }

    /// The wildcard address and port it is bound to.
    pub fn bound(&self) -> SocketAddr {
        self.bound
    }

    /// Whether this is the NAT-T (4500) socket.
    pub fn is_natt(&self) -> bool {
        self.natt
    }

    /// Datagrams received and dropped as keepalives, unframed or truncated.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Poll for the next IKE message; keepalives and non-IKE datagrams are skipped.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<io::Result<Datagram>> {
        let fd = self.io.as_raw_fd();
        let mut buf = Vec::new();
        loop {
            match self.io.poll_recv_ready(cx) {
                Poll::Ready(r) => r?,
                Poll::Pending => return Poll::Pending,
            }
            buf.resize(MAX_DATAGRAM, 0);
            let got = match self
                .io
                .try_io(Interest::READABLE, || pktinfo::recv(fd, &mut buf))
            {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if let Some(d) = self.accept(got, &buf) {
                return Poll::Ready(Ok(d));
            }
        }
    }

    /// The next IKE message (cancel-safe: usable in `select!`).
    pub async fn recv(&self) -> io::Result<Datagram> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn accept(&self, got: pktinfo::Received, buf: &[u8]) -> Option<Datagram> {
        let payload = match classify(self.natt, &buf[..got.len]) {
            Inbound::Ike(p) if !got.truncated => p,
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let local = got.local.unwrap_or(self.bound.ip());
        Some(Datagram {
            from: got.from,
            to: SocketAddr::new(local, self.bound.port()),
            payload: payload.to_vec(),
        })
    }

    /// Send an IKE message from our address `from` (unspecified: let routing pick),
    /// with the non-ESP marker on the NAT-T socket.
    pub async fn send(&self, from: IpAddr, to: SocketAddr, ike: &[u8]) -> io::Result<()> {
        let marker: &[u8] = if self.natt { &NON_ESP_MARKER } else { &[] };
        self.send_parts(&[marker, ike], from, to).await
    }

    /// Send a NAT keepalive (on the NAT-T socket; RFC 3948 §2.3).
    pub async fn send_keepalive(&self, from: IpAddr, to: SocketAddr) -> io::Result<()> {
        self.send_parts(&[&NAT_KEEPALIVE], from, to).await
    }

    /// Send without waiting (the daemon's handlers are synchronous): a full send buffer
    /// is `WouldBlock`, and the datagram is dropped (IKE retransmits; a keepalive waits
    /// for its next interval).
    pub fn try_send(&self, from: IpAddr, to: SocketAddr, ike: &[u8]) -> io::Result<()> {
        let marker: &[u8] = if self.natt { &NON_ESP_MARKER } else { &[] };
        self.try_send_parts(&[marker, ike], from, to)
    }

    /// [`IkeSocket::send_keepalive`] without waiting.
    pub fn try_send_keepalive(&self, from: IpAddr, to: SocketAddr) -> io::Result<()> {
        self.try_send_parts(&[&NAT_KEEPALIVE], from, to)
    }

    fn try_send_parts(&self, parts: &[&[u8]], from: IpAddr, to: SocketAddr) -> io::Result<()> {
        // Straight to the non-blocking socket: tokio's write readiness may not be known
        // yet (nothing has waited on it), and a full buffer is answered by dropping.
        pktinfo::send(self.io.as_raw_fd(), parts, to, from).map(|_| ())
    }

    async fn send_parts(&self, parts: &[&[u8]], from: IpAddr, to: SocketAddr) -> io::Result<()> {
        let fd = self.io.as_raw_fd();
        (self.io)
            .async_io(Interest::WRITABLE, || pktinfo::send(fd, parts, to, from))
            .await
            .map(|_| ())
    }
}

/// The IKE sockets of a host: 500 and 4500 for IPv4, and for IPv6 when asked.
pub struct IkeSockets {
    sockets: Vec<IkeSocket>,
    /// The socket `recv` polls first, rotated so a flood on one port cannot starve another.
    first: AtomicUsize,
}

impl IkeSockets {
    /// Open 500 and 4500 for IPv4, and for IPv6 with `v6` (v6only sockets).
    pub fn open(ports: IkePorts, v6: bool) -> io::Result<IkeSockets> {
        let families: &[bool] = if v6 { &[false, true] } else { &[false] };
        let mut sockets = Vec::new();
        for &fam in families {
            sockets.push(IkeSocket::open(fam, ports.ike, false)?);
            sockets.push(IkeSocket::open(fam, ports.natt, true)?);
        }
        Ok(IkeSockets {
            sockets,
            first: AtomicUsize::new(0),
        })
    }

    /// The sockets, in opening order.
    pub fn sockets(&self) -> &[IkeSocket] {
        &self.sockets
    }

    /// The socket that sends from `from`: same family and port.
    pub fn socket_for(&self, from: SocketAddr) -> Option<&IkeSocket> {
        (self.sockets.iter())
            .find(|s| s.bound.is_ipv6() == from.is_ipv6() && s.bound.port() == from.port())
    }

    /// Send what the engine returned, through the socket of its source port.
    pub async fn send(&self, t: &Transmit) -> io::Result<()> {
        let sock = self.socket_for(t.from).ok_or_else(|| no_socket(t.from))?;
        sock.send(t.from.ip(), t.to, &t.payload).await
    }

    /// Send a NAT keepalive from our NAT-T port at `from` to the peer's `to`.
    pub async fn send_keepalive(&self, from: SocketAddr, to: SocketAddr) -> io::Result<()> {
        let sock = self.socket_for(from).filter(|s| s.natt);
        let sock = sock.ok_or_else(|| no_socket(from))?;
        sock.send_keepalive(from.ip(), to).await
    }

    /// [`IkeSockets::send`] without waiting (`WouldBlock` when the buffer is full).
    pub fn try_send(&self, t: &Transmit) -> io::Result<()> {
        let sock = self.socket_for(t.from).ok_or_else(|| no_socket(t.from))?;
        sock.try_send(t.from.ip(), t.to, &t.payload)
    }

    /// [`IkeSockets::send_keepalive`] without waiting.
    pub fn try_send_keepalive(&self, from: SocketAddr, to: SocketAddr) -> io::Result<()> {
        let sock = self.socket_for(from).filter(|s| s.natt);
        let sock = sock.ok_or_else(|| no_socket(from))?;
        sock.try_send_keepalive(from.ip(), to)
    }

    /// The next IKE message on any of the sockets (cancel-safe: usable in `select!`).
    pub async fn recv(&self) -> io::Result<Datagram> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll every socket once, starting after the one that delivered last.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<io::Result<Datagram>> {
        let n = self.sockets.len();
        let first = self.first.load(Ordering::Relaxed);
        for i in (0..n).map(|k| (first + k) % n) {
            if let Poll::Ready(r) = self.sockets[i].poll_recv(cx) {
                self.first.store((i + 1) % n, Ordering::Relaxed);
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    }
}

/// Sets [`RECEIVE_BUFFER`]: beyond net.core.rmem_max with CAP_NET_ADMIN (SO_RCVBUFFORCE),
/// else as far as rmem_max allows. Never fatal: a smaller buffer only drops more under load.
fn enlarge_receive_buffer(fd: std::os::fd::RawFd) {
    let forced = encap::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER);
    if forced.is_err() {
        let _ = encap::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RECEIVE_BUFFER);
    }
}

fn no_socket(from: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no IKE socket for source {from}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_natt_port_strips_the_marker_and_drops_the_rest() {
        let ike = [0x11u8; 28];
        let framed = [&NON_ESP_MARKER[..], &ike].concat();
        assert_eq!(classify(true, &framed), Inbound::Ike(&ike));
        assert_eq!(classify(true, &[0xff]), Inbound::Keepalive);
        assert_eq!(classify(true, &ike), Inbound::NotIke, "ESP without an SA");
        assert_eq!(classify(true, &[0, 0, 0]), Inbound::NotIke);
        assert_eq!(classify(true, &NON_ESP_MARKER), Inbound::Ike(&[]));
    }

    #[test]
    fn the_ike_port_passes_messages_as_they_are() {
        let ike = [0x22u8; 28];
        assert_eq!(classify(false, &ike), Inbound::Ike(&ike));
        assert_eq!(classify(false, &[0xff]), Inbound::Keepalive);
    }

    /// A burst of new peers must queue, not be dropped: the buffer is far above the
    /// kernel's default (which `SO_RCVBUF` reports doubled, net/core/sock.c).
    #[test]
    fn ike_sockets_get_a_receive_buffer_for_bursts() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = sock.as_raw_fd();
        enlarge_receive_buffer(fd);
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a local int of the given length.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: not root, SO_RCVBUF is capped at net.core.rmem_max");
            return;
        }
        assert!(v >= 2 * RECEIVE_BUFFER, "SO_RCVBUF {v}");
    }
}

//! `run --announce-cluster-addresses` on this machine's kernel: a member daemon in one
//! namespace, a capture on the other end of a veth pair in another. When the cluster's
//! addresses are added to the member, a gratuitous ARP and an unsolicited Neighbor
//! Advertisement (override set) for them reach the wire. Needs root; skips otherwise.

mod support;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use support::daemon::*;
use support::ns::{privileged, TestNetns};

const VIP4: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 50);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 0x50);

/// Ethernet frames on `ifname` (in the calling thread's namespace) until `done` holds or
/// 5 s pass; `ready` is sent once capturing.
fn capture(
    ifname: &str,
    ready: std::sync::mpsc::Sender<()>,
    done: impl Fn(&[Vec<u8>]) -> bool,
) -> Vec<Vec<u8>> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket, setsockopt and recv on a descriptor we own, with buffers as sized.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all));
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let name = std::ffi::CString::new(ifname).unwrap();
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        assert_eq!(
            libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), len),
            0
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        let tl = std::mem::size_of::<libc::timeval>() as u32;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            tl,
        );
        ready.send(()).unwrap();
        let mut frames = Vec::new();
        let t0 = Instant::now();
        while !done(&frames) && t0.elapsed() < Duration::from_secs(5) {
            let mut buf = [0u8; 2048];
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n > 0 {
                frames.push(buf[..n as usize].to_vec());
            }
        }
        libc::close(fd);
        frames
    }
}

/// A gratuitous ARP request for `ip` from `mac`.
fn is_garp(f: &[u8], ip: Ipv4Addr, mac: &[u8]) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == [0, 1]
        && &f[22..28] == mac
        && f[28..32] == ip.octets()
        && f[38..42] == ip.octets()
}

/// An unsolicited NA (to all nodes, override set) for `ip` with `mac` as its target
/// link-layer address.
fn is_unsolicited_na(f: &[u8], ip: Ipv6Addr, mac: &[u8]) -> bool {
    let icmp = 14 + 40;
    f.len() >= icmp + 32
        && f[12..14] == [0x86, 0xdd]
        && f[20] == 58
        && f[21] == 255
        && f[38..54] == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets()
        && f[icmp] == 136
        && f[icmp + 4] & 0x60 == 0x20
        && f[icmp + 8..icmp + 24] == ip.octets()
        && f[icmp + 24..icmp + 26] == [2, 1]
        && &f[icmp + 26..icmp + 32] == mac
}

#[test]
fn a_member_announces_a_cluster_address_it_starts_holding() {
    let test = "a_member_announces_a_cluster_address_it_starts_holding";
    if !privileged(test) {
        return;
    }
    let (member, wire) = (TestNetns::new("ann1"), TestNetns::new("ann2"));
    member.ip(&["link", "set", "lo", "up"]);
    member.ip(&[
        "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &wire.name,
    ]);
    member.ip(&["link", "set", "v0", "up"]);
    wire.ip(&["link", "set", "v1", "up"]);
    member.ip(&["addr", "add", "10.10.0.31/24", "dev", "v0"]);
    member.ip(&["addr", "add", "fd00:10::31/64", "dev", "v0", "nodad"]);
    let link = member.ip(&["-o", "link", "show", "v0"]);
    let mac: Vec<u8> = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();

    // db1 of the cluster example, with the cluster's key beside its own.
    let f = Files::new("announce");
    std::fs::copy(repo("examples/db-cluster.toml"), f.policy()).unwrap();
    for (from, to) in [
        ("db1.key", "site.key"),
        ("cluster-sqlvip.key", "cluster-sqlvip.key"),
    ] {
        let dst = f.dir.join(to);
        std::fs::copy(repo(&format!("examples/keys/{from}")), &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let _d = Daemon::start(&member, &f, &["--announce-cluster-addresses"]);
    assert_eq!(view(&member).unwrap()["host"], "db1");

    let (tx, rx) = std::sync::mpsc::channel();
    let m = mac.clone();
    let seen = std::thread::spawn({
        let wire = wire.name.clone();
        move || {
            agent::kernel::netns::enter(&wire).unwrap();
            capture("v1", tx, |fs| {
                fs.iter().any(|f| is_garp(f, VIP4, &m))
                    && fs.iter().any(|f| is_unsolicited_na(f, VIP6, &m))
            })
        }
    });
    rx.recv().unwrap();
    // The cluster manager moves the addresses here (without announcing them itself).
    member.ip(&["addr", "add", "10.10.0.50/24", "dev", "v0"]);
    member.ip(&["addr", "add", "fd00:10::50/64", "dev", "v0", "nodad"]);
    let frames = seen.join().unwrap();
    assert!(
        frames.iter().any(|f| is_garp(f, VIP4, &mac)),
        "a gratuitous ARP for {VIP4} among {} frames",
        frames.len()
    );
    assert!(
        frames.iter().any(|f| is_unsolicited_na(f, VIP6, &mac)),
        "an unsolicited NA for {VIP6} among {} frames",
        frames.len()
    );
}

//! The first packets of a new flow, for `scripts/bench-ike`: how long from the first
//! datagram sent to a peer that has no SA yet until one is delivered there (acquire →
//! exchange → SA → delivered), and how long a TCP connect to such a peer takes.
//!
//! flow_probe serve PORT IP...        echo UDP datagrams to IP:PORT with the arrival time
//!                                    (from IP: a socket per address); accept TCP on PORT
//! flow_probe udp DST PORT [GAP_MS]   a datagram every GAP_MS (default 2) until one is echoed
//! flow_probe tcp DST PORT            one connect(2)
//!
//! Both ends run on one machine (in two network namespaces), so the server's
//! CLOCK_MONOTONIC arrival time and the sender's send time share a clock. Prints
//! `key=value`; never judges a time.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context};

/// CLOCK_MONOTONIC in nanoseconds (shared by every namespace of the machine).
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn serve(port: u16, addrs: &[IpAddr]) -> anyhow::Result<()> {
    let tcp = TcpListener::bind(("0.0.0.0", port))?;
    std::thread::spawn(move || {
        for mut s in tcp.incoming().flatten() {
            let mut b = [0u8; 1];
            let _ = s.read(&mut b);
        }
    });
    // One socket per address: a reply must come from the address the flow went to, and
    // an unbound socket would answer from the route's source address.
    let mut threads = Vec::new();
    for &ip in addrs {
        let udp = UdpSocket::bind((ip, port)).with_context(|| format!("bind {ip}:{port}"))?;
        threads.push(std::thread::spawn(move || echo(udp)));
    }
    println!("listening port={port}");
    for t in threads {
        t.join().expect("echo thread")?;
    }
    Ok(())
}

fn echo(udp: UdpSocket) -> anyhow::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        let (n, from) = udp.recv_from(&mut buf)?;
        let arrived = mono_ns();
        if n >= 16 {
            let mut reply = buf[..16].to_vec();
            reply.extend_from_slice(&arrived.to_be_bytes());
            let _ = udp.send_to(&reply, from);
        }
    }
}

/// Datagram: sequence number, send time; the echo appends the arrival time.
fn udp(dst: IpAddr, port: u16, gap: Duration) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", 0))?;
    sock.connect(SocketAddr::new(dst, port))?;
    sock.set_read_timeout(Some(gap))?;
    let first = mono_ns();
    let mut buf = [0u8; 64];
    let limit = first + 30_000_000_000;
    let mut seq = 0u64;
    while mono_ns() < limit {
        seq += 1;
        let mut msg = seq.to_be_bytes().to_vec();
        msg.extend_from_slice(&mono_ns().to_be_bytes());
        // Refused while the SA is being negotiated (larval state): try again next gap.
        let _ = sock.send(&msg);
        while let Ok(n) = sock.recv(&mut buf) {
            if n < 24 {
                continue;
            }
            let echoed = mono_ns();
            let got = |i: usize| u64::from_be_bytes(buf[i..i + 8].try_into().unwrap());
            let (seq_delivered, sent, arrived) = (got(0), got(8), got(16));
            let ms = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1e6;
            println!(
                "udp first_delivery_ms={:.1} delivered_seq={seq_delivered} sent={seq} that_packet_ms={:.1} echo_ms={:.1}",
                ms(first, arrived),
                ms(sent, arrived),
                ms(first, echoed)
            );
            return Ok(());
        }
    }
    bail!("no echo from {dst}:{port} within 30 s")
}

fn tcp(dst: IpAddr, port: u16) -> anyhow::Result<()> {
    let t0 = mono_ns();
    TcpStream::connect_timeout(&SocketAddr::new(dst, port), Duration::from_secs(30))
        .with_context(|| format!("connect {dst}:{port}"))?;
    println!("tcp connect_ms={:.1}", (mono_ns() - t0) as f64 / 1e6);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["serve", port, addrs @ ..] => serve(
            port.parse()?,
            &addrs
                .iter()
                .map(|a| a.parse())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        ["udp", dst, port] => udp(dst.parse()?, port.parse()?, Duration::from_millis(2)),
        ["udp", dst, port, gap] => udp(
            dst.parse()?,
            port.parse()?,
            Duration::from_millis(gap.parse()?),
        ),
        ["tcp", dst, port] => tcp(dst.parse()?, port.parse()?),
        _ => bail!("usage: flow_probe serve PORT IP... | udp DST PORT [GAP_MS] | tcp DST PORT"),
    }
}

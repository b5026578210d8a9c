//! Reloads and rekeys at once, on different flows of one lab whose policy rotates keys
//! every 10 s:
//! - rekey: site → db (IPv4, ESP) for 60 s at 100/s: 0 lost, 0 clear, the outbound SA
//!   switched ≥ 5 times (on the wire, and in `ip xfrm state` sampled every second, for up
//!   to 15 s more if the minute's edges hid an SPI);
//! - reloads: mp → site (IPv4, ESP-in-UDP) and db → site (IPv6, ESP) while the file is
//!   replaced 100 times (two valid versions that differ in a host off every path; by rename
//!   and in place, alternately), each reload waited for in every daemon's view: 0 lost,
//!   0 clear, no reload rejected.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use e2e::daemon::{self, poll, Write};
use e2e::lab::Lab;
use e2e::probe::now_ns;
use e2e::remote::StreamRun;
use e2e::stream::Spec;
use e2e::topology::Family;
use e2e::wire::{self, Flow};

use super::{addr, describe, member_captures, member_servers, stop_captures, PORT, RATE};

const REKEY_FOR: Duration = Duration::from_secs(60);
/// Distinct outbound SPIs `ip xfrm state` must show: at least 5 rotations.
const WANT_SPIS: usize = 6;
/// How long past REKEY_FOR sampling may go on for SPIs not yet seen (1.5 epochs).
const SAMPLE_GRACE: Duration = Duration::from_secs(15);
const RELOADS: usize = 100;
const MEMBERS: [&str; 3] = ["site", "db", "mp"];

/// The outbound SPIs of site → db seen in `ip xfrm state`, sampled once a second until
/// `stop` and `want` distinct SPIs were seen, or `deadline`; returns the distinct SPIs in
/// the order they appeared.
///
/// Sampling goes on past `stop` for the SPIs still missing: a minute holds six epoch
/// boundaries, and a sample (a process start in a slow guest) can come just too early
/// for the first SPI or too late for the last, which a fixed window counted as a
/// rotation that did not happen.
fn sample_outbound_spis(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    stop: &AtomicBool,
    want: usize,
    deadline: Instant,
) -> Vec<u32> {
    let mut seen: Vec<u32> = Vec::new();
    while !(stop.load(Ordering::SeqCst) && seen.len() >= want) && Instant::now() < deadline {
        if let Ok(states) = daemon::states("site") {
            for s in states
                .iter()
                .filter(|s| s.owned() && s.src == src && s.dst == dst)
            {
                if !seen.contains(&s.spi) {
                    seen.push(s.spi);
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    seen
}

/// Write version `i` of the file and wait until every daemon's view shows its sha256.
/// Returns how long that took.
fn reload(lab: &Lab, i: usize, a: &str, b: &str) -> anyhow::Result<Duration> {
    let text = if i.is_multiple_of(2) { b } else { a };
    let how = if i % 4 < 2 {
        Write::Rename
    } else {
        Write::InPlace
    };
    let want = daemon::sha256_hex(text);
    let t0 = Instant::now();
    daemon::write_policy(&lab.policy, text, how)?;
    for host in MEMBERS {
        poll(
            &format!("reload {i} ({how:?}) reflected in {host}'s daemon"),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let v = daemon::view(host)?;
                Ok((v["policy_sha256"].as_str() == Some(want.as_str())).then_some(()))
            },
        )?;
    }
    Ok(t0.elapsed())
}

fn counters(host: &str) -> anyhow::Result<(u64, u64, u64)> {
    let v = daemon::view(host)?;
    Ok((
        daemon::count(&v, "reloads_ok"),
        daemon::count(&v, "reloads_failed"),
        daemon::count(&v, "rotations"),
    ))
}

pub fn reloads_and_rekeys(lab: &Lab, a: &str, b: &str) -> anyhow::Result<String> {
    let v4 = Family::V4;
    let v6 = Family::V6;
    let rekey = Flow {
        client: addr(lab, "site", v4),
        server: addr(lab, "db", v4),
        port: PORT,
    };
    let udp = Flow {
        client: addr(lab, "mp", v4),
        server: addr(lab, "site", v4),
        port: PORT,
    };
    let esp6 = Flow {
        client: addr(lab, "db", v6),
        server: addr(lab, "site", v6),
        port: PORT,
    };
    let mut servers = member_servers(lab, &[udp.server, esp6.server], &[rekey.server])?;
    let caps = member_captures(lab)?;
    let before: Vec<_> = MEMBERS
        .iter()
        .map(|h| counters(h))
        .collect::<anyhow::Result<_>>()?;

    let spec = |f: &Flow| Spec {
        src: f.client,
        dst: f.server,
        port: f.port,
        rate: RATE,
        linger_ms: 1000,
    };
    let t_start = now_ns();
    let s_rekey = StreamRun::start(&lab.exec, "site", &spec(&rekey))?;
    let s_udp = StreamRun::start(&lab.exec, "mp", &spec(&udp))?;
    let s_esp6 = StreamRun::start(&lab.exec, "db", &spec(&esp6))?;
    let started = Instant::now();

    let stop = AtomicBool::new(false);
    let deadline = started + REKEY_FOR + SAMPLE_GRACE;
    let (sampled, reloads) = std::thread::scope(|sc| {
        let (src, dst, stop) = (rekey.client, rekey.server, &stop);
        let sampler = sc.spawn(move || sample_outbound_spis(src, dst, stop, WANT_SPIS, deadline));
        let reloads: anyhow::Result<Vec<Duration>> =
            (0..RELOADS).map(|i| reload(lab, i, a, b)).collect();
        // The rekey flow runs its full minute whatever the reloads took.
        if let Some(rest) = REKEY_FOR.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
        stop.store(true, Ordering::SeqCst);
        (sampler.join().expect("sampler"), reloads)
    });
    let reload_ms = started.elapsed();
    let r_rekey = s_rekey.stop()?;
    let r_udp = s_udp.stop()?;
    let r_esp6 = s_esp6.stop()?;
    let t_end = now_ns();
    let packets = stop_captures(caps, &mut servers)?;
    for (_, s) in servers {
        s.stop()?;
    }
    let reloads = reloads?;
    let after: Vec<_> = MEMBERS
        .iter()
        .map(|h| counters(h))
        .collect::<anyhow::Result<_>>()?;

    let mut out = String::new();
    let mut sorted = reloads.clone();
    sorted.sort();
    writeln!(
        out,
        "{} reloads in {:.1} s; reflected in all 3 daemons after p50 {:.0} ms, max {:.0} ms",
        reloads.len(),
        reload_ms.as_secs_f64(),
        sorted[sorted.len() / 2].as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3
    )?;
    for ((host, (ok0, bad0, rot0)), (ok1, bad1, rot1)) in MEMBERS.iter().zip(&before).zip(&after) {
        writeln!(
            out,
            "{host}: reloads ok +{}, failed +{}, rotations +{}",
            ok1 - ok0,
            bad1 - bad0,
            rot1 - rot0
        )?;
        ensure!(
            ok1 - ok0 >= RELOADS as u64,
            "{host}: only {} reloads ok",
            ok1 - ok0
        );
        ensure!(
            bad1 == bad0,
            "{host}: {} reloads rejected, the last: {}",
            bad1 - bad0,
            daemon::view(host)?["last_rejected"]
        );
    }

    let wire_runs = wire::spi_runs(&packets["site"], rekey.client, rekey.server);
    writeln!(
        out,
        "rekey: site → db outbound SPI switched {} times on the wire ({:x?}); sampled from ip xfrm state: {} SPIs {:x?}",
        wire_runs.len().saturating_sub(1),
        wire_runs.iter().map(|r| r.1).collect::<Vec<_>>(),
        sampled.len(),
        sampled
    )?;
    for (name, r, f, ch, sh) in [
        ("rekey site→db v4", &r_rekey, &rekey, "site", "db"),
        ("reload mp→site v4 (ESP-in-UDP)", &r_udp, &udp, "mp", "site"),
        ("reload db→site v6", &r_esp6, &esp6, "db", "site"),
    ] {
        let (c, s) = wire::both(&packets, ch, sh, f, t_start, t_end);
        writeln!(
            out,
            "{}; on the wire: {ch} sent {} protected + {} clear, {sh} sent {} protected + {} clear",
            describe(name, r),
            c.protected(),
            c.clear,
            s.protected(),
            s.clear
        )?;
        ensure!(
            c.clear == 0 && s.clear == 0,
            "{name}: clear packets on the wire\n{out}"
        );
        ensure!(
            r.lost() == 0,
            "{name}: {} datagrams lost: {:?}\n{out}",
            r.lost(),
            r.outages()
        );
        ensure!(
            c.protected() >= r.sent() && s.protected() >= r.sent(),
            "{name}: fewer protected packets than datagrams\n{out}"
        );
    }
    ensure!(
        wire_runs.len() >= 6,
        "the outbound SA switched {} times on the wire in {} s (want ≥ 5)\n{out}",
        wire_runs.len().saturating_sub(1),
        REKEY_FOR.as_secs()
    );
    ensure!(
        sampled.len() >= WANT_SPIS,
        "ip xfrm state showed {} outbound SPIs in {} s (want ≥ {WANT_SPIS}: ≥ 5 changes)\n{out}",
        sampled.len(),
        (REKEY_FOR + SAMPLE_GRACE).as_secs()
    );
    Ok(out)
}

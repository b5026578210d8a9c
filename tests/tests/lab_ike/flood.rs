//! A spoofed IKE_SA_INIT flood at site's daemon (the responder) while the roamer's agent
//! connects: the roamer gets in, site's memory stays bounded, and site counts the cookies it
//! demanded instead of keeping state.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::daemon;
use e2e::lab::{self, Lab};
use e2e::remote::Server;
use e2e::topology::Family;

use super::rig::{self, addr};
use super::{ESTABLISH, TCP};

/// Spoofed requests in all, and their pace (UML has one slow CPU: 10 s of flood).
const PACKETS: u64 = 20_000;
const RATE: u64 = 2_000;
/// The flooder's source addresses: a /16 of the lab's own plan, routed to `client`.
const SPOOFED: &str = "10.99.0.0";
/// Site's daemon may grow at most this much over its resting size during the flood. Each
/// half-open SA costs a few kB, and the cookie threshold (100) caps how many a spoofed
/// flood can make: without cookies, 20,000 of them would need tens of MB.
const RSS_BOUND_KB: u64 = 16 * 1024;
/// The default global cookie threshold (ike::sa::Config): half-open SAs beyond need cookies.
const COOKIE_THRESHOLD: u64 = 100;

pub fn spoofed_flood(lab: &Lab) -> anyhow::Result<String> {
    let (r4, r6) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "roamer", Family::V6),
    );
    let (s4, s6) = (addr(lab, "site", Family::V4), addr(lab, "site", Family::V6));
    let pid = daemon::recorded_pid(lab, "site")?;
    rig::start_roamer_agent(lab)?;
    let server = Server::start(&lab.exec, "site", &[s4, s6], &[TCP], &[])?;
    let mut out = String::new();
    // No flood: the roamer's IPv4 exchange (the first SAs of this kernel, so the slower).
    let quiet = rig::reach(lab, "roamer", r4, s4, "tcp", TCP, ESTABLISH)?;
    let before = rss_kb(pid, "VmRSS")?;
    let udp_before = udp_counters("site")?;
    ip(&[
        "-n",
        "edge",
        "route",
        "add",
        "10.99.0.0/16",
        "via",
        "10.30.0.30",
    ])?;
    let flooder = lab::probe_binary().with_file_name("lab-ike-flood");
    let child = Command::new("ip")
        .args(["netns", "exec", "client"])
        .arg(&flooder)
        .args([
            &s4.to_string(),
            &PACKETS.to_string(),
            &RATE.to_string(),
            SPOOFED,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid, "VmRSS").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    // Under the flood: the roamer's IPv6 exchange, past the cookie threshold by now.
    let flooded = rig::reach(lab, "roamer", r6, s6, "tcp", TCP, ESTABLISH);
    let done = child.wait_with_output()?;
    std::thread::sleep(Duration::from_secs(1));
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let after = rss_kb(pid, "VmRSS")?;
    let udp: BTreeMap<String, u64> = (udp_counters("site")?.into_iter())
        .map(|(k, n)| {
            let was = udp_before.get(&k).copied().unwrap_or(0);
            (k, n.saturating_sub(was))
        })
        .collect();
    server.stop()?;
    let flood_says = String::from_utf8_lossy(&done.stdout).trim().to_string();
    anyhow::ensure!(
        done.status.success(),
        "lab-ike-flood: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let view = daemon::view("site")?;
    let refused = rig::counts(&view, "refused");
    let half_open = rig::number(&view, "half_open");
    out += &format!(
        "flood: {flood_says} ({PACKETS} spoofed IKE_SA_INIT from {SPOOFED}/16 at {RATE}/s)\n\
         roamer → site first echo: {:.2} s without flood (v4, first SAs of the kernel), {} under the flood (v6)\n\
         site's daemon RSS: {before} kB before, {peak} kB peak, {after} kB after (+{} kB at peak)\n\
         site: {half_open} half-open IKE SAs; defences {refused:?}\n\
         site's UDP during the flood: {} datagrams delivered to sockets, {} dropped on a full receive buffer\n",
        quiet.as_secs_f64(),
        match &flooded {
            Ok(t) => format!("{:.2} s", t.as_secs_f64()),
            Err(e) => format!("failed: {e}"),
        },
        peak.saturating_sub(before),
        udp.get("InDatagrams").unwrap_or(&0),
        udp.get("RcvbufErrors").unwrap_or(&0),
    );
    anyhow::ensure!(flooded.is_ok(), "the roamer did not get in\n{out}");
    let sas = rig::owned_sas("site", r6, s6)?;
    anyhow::ensure!(
        sas.iter().any(|s| s.src == r6) && sas.iter().any(|s| s.dst == r6),
        "site has no owned SA pair with {r6}: {sas:?}\n{out}"
    );
    let cookies = refused.get("cookie-sent").copied().unwrap_or(0);
    anyhow::ensure!(cookies > 0, "site sent no cookie\n{out}");
    anyhow::ensure!(
        half_open <= COOKIE_THRESHOLD + 1,
        "site holds more half-open SAs than the cookie threshold\n{out}"
    );
    anyhow::ensure!(
        peak.max(after) <= before + RSS_BOUND_KB,
        "site's daemon grew more than {RSS_BOUND_KB} kB\n{out}"
    );
    Ok(out)
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
fn rss_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// The `Udp:` counters of `/proc/net/snmp` in `host`'s namespace.
fn udp_counters(host: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let out = Command::new("ip")
        .args(["netns", "exec", host, "cat", "/proc/net/snmp"])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let mut udp = text.lines().filter_map(|l| l.strip_prefix("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        anyhow::bail!("{host}: no Udp counters in /proc/net/snmp");
    };
    let values = values.split_whitespace().filter_map(|v| v.parse().ok());
    Ok(names
        .split_whitespace()
        .map(String::from)
        .zip(values)
        .collect())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

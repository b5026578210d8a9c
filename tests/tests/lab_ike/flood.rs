//! A spoofed IKE_SA_INIT flood at a responder while a legitimate peer connects: site's
//! daemon (the roamer's agent connects: it gets in, site's memory stays bounded, and site
//! counts the cookies it demanded instead of keeping state), and strongSwan's charon in the
//! roamer under the same flood, for comparison (site's agent connects).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::daemon;
use e2e::lab::{self, Lab};
use e2e::remote::Server;
use e2e::topology::Family;

use super::charon::{Charon, Conn};
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

/// One responder under the flood: whose process, which address is flooded, and the two
/// legitimate exchanges (host, source, destination): one before the flood, one during it.
struct Responder {
    host: &'static str,
    pid: u32,
    flooded: IpAddr,
    quiet: (&'static str, IpAddr, IpAddr),
    during: (&'static str, IpAddr, IpAddr),
}

/// What one flood did to a responder.
struct Measured {
    quiet: Duration,
    during: anyhow::Result<Duration>,
    /// VmRSS before, peak (sampled every 100 ms), after, in kB.
    rss: (u64, u64, u64),
    /// The responder namespace's UDP counters over the flood.
    udp: BTreeMap<String, u64>,
    flood_says: String,
}

impl Measured {
    fn describe(&self, who: &str) -> String {
        let (before, peak, after) = self.rss;
        let get = |k: &str| self.udp.get(k).copied().unwrap_or(0);
        format!(
            "{who}: flood {} ({PACKETS} spoofed IKE_SA_INIT from {SPOOFED}/16 at {RATE}/s)\n\
             {who}: first echo {:.2} s without flood (v4, the kernel's first SAs), {} under the flood (v6)\n\
             {who}: RSS {before} kB before, {peak} kB peak, {after} kB after (+{} kB at peak)\n\
             {who}: UDP during the flood: {} datagrams delivered to sockets, {} dropped on a full receive buffer\n",
            self.flood_says,
            self.quiet.as_secs_f64(),
            match &self.during {
                Ok(t) => format!("{:.2} s", t.as_secs_f64()),
                Err(e) => format!("failed: {e}"),
            },
            peak.saturating_sub(before),
            get("InDatagrams"),
            get("RcvbufErrors"),
        )
    }
}

/// Site's daemon as the responder: the roamer's agent initiates both exchanges.
pub fn spoofed_flood(lab: &Lab) -> anyhow::Result<String> {
    let (r4, r6) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "roamer", Family::V6),
    );
    let (s4, s6) = (addr(lab, "site", Family::V4), addr(lab, "site", Family::V6));
    rig::start_roamer_agent(lab)?;
    let server = Server::start(&lab.exec, "site", &[s4, s6], &[TCP], &[])?;
    let responder = Responder {
        host: "site",
        pid: daemon::recorded_pid(lab, "site")?,
        flooded: s4,
        quiet: ("roamer", r4, s4),
        during: ("roamer", r6, s6),
    };
    let m = measure(lab, &responder);
    server.stop()?;
    let m = m?;
    let view = daemon::view("site")?;
    let refused = rig::counts(&view, "refused");
    let half_open = rig::number(&view, "half_open");
    let out = format!(
        "{}site: {half_open} half-open IKE SAs; defences {refused:?}\n",
        m.describe("site (xfrm-agent)")
    );
    anyhow::ensure!(m.during.is_ok(), "the roamer did not get in\n{out}");
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
    let (before, peak, after) = m.rss;
    anyhow::ensure!(
        peak.max(after) <= before + RSS_BOUND_KB,
        "site's daemon grew more than {RSS_BOUND_KB} kB\n{out}"
    );
    Ok(out)
}

/// strongSwan's charon (in the roamer) as the responder under the same flood, for
/// comparison: site's agent initiates both exchanges. Only the exchange is asserted.
pub fn spoofed_flood_at_charon(lab: &Lab) -> anyhow::Result<String> {
    let (r4, r6) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "roamer", Family::V6),
    );
    let (s4, s6) = (addr(lab, "site", Family::V4), addr(lab, "site", Family::V6));
    let conn = |name, local, remote| Conn {
        name,
        local,
        remote,
        cert: Some("roamer"),
        trap: false,
    };
    let conns = [
        conn("v4", "10.20.0.40", "10.10.0.10"),
        conn("v6", "fd00:20::40", "fd00:10::10"),
    ];
    let charon = Charon::start(
        &rig::work_dir().join("flood-charon/charon"),
        rig::pki(),
        &conns,
    )?;
    let pid = std::fs::read_to_string("/run/ike/roamer/charon.pid")?;
    let server = Server::start(&lab.exec, "roamer", &[r4, r6], &[TCP], &[])?;
    let responder = Responder {
        host: "roamer",
        pid: pid.trim().parse()?,
        flooded: r4,
        quiet: ("site", s4, r4),
        during: ("site", s6, r6),
    };
    let m = measure(lab, &responder);
    server.stop()?;
    let (_, stats) = charon.swanctl(&["--stats"])?;
    charon.stop()?;
    let m = m?;
    let half_open = (stats.lines())
        .find(|l| l.contains("half-open"))
        .unwrap_or("")
        .trim()
        .to_string();
    let out = format!("{}charon: {half_open}\n", m.describe("roamer (charon)"));
    anyhow::ensure!(m.during.is_ok(), "site did not get in\n{out}");
    Ok(out)
}

/// The quiet exchange, then the flood at `r.flooded` from `client` with the other exchange
/// one second into it, sampling the responder's RSS throughout.
fn measure(lab: &Lab, r: &Responder) -> anyhow::Result<Measured> {
    let (host, src, dst) = r.quiet;
    let quiet = rig::reach(lab, host, src, dst, "tcp", TCP, ESTABLISH)?;
    let before = rss_kb(r.pid)?;
    let udp_before = udp_counters(r.host)?;
    ip(&[
        "-n",
        "edge",
        "route",
        "replace",
        "10.99.0.0/16",
        "via",
        "10.30.0.30",
    ])?;
    let flooder = lab::probe_binary().with_file_name("lab-ike-flood");
    let child = Command::new("ip")
        .args(["netns", "exec", "client"])
        .arg(&flooder)
        .args([
            &r.flooded.to_string(),
            &PACKETS.to_string(),
            &RATE.to_string(),
            SPOOFED,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (sampling, pid) = (sampling.clone(), r.pid);
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let (host, src, dst) = r.during;
    let during = rig::reach(lab, host, src, dst, "tcp", TCP, ESTABLISH);
    let done = child.wait_with_output()?;
    std::thread::sleep(Duration::from_secs(1));
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let after = rss_kb(r.pid)?;
    anyhow::ensure!(
        done.status.success(),
        "lab-ike-flood: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let udp = (udp_counters(r.host)?.into_iter())
        .map(|(k, n)| {
            let was = udp_before.get(&k).copied().unwrap_or(0);
            (k, n.saturating_sub(was))
        })
        .collect();
    Ok(Measured {
        quiet,
        during,
        rss: (before, peak.max(before).max(after), after),
        udp,
        flood_says: String::from_utf8_lossy(&done.stdout).trim().to_string(),
    })
}

/// A process's resident set (`VmRSS` of `/proc/PID/status`) in kB.
fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
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

//! What the cluster lab's cases share: echo servers for the whole sequence, per-case
//! streams and captures, the kernel's objects as comparable maps, and the 1 s judgement.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use e2e::daemon;
use e2e::lab::Lab;
use e2e::pcap::Packet;
use e2e::probe::now_ns;
use e2e::remote::{Capture, Server, StreamRun};
use e2e::stream::{Disruption, Spec};
use e2e::topology::Family;
use e2e::wire::{self, Flow};

use super::{addr, ms, PORT, RATE};

/// The cluster's virtual addresses, one per family (the intranet's, so the seed's
/// `require` rule covers them), with their prefix lengths on the intranet.
pub const VIP4: &str = "10.10.0.100";
pub const VIP6: &str = "fd00:10::100";
pub const VIP4_PREFIX: u8 = 24;
pub const VIP6_PREFIX: u8 = 64;
pub const HOSTS: [&str; 3] = ["site", "db", "mp"];

/// Echo servers for the whole sequence; they also mark the end of each host's captures.
pub struct Rig<'a> {
    pub lab: &'a Lab,
    pub servers: BTreeMap<String, Server>,
    /// The VIPs' echo on site and db, bound before either holds the addresses.
    pub vip: BTreeMap<String, Server>,
}

impl<'a> Rig<'a> {
    pub fn new(lab: &'a Lab) -> anyhow::Result<Rig<'a>> {
        let vips: [IpAddr; 2] = [VIP4.parse()?, VIP6.parse()?];
        let mut servers = BTreeMap::new();
        let site = [addr(lab, "site", Family::V4)];
        servers.insert(
            "site".into(),
            Server::start(&lab.exec, "site", &site, &[], &[PORT])?,
        );
        for h in ["db", "mp"] {
            servers.insert(h.into(), Server::start(&lab.exec, h, &[], &[], &[])?);
        }
        let mut vip = BTreeMap::new();
        for h in ["site", "db"] {
            vip.insert(
                h.into(),
                Server::start_freebind(&lab.exec, h, &vips, &[PORT])?,
            );
        }
        Ok(Rig { lab, servers, vip })
    }

    pub fn capture(&self, hosts: &[&str]) -> anyhow::Result<Vec<Capture<'a>>> {
        hosts
            .iter()
            .map(|h| Capture::start(&self.lab.exec, h))
            .collect()
    }

    /// Stop captures after their host's server marked the end: every packet is in.
    pub fn packets(
        &mut self,
        caps: Vec<Capture<'_>>,
    ) -> anyhow::Result<BTreeMap<String, Vec<Packet>>> {
        super::stop_captures(caps, &mut self.servers)
    }

    pub fn stream(&self, client: &str, flow: Flow) -> anyhow::Result<(StreamRun, u64)> {
        let t0 = now_ns();
        let spec = Spec {
            src: flow.client,
            dst: flow.server,
            port: flow.port,
            rate: RATE,
            linger_ms: 1000,
        };
        Ok((StreamRun::start(&self.lab.exec, client, &spec)?, t0))
    }

    pub fn stop(self) -> anyhow::Result<()> {
        for s in self.servers.into_values().chain(self.vip.into_values()) {
            s.stop()?;
        }
        Ok(())
    }
}

/// Let a stream run for `d`: traffic before and after a disruption, to measure around it
/// (a measured interval, not a synchronisation).
pub fn traffic_for(d: Duration) {
    std::thread::sleep(d);
}

pub fn db_to_site(lab: &Lab) -> Flow {
    Flow {
        client: addr(lab, "db", Family::V4),
        server: addr(lab, "site", Family::V4),
        port: PORT,
    }
}

/// Objects of a host as comparable maps: states by key → (add time, packets), policies by
/// key → index. Either the owned ones or the foreign ones.
pub type Objects = (
    BTreeMap<(IpAddr, IpAddr, u32), (String, u64)>,
    BTreeMap<(String, String), u32>,
);

pub fn objects(host: &str, ours: bool) -> anyhow::Result<Objects> {
    let states = daemon::states(host)?
        .into_iter()
        .filter(|s| s.spi != 0 && s.owned() == ours)
        .map(|s| (s.key(), (s.added.clone(), s.packets)))
        .collect();
    let policies = daemon::policies(host)?
        .into_iter()
        .filter(|p| p.owned() == ours)
        .map(|p| (p.key(), p.index))
        .collect();
    Ok((states, policies))
}

/// What `now` lacks and has in excess compared with `want`.
pub fn difference(now: &Objects, want: &Objects) -> String {
    let missing_s: Vec<_> = want.0.keys().filter(|k| !now.0.contains_key(k)).collect();
    let extra_s: Vec<_> = now.0.keys().filter(|k| !want.0.contains_key(k)).collect();
    let missing_p: Vec<_> = want.1.keys().filter(|k| !now.1.contains_key(k)).collect();
    let extra_p: Vec<_> = now.1.keys().filter(|k| !want.1.contains_key(k)).collect();
    format!("states missing {missing_s:?} extra {extra_s:?}; policies missing {missing_p:?} extra {extra_p:?}")
}

pub fn same_keys(a: &Objects, b: &Objects) -> bool {
    a.0.keys().eq(b.0.keys()) && a.1.keys().eq(b.1.keys())
}

/// What both ends of `flow` sent in `[t0, t1]`, and a check that neither sent it in clear.
pub fn no_clear(
    packets: &BTreeMap<String, Vec<Packet>>,
    client: &str,
    server: &str,
    flow: &Flow,
    t0: u64,
    t1: u64,
) -> anyhow::Result<String> {
    let (c, s) = wire::both(packets, client, server, flow, t0, t1);
    let text = format!(
        "{client} sent {} protected + {} clear, {server} sent {} protected + {} clear",
        c.protected(),
        c.clear,
        s.protected(),
        s.clear
    );
    ensure!(
        c.clear == 0 && s.clear == 0,
        "clear packets of a protected flow: {text}"
    );
    ensure!(c.protected() > 0, "{client} sent nothing protected: {text}");
    Ok(text)
}

pub fn ip_batch(host: &str, batch: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("ip")
        .args(["-n", host, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(batch.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "ip -n {host} -batch: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Delete exactly the owned objects, in one batch: states by SPI, policies by index.
pub fn delete_owned(host: &str, policies_too: bool) -> anyhow::Result<()> {
    let mut batch = String::new();
    for s in daemon::states(host)?.iter().filter(|s| s.owned()) {
        writeln!(
            batch,
            "xfrm state delete src {} dst {} proto {} spi {:#x}",
            s.src, s.dst, s.proto, s.spi
        )?;
    }
    if policies_too {
        // Every owned policy iproute2 can address (not the 0/2 half of a backstop).
        for p in daemon::policies(host)?.iter().filter(|p| p.owned()) {
            if let Some(id) = p.ip_id() {
                writeln!(batch, "xfrm policy delete {id}")?;
            }
        }
    }
    ip_batch(host, &batch)
}

/// A disruption, judged: restored within 1 s.
pub fn judge(what: &str, d: Option<Disruption>) -> anyhow::Result<String> {
    let Some(d) = d else {
        return Ok(format!("{what}: not disrupted"));
    };
    let span = d
        .span_ns
        .with_context(|| format!("{what}: traffic never came back ({d:?})"))?;
    let text = format!(
        "{what}: restored after {:.0} ms ({} lost, {} clear)",
        ms(span),
        d.lost,
        d.other
    );
    ensure!(span < 1_000_000_000, "{text}: not within 1 s");
    Ok(text)
}

//! `request` with IKEv2: site requests ESP with the roamer (an agent with a corp
//! certificate) and with the internet client (no IKE at all). The client's traffic flows
//! clear both ways at once while site's exchange with it goes unanswered; the roamer
//! answers and site's traffic to it goes in ESP-in-UDP.

use std::collections::BTreeMap;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::ensure;
use e2e::daemon;
use e2e::lab::Lab;
use e2e::pcap::{Kind, Packet};
use e2e::remote::{stop_captures, Capture, Server};
use e2e::topology::Family;

use super::evidence::on_the_path;
use super::rig::{self, addr};
use super::{ESTABLISH, TCP};

/// Site's extra rule: the roamer and the client, requested.
pub const RULES: &str = r#"[[rules]]
name = "request-outside"      # ESP with whoever answers IKEv2, clear with the others
from = ["host:site"]
to = ["10.20.0.40", "fd00:20::40", "10.30.0.30"]
action = "request"

"#;

pub fn request(lab: &Lab) -> anyhow::Result<String> {
    let (s4, c4, r4) = (
        addr(lab, "site", Family::V4),
        addr(lab, "client", Family::V4),
        addr(lab, "roamer", Family::V4),
    );
    rig::start_roamer_agent(lab)?;
    let mut servers = BTreeMap::new();
    servers.insert(
        "client".to_string(),
        Server::start(&lab.exec, "client", &[c4], &[TCP], &[])?,
    );
    servers.insert(
        "site".to_string(),
        Server::start(&lab.exec, "site", &[s4], &[TCP], &[])?,
    );
    servers.insert(
        "roamer".to_string(),
        Server::start(&lab.exec, "roamer", &[r4], &[TCP], &[])?,
    );
    let mut out = String::new();

    // No IKE on the client: both directions flow clear on the first try; site gives its
    // exchange up at request-timeout (3 s: IKE_SA_INIT sent at 0, 0.5 and 1.5 s) and lists
    // the client as clear; within the backoff, new traffic starts no exchange.
    let caps = vec![Capture::start(&lab.exec, "client")?];
    ensure!(
        rig::probe_once(lab, "site", s4, c4, "tcp", TCP)?,
        "site → client: not answered on the first try"
    );
    ensure!(
        rig::probe_once(lab, "client", c4, s4, "tcp", TCP)?,
        "client → site: not answered"
    );
    let v = daemon::poll(
        "site lists the client as clear",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let v = daemon::view("site")?;
            Ok(clear_peers(&v).contains(&c4).then_some(v))
        },
    )?;
    let timeouts = rig::failures(&v).get("timeout").copied().unwrap_or(0);
    ensure!(
        rig::probe_once(lab, "site", s4, c4, "tcp", TCP)?,
        "site → client in its backoff: not answered"
    );
    let client = stop_captures(caps, &mut servers)?
        .remove("client")
        .unwrap_or_default();
    let clear_tcp = count(&client, |p| {
        p.src == s4 && matches!(p.kind, Kind::Tcp { .. })
    });
    let ike = count(&client, |p| {
        p.src == s4 && matches!(p.kind, Kind::Udp { dport: 500, .. })
    });
    out += &format!(
        "client (no IKE): {clear_tcp} clear TCP packets from site; {ike} IKE_SA_INIT sends from site, then given up ({timeouts} timeout failures)\n"
    );
    ensure!(clear_tcp > 0, "no clear TCP from site at the client\n{out}");
    ensure!(
        (1..=3).contains(&ike),
        "site sent {ike} IKE_SA_INITs: not given up at the timeout\n{out}"
    );
    ensure!(timeouts >= 1, "no timeout failure counted\n{out}");

    // The roamer answers: site's traffic to it goes in ESP (in UDP: fw drops protocol 50).
    let t = rig::reach(lab, "site", s4, r4, "tcp", TCP, ESTABLISH)?;
    let sas = rig::owned_sas("site", s4, r4)?;
    out += &format!(
        "roamer (IKE): answered after {:.2} s; site's SAs with it: {}\n",
        t.as_secs_f64(),
        sas.len()
    );
    ensure!(
        sas.iter().any(|s| s.src == s4) && sas.iter().any(|s| s.dst == s4),
        "site has no SA pair with the roamer\n{out}"
    );
    let caps = vec![Capture::start(&lab.exec, "fw")?];
    ensure!(
        rig::probe_once(lab, "site", s4, r4, "tcp", TCP)?,
        "site → roamer over the SAs: not answered"
    );
    let fw = stop_captures(caps, &mut BTreeMap::new())?
        .remove("fw")
        .unwrap_or_default();
    let (other, esp_udp) = on_the_path(&fw, s4, r4);
    out += &format!(
        "fw, site ↔ roamer: {esp_udp} ESP-in-UDP, {} other\n",
        other.len()
    );
    ensure!(
        esp_udp > 0 && other.is_empty(),
        "site ↔ roamer not in ESP: {other:?}\n{out}"
    );
    for (_, s) in servers {
        s.stop()?;
    }
    Ok(out)
}

/// The daemon's `request` peers in fallback (`clear_peers` of its IKE view).
fn clear_peers(v: &serde_json::Value) -> Vec<IpAddr> {
    rig::find_key(v, "clear_peers")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn count(packets: &[Packet], f: impl Fn(&Packet) -> bool) -> usize {
    packets.iter().filter(|p| f(p)).count()
}

//! strongSwan's charon as the roamer: both roles, then Child SA rekeys under traffic.

use std::collections::BTreeMap;
use std::net::IpAddr;

use e2e::daemon;
use e2e::lab::Lab;
use e2e::pcap::Packet;
use e2e::probe::now_ns;
use e2e::remote::{stop_captures, Capture, Server, StreamRun};
use e2e::stream::{Report, Spec};
use e2e::topology::Family;
use e2e::wire::{self, Flow};
use serde_json::Value;

use super::charon::{roamer_conns, Charon};
use super::evidence::{describe, losses_at_switches, on_the_path, stat_delta};
use super::rig::{self, addr};
use super::{rekey_for, ESTABLISH, RATE, UDP};

pub fn charon_roamer(lab: &Lab) -> anyhow::Result<String> {
    let (r4, r6) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "roamer", Family::V6),
    );
    let (s4, s6) = (addr(lab, "site", Family::V4), addr(lab, "site", Family::V6));
    // IPv4: charon initiates on the roamer's traffic (trap); IPv6: it only responds, so
    // site's agent initiates.
    let conns = roamer_conns(false);
    let charon = Charon::start(&rig::work_dir().join("charon/run"), rig::pki(), &conns)?;
    let mut servers = BTreeMap::new();
    servers.insert(
        "site".to_string(),
        Server::start(&lab.exec, "site", &[s4], &[], &[UDP])?,
    );
    servers.insert(
        "roamer".to_string(),
        Server::start(&lab.exec, "roamer", &[r6], &[], &[UDP])?,
    );
    let caps = ["fw", "site", "roamer"]
        .iter()
        .map(|h| Capture::start(&lab.exec, h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut out = String::new();
    let t4 = rig::reach(lab, "roamer", r4, s4, "udp", UDP, ESTABLISH)?;
    let t6 = rig::reach(lab, "site", s6, r6, "udp", UDP, ESTABLISH)?;
    out += &format!(
        "charon initiates v4: first echo after {:.2} s; agent initiates v6: {:.2} s (log: {})\n",
        t4.as_secs_f64(),
        t6.as_secs_f64(),
        charon.log_path().display()
    );
    let v4 = Flow {
        client: r4,
        server: s4,
        port: UDP,
    };
    let v6 = Flow {
        client: s6,
        server: r6,
        port: UDP,
    };
    let (rep4, rep6, t0, t1) = streams(lab, &v4, &v6, &mut out)?;
    let (_, sas) = charon.swanctl(&["--list-sas"])?;
    let peers = rig::ike_peers(&daemon::view("site")?);
    let packets = stop_captures(caps, &mut servers)?;
    for (_, s) in servers {
        s.stop()?;
    }
    charon.stop()?;
    let mut problems = judge_flows(
        &packets,
        [
            (&rep4, &v4, "roamer", "site"),
            (&rep6, &v6, "site", "roamer"),
        ],
        (t0, t1),
        &mut out,
    );
    problems.extend(status_problems(&peers, [r4, r6], &mut out));
    anyhow::ensure!(problems.is_empty(), "{}\n{out}", problems.join("\n"));
    anyhow::ensure!(
        sas.contains("ESTABLISHED"),
        "charon lists no established IKE SA:\n{sas}"
    );
    Ok(out)
}

/// Each stream: nothing clear from either end, nothing lost, only IKE and ESP-in-UDP on
/// fw, and site's outbound SA switched at (nearly) every 20 s rekey.
fn judge_flows(
    packets: &BTreeMap<String, Vec<Packet>>,
    flows: [(&Report, &Flow, &str, &str); 2],
    (t0, t1): (u64, u64),
    out: &mut String,
) -> Vec<String> {
    // A rekey every 20 s (charon's soft expiry comes up to 10 % early): at least one fewer
    // than the span holds, so the run's edges cannot make it fail.
    let want_switches = (rekey_for().as_secs() / 20).saturating_sub(1) as usize;
    let mut problems = Vec::new();
    for (rep, f, ch, sh) in flows {
        let name = format!(
            "{ch} → {sh} {}",
            if f.client.is_ipv4() { "v4" } else { "v6" }
        );
        let (c, s) = wire::both(packets, ch, sh, f, t0, t1);
        let (site_me, site_peer) = if sh == "site" {
            (f.server, f.client)
        } else {
            (f.client, f.server)
        };
        let switches = wire::spi_runs(&packets["site"], site_me, site_peer)
            .len()
            .saturating_sub(1);
        let (other, esp_udp) = on_the_path(&packets["fw"], f.client, f.server);
        *out += &format!(
            "{}; {ch} sent {} protected + {} clear, {sh} {} + {}; site's outbound SA switched {switches}× on the wire; fw: {esp_udp} ESP-in-UDP, {} other\n",
            describe(&name, rep),
            c.protected(),
            c.clear,
            s.protected(),
            s.clear,
            other.len()
        );
        if c.clear + s.clear > 0 {
            problems.push(format!("{name}: {} clear packets", c.clear + s.clear));
        }
        if rep.lost() > 0 {
            let ends = [(ch, f.client, f.server), (sh, f.server, f.client)];
            problems.push(format!(
                "{name}: {}",
                losses_at_switches(packets, rep, ends, t0)
            ));
        }
        if !other.is_empty() {
            problems.push(format!("{name}: not IKE nor ESP-in-UDP on fw: {other:?}"));
        }
        if switches < want_switches {
            problems.push(format!(
                "{name}: {switches} SA switches, want ≥ {want_switches}"
            ));
        }
    }
    problems
}

/// site's status lists the roamer at each address, authenticated by the corp authority.
fn status_problems(peers: &[Value], addrs: [IpAddr; 2], out: &mut String) -> Vec<String> {
    let mut problems = Vec::new();
    for a in addrs {
        let peer = peers
            .iter()
            .find(|p| p["address"].as_str() == Some(a.to_string().as_str()));
        *out += &format!(
            "site's status for {a}: {}\n",
            peer.map_or("none".into(), |p| p.to_string())
        );
        if peer.is_none_or(|p| p["authority"] != "corp") {
            problems.push(format!("site's status lists no peer {a} admitted by corp"));
        }
    }
    problems
}

/// 100 datagrams/s on both flows (v4 from the roamer, v6 from site) for the rekey span;
/// the XFRM counters that moved meanwhile on both ends go to `out`.
fn streams(
    lab: &Lab,
    v4: &Flow,
    v6: &Flow,
    out: &mut String,
) -> anyhow::Result<(Report, Report, u64, u64)> {
    let spec = |f: &Flow| Spec {
        src: f.client,
        dst: f.server,
        port: f.port,
        rate: RATE,
        linger_ms: 1000,
    };
    let stat0 = [
        daemon::xfrm_stat(lab, "site")?,
        daemon::xfrm_stat(lab, "roamer")?,
    ];
    let t0 = now_ns();
    let run4 = StreamRun::start(&lab.exec, "roamer", &spec(v4))?;
    let run6 = StreamRun::start(&lab.exec, "site", &spec(v6))?;
    std::thread::sleep(rekey_for());
    let rep4 = run4.stop()?;
    let rep6 = run6.stop()?;
    let t1 = now_ns();
    let stat1 = [
        daemon::xfrm_stat(lab, "site")?,
        daemon::xfrm_stat(lab, "roamer")?,
    ];
    for (host, (a, b)) in ["site", "roamer"].iter().zip(stat0.iter().zip(&stat1)) {
        *out += &format!("{host}: xfrm_stat changes {}\n", stat_delta(a, b));
    }
    Ok((rep4, rep6, t0, t1))
}

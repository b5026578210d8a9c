//! The daemon going away (SIGKILL) and the cluster's addresses going away (moved to
//! another member), under traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use e2e::daemon::{self, poll};
use e2e::pcap::Packet;
use e2e::probe::now_ns;
use e2e::remote::StreamRun;
use e2e::stream::Report;
use e2e::topology::Family;
use e2e::wire::{self, Flow};

use super::rig::{
    db_to_site, delete_owned, difference, ip_batch, judge, no_clear, objects, same_keys,
    traffic_for, Rig, VIP4, VIP4_PREFIX, VIP6, VIP6_PREFIX,
};
use super::{addr, describe, ms, PORT};

/// SIGKILL: the kernel keeps protecting (traffic continues in ESP, nothing re-created);
/// the restart applies 0 ops. Then killed again with its SAs removed meanwhile: traffic is
/// dropped, never clear, and the restart brings it back.
pub fn kill_restart(rig: &mut Rig) -> anyhow::Result<String> {
    let lab = rig.lab;
    // Nothing may change by schedule while we check that nothing changes.
    daemon::quiet_for("site", 30.0)?;
    let caps = rig.capture(&["site", "db"])?;
    let flow = db_to_site(lab);
    let (s, t0) = rig.stream("db", flow)?;
    traffic_for(Duration::from_millis(500));
    let before = objects("site", true)?;
    let t_kill = now_ns();
    let old = daemon::kill9(lab, "site")?;
    traffic_for(Duration::from_secs(1));
    let dead = objects("site", true)?;
    let (pid, v) = daemon::restart(lab, "site")?;
    let t_up = now_ns();
    let ops = v["last_reconcile"]["ops"].as_u64();
    let after = objects("site", true)?;
    traffic_for(Duration::from_millis(500));

    // Second time: the SAs vanish while no agent runs.
    daemon::kill9(lab, "site")?;
    delete_owned("site", false)?;
    let t_gone = now_ns();
    traffic_for(Duration::from_secs(1));
    let t_restart2 = now_ns();
    let (pid2, v2) = daemon::restart(lab, "site")?;
    let ops2 = v2["last_reconcile"]["ops"].as_u64();
    let restored = poll(
        "site's owned objects back after the second restart",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let now = objects("site", true)?;
            ensure!(same_keys(&now, &before), "({})", difference(&now, &before));
            Ok(Some(now_ns()))
        },
    )?;
    traffic_for(Duration::from_millis(500));
    let report = s.stop()?;
    let t1 = now_ns();
    let packets = rig.packets(caps)?;

    let (sent_dead, lost_dead) = report.lost_between(t_kill, t_up);
    let (sent_gone, lost_gone) = report.lost_between(t_gone, t_restart2);
    let back = report
        .first_echo_sent_after(t_restart2)
        .context("no echo after the second restart")?;
    let wire = no_clear(&packets, "db", "site", &flow, t0, t1);
    let out = format!(
        "killed {old}: {sent_dead} datagrams while dead and restarting, {lost_dead} lost; restarted as {pid}: last_reconcile.ops {ops:?}; killed again and SAs removed: {lost_gone}/{sent_gone} dropped; restarted as {pid2} ({ops2:?} ops): first echo {:.0} ms after the restart command, objects back after {:.0} ms; {}; {}",
        ms(back.saturating_sub(t_restart2)),
        ms(restored.saturating_sub(t_restart2)),
        describe("db→site", &report),
        wire.as_ref().map_or_else(|e| format!("{e:#}"), String::clone)
    );
    ensure!(
        same_keys(&dead, &before) && dead.1 == before.1,
        "the kernel changed while the agent was dead: {out}"
    );
    ensure!(
        ops == Some(0),
        "the restart applied {ops:?} ops (want 0): {out}"
    );
    ensure!(
        same_keys(&after, &before) && after.1 == before.1,
        "the restart changed owned objects: {out}"
    );
    for (k, (added, packets)) in &before.0 {
        let (a2, p2) = &after.0[k];
        ensure!(
            a2 == added && p2 >= packets,
            "SA {k:?} re-created by the restart ({added} → {a2}, {packets} → {p2} packets): {out}"
        );
    }
    ensure!(
        lost_dead == 0,
        "traffic lost while the agent was dead (its kernel state was intact): {out}"
    );
    ensure!(
        sent_gone > 0 && lost_gone == sent_gone,
        "traffic got through without SAs: {out}"
    );
    ensure!(
        ops2.is_some_and(|n| n > 0),
        "the second restart did not re-install the SAs: {out}"
    );
    wire?;
    Ok(out)
}

/// Whether `host` holds the cluster's side of the SAs (derived with the cluster key): an
/// SA from `peer` to the VIP exists only on the holder; the other members have SAs between
/// their own address and the VIP, as any peer of the cluster does.
fn holds(host: &str, vip: IpAddr, peer: IpAddr) -> anyhow::Result<bool> {
    Ok(daemon::states(host)?
        .iter()
        .any(|s| s.owned() && s.src == peer && s.dst == vip))
}

/// Whether `host` holds the cluster's SAs of every family.
fn holds_all(host: &str, legs: &[(Family, IpAddr, IpAddr)]) -> anyhow::Result<bool> {
    for &(_, vip, mp) in legs {
        if !holds(host, vip, mp)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `host` holds none of the cluster's SAs.
fn holds_none(host: &str, legs: &[(Family, IpAddr, IpAddr)]) -> anyhow::Result<bool> {
    for &(_, vip, mp) in legs {
        if holds(host, vip, mp)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `ip -batch` lines adding (or deleting) both cluster addresses on the intranet. IPv6
/// with `nodad`, as keepalived adds a VIP: a tentative address accepts no traffic and
/// cannot be a source for a second or more, and the old holder has just given it up.
fn vip_lines(verb: &str) -> String {
    let nodad = if verb == "add" { " nodad" } else { "" };
    format!(
        "addr {verb} {VIP4}/{VIP4_PREFIX} dev intranet\naddr {verb} {VIP6}/{VIP6_PREFIX} dev intranet{nodad}\n"
    )
}

/// mp's inbound SAs from `vip`: packets dropped by the replay check and by authentication
/// (per SA, so per family; `/proc/net/xfrm_stat` sums both families).
fn inbound_drops(vip: IpAddr, mp: IpAddr) -> anyhow::Result<(u64, u64)> {
    Ok(daemon::states("mp")?
        .iter()
        .filter(|s| s.owned() && s.src == vip && s.dst == mp)
        .fold((0, 0), |(r, i), s| {
            (r + s.replay_drops, i + s.integrity_failed)
        }))
}

/// The link-layer address the intranet's router (fw, on mp's path) has cached for `vip`:
/// the member the routed traffic goes to. The announcement has to move it.
fn router_mac(vip: IpAddr) -> anyhow::Result<String> {
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            "fw",
            "neigh",
            "show",
            &vip.to_string(),
            "dev",
            "intranet",
        ])
        .output()?;
    ensure!(out.status.success(), "ip -n fw neigh show {vip} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    Ok(words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))
        .map_or_else(|| format!("none ({})", text.trim()), |m| (*m).to_string()))
}

/// One family's stream from mp to its VIP during the move.
struct Leg {
    family: Family,
    flow: Flow,
    stream: StreamRun,
    t0: u64,
    drops0: (u64, u64),
    /// fw's neighbour entry for the VIP just before the move.
    mac0: String,
}

/// A leg whose stream has stopped.
struct Done {
    family: Family,
    flow: Flow,
    report: Report,
    t0: u64,
    drops: [(u64, u64); 2],
    macs: [String; 2],
}

impl Leg {
    fn start(rig: &Rig, (family, vip, mp): (Family, IpAddr, IpAddr)) -> anyhow::Result<Leg> {
        let flow = Flow {
            client: mp,
            server: vip,
            port: PORT,
        };
        let (stream, t0) = rig.stream("mp", flow)?;
        Ok(Leg {
            family,
            flow,
            stream,
            t0,
            drops0: (0, 0),
            mac0: String::new(),
        })
    }

    /// The counters and fw's neighbour entry just before the move.
    fn before_move(&mut self) -> anyhow::Result<()> {
        self.drops0 = inbound_drops(self.flow.server, self.flow.client)?;
        self.mac0 = router_mac(self.flow.server)?;
        Ok(())
    }

    fn stop(self) -> anyhow::Result<Done> {
        let report = self.stream.stop()?;
        Ok(Done {
            family: self.family,
            flow: self.flow,
            report,
            t0: self.t0,
            drops: [
                self.drops0,
                inbound_drops(self.flow.server, self.flow.client)?,
            ],
            macs: [self.mac0, router_mac(self.flow.server)?],
        })
    }
}

impl Done {
    /// The family's verdict: restored within 1 s of the move's start, nothing clear on
    /// either member or mp, no replay or authentication drop on mp's SA from the VIP, fw's
    /// neighbour entry moved from site's MAC to db's (`members`). The text is returned
    /// either way, for the report line.
    fn verdict(
        &self,
        packets: &BTreeMap<String, Vec<Packet>>,
        (t_move, t_db, t1): (u64, u64, u64),
        members: [&str; 2],
    ) -> (String, anyhow::Result<()>) {
        let (flow, t0, [d0, d1]) = (&self.flow, self.t0, self.drops);
        let mut clear = wire::clear_times(&packets["site"], flow, false, t0, t1);
        clear.extend(wire::clear_times(&packets["db"], flow, false, t0, t1));
        clear.extend(wire::clear_times(&packets["mp"], flow, true, t0, t1));
        let moved = judge("move", self.report.disruption(t_move, t_db, &clear));
        let name = format!("{:?}", self.family);
        let mut out =
            format!(
            "{name} {}; mp's SA from the VIP: replay drops {} → {}, integrity failures {} → {}; fw's neighbour entry {} → {}; {}",
            moved.as_ref().map_or_else(|e| format!("{e:#}"), String::clone),
            d0.0,
            d1.0,
            d0.1,
            d1.1,
            self.macs[0],
            self.macs[1],
            describe(&format!("mp→VIP {name}"), &self.report)
        );
        let mut ok = moved.map(drop);
        // The VIP's answers left from site before the move and from db after it.
        for server in ["site", "db"] {
            let w = no_clear(packets, "mp", server, flow, t0, t1);
            let text = w.as_ref().map_or_else(|e| format!("{e:#}"), String::clone);
            let _ = write!(out, "; via {server}: {text}");
            ok = ok.and(w.map(drop));
        }
        let ok = ok.and_then(|()| {
            ensure!(d1 == d0, "replay or authentication drops on mp");
            ensure!(clear.is_empty(), "clear packets between mp and the VIP");
            ensure!(
                self.macs[0] == members[0] && self.macs[1] == members[1],
                "fw's neighbour entry for the VIP did not move from site's MAC to db's"
            );
            Ok(())
        });
        (out, ok)
    }
}

/// The cluster's addresses (IPv4 and IPv6) move from site to db at once (deleted on one,
/// added on the other, announced with a gratuitous ARP and an unsolicited Neighbor
/// Advertisement as failover managers do) under 100/s per family from mp: per family,
/// protected traffic resumes within 1 s, nothing is clear on the wire, mp's SA from the
/// VIP counts no replay (nor authentication) drop; mp's `XfrmInStateSeqError` and
/// `XfrmInStateProtoError` stay put; db ends up holding the cluster's SAs of both
/// families and site none.
pub fn vip_move(rig: &mut Rig) -> anyhow::Result<String> {
    let lab = rig.lab;
    let legs: Vec<(Family, IpAddr, IpAddr)> = [(Family::V4, VIP4), (Family::V6, VIP6)]
        .into_iter()
        .map(|(f, v)| Ok((f, v.parse()?, addr(lab, "mp", f))))
        .collect::<anyhow::Result<_>>()?;
    ip_batch("site", &vip_lines("add"))?;
    poll(
        "site holds the cluster's SAs of both families once it has the addresses",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok(holds_all("site", &legs)?.then_some(())),
    )?;
    ensure!(
        holds_none("db", &legs)?,
        "db holds cluster SAs without the addresses"
    );
    let caps = rig.capture(&["site", "db", "mp"])?;
    let mut streams = legs
        .iter()
        .map(|&l| Leg::start(rig, l))
        .collect::<anyhow::Result<Vec<_>>>()?;
    traffic_for(Duration::from_secs(1));
    let stat0 = daemon::xfrm_stat(lab, "mp")?;
    for s in &mut streams {
        s.before_move()?;
    }
    let t_move = now_ns();
    ip_batch("site", &vip_lines("del"))?;
    ip_batch("db", &vip_lines("add"))?;
    // From db's VIP echo server, already running there: no process start.
    let db = rig.vip.get_mut("db").expect("db's VIP server");
    for &(_, vip, _) in &legs {
        db.announce("intranet", vip)?;
    }
    let t_moved = now_ns();
    let t_db = poll(
        "db holds the cluster's SAs of both families, site holds none",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok((holds_all("db", &legs)? && holds_none("site", &legs)?).then_some(now_ns())),
    )?;
    traffic_for(Duration::from_secs(1));
    // Both at once: each waits out its linger, and the streams should cover the same time.
    let done = std::thread::scope(|sc| {
        let running: Vec<_> = streams.into_iter().map(|l| sc.spawn(|| l.stop())).collect();
        running
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let t1 = now_ns();
    let packets = rig.packets(caps)?;
    let stat1 = daemon::xfrm_stat(lab, "mp")?;
    let counter = |s: &BTreeMap<String, u64>, k: &str| s.get(k).copied().unwrap_or(0);
    let mut out = format!(
        "the move (2 ip -batch + 2 announcements) took {:.0} ms; db holding both families' SAs {:.0} ms after the move began; mp XfrmInStateSeqError {} → {}, XfrmInStateProtoError {} → {}",
        ms(t_moved - t_move),
        ms(t_db - t_move),
        counter(&stat0, "XfrmInStateSeqError"),
        counter(&stat1, "XfrmInStateSeqError"),
        counter(&stat0, "XfrmInStateProtoError"),
        counter(&stat1, "XfrmInStateProtoError"),
    );
    let mac = |h: &str| lab.topo.host(h).map(|h| h.links[0].mac.clone());
    let (site_mac, db_mac) = (mac("site").context("site")?, mac("db").context("db")?);
    let mut failed = Vec::new();
    for d in &done {
        let (text, ok) = d.verdict(&packets, (t_move, t_db, t1), [&site_mac, &db_mac]);
        write!(out, " | {text}")?;
        if let Err(e) = ok {
            failed.push(format!("{:?}: {e:#}", d.family));
        }
    }
    ensure!(failed.is_empty(), "{}: {out}", failed.join("; "));
    for k in ["XfrmInStateSeqError", "XfrmInStateProtoError"] {
        ensure!(
            counter(&stat1, k) == counter(&stat0, k),
            "{k} rose on mp: {out}"
        );
    }
    Ok(out)
}

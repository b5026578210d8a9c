//! The daemon going away (SIGKILL) and the cluster address going away (moved to another
//! member), under traffic.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{ensure, Context};
use e2e::daemon::{self, poll};
use e2e::probe::now_ns;
use e2e::topology::Family;
use e2e::wire::{self, Flow};

use super::rig::{
    db_to_site, delete_owned, difference, judge, no_clear, objects, same_keys, traffic_for, Rig,
    VIP,
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

/// The VIP moves from site to db (deleted on one, added on the other, announced with a
/// gratuitous ARP as failover managers do) under 100/s from mp: protected traffic resumes
/// within 1 s, mp's kernel counts no replay drop.
pub fn vip_move(rig: &mut Rig) -> anyhow::Result<String> {
    let lab = rig.lab;
    let vip4: Ipv4Addr = VIP.parse()?;
    let vip = IpAddr::V4(vip4);
    let mp = addr(lab, "mp", Family::V4);
    lab.sh("site", &format!("ip addr add {VIP}/24 dev intranet"))?;
    poll(
        "site holds the cluster's SAs once it has the address",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok(holds("site", vip, mp)?.then_some(())),
    )?;
    ensure!(
        !holds("db", vip, mp)?,
        "db holds the cluster's SAs without the address"
    );
    let caps = rig.capture(&["site", "db", "mp"])?;
    let flow = Flow {
        client: mp,
        server: vip,
        port: PORT,
    };
    let (s, t0) = rig.stream("mp", flow)?;
    traffic_for(Duration::from_secs(1));
    let stat0 = daemon::xfrm_stat(lab, "mp")?;
    let t_move = now_ns();
    let del = std::process::Command::new("ip")
        .args([
            "-n",
            "site",
            "addr",
            "del",
            &format!("{VIP}/24"),
            "dev",
            "intranet",
        ])
        .status()?;
    let add = std::process::Command::new("ip")
        .args([
            "-n",
            "db",
            "addr",
            "add",
            &format!("{VIP}/24"),
            "dev",
            "intranet",
        ])
        .status()?;
    ensure!(del.success() && add.success(), "moving the address failed");
    // From db's VIP echo server, already running there: no process start.
    rig.vip
        .get_mut("db")
        .expect("db's VIP server")
        .garp("intranet", vip4)?;
    let t_moved = now_ns();
    let t_db = poll(
        "db holds the cluster's SAs, site does not",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok((holds("db", vip, mp)? && !holds("site", vip, mp)?).then_some(now_ns())),
    )?;
    traffic_for(Duration::from_secs(1));
    let report = s.stop()?;
    let t1 = now_ns();
    let packets = rig.packets(caps)?;
    let stat1 = daemon::xfrm_stat(lab, "mp")?;
    let seq_err = |s: &std::collections::BTreeMap<String, u64>| {
        s.get("XfrmInStateSeqError").copied().unwrap_or(0)
    };
    let mut clear = wire::clear_times(&packets["site"], &flow, false, t0, t1);
    clear.extend(wire::clear_times(&packets["db"], &flow, false, t0, t1));
    clear.extend(wire::clear_times(&packets["mp"], &flow, true, t0, t1));
    let moved = judge("move", report.disruption(t_move, t_db, &clear));
    let mut out = format!(
        "{}; the move (2 ip processes + GARP) took {:.0} ms; db holding the SAs {:.0} ms after the move began; mp XfrmInStateSeqError {} → {}; {}",
        moved.as_ref().map_or_else(|e| format!("{e:#}"), String::clone),
        ms(t_moved - t_move),
        ms(t_db - t_move),
        seq_err(&stat0),
        seq_err(&stat1),
        describe("mp→VIP", &report)
    );
    // The VIP's answers left from site before the move and from db after it.
    for (name, server) in [("via site", "site"), ("via db", "db")] {
        let w = no_clear(&packets, "mp", server, &flow, t0, t1).with_context(|| out.clone())?;
        write!(out, "; {name}: {w}")?;
    }
    moved.with_context(|| out.clone())?;
    ensure!(
        seq_err(&stat1) == seq_err(&stat0),
        "replay drops on mp: {out}"
    );
    ensure!(
        clear.is_empty(),
        "clear packets between mp and the VIP: {out}"
    );
    Ok(out)
}

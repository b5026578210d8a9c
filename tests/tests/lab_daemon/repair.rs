//! The daemon cases of the cluster lab, one after the other: every case gets its own
//! stream(s); captures and echo servers run for the whole sequence and are cut by time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use e2e::daemon::{self, poll, Write};
use e2e::lab::{self, Lab};
use e2e::pcap::Packet;
use e2e::probe::now_ns;
use e2e::remote::{Capture, Server, StreamRun};
use e2e::stream::{Report, Spec};
use e2e::topology::Family;
use e2e::wire::{self, Flow};

use super::{addr, describe, ms, stop_captures, PORT, RATE};

/// The cluster's virtual address (the intranet's, so the seed's `require` rule covers it).
pub const VIP: &str = "10.10.0.100";
const HOSTS: [&str; 3] = ["site", "db", "mp"];

/// A stream that ran during a case, and the time window it covers.
struct Ran {
    report: Report,
    flow: Flow,
    client: &'static str,
    server: &'static str,
    t0: u64,
    t1: u64,
}

fn stream(lab: &Lab, client: &'static str, flow: Flow) -> anyhow::Result<(StreamRun, u64)> {
    let t0 = now_ns();
    let s = StreamRun::start(
        &lab.exec,
        client,
        &Spec {
            src: flow.client,
            dst: flow.server,
            port: flow.port,
            rate: RATE,
            linger_ms: 1000,
        },
    )?;
    Ok((s, t0))
}

/// Let a stream run for `d`: traffic before and after a disruption, to measure around it.
fn traffic_for(d: Duration) {
    std::thread::sleep(d);
}

fn db_to_site(lab: &Lab) -> Flow {
    Flow {
        client: addr(lab, "db", Family::V4),
        server: addr(lab, "site", Family::V4),
        port: PORT,
    }
}

/// The owned objects of a host, as comparable sets: states by key with (added, packets),
/// policies by key with index.
type Owned = (
    BTreeMap<(IpAddr, IpAddr, u32), (String, u64)>,
    BTreeMap<(String, String), u32>,
);

fn owned(host: &str, ours: bool) -> anyhow::Result<Owned> {
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
fn difference(now: &Owned, want: &Owned) -> String {
    let missing_s: Vec<_> = want.0.keys().filter(|k| !now.0.contains_key(k)).collect();
    let extra_s: Vec<_> = now.0.keys().filter(|k| !want.0.contains_key(k)).collect();
    let missing_p: Vec<_> = want.1.keys().filter(|k| !now.1.contains_key(k)).collect();
    let extra_p: Vec<_> = now.1.keys().filter(|k| !want.1.contains_key(k)).collect();
    format!(
        "states missing {missing_s:?} extra {extra_s:?}; policies missing {missing_p:?} extra {extra_p:?}"
    )
}

fn same_keys(a: &Owned, b: &Owned) -> bool {
    a.0.keys().eq(b.0.keys()) && a.1.keys().eq(b.1.keys())
}

pub fn repair_cases(lab: &Lab, policy_text: &str) -> Vec<(String, anyhow::Result<String>)> {
    let mut results = Vec::new();
    let setup = (|| -> anyhow::Result<_> {
        let mut servers = BTreeMap::new();
        let vip: IpAddr = VIP.parse()?;
        servers.insert(
            "site".to_string(),
            Server::start(
                &lab.exec,
                "site",
                &[addr(lab, "site", Family::V4)],
                &[],
                &[PORT],
            )?,
        );
        servers.insert(
            "db".to_string(),
            Server::start(&lab.exec, "db", &[], &[], &[])?,
        );
        servers.insert(
            "mp".to_string(),
            Server::start(&lab.exec, "mp", &[], &[], &[])?,
        );
        // The VIP's echo on both members, bound before either holds it.
        let vip_servers = [
            Server::start_freebind(&lab.exec, "site", &[vip], &[PORT])?,
            Server::start_freebind(&lab.exec, "db", &[vip], &[PORT])?,
        ];
        let caps = HOSTS
            .iter()
            .map(|h| Capture::start(&lab.exec, h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((servers, vip_servers, caps))
    })();
    let (mut servers, vip_servers, caps) = match setup {
        Ok(s) => s,
        Err(e) => return vec![("setup".into(), Err(e))],
    };
    let mut ran = Vec::new();
    results.push(("recorded pids are the daemons".into(), pids(lab)));
    results.push((
        "invalid file".into(),
        invalid_file(lab, policy_text, &mut ran),
    ));
    results.push(("flush and drift repair".into(), flushes(lab, &mut ran)));
    results.push(("SIGKILL and restart".into(), kill_restart(lab, &mut ran)));
    results.push(("cluster address move".into(), vip_move(lab, &mut ran)));
    // The captures judge every stream: nothing protected went out in clear.
    let wire = stop_captures(caps, &mut servers).and_then(|packets| {
        for s in servers.into_values().chain(vip_servers) {
            s.stop()?;
        }
        check_wire(&packets, &ran)
    });
    results.push(("captures: no clear packet of a protected flow".into(), wire));
    results
}

fn check_wire(
    packets: &BTreeMap<String, Vec<Packet>>,
    ran: &[(String, Ran)],
) -> anyhow::Result<String> {
    let mut out = String::new();
    for (name, r) in ran {
        let (c, s) = wire::both(packets, r.client, r.server, &r.flow, r.t0, r.t1);
        write!(
            out,
            "[{name}: {} sent {}+{} clear, {} sent {}+{} clear] ",
            r.client,
            c.protected(),
            c.clear,
            r.server,
            s.protected(),
            s.clear
        )?;
        ensure!(
            c.clear == 0 && s.clear == 0,
            "{name}: clear packets of the flow: {out}"
        );
        ensure!(
            c.protected() > 0,
            "{name}: {} sent nothing protected",
            r.client
        );
        let _ = &r.report;
    }
    Ok(out)
}

fn pids(lab: &Lab) -> anyhow::Result<String> {
    let mut out = String::new();
    for h in HOSTS {
        let pid = daemon::check_recorded_pid_is_daemon(lab, h)?;
        write!(out, "{h}={pid} ")?;
    }
    Ok(out)
}

/// An invalid file while running: the kernel does not change, traffic stays ESP, the
/// daemons count the rejection and show the error; the good file back is a no-op.
fn invalid_file(lab: &Lab, good: &str, ran: &mut Vec<(String, Ran)>) -> anyhow::Result<String> {
    let good_sha = daemon::sha256_hex(good);
    let before: Vec<_> = HOSTS
        .iter()
        .map(|h| owned(h, true))
        .collect::<anyhow::Result<_>>()?;
    let views: Vec<_> = HOSTS
        .iter()
        .map(|h| daemon::view(h))
        .collect::<anyhow::Result<_>>()?;
    let flow = db_to_site(lab);
    let (s, t0) = stream(lab, "db", flow)?;
    traffic_for(Duration::from_millis(500));
    // A typo'd action and a reference to a zone that does not exist.
    let bad = format!(
        "{good}\n[[rules]]\nname = \"broken\"\nfrom = [\"any\"]\nto = [\"zone:nowhere\"]\naction = \"requir\"\n"
    );
    daemon::write_policy(&lab.policy, &bad, Write::Rename)?;
    let mut out = String::new();
    for (h, v0) in HOSTS.iter().zip(&views) {
        let v = poll(
            &format!("{h}: the invalid file counted as a failed reload"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let v = daemon::view(h)?;
                Ok(
                    (daemon::count(&v, "reloads_failed") > daemon::count(v0, "reloads_failed"))
                        .then_some(v),
                )
            },
        )?;
        let err = v["last_error"].as_str().unwrap_or("");
        ensure!(
            !err.is_empty(),
            "{h}: last_error is empty after an invalid file: {v}"
        );
        ensure!(
            err.contains("requir") || err.contains("nowhere"),
            "{h}: last_error does not name the problem: {err}"
        );
        ensure!(
            v["policy_sha256"].as_str() == Some(good_sha.as_str()),
            "{h}: the policy in force changed: {}",
            v["policy_sha256"]
        );
        write!(
            out,
            "{h}: reloads_failed +1, last_error {:?}; ",
            err.lines().next().unwrap_or("")
        )?;
    }
    traffic_for(Duration::from_millis(700));
    let after: Vec<_> = HOSTS
        .iter()
        .map(|h| owned(h, true))
        .collect::<anyhow::Result<_>>()?;
    daemon::write_policy(&lab.policy, good, Write::Rename)?;
    let report = s.stop()?;
    let t1 = now_ns();
    for ((h, b), a) in HOSTS.iter().zip(&before).zip(&after) {
        ensure!(
            b.1 == a.1,
            "{h}: owned policies changed after the invalid file"
        );
        ensure!(
            same_keys(b, a),
            "{h}: owned states changed after the invalid file"
        );
        for (k, (added, _)) in &b.0 {
            ensure!(a.0[k].0 == *added, "{h}: SA {k:?} was re-created");
        }
    }
    ensure!(
        report.lost() == 0,
        "{} datagrams lost across the invalid file",
        report.lost()
    );
    write!(
        out,
        "kernel unchanged on all 3; {}",
        describe("db→site", &report)
    )?;
    ran.push((
        "invalid file".into(),
        Ran {
            report,
            flow,
            client: "db",
            server: "site",
            t0,
            t1,
        },
    ));
    Ok(out)
}

/// Objects of another IPsec stack on site, each outside what the agent owns in a different
/// way (docs/design.md "Ownership"): entirely foreign; an SPI in our range under a foreign
/// reqid; our reqid with a foreign SPI; a policy in our priority band whose template names
/// a foreign reqid; a policy outside the band whose template names our reqid.
const FOREIGN: &str = "\
xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x00001000 reqid 1 mode transport aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128
xfrm state add src 192.0.2.1 dst 192.0.2.3 proto esp spi 0x40001234 reqid 2 mode transport aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128
xfrm state add src 192.0.2.1 dst 192.0.2.4 proto esp spi 0x00002000 reqid 0x7a000000 mode transport aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128
xfrm policy add dir out src 192.0.2.0/24 dst 198.51.100.0/24 priority 100 tmpl proto esp reqid 1 mode transport
xfrm policy add dir in src 198.51.100.0/24 dst 192.0.2.0/24 priority 0x1fff0 tmpl proto esp reqid 2 mode transport
xfrm policy add dir fwd src 198.51.100.0/24 dst 192.0.2.0/24 priority 200 tmpl proto esp reqid 0x7a000000 mode transport
";

fn ip_batch(host: &str, batch: &str) -> anyhow::Result<()> {
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
fn delete_owned(host: &str, policies_too: bool) -> anyhow::Result<()> {
    let mut batch = String::new();
    for s in daemon::states(host)?.iter().filter(|s| s.owned()) {
        writeln!(
            batch,
            "xfrm state delete src {} dst {} proto {} spi {:#x}",
            s.src, s.dst, s.proto, s.spi
        )?;
    }
    if policies_too {
        for p in daemon::policies(host)?.iter().filter(|p| p.owned()) {
            writeln!(batch, "xfrm policy delete dir {} index {}", p.dir, p.index)?;
        }
    }
    ip_batch(host, &batch)
}

/// Wait until the daemon counted one more repair and the owned objects are back.
fn wait_repaired(host: &str, repairs_before: u64, want: &Owned) -> anyhow::Result<u64> {
    poll(
        &format!("{host}: owned objects restored and the repair counted"),
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            let now = owned(host, true)?;
            let v = daemon::view(host)?;
            let n = daemon::count(&v, "drift_repairs");
            ensure!(
                n > repairs_before && same_keys(&now, want),
                "(drift_repairs {repairs_before} → {n}; {})",
                difference(&now, want)
            );
            Ok(Some(n))
        },
    )
}

/// Drift: the owned objects deleted behind the daemon's back, then `ip xfrm state flush` +
/// `ip xfrm policy flush`, each under traffic: restored within 1 s, foreign objects kept.
///
/// How "foreign objects are never touched" is tested honestly: a flush deletes the foreign
/// objects too (that is the flush, not the agent). So first only the owned objects are
/// deleted, exactly, with the foreign ones present: the agent's whole repair (observe,
/// diff, apply, verify) runs next to them and they must come out identical — same index,
/// same creation time. Then the real flushes, after which the same batch re-adds the
/// foreign objects at once, while the agent is repairing: they must still be there after.
fn flushes(lab: &Lab, ran: &mut Vec<(String, Ran)>) -> anyhow::Result<String> {
    ip_batch("site", FOREIGN)?;
    let foreign0 = owned("site", false)?;
    ensure!(
        foreign0.0.len() == 3 && foreign0.1.len() == 3,
        "foreign objects not all there: {foreign0:?}"
    );
    let want = owned("site", true)?;
    let repairs0 = daemon::count(&daemon::view("site")?, "drift_repairs");
    let flow = db_to_site(lab);
    let (s, t0) = stream(lab, "db", flow)?;
    traffic_for(Duration::from_millis(500));

    let t_del = now_ns();
    delete_owned("site", true)?;
    let repairs1 = wait_repaired("site", repairs0, &want)?;
    let t_del_done = now_ns();
    let foreign1 = owned("site", false)?;
    traffic_for(Duration::from_millis(500));

    let t_flush = now_ns();
    ip_batch(
        "site",
        &format!("xfrm state flush\nxfrm policy flush\n{FOREIGN}"),
    )?;
    let repairs2 = wait_repaired("site", repairs1, &want)?;
    let t_flush_done = now_ns();
    traffic_for(Duration::from_millis(500));
    let report = s.stop()?;
    let t1 = now_ns();
    let foreign2 = owned("site", false)?;

    ensure!(
        foreign1 == foreign0,
        "foreign objects changed by the repair: {foreign0:?} -> {foreign1:?}"
    );
    ensure!(
        same_keys(&foreign2, &foreign0),
        "foreign objects re-added during the flush repair are gone: {foreign2:?}"
    );
    let gap_del = report
        .echo_gap_around(t_del, t_del_done)
        .context("no echoes around the deletion")?;
    let gap_flush = report
        .echo_gap_around(t_flush, t_flush_done)
        .context("no echoes around the flush")?;
    let (_, lost_del) = report.lost_between(t_del - 50_000_000, t_del_done);
    let (_, lost_flush) = report.lost_between(t_flush - 50_000_000, t_flush_done);
    let out = format!(
        "owned-only delete: echo gap {:.0} ms ({lost_del} lost), repaired after {:.0} ms; flush: echo gap {:.0} ms ({lost_flush} lost), repaired after {:.0} ms; drift_repairs {repairs0}→{repairs2}; 6 foreign objects untouched; {}",
        ms(gap_del),
        ms(t_del_done - t_del),
        ms(gap_flush),
        ms(t_flush_done - t_flush),
        describe("db→site", &report)
    );
    ensure!(
        gap_del < 1_000_000_000,
        "traffic restored {:.0} ms after the owned objects were deleted: {out}",
        ms(gap_del)
    );
    ensure!(
        gap_flush < 1_000_000_000,
        "traffic restored {:.0} ms after the flush: {out}",
        ms(gap_flush)
    );
    let end = report
        .outages()
        .iter()
        .all(|o| o.first_echo_after_ns.is_some());
    ensure!(end, "traffic never came back: {:?}", report.outages());
    ran.push((
        "flush".into(),
        Ran {
            report,
            flow,
            client: "db",
            server: "site",
            t0,
            t1,
        },
    ));
    Ok(out)
}

/// SIGKILL: the kernel keeps protecting (traffic continues in ESP, nothing re-created);
/// the restart applies 0 ops. Then killed again with its SAs removed meanwhile: traffic is
/// dropped, never clear, and the restart brings it back.
fn kill_restart(lab: &Lab, ran: &mut Vec<(String, Ran)>) -> anyhow::Result<String> {
    daemon::quiet_for("site", 30.0)?;
    let flow = db_to_site(lab);
    let (s, t0) = stream(lab, "db", flow)?;
    traffic_for(Duration::from_millis(500));
    let before = owned("site", true)?;
    let t_kill = now_ns();
    let old = daemon::kill9(lab, "site")?;
    traffic_for(Duration::from_secs(1));
    let dead = owned("site", true)?;
    let (pid, v) = daemon::restart(lab, "site")?;
    let t_up = now_ns();
    let ops = v["last_reconcile"]["ops"].as_u64();
    let after = owned("site", true)?;
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
        "traffic back after the second restart",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let now = owned("site", true)?;
            ensure!(same_keys(&now, &before), "({})", difference(&now, &before));
            Ok(Some(now_ns()))
        },
    )?;
    traffic_for(Duration::from_millis(500));
    let report = s.stop()?;
    let t1 = now_ns();

    let (sent_dead, lost_dead) = report.lost_between(t_kill, t_up);
    let (sent_gone, lost_gone) = report.lost_between(t_gone, t_restart2);
    let back = report
        .first_echo_sent_after(t_restart2)
        .context("no echo after the second restart")?;
    let out = format!(
        "killed {old}: {sent_dead} datagrams while dead/restarting, {lost_dead} lost; restarted as {pid}: last_reconcile.ops {ops:?}; killed again with SAs removed: {lost_gone}/{sent_gone} dropped; restarted as {pid2} (ops {ops2:?}): first echo {:.0} ms after the restart began, objects back after {:.0} ms; {}",
        ms(back.saturating_sub(t_restart2)),
        ms(restored.saturating_sub(t_restart2)),
        describe("db→site", &report)
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
    ran.push((
        "kill".into(),
        Ran {
            report,
            flow,
            client: "db",
            server: "site",
            t0,
            t1,
        },
    ));
    Ok(out)
}

fn cluster_states(host: &str, vip: IpAddr) -> anyhow::Result<usize> {
    Ok(daemon::states(host)?
        .iter()
        .filter(|s| s.owned() && (s.src == vip || s.dst == vip))
        .count())
}

/// Whether `host` holds the cluster's side of the SAs (it derives them with the cluster
/// key): an inbound SA to the VIP exists only on the holder; non-holders have SAs *from*
/// their own address to the VIP and back, as with any peer.
fn holds(host: &str, vip: IpAddr, mp: IpAddr) -> anyhow::Result<bool> {
    Ok(daemon::states(host)?
        .iter()
        .any(|s| s.owned() && s.src == mp && s.dst == vip))
}

/// The VIP moves from site to db (delete on one, add on the other, gratuitous ARP) under
/// 100/s from mp: gap < 1 s, mp's replay counter unchanged.
fn vip_move(lab: &Lab, ran: &mut Vec<(String, Ran)>) -> anyhow::Result<String> {
    let vip: IpAddr = VIP.parse()?;
    let mp = addr(lab, "mp", Family::V4);
    lab.sh("site", &format!("ip addr add {VIP}/24 dev intranet"))?;
    poll(
        "site holds the cluster's SAs",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok(holds("site", vip, mp)?.then_some(())),
    )?;
    ensure!(
        !holds("db", vip, mp)?,
        "db holds the cluster's SAs without the address"
    );
    let flow = Flow {
        client: mp,
        server: vip,
        port: PORT,
    };
    let (s, t0) = stream(lab, "mp", flow)?;
    traffic_for(Duration::from_secs(1));
    let stat0 = daemon::xfrm_stat(lab, "mp")?;
    let probe = lab::probe_binary().display().to_string();
    let t_move = now_ns();
    let mv = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip -n site addr del {VIP}/24 dev intranet && ip -n db addr add {VIP}/24 dev intranet && ip netns exec db {probe} garp intranet {VIP}"
        ))
        .status()?;
    ensure!(mv.success(), "moving the address failed");
    let t_moved = now_ns();
    let t_db = poll(
        "db holds the cluster's SAs, site does not",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok((holds("db", vip, mp)? && !holds("site", vip, mp)?).then_some(now_ns())),
    )?;
    traffic_for(Duration::from_secs(1));
    let report = s.stop()?;
    let t1 = now_ns();
    let stat1 = daemon::xfrm_stat(lab, "mp")?;
    let seq_err = |s: &BTreeMap<String, u64>| s.get("XfrmInStateSeqError").copied().unwrap_or(0);
    let gap = report
        .echo_gap_around(t_move, t_db)
        .context("no echoes around the move")?;
    let (_, lost) = report.lost_between(t_move - 50_000_000, t_db);
    let out = format!(
        "echo gap {:.0} ms ({lost} lost; the move itself took {:.0} ms of process starts); db holding after {:.0} ms; mp XfrmInStateSeqError {} → {}; cluster SAs site {} db {}; {}",
        ms(gap),
        ms(t_moved - t_move),
        ms(t_db - t_move),
        seq_err(&stat0),
        seq_err(&stat1),
        cluster_states("site", vip)?,
        cluster_states("db", vip)?,
        describe("mp→VIP", &report)
    );
    ensure!(
        gap < 1_000_000_000,
        "protected traffic to the VIP resumed after {:.0} ms: {out}",
        ms(gap)
    );
    ensure!(
        seq_err(&stat1) == seq_err(&stat0),
        "replay drops on mp: {out}"
    );
    // The VIP's answers left from site before the move and from db after it.
    for server in ["site", "db"] {
        let report = report.clone();
        ran.push((
            format!("vip via {server}"),
            Ran {
                report,
                flow,
                client: "mp",
                server,
                t0,
                t1,
            },
        ));
    }
    Ok(out)
}

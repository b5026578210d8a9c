//! The daemon cases of the cluster lab, one after the other on one lab: invalid file, drift
//! repair after flushes (here), SIGKILL and the cluster address move (failover.rs). Echo
//! servers run for the whole sequence; each case has its own stream and captures.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{ensure, Context};
use e2e::daemon::{self, poll, Write};
use e2e::lab::Lab;
use e2e::probe::now_ns;
use e2e::wire;

use super::describe;
use super::failover;
use super::rig::{
    db_to_site, delete_owned, difference, ip_batch, judge, no_clear, objects, same_keys,
    traffic_for, Objects, Rig, HOSTS,
};

pub fn repair_cases(lab: &Lab, policy_text: &str) -> Vec<(String, anyhow::Result<String>)> {
    let mut rig = match Rig::new(lab) {
        Ok(r) => r,
        Err(e) => return vec![("setup".into(), Err(e))],
    };
    let results = vec![
        ("recorded pids are the daemons".to_string(), pids(lab)),
        ("invalid file".into(), invalid_file(&mut rig, policy_text)),
        ("flush and drift repair".into(), flushes(&mut rig)),
        (
            "SIGKILL and restart".into(),
            failover::kill_restart(&mut rig),
        ),
        ("cluster address move".into(), failover::vip_move(&mut rig)),
    ];
    let mut results = results;
    if let Err(e) = rig.stop() {
        results.push(("echo servers".into(), Err(e)));
    }
    results
}

fn pids(lab: &Lab) -> anyhow::Result<String> {
    let mut out = String::new();
    for h in HOSTS {
        let pid = daemon::check_recorded_pid_is_daemon(lab, h)?;
        write!(out, "{h}={pid} ")?;
    }
    Ok(out)
}

/// An invalid file while running: the kernel does not change, traffic stays ESP, every
/// daemon counts the rejection and `status --daemon --json` shows the error; the good file
/// back is a no-op.
fn invalid_file(rig: &mut Rig, good: &str) -> anyhow::Result<String> {
    let lab = rig.lab;
    let good_sha = daemon::sha256_hex(good);
    let before: Vec<_> = HOSTS
        .iter()
        .map(|h| objects(h, true))
        .collect::<anyhow::Result<_>>()?;
    let views: Vec<_> = HOSTS
        .iter()
        .map(|h| daemon::view(h))
        .collect::<anyhow::Result<_>>()?;
    let caps = rig.capture(&["site", "db"])?;
    let flow = db_to_site(lab);
    let (s, t0) = rig.stream("db", flow)?;
    traffic_for(Duration::from_millis(500));
    // A typo'd action and a reference to a zone that does not exist.
    let bad = format!(
        "{good}\n[[rules]]\nname = \"broken\"\nfrom = [\"any\"]\nto = [\"zone:nowhere\"]\naction = \"requir\"\n"
    );
    daemon::write_policy(&lab.policy, &bad, Write::Rename)?;
    let mut out = String::new();
    for (h, v0) in HOSTS.iter().zip(&views) {
        poll(
            &format!("{h}: the invalid file counted as a failed reload"),
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                let v = daemon::view(h)?;
                Ok(
                    (daemon::count(&v, "reloads_failed") > daemon::count(v0, "reloads_failed"))
                        .then_some(()),
                )
            },
        )?;
        // As an operator sees it.
        let v = daemon::status_cli(h)?;
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
    traffic_for(Duration::from_millis(500));
    let after: Vec<_> = HOSTS
        .iter()
        .map(|h| objects(h, true))
        .collect::<anyhow::Result<_>>()?;
    daemon::write_policy(&lab.policy, good, Write::Rename)?;
    let report = s.stop()?;
    let t1 = now_ns();
    let packets = rig.packets(caps)?;
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
    let wire = no_clear(&packets, "db", "site", &flow, t0, t1)?;
    write!(
        out,
        "kernel unchanged on all 3; {}; {wire}",
        describe("db→site", &report)
    )?;
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

/// Wait until the daemon counted one more repair and its owned objects are all back in the
/// kernel. Polls the daemon's view (no process start) and checks the kernel once it says
/// the counts are right.
fn wait_repaired(host: &str, repairs_before: u64, want: &Objects) -> anyhow::Result<u64> {
    poll(
        &format!("{host}: owned objects restored and the repair counted"),
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let v = daemon::view(host)?;
            let n = daemon::count(&v, "drift_repairs");
            let counts = (
                daemon::count(&v, "owned_states"),
                daemon::count(&v, "owned_policies"),
            );
            ensure!(
                n > repairs_before && counts == (want.0.len() as u64, want.1.len() as u64),
                "(drift_repairs {repairs_before} → {n}, owned states/policies {counts:?})"
            );
            let now = objects(host, true)?;
            ensure!(same_keys(&now, want), "({})", difference(&now, want));
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
///
/// Clear packets: while a host has SAs but no policies (someone deleted them and the
/// agent has not put them back yet), its replies leave in clear. The test measures that
/// window (it counts as part of the disruption) and requires none outside it.
fn flushes(rig: &mut Rig) -> anyhow::Result<String> {
    let lab = rig.lab;
    ip_batch("site", FOREIGN)?;
    let foreign0 = objects("site", false)?;
    ensure!(
        foreign0.0.len() == 3 && foreign0.1.len() == 3,
        "foreign objects not all there: {foreign0:?}"
    );
    let want = objects("site", true)?;
    let repairs0 = daemon::count(&daemon::view("site")?, "drift_repairs");
    let caps = rig.capture(&["site", "db"])?;
    let flow = db_to_site(lab);
    let (s, t0) = rig.stream("db", flow)?;
    traffic_for(Duration::from_millis(500));

    let t_del = now_ns();
    delete_owned("site", true)?;
    let repairs1 = wait_repaired("site", repairs0, &want)?;
    let t_del_done = now_ns();
    let foreign1 = objects("site", false)?;
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
    let packets = rig.packets(caps)?;
    let foreign2 = objects("site", false)?;

    ensure!(
        foreign1 == foreign0,
        "foreign objects changed by the repair: {foreign0:?} -> {foreign1:?}"
    );
    ensure!(
        same_keys(&foreign2, &foreign0),
        "foreign objects re-added during the flush repair are gone: {foreign2:?}"
    );
    let clear = wire::clear_times(&packets["site"], &flow, false, t0, t1);
    let d_del = report.disruption(t_del, t_del_done, &clear);
    let d_flush = report.disruption(t_flush, t_flush_done, &clear);
    let outside = clear
        .iter()
        .filter(|t| !(t_del..=t_del_done).contains(*t) && !(t_flush..=t_flush_done).contains(*t))
        .count();
    let (c, srv) = wire::both(&packets, "db", "site", &flow, t0, t1);
    let out = format!(
        "{}; {}; drift_repairs {repairs0}→{repairs2}; 6 foreign objects untouched; {}; db sent {} protected + {} clear, site sent {} protected + {} clear",
        judge("owned-only delete", d_del).unwrap_or_else(|e| format!("{e:#}")),
        judge("flush", d_flush).unwrap_or_else(|e| format!("{e:#}")),
        describe("db→site", &report),
        c.protected(),
        c.clear,
        srv.protected(),
        srv.clear
    );
    judge("owned-only delete", d_del).with_context(|| out.clone())?;
    judge("flush", d_flush).with_context(|| out.clone())?;
    ensure!(
        c.clear == 0 && outside == 0,
        "clear packets outside the repair windows: {out}"
    );
    Ok(out)
}

//! `xfrm-agent status -c FILE --key KEY [--netns NAME] [--json]`: owned objects grouped by
//! peer with their counters, owned policies with their origin, stale objects, the kernel's
//! XFRM error counters, and — when a daemon runs in that namespace — the daemon's view
//! (last reload and its error, epoch, next rotation, repairs). `--daemon` shows only that.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::daemon::control;
use crate::kernel;
use crate::status;

fn daemon_view() -> anyhow::Result<Option<Value>> {
    match control::query().context("asking the daemon")? {
        Some(text) => {
            let v: Value =
                serde_json::from_str(&text).context("the daemon's answer is not JSON")?;
            match v.get("error").and_then(Value::as_str) {
                Some(e) => anyhow::bail!("the daemon refused: {e}"),
                None => Ok(Some(v)),
            }
        }
        None => Ok(None),
    }
}

fn unix_text(v: &Value) -> String {
    match v.as_f64() {
        Some(t) => {
            let now = crate::daemon::reconciler::unix_now();
            let d = t - now;
            if d >= 0.0 {
                format!("{t:.0} (in {d:.0} s)")
            } else {
                format!("{t:.0} ({:.0} s ago)", -d)
            }
        }
        None => "-".into(),
    }
}

/// The daemon's view, readable.
fn render_daemon(v: &Value) -> String {
    let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let r = g("last_reload");
    let c = g("last_reconcile");
    let mut out = format!(
        "daemon pid {} host {} config {}\n  policy sha256 {}\n  last reload {} {}\n  reloads ok {} failed {}\n",
        g("pid"),
        g("host").as_str().unwrap_or("-"),
        g("config").as_str().unwrap_or("-"),
        g("policy_sha256").as_str().unwrap_or("-"),
        unix_text(&r["unix"]),
        if r["ok"].as_bool() == Some(true) { "ok" } else { "REJECTED" },
        g("reloads_ok"),
        g("reloads_failed"),
    );
    if let Some(e) = g("last_error").as_str() {
        out += "  last error (the previous policy stays in force):\n";
        for l in e.lines() {
            out += &format!("    {l}\n");
        }
    } else if let Some(e) = g("last_rejected")["error"].as_str() {
        out += &format!(
            "  last rejected {}: {}\n",
            unix_text(&g("last_rejected")["unix"]),
            e.lines().next().unwrap_or_default()
        );
    }
    out += &format!(
        "  epoch {}  next rotation {}\n  reconciles {} (last: {}, read {}, {} ops, {:.1} ms, {})\n  drift repairs {}  rotations {}  soft expires {}  unknown-peer acquires {}\n  owned {} policies, {} states; ESP-in-UDP sockets {}\n",
        g("epoch"),
        unix_text(&g("next_rotation_unix")),
        g("reconciles"),
        c["cause"].as_str().unwrap_or("-"),
        c["read"].as_str().unwrap_or("-"),
        c["ops"],
        c["duration_ms"].as_f64().unwrap_or(0.0),
        if c["verified"].as_bool() == Some(true) { "verified" } else { "NOT verified" },
        g("drift_repairs"),
        g("rotations"),
        g("soft_expires"),
        g("unknown_peer_acquires"),
        g("owned_policies"),
        g("owned_states"),
        g("encap_sockets"),
    );
    if let Some(m) = g("missing_features").as_array().filter(|m| !m.is_empty()) {
        let names: Vec<&str> = m.iter().filter_map(Value::as_str).collect();
        out += &format!(
            "  kernel lacks: {} (SAs not installed; traffic held)\n",
            names.join(", ")
        );
    }
    out
}

pub fn run(args: &super::StatusArgs) -> anyhow::Result<ExitCode> {
    if args.daemon {
        kernel::netns::enter_opt(args.netns.netns.as_deref())?;
        let Some(v) = daemon_view()? else {
            eprintln!("xfrm-agent: no daemon is running in this network namespace");
            return Ok(ExitCode::from(1));
        };
        if args.json {
            println!("{v}");
        } else {
            print!("{}", render_daemon(&v));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let policy = super::PolicyArgs {
        config: args.config.clone().expect("clap requires --config"),
        key: args.key.clone().expect("clap requires --key"),
        host: args.host.clone(),
        cluster_key: args.cluster_key.clone(),
        now: None,
        max_policy_size: args.max_policy_size,
    };
    let (ctx, desired) = super::apply::desired_here(&policy, &args.netns)?;
    let mut sock = kernel::open().context("opening the XFRM netlink socket")?;
    let observed = kernel::observe(&mut sock, &ctx.policy.ownership)?;
    let report = status::build(&desired, &observed, status::read_xfrm_stat_all());
    let daemon = daemon_view().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the daemon's view");
        None
    });
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["daemon"] = daemon.unwrap_or(Value::Null);
        println!("{v}");
    } else {
        print!("{}", status::render(&report));
        match daemon {
            Some(d) => print!("{}", render_daemon(&d)),
            None => println!("daemon: none running in this network namespace"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

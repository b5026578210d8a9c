//! `xfrm-agent status -c FILE --key KEY [--netns NAME] [--json]`: owned objects grouped by
//! peer with their counters, owned policies with their origin, stale objects, the kernel's
//! XFRM error counters, and — when a daemon runs in that namespace — the daemon's view
//! (last reload and its error, epoch, next rotation, repairs). `--daemon` shows only that.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::clock;
use crate::daemon::control;
use crate::daemon::ike::view::IkeView;
use crate::daemon::view::DaemonView;
use crate::kernel;
use crate::plan::Timestamp;
use crate::report::peers;

/// The running daemon's view, or None when no daemon runs in this namespace.
fn daemon_view() -> anyhow::Result<Option<DaemonView>> {
    match control::query().context("asking the daemon")? {
        Some(text) => parse_view(&text).map(Some),
        None => Ok(None),
    }
}

/// The daemon's answer: its view, or the reason it refused.
fn parse_view(text: &str) -> anyhow::Result<DaemonView> {
    let v: Value = serde_json::from_str(text).context("the daemon's answer is not JSON")?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        anyhow::bail!("the daemon refused: {e}");
    }
    serde_json::from_value(v).context("the daemon's answer is not its view")
}

/// The daemon's view, readable; times relative to `now`.
fn render_daemon(v: &DaemonView, now: Timestamp) -> String {
    let when = |t: Timestamp| clock::human(t, now);
    let r = &v.last_reload;
    let c = &v.last_reconcile;
    let mut out = format!(
        "daemon pid {} host {} config {}\n  policy sha256 {}\n  last reload {} {}\n  reloads ok {} failed {}\n",
        v.pid,
        v.host,
        v.config,
        v.policy_sha256,
        when(r.unix),
        if r.ok { "ok" } else { "REJECTED" },
        v.reloads_ok,
        v.reloads_failed,
    );
    if let Some(e) = &v.last_error {
        out += "  last error (the previous policy stays in force):\n";
        for l in e.lines() {
            let _ = writeln!(out, "    {l}");
        }
    } else if let Some(rej) = &v.last_rejected {
        let first = rej.error.as_deref().unwrap_or_default();
        let _ = writeln!(
            out,
            "  last rejected {}: {}",
            when(rej.unix),
            first.lines().next().unwrap_or_default()
        );
    }
    let epoch = v.epoch.map_or("-".into(), |e| e.to_string());
    let next = v.next_rotation_unix.map_or("-".into(), when);
    let _ = write!(
        out,
        "  epoch {epoch}  next rotation {next}\n  reconciles {} (last: {}, read {}, {} ops, {:.1} ms, {})\n  drift repairs {}  rotations {}  soft expires {}  unknown-peer acquires {}\n  owned {} policies, {} states; ESP-in-UDP sockets {}\n",
        v.reconciles,
        if c.cause.is_empty() { "-" } else { &c.cause },
        if c.read.is_empty() { "-" } else { &c.read },
        c.ops,
        c.duration_ms,
        if c.verified { "verified" } else { "NOT verified" },
        v.drift_repairs,
        v.rotations,
        v.soft_expires,
        v.unknown_peer_acquires,
        v.owned_policies,
        v.owned_states,
        v.encap_sockets,
    );
    if !v.missing_features.is_empty() {
        let _ = writeln!(
            out,
            "  kernel lacks: {} (SAs not installed; traffic held)",
            v.missing_features.join(", ")
        );
    }
    if let Some(ike) = &v.ike {
        render_ike(&mut out, ike, now);
    }
    if let Some(f) = &v.first_packets {
        let _ = writeln!(out, "    first packets to a peer being keyed: {f}");
    }
    out
}

/// The IKEv2 part of the daemon's view.
fn render_ike(out: &mut String, ike: &IkeView, now: Timestamp) {
    let unix = |s: u64| clock::human(Timestamp::from_secs(s), now);
    let opt = |s: Option<u64>| s.map_or("-".to_string(), unix);
    let cert = (ike.certificate_not_after)
        .map_or("-".to_string(), |s| unix(u64::try_from(s).unwrap_or(0)));
    let failures: Vec<String> = (ike.failures.iter())
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  IKEv2: {} IKE SAs, {} peers; our certificate expires {cert}\n    failures: {}",
        ike.ike_sas,
        ike.peers.len(),
        if failures.is_empty() {
            "none".into()
        } else {
            failures.join(", ")
        },
    );
    let refused: Vec<String> = (ike.refused.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if ike.half_open > 0 || !refused.is_empty() {
        let _ = writeln!(
            out,
            "    responder: {} half-open; defences: {}",
            ike.half_open,
            if refused.is_empty() {
                "none".into()
            } else {
                refused.join(", ")
            }
        );
    }
    for p in &ike.peers {
        let addr = p.address.map_or("-".to_string(), |a| a.to_string());
        let _ = writeln!(
            out,
            "    {addr} {} (authority {}) {} established {} rekeyed {} ({} rekeys)",
            if p.identity.is_empty() {
                "-"
            } else {
                &p.identity
            },
            if p.authority.is_empty() {
                "-"
            } else {
                &p.authority
            },
            if p.suite.is_empty() { "-" } else { &p.suite },
            opt(p.established_unix),
            opt(p.rekeyed_unix),
            p.rekeys,
        );
    }
    if !ike.clear_peers.is_empty() {
        let peers: Vec<String> = ike.clear_peers.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            out,
            "    clear (request peers that did not answer IKE; tried again later): {}",
            peers.join(", ")
        );
    }
    render_ike_validity(out, ike, now);
}

/// Our certificate's expiry, the CRLs near or past nextUpdate, a refused authority file.
fn render_ike_validity(out: &mut String, ike: &IkeView, now: Timestamp) {
    use crate::daemon::ike::crls::CrlState;
    if ike.certificate_expired {
        let _ = writeln!(
            out,
            "    OUR CERTIFICATE EXPIRED: no IKE SA, {} exchanges refused; load a valid one (--cert) and restart or SIGHUP",
            ike.refused_own_expired
        );
    }
    for c in ike.crls.iter().filter(|c| c.state != CrlState::Current) {
        let when = (c.next_update).map_or("-".to_string(), |t| {
            clock::human(Timestamp::from_secs(u64::try_from(t).unwrap_or(0)), now)
        });
        let what = match c.state {
            CrlState::Outdated => "is PAST its nextUpdate (strict: new peers refused)",
            _ => "nears its nextUpdate",
        };
        let _ = writeln!(
            out,
            "    CRL of {} (authority {}) {what}: {when}",
            c.issuer, c.authority
        );
    }
    if let Some(e) = &ike.authority_error {
        let _ = writeln!(
            out,
            "    authority files refused ({} so far; those in force kept): {e}",
            ike.authority_errors
        );
    }
    if ike.peers_cut > 0 {
        let _ = writeln!(
            out,
            "    peers cut by revocation or expiry: {}",
            ike.peers_cut
        );
    }
}

pub fn run(args: &super::StatusArgs) -> anyhow::Result<ExitCode> {
    let Some(policy) = args.policy.as_ref().filter(|_| !args.daemon) else {
        kernel::netns::enter_opt(args.netns.netns.as_deref())?;
        let Some(v) = daemon_view()? else {
            eprintln!("xfrm-agent: no daemon is running in this network namespace");
            return Ok(ExitCode::from(1));
        };
        if args.json {
            println!("{}", serde_json::to_string(&v)?);
        } else {
            print!("{}", render_daemon(&v, clock::now()));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (ctx, desired) = super::apply::desired_here(policy, &args.netns)?;
    let mut sock = kernel::open().context("opening the XFRM netlink socket")?;
    let observed = kernel::observe(&mut sock, &ctx.policy.ownership)?;
    let report = peers::build(&desired, &observed, peers::read_xfrm_stat_all());
    let daemon = daemon_view().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the daemon's view");
        None
    });
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["daemon"] = serde_json::to_value(&daemon)?;
        println!("{v}");
    } else {
        print!("{}", peers::render(&report));
        match daemon {
            Some(d) => print!("{}", render_daemon(&d, clock::now())),
            None => println!("daemon: none running in this network namespace"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::view::{ReconcileInfo, ReloadInfo};

    /// 2026-12-07 17:37:00 UTC.
    const NOW: Timestamp = Timestamp(1_796_665_020 * 1_000_000_000);

    fn view() -> DaemonView {
        DaemonView {
            pid: 42,
            host: "web1".into(),
            config: "/etc/xfrm-agent/policy.toml".into(),
            started_unix: Timestamp(NOW.0 - 3_600_000_000_000),
            last_reload: ReloadInfo {
                unix: Timestamp(NOW.0 - 5_250_000_000),
                ok: true,
                error: None,
            },
            last_rejected: Some(ReloadInfo {
                unix: Timestamp(NOW.0 - 600_000_000_000),
                ok: false,
                error: Some("policy.toml:3:1: unknown key\nmore".into()),
            }),
            epoch: Some(7),
            next_rotation_unix: Some(Timestamp::from_secs(NOW.secs() + 23 * 60)),
            reconciles: 3,
            last_reconcile: ReconcileInfo {
                unix: Timestamp(NOW.0 - 5_000_000_000),
                cause: "reload".into(),
                ops: 2,
                duration_ms: 1.5,
                verified: true,
                read: "dump".into(),
                ..ReconcileInfo::default()
            },
            missing_features: vec!["esp".into()],
            ..DaemonView::default()
        }
    }

    #[test]
    fn the_view_reads_back_typed_with_its_json_units() {
        let v = view();
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(parse_view(&text).unwrap(), v);
        let raw: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            raw["next_rotation_unix"],
            serde_json::json!(1_796_666_400u64)
        );
        assert_eq!(raw["last_reload"]["unix"].as_f64(), Some(1_796_665_014.75));
        let refused = parse_view(r#"{"error":"not allowed"}"#).unwrap_err();
        assert!(format!("{refused:#}").contains("not allowed"));
        assert!(parse_view(r#"{"pid":"x"}"#).is_err());
    }

    #[test]
    fn people_see_utc_dates_with_a_hint() {
        let text = render_daemon(&view(), NOW);
        assert!(
            text.contains("next rotation 2026-12-07 18:00:00 UTC, in 23 min"),
            "{text}"
        );
        assert!(text.contains("last reload 2026-12-07 17:36:54 UTC, 5 s ago ok"));
        assert!(text.contains("last rejected 2026-12-07 17:27:00 UTC, 10 min ago: policy.toml:3:1"));
        assert!(text.contains("kernel lacks: esp"));
        assert!(!text.contains("IKEv2"), "no IKE section without IKE");
    }

    #[test]
    fn ike_peers_and_failures_are_shown_and_read_back() {
        use crate::daemon::ike::view::IkePeerView;
        let mut v = view();
        v.ike = Some(IkeView {
            ike_sas: 1,
            half_open: 4,
            refused: [
                ("cookie-sent".to_string(), 20),
                ("ike-sa-limit".to_string(), 0),
            ]
            .into(),
            failures: [("auth-failed".to_string(), 2)].into(),
            certificate_not_after: Some(1_796_666_400),
            peers: vec![IkePeerView {
                identity: "lap7.corp.example".into(),
                authority: "corp".into(),
                address: Some("198.51.100.7".parse().unwrap()),
                suite: "aes-gcm-16-256".into(),
                established_unix: Some(1_796_665_014),
                rekeys: 3,
                ..IkePeerView::default()
            }],
            ..IkeView::default()
        });
        let text = render_daemon(&v, NOW);
        assert!(
            text.contains(
                "IKEv2: 1 IKE SAs, 1 peers; our certificate expires 2026-12-07 18:00:00 UTC"
            ),
            "{text}"
        );
        assert!(text.contains("failures: auth-failed 2"), "{text}");
        assert!(
            text.contains("responder: 4 half-open; defences: cookie-sent 20\n"),
            "{text}"
        );
        assert!(text.contains("198.51.100.7 lap7.corp.example (authority corp) aes-gcm-16-256 established 2026-12-07 17:36:54 UTC"), "{text}");
        assert!(!text.contains("CRL"), "{text}");
        let ike = v.ike.as_mut().unwrap();
        ike.crls = vec![crate::daemon::ike::crls::CrlView {
            authority: "corp".into(),
            issuer: "CN=Corp CA".into(),
            next_update: Some(1_796_666_400),
            seconds_left: Some(-1),
            state: crate::daemon::ike::crls::CrlState::Outdated,
        }];
        ike.authority_error = Some("authority corp: CRL /crl/corp.crl: bad".into());
        ike.authority_errors = 1;
        let text = render_daemon(&v, NOW);
        assert!(
            text.contains("CRL of CN=Corp CA (authority corp) is PAST its nextUpdate"),
            "{text}"
        );
        assert!(text.contains("authority files refused (1 so far; those in force kept): authority corp: CRL /crl/corp.crl: bad"), "{text}");
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(parse_view(&json).unwrap(), v);
    }
}

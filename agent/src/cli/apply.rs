//! `xfrm-agent apply -c FILE --key KEY [--netns NAME] [--dry-run] [--json]`: make the kernel
//! match the policy once (observe, diff, batched apply, verify). Exit 0 when the kernel
//! verifiably matches, 1 otherwise (failures, conflicts or drift after apply).
//!
//! `--netns NAME` enters /run/netns/NAME (setns) before any socket is opened.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::json;

use crate::engine::{self, Outcome};
use crate::kernel;
use crate::keys::{Identity, PrivateKey};
use crate::model::Desired;
use crate::plan::{self, Timestamp};

/// The policy and who we are. Stand-in for the lead's `cli::context::load` until it lands.
pub(super) struct Context {
    pub policy: policy_schema::Policy,
    pub identity: Identity,
}

pub(super) fn load_policy(path: &std::path::Path) -> anyhow::Result<policy_schema::Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy {}", path.display()))?;
    let loaded = policy_schema::load(&path.display().to_string(), &text)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(loaded.policy)
}

pub(super) fn load(args: &super::PolicyArgs) -> anyhow::Result<Context> {
    let policy = load_policy(&args.config)?;
    let key = PrivateKey::load(&args.key)?;
    let identity = Identity::resolve(&policy, key, args.host.as_deref())?;
    Ok(Context { policy, identity })
}

/// Enter the namespace, load the policy and compute what this host needs now.
pub(super) fn desired_here(
    args: &super::PolicyArgs,
    netns: &super::NetnsArgs,
) -> anyhow::Result<(Context, Desired)> {
    kernel::netns::enter_opt(netns.netns.as_deref())?;
    let ctx = load(args)?;
    let local = kernel::addrs::local_addrs().context("reading local addresses")?;
    let now = match args.now {
        Some(s) => Timestamp::from_secs(s),
        None => Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        ),
    };
    let desired = plan::desired(&ctx.policy, &ctx.identity, &local, now)?;
    Ok((ctx, desired))
}

pub fn run(args: &super::ApplyArgs) -> anyhow::Result<ExitCode> {
    let (ctx, desired) = desired_here(&args.policy, &args.netns)?;
    let mut sock = kernel::open().context("opening the XFRM netlink socket")?;
    let out = engine::reconcile(&mut sock, &desired, &ctx.policy.ownership, args.dry_run)?;
    report(&out, args.dry_run, args.json);
    Ok(exit_code(&out, args.dry_run))
}

pub(super) fn exit_code(out: &Outcome, dry_run: bool) -> ExitCode {
    if dry_run || (out.verified && out.failed.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Applied counts per sign: planned minus failed (failed ops are listed separately).
fn counts(out: &Outcome, dry_run: bool) -> (usize, usize, usize) {
    let count = |sign: char| {
        let planned = out
            .plan
            .ops
            .iter()
            .filter(|o| o.kind.sign() == sign)
            .count();
        let failed = out
            .failed
            .iter()
            .filter(|f| f.op.kind.sign() == sign)
            .count();
        if dry_run {
            planned
        } else {
            planned.saturating_sub(failed)
        }
    };
    (count('+'), count('~'), count('-'))
}

/// Print the outcome, as text or as one JSON object.
pub(super) fn report(out: &Outcome, dry_run: bool, as_json: bool) {
    let (added, updated, deleted) = counts(out, dry_run);
    if as_json {
        let failed: Vec<_> = out
            .other_failures()
            .map(|f| json!({"op": f.op.to_string(), "label": f.op.label, "error": f.error.to_string()}))
            .chain(out.missing_features().into_iter().map(|m| {
                json!({"op": format!("{} SA writes", m.ops), "label": m.feature, "error": m.error})
            }))
            .collect();
        let v = json!({
            "dry_run": dry_run,
            "summary": out.plan.summary().to_string(),
            "plan": out.plan.ops.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            "added": added, "updated": updated, "deleted": deleted,
            "failed": failed,
            "missing_features": out.missing_features(),
            "conflicts": out.plan.conflicts,
            "verified": out.verified,
            "remaining": out.remaining.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
        });
        println!("{v}");
        return;
    }
    println!("plan: {}", out.plan.summary());
    if dry_run {
        for op in &out.plan.ops {
            println!("  {op}");
        }
    }
    for c in &out.plan.conflicts {
        println!("conflict: {c}");
    }
    if dry_run {
        println!("dry run: nothing changed");
        return;
    }
    println!("applied: {} of {} ops", out.applied, out.plan.ops.len());
    for m in out.missing_features() {
        println!("error: {} ({} SA writes failed)", m.error, m.ops);
    }
    for f in out.other_failures() {
        println!("failed: {}: {}", f.op, f.error);
    }
    if out.verified {
        println!("verified: the kernel matches the policy");
    } else {
        println!(
            "NOT verified: {} ops still differ{}",
            out.remaining.len(),
            if out.plan.conflicts.is_empty() {
                ""
            } else {
                " (and conflicts above)"
            }
        );
        for op in out.remaining.iter().take(20) {
            println!("  {op}");
        }
    }
}

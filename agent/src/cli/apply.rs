//! `xfrm-agent apply -c FILE --key KEY [--netns NAME] [--dry-run] [--json]`: make the kernel
//! match the policy once (observe, diff, batched apply, verify). Exit 0 when the kernel
//! verifiably matches, 1 otherwise (failures, conflicts or drift after apply).
//!
//! `--netns NAME` enters /run/netns/NAME (setns) before any socket is opened.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use crate::engine::{self, Outcome};
use crate::kernel;
use crate::load::{self, Context};
use crate::model::Desired;
use crate::plan;

/// Enter the namespace, load the policy and compute what this host needs now.
pub(super) fn desired_here(
    args: &super::PolicyArgs,
    netns: &super::NetnsArgs,
) -> anyhow::Result<(Context, Desired)> {
    kernel::netns::enter_opt(netns.netns.as_deref())?;
    let ctx = load::load(&args.files())?;
    load::print_warnings(&ctx.warnings);
    let local = kernel::addrs::local_addrs().context("reading local addresses")?;
    let desired = plan::desired(&ctx.policy, &ctx.identity, &local, args.now())?;
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

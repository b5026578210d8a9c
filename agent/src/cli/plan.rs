//! `xfrm-agent plan` and `xfrm-agent render`.

use std::process::ExitCode;

use serde_json::json;

use super::{PlanArgs, PolicyArgs, RenderArgs};
use crate::kernel;
use crate::load::{self, Context};
use crate::model::Desired;
use crate::plan::diff::{diff, Plan};
use crate::plan::{desired, LocalAddrs};
use crate::report;

/// Compile the plan for the host the key identifies, with the addresses configured here
/// (only cluster addresses depend on them; unreadable → none held).
pub fn compile(args: &PolicyArgs, local: &LocalAddrs) -> anyhow::Result<(Context, Desired)> {
    let cx = load::load(&args.files())?;
    load::print_warnings(&cx.warnings);
    let d = desired(&cx.policy, &cx.identity, local, args.now())?;
    Ok((cx, d))
}

fn local_addrs() -> LocalAddrs {
    kernel::addrs::local_addrs().unwrap_or_default()
}

/// What the kernel would need: only root can read SAs (and their keys) back.
fn kernel_diff(cx: &Context, d: &Desired) -> Option<anyhow::Result<Plan>> {
    if !kernel::netns::is_root() {
        return None;
    }
    Some((|| {
        let mut sock = kernel::open()?;
        let observed = kernel::observe(&mut sock, &cx.policy.ownership)?;
        Ok(diff(d, &observed, &cx.policy.ownership))
    })())
}

pub fn run_plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    kernel::netns::enter_opt(args.netns.netns.as_deref())?;
    let (cx, d) = compile(&args.policy, &local_addrs())?;
    let kdiff = kernel_diff(&cx, &d);
    if args.json {
        let mut v = report::desired::plan_json(&d, args.show_keys);
        let k = match &kdiff {
            None => json!(null),
            Some(Ok(p)) => json!({
                "summary": p.summary().to_string(),
                "ops": p.ops.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
                "conflicts": p.conflicts.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            }),
            Some(Err(e)) => json!({ "error": format!("{e:#}") }),
        };
        v.as_object_mut()
            .expect("object")
            .insert("kernel".into(), k);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        report::desired::plan_table(&d, args.show_keys, args.policy.now())
    );
    match kdiff {
        None => println!("\nkernel: not compared (run as root to see what `apply` would change)"),
        Some(Err(e)) => println!("\nkernel: cannot compare: {e:#}"),
        Some(Ok(p)) if p.ops.is_empty() && p.conflicts.is_empty() => {
            println!("\nkernel: in step with the policy (apply would change nothing)")
        }
        Some(Ok(p)) => {
            println!("\nkernel: apply would do {}", p.summary());
            for op in &p.ops {
                println!("  {op}");
            }
            for c in &p.conflicts {
                println!("  ! conflict: {c}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let (_, d) = compile(&args.policy, &local_addrs())?;
    print!("{}", report::ip_batch::render(&d, args.show_keys));
    Ok(ExitCode::SUCCESS)
}

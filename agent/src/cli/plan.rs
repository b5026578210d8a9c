//! `xfrm-agent plan` and `xfrm-agent render`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use super::context::{self, Context};
use super::{PlanArgs, PolicyArgs, RenderArgs};
use crate::model::Desired;
use crate::plan::{desired, LocalAddrs};

/// Compile the plan for the host the key identifies. Without a kernel to ask, the host's
/// cluster addresses are taken as not held (no cluster SAs).
pub fn compile(args: &PolicyArgs, local: &LocalAddrs) -> anyhow::Result<(Context, Desired)> {
    let cx = context::load(args)?;
    context::print_warnings(&cx.warnings);
    let d = desired(&cx.policy, &cx.identity, local, context::now(args))?;
    Ok((cx, d))
}

pub fn run_plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let (_, d) = compile(&args.policy, &BTreeSet::new())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::show::plan_json(&d, args.show_keys))?
        );
    } else {
        print!("{}", crate::show::plan_table(&d, args.show_keys));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let (_, d) = compile(&args.policy, &BTreeSet::new())?;
    print!("{}", crate::render::render(&d, args.show_keys));
    Ok(ExitCode::SUCCESS)
}

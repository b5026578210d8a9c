//! `xfrm-agent status -c FILE --key KEY [--netns NAME] [--json]`: owned objects grouped by
//! peer with their counters, owned policies with their origin, stale objects, and the
//! kernel's XFRM error counters. `--netns NAME` reads inside /run/netns/NAME.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::kernel;
use crate::status;

pub fn run(args: &super::StatusArgs) -> anyhow::Result<ExitCode> {
    let (ctx, desired) = super::apply::desired_here(&args.policy, &args.netns)?;
    let mut sock = kernel::open().context("opening the XFRM netlink socket")?;
    let observed = kernel::observe(&mut sock, &ctx.policy.ownership)?;
    let report = status::build(&desired, &observed, status::read_xfrm_stat());
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", status::render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

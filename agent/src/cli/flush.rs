//! `xfrm-agent flush [-c FILE] [--netns NAME] [--json]`: remove every object this agent
//! owns (the file's [ownership] ranges, or the defaults) and nothing else. Exit 1 when
//! something owned could not be removed. `--netns NAME` acts inside /run/netns/NAME.

use std::process::ExitCode;

use anyhow::Context as _;
use policy_schema::Ownership;

use crate::engine;
use crate::kernel;

pub fn run(args: &super::FlushArgs) -> anyhow::Result<ExitCode> {
    kernel::netns::enter_opt(args.netns.netns.as_deref())?;
    let own = match &args.config {
        Some(path) => {
            let (policy, warnings) =
                crate::load::load_policy(path, policy_schema::DEFAULT_MAX_POLICY_SIZE)?;
            crate::load::print_warnings(&warnings);
            policy.ownership
        }
        None => Ownership::default(),
    };
    let mut sock = kernel::open().context("opening the XFRM netlink socket")?;
    let out = engine::flush(&mut sock, &own, false)?;
    super::apply::report(&out, false, args.json);
    Ok(super::apply::exit_code(&out, false))
}

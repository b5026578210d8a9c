//! `xfrm-agent status`.

use std::process::ExitCode;

pub fn run(_args: &super::StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("status: not implemented yet")
}

//! `xfrm-agent flush`.

use std::process::ExitCode;

pub fn run(_args: &super::FlushArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("flush: not implemented yet")
}

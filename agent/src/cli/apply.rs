//! `xfrm-agent apply`.

use std::process::ExitCode;

pub fn run(_args: &super::ApplyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("apply: not implemented yet")
}

//! `xfrm-agent check` and `xfrm-agent schema`.

use std::path::Path;
use std::process::ExitCode;

pub fn run(_config: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("check: not implemented yet")
}

pub fn run_schema() -> anyhow::Result<ExitCode> {
    anyhow::bail!("schema: not implemented yet")
}

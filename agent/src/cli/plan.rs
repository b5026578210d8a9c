//! `xfrm-agent plan` and `xfrm-agent render`.

use std::process::ExitCode;

pub fn run_plan(_args: &super::PlanArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("plan: not implemented yet")
}

pub fn run_render(_args: &super::RenderArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("render: not implemented yet")
}

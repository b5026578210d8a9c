//! `xfrm-agent keygen` and `xfrm-agent pubkey`.

use std::process::ExitCode;

pub fn run_keygen() -> anyhow::Result<ExitCode> {
    anyhow::bail!("keygen: not implemented yet")
}

pub fn run_pubkey() -> anyhow::Result<ExitCode> {
    anyhow::bail!("pubkey: not implemented yet")
}

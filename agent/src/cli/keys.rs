//! `xfrm-agent keygen` and `xfrm-agent pubkey`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;

use crate::keys::PrivateKey;

pub fn run_keygen() -> anyhow::Result<ExitCode> {
    println!("{}", PrivateKey::generate().to_base64());
    Ok(ExitCode::SUCCESS)
}

pub fn run_pubkey() -> anyhow::Result<ExitCode> {
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the private key from stdin")?;
    let key = PrivateKey::from_base64(&text, "on stdin")?;
    println!("{}", key.public());
    Ok(ExitCode::SUCCESS)
}

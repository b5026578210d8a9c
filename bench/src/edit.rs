//! The benchmarks' policy edit: the one-peer change bench_reload and profile_reload make.

use std::net::Ipv4Addr;

use anyhow::Context;

/// The file with host `h{i}` moved: the second octet's top bit flips (10.1.x.y ↔ 10.129.x.y).
pub fn move_host(text: &str, i: u32) -> anyhow::Result<String> {
    let tag = format!("name = \"h{i}\"\naddresses = [\"");
    let start = text
        .find(&tag)
        .with_context(|| format!("host h{i} not found"))?
        + tag.len();
    let end = start + text[start..].find('"').context("unterminated address")?;
    let old: Ipv4Addr = text[start..end].parse()?;
    let mut o = old.octets();
    o[1] ^= 0x80;
    Ok(format!(
        "{}{}{}",
        &text[..start],
        Ipv4Addr::from(o),
        &text[end..]
    ))
}

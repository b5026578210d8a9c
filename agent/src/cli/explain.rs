//! `xfrm-agent explain`: which exemption or rule decides a flow, both directions, and how
//! it goes on the wire. No root, no kernel: the validated policy only.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use policy_schema::Policy;

use crate::explain::matrix::{default_services, Service};
use crate::explain::{Explanation, Locations, Model};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The policy file.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// Who opens the connection: an address, or a host or cluster name of the file.
    #[arg(long, value_name = "ADDR|HOST")]
    pub from: String,
    /// Who answers.
    #[arg(long, value_name = "ADDR|HOST")]
    pub to: String,
    /// icmp (an echo; ICMPv6 between IPv6 addresses), tcp, udp or a protocol number
    /// (default: ICMP, a TCP and a UDP port no list names, and every port the file names).
    #[arg(long, value_name = "P")]
    pub proto: Option<String>,
    /// The responder's port (with tcp, udp and other protocols with ports).
    #[arg(long, value_name = "N", requires = "proto")]
    pub port: Option<u16>,
    /// One JSON array of explanations instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The policy and where its entries are in the file.
pub fn load(config: &Path) -> anyhow::Result<(Policy, Locations)> {
    // Read once, through the same safe reader as `check` (regular files only, capped).
    let max = policy_schema::DEFAULT_MAX_POLICY_SIZE;
    let text = policy_schema::read_text(config, max).map_err(|d| anyhow::anyhow!("{d}"))?;
    let file = config.display().to_string();
    let policy = policy_schema::load(&file, &text)
        .map_err(|d| anyhow::anyhow!("{d}\n{file}: invalid policy"))?
        .policy;
    let locs = Locations::scan(&config.display().to_string(), &text, &policy);
    Ok((policy, locs))
}

/// The addresses an `ADDR|HOST` argument stands for.
pub fn addresses(p: &Policy, what: &str) -> anyhow::Result<Vec<IpAddr>> {
    if let Ok(a) = what.parse::<IpAddr>() {
        return Ok(vec![a]);
    }
    let name = what.strip_prefix("host:").unwrap_or(what);
    if let Some(h) = p.host(name) {
        return Ok(h.addresses.clone());
    }
    let name = what.strip_prefix("cluster:").unwrap_or(what);
    if let Some(c) = p.cluster(name) {
        return Ok(c.addresses.clone());
    }
    let names: Vec<&str> = (p.hosts.iter().map(|h| h.name.as_str()))
        .chain(p.clusters.iter().map(|c| c.name.as_str()))
        .collect();
    bail!(
        "{what:?} is neither an address nor a host or cluster of the policy (expected an \
         address or one of: {})",
        names.join(", ")
    )
}

pub fn run(a: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let (policy, locs) = load(&a.config)?;
    let from = addresses(&policy, &a.from)?;
    let to = addresses(&policy, &a.to)?;
    let pairs: Vec<(IpAddr, IpAddr)> = from
        .iter()
        .flat_map(|s| to.iter().map(move |d| (*s, *d)))
        .filter(|(s, d)| s.is_ipv4() == d.is_ipv4())
        .collect();
    if pairs.is_empty() {
        bail!(
            "{} and {} share no address family, so no flow runs between them",
            a.from,
            a.to
        );
    }
    let services = match &a.proto {
        Some(p) => vec![Service::from_parts(p, a.port).map_err(anyhow::Error::msg)?],
        None => default_services(&policy),
    };
    let model = Model::new(&policy, &locs);
    let all: Vec<Explanation> = (pairs.iter())
        .flat_map(|(s, d)| services.iter().map(|svc| model.explain(&svc.flow(*s, *d))))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for e in &all {
            print!("{}", text(e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One explanation as a few lines of text.
pub fn text(e: &Explanation) -> String {
    let who = |end: &crate::explain::End| match &end.party {
        Some(p) => format!("{p} ({})", end.addr),
        None => format!("{} (no key)", end.addr),
    };
    let f = &e.flow;
    let mut out = format!(
        "{} -> {} {}: {}\n",
        who(&e.src),
        who(&e.dst),
        crate::explain::service_label(f.proto, f.port),
        e.outcome.as_str()
    );
    let w = e.src.label().len().max(e.dst.label().len());
    for end in [&e.src, &e.dst] {
        out += &format!("  {:<w$}  {}\n", end.label(), end.decider.describe());
    }
    for (dir, leg) in [("forward", &e.forward), ("reply", &e.reply)] {
        out += &format!(
            "  {dir:<7}  {:<10}  {}\n",
            leg.transport.as_str(),
            leg.reason
        );
    }
    out.push('\n');
    out
}

//! `xfrm-agent matrix`: the host × host and zone × zone outcome table of a policy, as text
//! (coloured on a terminal), JSON or a self-contained HTML page.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Args, ValueEnum};

use crate::explain::matrix::{default_services, policy_endpoints, Endpoint, Matrix, Service};
use crate::explain::{html, table, Model};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Html,
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// The policy file.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Services to try, PROTO[/PORT], comma-separated or repeated: icmp, tcp/443, udp/53, 47
    /// (default: ICMP, a TCP and a UDP port no list names, and every port the file names).
    #[arg(long, value_name = "PROTO[/PORT]", value_delimiter = ',')]
    pub proto: Vec<String>,
    /// Add a row for addresses that are not in the file, NAME=ADDR[,ADDR] (e.g. an
    /// internet client without a key: client=10.30.0.30).
    #[arg(long, value_name = "NAME=ADDR[,ADDR]")]
    pub endpoint: Vec<String>,
}

/// `NAME=ADDR[,ADDR]`.
fn parse_endpoint(s: &str) -> anyhow::Result<Endpoint> {
    let (name, addrs) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--endpoint {s:?}: expected NAME=ADDR[,ADDR]"))?;
    let addrs = addrs
        .split(',')
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|_| anyhow!("--endpoint {s:?}: {a:?} is not an address"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if name.is_empty() {
        bail!("--endpoint {s:?}: the name is empty");
    }
    Ok(Endpoint {
        name: name.to_string(),
        addrs,
    })
}

pub fn run(a: &MatrixArgs) -> anyhow::Result<ExitCode> {
    let (policy, locs) = super::explain::load(&a.config)?;
    let services = if a.proto.is_empty() {
        default_services(&policy)
    } else {
        (a.proto.iter())
            .map(|s| Service::parse(s.trim()).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let mut endpoints = policy_endpoints(&policy);
    for e in &a.endpoint {
        endpoints.push(parse_endpoint(e)?);
    }
    let m = Matrix::build(&Model::new(&policy, &locs), &endpoints, &services);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&m)?),
        Format::Html => print!("{}", html::render(&m, &a.config.display().to_string())),
        Format::Table => {
            let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!("{}", table::render(&m, ansi));
        }
    }
    Ok(ExitCode::SUCCESS)
}

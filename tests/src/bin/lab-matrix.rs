//! The flow matrix against a running lab, from outside it.
//!
//!   lab-matrix --exec vagrant     the Vagrant VMs (vagrant/Vagrantfile), via `vagrant ssh`
//!   lab-matrix --exec netns       a namespace lab brought up with `scripts/lab up`
//!
//! The policy is $LAB_POLICY (default examples/dual-stack.toml, what both labs run).
//! Exit status 1 when a cell fails.

use std::path::PathBuf;
use std::process::ExitCode;

use e2e::exec::{Exec, Netns, Vagrant};
use e2e::matrix::{self, Options, Verdict};
use e2e::topology::Topology;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lab-matrix: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exec: Box<dyn Exec> = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--exec", "vagrant"] => Box::new(Vagrant {
            dir: e2e::repo_root().join("vagrant"),
        }),
        ["--exec", "netns"] => Box::new(Netns {
            probe: e2e::lab::probe_binary(),
            scratch: PathBuf::from(
                std::env::var("LAB_STATE").unwrap_or_else(|_| "/run/xfrm-lab".into()),
            ),
        }),
        _ => anyhow::bail!("usage: lab-matrix --exec vagrant|netns"),
    };
    let topo = Topology::load(&Topology::default_path())?;
    let policy_path = std::env::var_os("LAB_POLICY")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e::repo_root().join("examples/dual-stack.toml"));
    let text = std::fs::read_to_string(&policy_path)?;
    let policy = policy_schema::load(&policy_path.display().to_string(), &text)
        .map_err(|d| anyhow::anyhow!("{d}"))?
        .policy;
    let o = Options::default();
    let hosts: Vec<_> = topo.standard_hosts().collect();
    let cells = matrix::cells(&policy, &topo, &hosts);
    let obs = matrix::run(exec.as_ref(), &topo, &cells, &o)?;
    let verdicts: Vec<_> = cells
        .iter()
        .zip(&obs)
        .map(|(c, ob)| matrix::verdict(c, ob))
        .collect();
    println!("{}", e2e::report::render(&cells, &obs, &verdicts));
    Ok(verdicts.iter().all(|v| !matches!(v, Verdict::Fail(_))))
}

//! site ↔ db keyed over IKEv2, and the flow matrix with the IKE policy.

use e2e::lab::Lab;
use e2e::matrix::{self, Options, Verdict};
use e2e::remote::Server;
use e2e::report;
use e2e::topology::Family;

use super::rig::{self, addr};
use super::{ESTABLISH, UDP};

pub fn inventory_pair(lab: &Lab) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&lab.policy)?;
    let policy = policy_schema::load("policy.toml", &text)
        .map_err(|d| anyhow::anyhow!("the variant policy does not load:\n{d}"))?
        .policy;
    let static_slots = rig::static_slots()?;
    let mut out = String::new();
    let server = Server::start(
        &lab.exec,
        "db",
        &[addr(lab, "db", Family::V4), addr(lab, "db", Family::V6)],
        &[],
        &[UDP],
    )?;
    for f in [Family::V4, Family::V6] {
        let (s, d) = (addr(lab, "site", f), addr(lab, "db", f));
        let t = rig::reach(lab, "site", s, d, "udp", UDP, ESTABLISH)?;
        let sas = rig::owned_sas("site", s, d)?;
        out += &format!(
            "site → db {f}: first echo after {:.2} s; site's SAs with db: {:x?}\n",
            t.as_secs_f64(),
            sas.iter().map(|s| s.spi).collect::<Vec<_>>()
        );
        anyhow::ensure!(
            sas.iter().any(|x| x.src == s) && sas.iter().any(|x| x.dst == s),
            "site has no SA pair with db ({f})\n{out}"
        );
        if let Some(sa) = sas.iter().find(|x| static_slots.contains(&(x.spi & !0xff))) {
            anyhow::bail!(
                "SA {:#x} {} → {} is in a static slot: not negotiated\n{out}",
                sa.spi,
                sa.src,
                sa.dst
            );
        }
    }
    server.stop()?;
    let hosts: Vec<_> = lab.topo.standard_hosts().collect();
    let cells = matrix::cells(&policy, &lab.topo, &hosts);
    let obs = matrix::run(&lab.exec, &lab.topo, &cells, &Options::default())?;
    let verdicts: Vec<_> = cells
        .iter()
        .zip(&obs)
        .map(|(c, o)| matrix::verdict(c, o))
        .collect();
    out += &report::render(&cells, &obs, &verdicts);
    let fails = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Fail(_)))
        .count();
    anyhow::ensure!(fails == 0, "{fails} matrix cells failed\n{out}");
    Ok(out)
}

//! Agent ↔ agent: the roamer runs xfrm-agent with its own file and its corp certificate.

use std::collections::BTreeMap;

use e2e::lab::Lab;
use e2e::remote::{stop_captures, Capture, Server};
use e2e::topology::Family;

use super::evidence::{clear_sent, on_the_path};
use super::rig::{self, addr};
use super::{ESTABLISH, TCP};

pub fn agent_roamer(lab: &Lab) -> anyhow::Result<String> {
    let (r4, r6) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "roamer", Family::V6),
    );
    let (s4, s6) = (addr(lab, "site", Family::V4), addr(lab, "site", Family::V6));
    rig::start_roamer_agent(lab)?;
    let mut servers = BTreeMap::new();
    servers.insert(
        "site".to_string(),
        Server::start(&lab.exec, "site", &[s4, s6], &[TCP], &[])?,
    );
    servers.insert(
        "roamer".to_string(),
        Server::start(&lab.exec, "roamer", &[r4, r6], &[TCP], &[])?,
    );
    let caps = ["fw", "site", "roamer"]
        .iter()
        .map(|h| Capture::start(&lab.exec, h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut out = String::new();
    let t4 = rig::reach(lab, "roamer", r4, s4, "tcp", TCP, ESTABLISH)?;
    let t6 = rig::reach(lab, "site", s6, r6, "tcp", TCP, ESTABLISH)?;
    out += &format!(
        "roamer → site v4 (roamer initiates): first echo after {:.2} s; site → roamer v6 (site initiates): {:.2} s\n",
        t4.as_secs_f64(),
        t6.as_secs_f64()
    );
    // Established: a new connection each way is answered at once.
    for (host, src, dst) in [
        ("roamer", r4, s4),
        ("site", s6, r6),
        ("site", s4, r4),
        ("roamer", r6, s6),
    ] {
        anyhow::ensure!(
            rig::probe_once(lab, host, src, dst, "tcp", TCP)?,
            "{host}: tcp {src} → {dst}:{TCP} not answered over the established SAs"
        );
    }
    let packets = stop_captures(caps, &mut servers)?;
    for (_, s) in servers {
        s.stop()?;
    }
    for (a, b) in [(r4, s4), (r6, s6)] {
        let (other, esp_udp) = on_the_path(&packets["fw"], a, b);
        out += &format!(
            "fw saw {esp_udp} ESP-in-UDP packets between {a} and {b}, {} others\n",
            other.len()
        );
        anyhow::ensure!(
            other.is_empty(),
            "not IKE nor ESP-in-UDP on fw: {other:?}\n{out}"
        );
        anyhow::ensure!(
            esp_udp > 0,
            "no ESP-in-UDP on fw between {a} and {b}\n{out}"
        );
        let clear = clear_sent(&packets["site"], b, a) + clear_sent(&packets["roamer"], a, b);
        anyhow::ensure!(
            clear == 0,
            "{clear} clear TCP/UDP packets between {a} and {b}\n{out}"
        );
        let sas = rig::owned_sas("site", a, b)?;
        anyhow::ensure!(
            sas.iter().any(|s| s.src == a) && sas.iter().any(|s| s.dst == a),
            "site has no owned SA pair with {a}: {sas:?}\n{out}"
        );
        anyhow::ensure!(
            sas.iter().all(|s| s.encap),
            "site's SAs with {a} are not UDP-encapsulated: {sas:?}"
        );
    }
    Ok(out)
}

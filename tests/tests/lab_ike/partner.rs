//! Federation: the roamer (xfrm-agent) holds a partner CA's certificate; site's policy
//! admits partner holders by one rule, TCP to site's service port. Site narrows the Child
//! SA to that service: the roamer reaches it over ESP, and gets nothing else of site.

use std::collections::BTreeMap;
use std::process::Command;

use e2e::lab::Lab;
use e2e::remote::{stop_captures, Capture, Server};
use e2e::topology::Family;

use super::evidence::{clear_sent, on_the_path};
use super::rig::{self, addr};
use super::{ESTABLISH, TCP};

/// Another TCP port of site, served too, that no rule admits the partner to.
pub const OTHER: u16 = 8443;

pub fn partner_roamer(lab: &Lab) -> anyhow::Result<String> {
    let (r4, s4) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "site", Family::V4),
    );
    rig::start_roamer_agent_with(lab, "roamer-partner")?;
    let mut servers = BTreeMap::new();
    servers.insert(
        "site".to_string(),
        Server::start(&lab.exec, "site", &[s4], &[TCP, OTHER], &[])?,
    );
    let caps = ["fw", "site", "roamer"]
        .iter()
        .map(|h| Capture::start(&lab.exec, h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut out = String::new();
    let t = rig::reach(lab, "roamer", r4, s4, "tcp", TCP, ESTABLISH)?;
    out += &format!(
        "roamer → site:{TCP} first echo after {:.2} s\n",
        t.as_secs_f64()
    );
    let mut other_answered = 0;
    for _ in 0..3 {
        other_answered += usize::from(rig::probe_once(lab, "roamer", r4, s4, "tcp", OTHER)?);
    }
    anyhow::ensure!(
        rig::probe_once(lab, "roamer", r4, s4, "tcp", TCP)?,
        "roamer → site:{TCP} not answered over the established SAs\n{out}"
    );
    let packets = stop_captures(caps, &mut servers)?;
    for (_, s) in servers {
        s.stop()?;
    }
    out += &format!("roamer → site:{OTHER}: {other_answered} of 3 probes answered\n");
    anyhow::ensure!(
        other_answered == 0,
        "the partner reached site:{OTHER}\n{out}"
    );
    let (other, esp_udp) = on_the_path(&packets["fw"], r4, s4);
    out += &format!(
        "fw saw {esp_udp} ESP-in-UDP packets, {} others\n",
        other.len()
    );
    anyhow::ensure!(
        other.is_empty(),
        "not IKE nor ESP-in-UDP on fw: {other:?}\n{out}"
    );
    anyhow::ensure!(esp_udp > 0, "no ESP-in-UDP on fw\n{out}");
    let clear = clear_sent(&packets["site"], s4, r4) + clear_sent(&packets["roamer"], r4, s4);
    anyhow::ensure!(clear == 0, "{clear} clear TCP/UDP packets\n{out}");
    // Site's SAs with the roamer carry the service's selector, both directions.
    let text = site_states(r4, s4)?;
    let sels: Vec<&str> = text.lines().filter(|l| l.contains("sel src")).collect();
    out += &format!("site's selectors with the roamer: {sels:?}\n");
    anyhow::ensure!(
        sels.len() >= 2
            && sels
                .iter()
                .all(|l| l.contains("proto tcp") && l.contains(&format!("port {TCP}"))),
        "site's SAs with the roamer are not narrowed to tcp {TCP}:\n{text}\n{out}"
    );
    Ok(out)
}

/// `ip xfrm state` of site, for the SAs between `a` and `b`.
fn site_states(a: std::net::IpAddr, b: std::net::IpAddr) -> anyhow::Result<String> {
    let mut text = String::new();
    for (src, dst) in [(a, b), (b, a)] {
        let out = Command::new("ip")
            .args(["netns", "exec", "site", "ip", "xfrm", "state", "list"])
            .args(["src", &src.to_string(), "dst", &dst.to_string()])
            .output()?;
        anyhow::ensure!(out.status.success(), "ip xfrm state list failed");
        text += &String::from_utf8_lossy(&out.stdout);
    }
    Ok(text)
}

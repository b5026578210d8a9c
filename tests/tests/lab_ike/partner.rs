//! Federation: the roamer (xfrm-agent) holds a partner CA's certificate; site's policy
//! admits partner holders by one rule, TCP to site's service port. Site narrows the Child
//! SA to that service: the roamer reaches it over ESP, and gets nothing else of site; a
//! roamer that forges a wider outbound SA (same SPI and keys) gets its ESP to another port
//! dropped by site's kernel after decryption (XfrmInStateMismatch).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;

use e2e::daemon;
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
    let pid = rig::start_roamer_agent_with(lab, "roamer-partner")?;
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
    // Frozen, the roamer's agent cannot put its SA back while the forgery runs.
    signal(pid, "STOP")?;
    let forged = forged_wide_sa(lab, r4, s4);
    signal(pid, "CONT")?;
    out += &forged?;
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
    let text = site_states(lab, r4, s4)?;
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

/// The roamer replaces its outbound SA to site by one with the same SPI, keys, reqid and
/// encapsulation but every port (its sequence past the real one's): its TCP to site:OTHER
/// now leaves in ESP, and site's kernel decrypts it and drops it for not matching the
/// SA's selector.
fn forged_wide_sa(lab: &Lab, r4: IpAddr, s4: IpAddr) -> anyhow::Result<String> {
    let all = lab.sh("roamer", &format!("ip xfrm state list src {r4} dst {s4}"))?;
    // The keyed SA, not the larval one (SPI 0) an acquire for OTHER left.
    let text = all
        .split("\nsrc ")
        .find(|b| b.contains("aead ") && !b.contains("spi 0x00000000"))
        .ok_or_else(|| anyhow::anyhow!("no keyed SA to site:\n{all}"))?;
    let word_after = |key: &str| {
        let mut words = text.split_whitespace().skip_while(|w| *w != key);
        words.nth(1).map(str::to_string)
    };
    let field = |key: &str| word_after(key).ok_or_else(|| anyhow::anyhow!("no {key}:\n{text}"));
    let (spi, reqid) = (field("spi")?, field("reqid")?);
    let aead = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("aead "))
        .ok_or_else(|| anyhow::anyhow!("not an AEAD SA:\n{text}"))?;
    let a: Vec<&str> = aead.split_whitespace().collect();
    let (sport, dport) = (field("sport")?, field("dport")?);
    lab.sh(
        "roamer",
        &format!(
            "ip xfrm state delete src {r4} dst {s4} proto esp spi {spi} && \
             ip xfrm state add src {r4} dst {s4} proto esp spi {spi} reqid {reqid} \
             mode transport replay-oseq 65536 aead '{}' {} {} \
             encap espinudp {sport} {dport} 0.0.0.0 sel src {r4}/32 dst {s4}/32",
            a[1], a[2], a[3]
        ),
    )?;
    let stat0 = daemon::xfrm_stat(lab, "site")?;
    let mut answered = 0;
    for _ in 0..3 {
        answered += usize::from(rig::probe_once(lab, "roamer", r4, s4, "tcp", OTHER)?);
    }
    let stat1 = daemon::xfrm_stat(lab, "site")?;
    let key = "XfrmInStateMismatch";
    let dropped = stat1.get(key).unwrap_or(&0) - stat0.get(key).unwrap_or(&0);
    let out = format!(
        "forged wide SA (spi {spi}): roamer → site:{OTHER} {answered} of 3 answered; site {key} +{dropped}\n"
    );
    anyhow::ensure!(
        answered == 0 && dropped >= 3,
        "site let the forged ESP in\n{out}"
    );
    Ok(out)
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(ok.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// `ip xfrm state` of site, for the SAs between `a` and `b`.
fn site_states(lab: &Lab, a: IpAddr, b: IpAddr) -> anyhow::Result<String> {
    let mut text = String::new();
    for (src, dst) in [(a, b), (b, a)] {
        text += &lab.sh("site", &format!("ip xfrm state list src {src} dst {dst}"))?;
    }
    Ok(text)
}

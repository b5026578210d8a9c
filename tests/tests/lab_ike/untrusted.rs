//! The roamer (charon) with credentials site must refuse.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::daemon;
use e2e::lab::Lab;
use e2e::remote::{stop_captures, Capture, Server};
use e2e::topology::Family;

use super::charon::{Charon, Conn};
use super::evidence::clear_sent;
use super::rig::{self, addr};
use super::{TCP, UDP};

pub fn untrusted_roamer(lab: &Lab) -> anyhow::Result<String> {
    let (r4, s4) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "site", Family::V4),
    );
    let conn = |name, cert| Conn {
        name,
        local: "10.20.0.40",
        remote: "10.10.0.10",
        cert,
        trap: false,
    };
    let conns = [
        conn("other", Some("roamer-other")),
        conn("revoked", Some("roamer-revoked")),
        conn("psk", None),
    ];
    let charon = Charon::start(&rig::work_dir().join("untrusted/run"), rig::pki(), &conns)?;
    let mut out = String::new();
    let mut problems = Vec::new();
    // One at a time, each failure waited for in site's view: which reason it counted.
    for (c, want) in conns
        .iter()
        .zip([Some("auth-failed"), Some("revoked"), None])
    {
        let before = rig::failures(&daemon::view("site")?);
        let (ok, text) = charon.swanctl(&["--initiate", "--timeout", "30", "--child", c.name])?;
        anyhow::ensure!(!ok, "charon established `{}` with site:\n{text}", c.name);
        let counted = reasons_counted(c.name, &before);
        out += &format!(
            "charon --initiate {}: failed; site counted {counted:?}\n",
            c.name
        );
        match (counted, want) {
            (Err(e), _) => problems.push(format!("{}: {e}", c.name)),
            (Ok(grew), Some(w)) if !grew.iter().any(|g| g == w) => {
                problems.push(format!("{}: counted as {grew:?}, want {w}", c.name))
            }
            _ => {}
        }
    }
    anyhow::ensure!(problems.is_empty(), "{}\n{out}", problems.join("\n"));
    anyhow::ensure!(
        rig::owned_sas("site", r4, s4)?.is_empty(),
        "site keyed an SA with the roamer\n{out}"
    );

    charon.stop()?;
    out += &clear_traffic_dropped(lab)?;
    Ok(out)
}

/// The roamer's clear TCP and UDP to site (charon has no policy for site: no trap) get no
/// answer: site sends nothing back in clear and its inbound policy refuses them.
fn clear_traffic_dropped(lab: &Lab) -> anyhow::Result<String> {
    let (r4, s4) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "site", Family::V4),
    );
    let mut out = String::new();
    let mut servers = BTreeMap::new();
    servers.insert(
        "site".to_string(),
        Server::start(&lab.exec, "site", &[s4], &[TCP], &[UDP])?,
    );
    let caps = vec![Capture::start(&lab.exec, "site")?];
    let stat0 = daemon::xfrm_stat(lab, "site")?;
    let answered = ["tcp", "udp"]
        .iter()
        .map(|p| {
            rig::probe_once(
                lab,
                "roamer",
                r4,
                s4,
                p,
                if *p == "tcp" { TCP } else { UDP },
            )
        })
        .collect::<anyhow::Result<Vec<bool>>>()?;
    let stat1 = daemon::xfrm_stat(lab, "site")?;
    let packets = stop_captures(caps, &mut servers)?;
    for (_, s) in servers {
        s.stop()?;
    }
    let refused = stat1.get("XfrmInTmplMismatch").unwrap_or(&0)
        - stat0.get("XfrmInTmplMismatch").unwrap_or(&0);
    let replies = clear_sent(&packets["site"], s4, r4);
    out += &format!("roamer's clear TCP/UDP to site answered: {answered:?}; site sent {replies} clear replies; XfrmInTmplMismatch +{refused}\n");
    anyhow::ensure!(
        answered.iter().all(|a| !a),
        "site answered the roamer's clear traffic\n{out}"
    );
    anyhow::ensure!(
        replies == 0 && refused >= 2,
        "site did not drop the roamer's clear traffic at its inbound policy\n{out}"
    );
    Ok(out)
}

/// The failure reasons whose count grew in site's view since `before` (waited for).
fn reasons_counted(conn: &str, before: &BTreeMap<String, u64>) -> anyhow::Result<Vec<String>> {
    daemon::poll(
        &format!("site's daemon counts the failure of `{conn}`"),
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let after = rig::failures(&daemon::view("site")?);
            let grew: Vec<String> = after
                .iter()
                .filter(|(k, n)| **n > before.get(*k).copied().unwrap_or(0))
                .map(|(k, _)| k.clone())
                .collect();
            Ok((!grew.is_empty()).then_some(grew))
        },
    )
}

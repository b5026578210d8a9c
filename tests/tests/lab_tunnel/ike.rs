//! The tunnel lab keyed over IKEv2: the same policy with `key-exchange = "ikev2"` on the
//! tunnel rule and the lab CA (tests/lab/ike/mkpki.sh: strongSwan's `pki`) vouching for
//! both gateways' transit addresses. The first site traffic makes gw-east negotiate; then
//! every probe crosses as ESP between the gateways, the kernel SAs are tunnel mode with the
//! sites' selectors and the tunnel policies' reqid, and every SPI on the wire is one of
//! those negotiated SAs', none in a static slot.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::ensure;
use e2e::daemon;
use e2e::exec::Netns;
use e2e::pcap::{Kind, Packet};
use e2e::remote::{Capture, Server};

use super::net::{self, TunnelLab, EAST, GW_EAST, GW_WEST, TRANSIT, WEST};
use super::{ip, judge_transit, make_keys, probes, run_probes, EAST_HOST, POLICY, WEST_HOST};

/// The IKEv2 additions to [`POLICY`] (whose last table is the tunnel rule).
fn ike_policy(pki: &Path) -> String {
    let p = pki.display();
    format!(
        "{POLICY}key-exchange = \"ikev2\"

[[authorities]]
name = \"corp\"
ca-certificates = [\"{p}/corp-ca.pem\"]
crls = [\"{p}/corp.crl\"]
scope = \"any\"
"
    )
}

/// The lab CA and the gateways' certificates, fresh for this run.
fn make_pki(scratch: &Path) -> anyhow::Result<PathBuf> {
    let dir = scratch.join("pki");
    let script = e2e::repo_root().join("tests/lab/ike/mkpki.sh");
    let out = Command::new(script).arg(&dir).output()?;
    ensure!(
        out.status.success(),
        "mkpki.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(dir)
}

/// Polls `what` every 200 ms for up to `limit`.
fn poll(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !f()? {
        ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The SPI slots the same gateways would key statically (`xfrm-agent render` of the
/// policy without IKEv2, in gw-east's namespace): a negotiated SPI is in none of them.
fn static_slots(lab: &TunnelLab) -> anyhow::Result<BTreeSet<u32>> {
    let script = format!(
        "{} render -c {} --key {}",
        e2e::lab::agent_binary().display(),
        lab.scratch.join("policy-static.toml").display(),
        lab.scratch.join("gw-east.key").display()
    );
    let text = net::sh(GW_EAST, &script)?;
    let slots: BTreeSet<u32> = (text.lines().filter(|l| l.contains("state add")))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "spi");
            let spi = words.nth(1)?.trim_start_matches("0x");
            u32::from_str_radix(spi, 16).ok().map(|s| s & !0xff)
        })
        .collect();
    ensure!(!slots.is_empty(), "the static render has no SA:\n{text}");
    Ok(slots)
}

fn start(lab: &mut TunnelLab) -> anyhow::Result<()> {
    let keys = make_keys(&lab.scratch)?;
    let pki = make_pki(&lab.scratch)?;
    let with_keys = |text: &str| {
        text.replace("@gw-east@", &keys["gw-east"])
            .replace("@gw-west@", &keys["gw-west"])
    };
    let policy = lab.scratch.join("policy.toml");
    std::fs::write(&policy, with_keys(&ike_policy(&pki)))?;
    std::fs::write(lab.scratch.join("policy-static.toml"), with_keys(POLICY))?;
    for (ns, host) in [(GW_EAST, "gw-east"), (GW_WEST, "gw-west")] {
        let key = lab.scratch.join(format!("{host}.key"));
        let (cert, cert_key) = (
            pki.join(format!("{host}-cert.pem")),
            pki.join(format!("{host}-cert.key")),
        );
        let extra = [
            OsStr::new("--cert"),
            cert.as_os_str(),
            OsStr::new("--cert-key"),
            cert_key.as_os_str(),
        ];
        lab.start_agent_with(ns, &policy, &key, &extra)?;
    }
    // The daemons are up when their tunnel policies are in (no SA before traffic).
    for gw in [GW_EAST, GW_WEST] {
        poll(
            &format!("{gw}'s tunnel policies"),
            Duration::from_secs(30),
            || Ok(net::sh(gw, "ip xfrm policy list")?.contains("mode tunnel")),
        )?;
    }
    Ok(())
}

/// IKE between the two gateways (UDP 500 or 4500, not ESP in UDP).
fn is_ike(p: &Packet) -> bool {
    matches!(p.kind, Kind::Udp { sport, dport } if [500, 4500].contains(&sport) && [500, 4500].contains(&dport))
}

pub fn exercise(lab: &mut TunnelLab) -> anyhow::Result<String> {
    start(lab)?;
    let exec = Netns {
        probe: e2e::lab::probe_binary(),
        scratch: lab.scratch.clone(),
    };
    let addrs = |a: [&str; 2]| a.map(ip).to_vec();
    let east_srv = Server::start(
        &exec,
        EAST,
        &addrs(EAST_HOST),
        &[super::PORT],
        &[super::PORT],
    )?;
    let west_srv = Server::start(
        &exec,
        WEST,
        &addrs(WEST_HOST),
        &[super::PORT],
        &[super::PORT],
    )?;
    let transit_cap = Capture::start(&exec, TRANSIT)?;
    let t0 = Instant::now();
    // The first packets start the exchanges (IPv4 and IPv6 gateway pairs) and may be lost
    // while they run: TCP retries until both families answer.
    let mut warm = probes(0, EAST_HOST, WEST_HOST);
    warm.retain(|p| p.proto == "tcp");
    poll(
        "first TCP answers east → west",
        Duration::from_secs(30),
        || Ok(run_probes(&exec, EAST, warm.clone())?.iter().all(|r| r.ok)),
    )?;
    let established = t0.elapsed();
    let mut results = run_probes(&exec, EAST, probes(10, EAST_HOST, WEST_HOST))?;
    results.extend(run_probes(&exec, WEST, probes(20, WEST_HOST, EAST_HOST))?);
    let transit = transit_cap.stop(false)?;
    east_srv.stop()?;
    west_srv.stop()?;
    let failed: Vec<_> = results.iter().filter(|r| !r.ok).collect();
    ensure!(failed.is_empty(), "site-to-site probes failed: {failed:?}");
    let ike = transit.iter().filter(|p| is_ike(p)).count();
    let data: Vec<Packet> = transit.iter().filter(|p| !is_ike(p)).copied().collect();
    let (esp, bad) = judge_transit(&data);
    ensure!(
        bad.is_empty(),
        "on the transit, not ESP or IKE between the gateways: {bad:?}"
    );
    ensure!(
        ike >= 4,
        "{ike} IKE datagrams on the transit: the SAs were not negotiated"
    );
    for (a, b) in [("10.93.0.1", "10.93.0.2"), ("fd00:93::1", "fd00:93::2")] {
        for (s, d) in [(a, b), (b, a)] {
            let n = esp.get(&(ip(s), ip(d))).copied().unwrap_or(0);
            ensure!(n >= 4, "too little ESP {s} -> {d} on the transit: {esp:?}");
        }
    }
    let spis = check_kernel(lab, &transit)?;
    Ok(format!(
        "first answer after {:.2} s; transit: {} IKE datagrams, ESP {esp:?}; negotiated SPIs {spis:x?}",
        established.as_secs_f64(),
        ike
    ))
}

/// gw-east's SAs with gw-west: owned, tunnel mode, the sites' selectors, the reqid of its
/// tunnel policies, SPIs in no static slot; every ESP SPI on the transit is one of them.
fn check_kernel(lab: &TunnelLab, transit: &[Packet]) -> anyhow::Result<Vec<u32>> {
    let text = net::sh(GW_EAST, "ip xfrm state list")?;
    for sel in [
        "sel src 10.91.0.0/24 dst 10.92.0.0/24",
        "sel src 10.92.0.0/24 dst 10.91.0.0/24",
        "sel src fd00:91::/64 dst fd00:92::/64",
        "sel src fd00:92::/64 dst fd00:91::/64",
    ] {
        ensure!(text.contains(sel), "gw-east has no SA with {sel}:\n{text}");
    }
    ensure!(
        !text.contains("mode transport"),
        "a transport-mode SA at gw-east:\n{text}"
    );
    let outer: Vec<_> = super::OUTER.iter().map(|s| ip(s)).collect();
    let states: Vec<_> = (daemon::states(GW_EAST)?.into_iter())
        .filter(|s| outer.contains(&s.src) && outer.contains(&s.dst))
        .collect();
    ensure!(
        states.len() >= 4 && states.iter().all(|s| s.owned()),
        "gw-east's SAs: {states:?}"
    );
    let reqids: BTreeSet<u32> = (daemon::policies(GW_EAST)?.iter())
        .flat_map(|p| p.reqids.iter().copied())
        .collect();
    ensure!(
        states.iter().all(|s| reqids.contains(&s.reqid)),
        "an SA's reqid is not its tunnel policies' ({reqids:?}): {states:?}"
    );
    let slots = static_slots(lab)?;
    let spis: Vec<u32> = states.iter().map(|s| s.spi).collect();
    ensure!(
        spis.iter().all(|s| !slots.contains(&(s & !0xff))),
        "an SA is in a static slot: not negotiated ({spis:x?})"
    );
    let wire: BTreeSet<u32> = (transit.iter())
        .filter_map(|p| match p.kind {
            Kind::Esp { spi } => Some(spi),
            _ => None,
        })
        .collect();
    let stray: Vec<_> = wire.iter().filter(|s| !spis.contains(s)).collect();
    ensure!(
        stray.is_empty(),
        "ESP SPIs on the transit that no negotiated SA has: {stray:x?}"
    );
    Ok(spis)
}

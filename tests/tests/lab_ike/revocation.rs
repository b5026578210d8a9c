//! Revocation and expiry under traffic (issue 15): the roamer (xfrm-agent) streams to
//! site while site ↔ db (an IKEv2 inventory pair) stream too; then the roamer's
//! certificate is revoked by a CRL renamed into place, or reaches its notAfter. Judged on
//! site's kernel SAs (polled), the streams' echoes and site's daemon counters.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::daemon;
use e2e::lab::Lab;
use e2e::probe::now_ns;
use e2e::remote::{Server, StreamRun};
use e2e::stream::{Report, Spec};
use e2e::topology::Family;

use super::rig::{self, addr};
use super::{ESTABLISH, RATE, UDP};

/// How long site's SAs with the roamer may take to go (generous: a loaded UML; the
/// issue's bound, 1 s, is what is printed and compared in the report).
const GONE_WITHIN: Duration = Duration::from_secs(10);

struct Rig {
    r4: IpAddr,
    s4: IpAddr,
    d4: IpAddr,
    servers: BTreeMap<String, Server>,
}

/// Echo servers on site and db, the roamer's agent with certificate `cert`, and both
/// pairs established (roamer → site, site → db).
fn start(lab: &Lab, cert: &str) -> anyhow::Result<(Rig, String)> {
    let (r4, s4, d4) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "site", Family::V4),
        addr(lab, "db", Family::V4),
    );
    rig::start_roamer_agent_with(lab, cert)?;
    let mut servers = BTreeMap::new();
    servers.insert(
        "site".to_string(),
        Server::start(&lab.exec, "site", &[s4], &[], &[UDP])?,
    );
    servers.insert(
        "db".to_string(),
        Server::start(&lab.exec, "db", &[d4], &[], &[UDP])?,
    );
    let t_r = rig::reach(lab, "roamer", r4, s4, "udp", UDP, ESTABLISH)?;
    let t_d = rig::reach(lab, "site", s4, d4, "udp", UDP, ESTABLISH)?;
    let out = format!(
        "roamer → site established after {:.2} s, site → db after {:.2} s\n",
        t_r.as_secs_f64(),
        t_d.as_secs_f64()
    );
    let rig = Rig {
        r4,
        s4,
        d4,
        servers,
    };
    Ok((rig, out))
}

fn spec(src: IpAddr, dst: IpAddr) -> Spec {
    Spec {
        src,
        dst,
        port: UDP,
        rate: RATE,
        linger_ms: 1000,
    }
}

/// Polls site's kernel until it has no owned SA with the roamer; when that was seen.
/// On failure, what site's daemon and kernel say.
fn wait_gone(lab: &Lab, rig: &Rig, what: &str) -> anyhow::Result<u64> {
    daemon::poll(what, GONE_WITHIN, Duration::from_millis(20), || {
        Ok(rig::owned_sas("site", rig.r4, rig.s4)?
            .is_empty()
            .then(now_ns))
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}
{}",
            diagnose(lab, rig)
        )
    })
}

/// Site's IKE view, its SAs with the roamer, and the end of its log.
fn diagnose(lab: &Lab, rig: &Rig) -> String {
    let view = daemon::view("site").map(|v| v["ike"].to_string());
    let sas = rig::owned_sas("site", rig.r4, rig.s4);
    let log = std::fs::read_to_string(lab.state.join("logs/agent-site.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "site's IKE view: {view:?}
site's SAs with the roamer: {sas:?}
site's log (end):
{}",
        tail.join("\n")
    )
}

/// The verdict on both streams around `event_ns` (the rename or the expiry) and `gone_ns`
/// (site's SAs with the roamer seen gone): the roamer's traffic got no echo once its SAs
/// were gone, and the other pair lost nothing.
fn judge(
    roamer: &Report,
    other: &Report,
    (event_ns, gone_ns): (u64, u64),
    out: &mut String,
) -> Vec<String> {
    let mut problems = Vec::new();
    let after_gone = (roamer.sent_ns.iter().zip(&roamer.echo_ns))
        .filter(|(s, e)| **s > gone_ns && e.is_some())
        .count();
    let last_echo = roamer.echo_ns.iter().flatten().max().copied().unwrap_or(0);
    *out += &format!(
        "roamer: {} sent, last echo {:.0} ms after the event, {after_gone} echoes for datagrams sent after its SAs were gone; site's SAs gone {:.0} ms after the event (issue: ≤ 1000 ms)\n",
        roamer.sent(),
        (last_echo.saturating_sub(event_ns)) as f64 / 1e6,
        (gone_ns.saturating_sub(event_ns)) as f64 / 1e6,
    );
    if after_gone > 0 {
        problems.push(format!(
            "{after_gone} roamer datagrams answered after its SAs were gone"
        ));
    }
    *out += &format!(
        "site → db: {} sent, {} lost, {} skipped (sender stalls)\n",
        other.sent(),
        other.lost(),
        other.skipped
    );
    if other.lost() > 0 {
        problems.push(format!("site → db lost {} datagrams", other.lost()));
    }
    problems
}

fn failures(host: &str, out: &mut String) -> anyhow::Result<BTreeMap<String, u64>> {
    let v = daemon::view(host)?;
    let f = rig::failures(&v);
    let cut = v["ike"]["peers_cut"].as_u64().unwrap_or(0);
    *out += &format!("{host}: failures {f:?}, peers cut {cut}\n");
    Ok(f)
}

/// The roamer's certificate revoked by a newer CRL renamed over site's CRL file while
/// both streams run.
pub fn revoked_while_streaming(lab: &Lab, crl: &Path) -> anyhow::Result<String> {
    let (mut rig, mut out) = start(lab, "roamer")?;
    let pki = rig::pki();
    let path = |f: &str| pki.join(f).display().to_string();
    let new = crl.with_file_name(".corp.crl.new");
    let signed = rig::pki_cmd(&[
        "--signcrl",
        "--cacert",
        &path("corp-ca.pem"),
        "--cakey",
        &path("corp-ca.key"),
        "--lifetime",
        "30",
        "--lastcrl",
        &crl.display().to_string(),
        "--reason",
        "key-compromise",
        "--cert",
        &path("roamer-cert.pem"),
        "--outform",
        "pem",
    ])?;
    std::fs::write(&new, signed)?;
    let roamer = StreamRun::start(&lab.exec, "roamer", &spec(rig.r4, rig.s4))?;
    let other = StreamRun::start(&lab.exec, "site", &spec(rig.s4, rig.d4))?;
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let renamed = now_ns();
    std::fs::rename(&new, crl)?;
    let gone = wait_gone(lab, &rig, "site's SAs with the revoked roamer gone")?;
    out += &format!("polled gone after {} ms\n", t0.elapsed().as_millis());
    std::thread::sleep(Duration::from_secs(3));
    let (rep_r, rep_o) = (roamer.stop()?, other.stop()?);
    for (_, s) in std::mem::take(&mut rig.servers) {
        s.stop()?;
    }
    let mut problems = judge(&rep_r, &rep_o, (renamed, gone), &mut out);
    if failures("site", &mut out)?
        .get("revoked")
        .copied()
        .unwrap_or(0)
        == 0
    {
        problems.push("site counted no revoked failure".into());
    }
    anyhow::ensure!(problems.is_empty(), "{}\n{out}", problems.join("\n"));
    Ok(out)
}

/// A roamer certificate valid for `LIFETIME` from now, issued for this test.
const LIFETIME: Duration = Duration::from_secs(30);

/// The roamer with a certificate that expires during the test: site's SAs with it go at
/// its notAfter, while site ↔ db keeps streaming.
pub fn expiring_while_streaming(lab: &Lab) -> anyhow::Result<String> {
    let pki = rig::pki();
    let path = |f: &str| pki.join(f).display().to_string();
    let not_after = std::time::SystemTime::now() + LIFETIME;
    let unix = not_after.duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let key = rig::pki_cmd(&[
        "--gen",
        "--type",
        "ecdsa",
        "--size",
        "256",
        "--outform",
        "pem",
    ])?;
    let key_path = pki.join("roamer-short-cert.key");
    std::fs::write(&key_path, key)?;
    let cert = rig::pki_cmd(&[
        "--issue",
        "--in",
        &key_path.display().to_string(),
        "--type",
        "priv",
        "--cacert",
        &path("corp-ca.pem"),
        "--cakey",
        &path("corp-ca.key"),
        "--dateform",
        "%s",
        "--not-after",
        &unix.to_string(),
        "--dn",
        "C=CH, O=xfrm-agent lab, CN=10.20.0.40",
        "--san",
        "10.20.0.40",
        "--san",
        "fd00:20::40",
        "--flag",
        "serverAuth",
        "--flag",
        "clientAuth",
        "--outform",
        "pem",
    ])?;
    std::fs::write(pki.join("roamer-short-cert.pem"), cert)?;
    let (mut rig, mut out) = start(lab, "roamer-short")?;
    let roamer = StreamRun::start(&lab.exec, "roamer", &spec(rig.r4, rig.s4))?;
    let other = StreamRun::start(&lab.exec, "site", &spec(rig.s4, rig.d4))?;
    let expiry_ns = u64::try_from(
        not_after
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
            .min(u128::from(u64::MAX)),
    )?;
    // notAfter has one-second resolution: the certificate says `unix`, not the instant.
    let expiry_ns = expiry_ns.min(unix * 1_000_000_000);
    let left = Duration::from_nanos(expiry_ns.saturating_sub(now_ns()));
    anyhow::ensure!(
        !rig::owned_sas("site", rig.r4, rig.s4)?.is_empty(),
        "no SA with the roamer {left:?} before its expiry\n{out}\n{}",
        diagnose(lab, &rig)
    );
    out += &format!("streaming; the roamer's certificate expires in {left:?}\n");
    std::thread::sleep(left.saturating_sub(Duration::from_millis(500)));
    let gone = wait_gone(lab, &rig, "site's SAs with the expired roamer gone")?;
    anyhow::ensure!(
        gone + 200_000_000 >= expiry_ns,
        "site's SAs with the roamer were gone before its notAfter\n{out}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (rep_r, rep_o) = (roamer.stop()?, other.stop()?);
    for (_, s) in std::mem::take(&mut rig.servers) {
        s.stop()?;
    }
    let mut problems = judge(&rep_r, &rep_o, (expiry_ns, gone), &mut out);
    // Both ends act at the same notAfter: site cuts the roamer (`expired`), or the
    // roamer, whose own certificate it is, deletes every IKE SA first (its Delete).
    let site_cut = failures("site", &mut out)?
        .get("expired")
        .copied()
        .unwrap_or(0)
        > 0;
    let roamer_expired = daemon::view("roamer")?["ike"]["certificate_expired"] == true;
    out += &format!("roamer's view: its certificate expired: {roamer_expired}\n");
    if !site_cut && !roamer_expired {
        problems.push("neither site counted `expired` nor the roamer its own expiry".into());
    }
    anyhow::ensure!(problems.is_empty(), "{}\n{out}", problems.join("\n"));
    Ok(out)
}

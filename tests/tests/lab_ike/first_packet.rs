//! The first packets to a new IKE peer wait for its SA instead of being dropped: one TCP
//! connect and one UDP datagram, each tried once, from the roamer to site while the
//! exchange they start runs. Judged by the roamer's kernel: its TCP SYN retransmission
//! counter (TcpExt TCPSynRetrans) and the single datagram's echo. The same connect with
//! strongSwan's charon as the roamer (same namespace, same sysctl) gives the comparison,
//! and one connect with the kernel's default (`xfrm_larval_drop = 1`) shows what the
//! counter sees when the first SYN is dropped.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use e2e::daemon;
use e2e::lab::Lab;
use e2e::remote::Server;
use e2e::topology::Family;

use super::charon::{roamer_conns, Charon};
use super::rig::{self, addr};
use super::{TCP, UDP};

/// One try, long enough for an exchange in UML and the kernel's queue timer.
const ONE_TRY_MS: u64 = 8000;

pub fn first_packets(lab: &Lab) -> anyhow::Result<String> {
    let (r4, r6) = (
        addr(lab, "roamer", Family::V4),
        addr(lab, "roamer", Family::V6),
    );
    let (s4, s6) = (addr(lab, "site", Family::V4), addr(lab, "site", Family::V6));
    let server = Server::start(&lab.exec, "site", &[s4, s6], &[TCP], &[UDP])?;
    let mut out = String::new();
    let r = agent_then_charon(lab, (r4, r6), (s4, s6), &mut out);
    server.stop()?;
    r.map(|()| out.clone())
        .with_context(|| format!("so far:\n{out}"))
}

fn agent_then_charon(
    lab: &Lab,
    (r4, r6): (IpAddr, IpAddr),
    (s4, s6): (IpAddr, IpAddr),
    out: &mut String,
) -> anyhow::Result<()> {
    // The agent as the roamer: it sets xfrm_larval_drop = 0 in its namespace.
    let pid = rig::start_roamer_agent(lab)?;
    ensure!(
        larval_drop(lab)? == 0,
        "the roamer's agent left xfrm_larval_drop at 1"
    );
    let (agent_tcp, retrans) = once(lab, r4, s4, "tcp", TCP)?;
    *out += &format!(
        "agent: new-peer TCP connect + echo {:.3} s, SYN retransmissions {retrans}\n",
        agent_tcp.as_secs_f64()
    );
    ensure!(retrans == 0, "the agent's first SYN was retransmitted");
    let (udp, _) = once(lab, r6, s6, "udp", UDP)?;
    *out += &format!(
        "agent: first UDP datagram to a new peer (v6) echoed after {:.3} s\n",
        udp.as_secs_f64()
    );
    let (warm, _) = once(lab, r4, s4, "tcp", TCP)?;
    *out += &format!(
        "agent: TCP over the established SAs {:.3} s\n",
        warm.as_secs_f64()
    );
    // Informational (not a verdict): whether the daemon released the queue itself.
    let log = std::fs::read_to_string(lab.state.join("logs/agent-roamer.log")).unwrap_or_default();
    let rewrites = log
        .matches("rewrote the policy whose queue held them")
        .count();
    *out += &format!(
        "agent: policy rewrites that released queued packets: {rewrites} (roamer log: {} lines)\n",
        log.lines().count()
    );
    let marks = [
        "rewrote the policy",
        "could not rewrite",
        "not desired",
        "without its policy",
        "WARN",
    ];
    for l in log.lines().filter(|l| marks.iter().any(|m| l.contains(m))) {
        *out += &format!("  roamer log: {l}\n");
    }
    stop_agent(lab, pid)?;
    ensure!(
        larval_drop(lab)? == 1,
        "the roamer's agent did not restore xfrm_larval_drop = 1 on exit"
    );
    lab.sh("roamer", "ip xfrm state flush && ip xfrm policy flush")?;

    // charon as the roamer, with the same sysctl; then the kernel's default as a control.
    lab.sh("roamer", "sysctl -qw net.core.xfrm_larval_drop=0")?;
    let charon = Charon::start(
        &rig::work_dir().join("first/charon"),
        rig::pki(),
        &roamer_conns(true),
    )?;
    let (charon_tcp, charon_retrans) = once(lab, r4, s4, "tcp", TCP)?;
    *out += &format!(
        "charon: new-peer TCP connect + echo {:.3} s, SYN retransmissions {charon_retrans}\n",
        charon_tcp.as_secs_f64()
    );
    lab.sh("roamer", "sysctl -qw net.core.xfrm_larval_drop=1")?;
    let (dropped_tcp, dropped_retrans) = once(lab, r6, s6, "tcp", TCP)?;
    *out += &format!(
        "charon, xfrm_larval_drop = 1 (control): TCP connect + echo {:.3} s, SYN retransmissions {dropped_retrans}\n",
        dropped_tcp.as_secs_f64()
    );
    charon.stop()?;
    ensure!(
        dropped_retrans > 0,
        "the control saw no SYN retransmission: the counter proves nothing"
    );
    Ok(())
}

/// One probe from the roamer, tried once: how long it took to be echoed, and how many
/// SYNs the roamer's kernel retransmitted meanwhile. Not echoed is an error.
fn once(
    lab: &Lab,
    src: IpAddr,
    dst: IpAddr,
    proto: &str,
    port: u16,
) -> anyhow::Result<(Duration, u64)> {
    let before = syn_retrans(lab)?;
    let r = rig::probe(lab, "roamer", (src, dst), proto, port, (ONE_TRY_MS, 0))?;
    ensure!(
        r.ok,
        "{proto} {src} → {dst}:{port}, tried once, not echoed: {}",
        r.detail
    );
    let took = Duration::from_nanos(r.end_ns.saturating_sub(r.start_ns));
    Ok((took, syn_retrans(lab)? - before))
}

/// The roamer's TcpExt TCPSynRetrans (/proc/net/netstat: a header line of names, then a
/// line of values).
fn syn_retrans(lab: &Lab) -> anyhow::Result<u64> {
    let text = lab.sh("roamer", "cat /proc/net/netstat")?;
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    ensure!(lines.len() == 2, "no TcpExt lines in /proc/net/netstat");
    let names = lines[0].split_whitespace();
    let values = lines[1].split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "TCPSynRetrans")
        .and_then(|(_, v)| v.parse().ok())
        .context("no TCPSynRetrans in /proc/net/netstat")
}

fn larval_drop(lab: &Lab) -> anyhow::Result<u8> {
    let v = lab.sh("roamer", "cat /proc/sys/net/core/xfrm_larval_drop")?;
    v.trim().parse().context("xfrm_larval_drop")
}

/// SIGTERM the roamer's agent (it sends Deletes and restores the sysctl) and wait for it.
fn stop_agent(_lab: &Lab, pid: u32) -> anyhow::Result<()> {
    // SAFETY: kill(2) on the pid the lab recorded for the roamer's agent.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    ensure!(rc == 0, "kill {pid}: {}", std::io::Error::last_os_error());
    daemon::poll(
        "the roamer's agent exits",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok((!daemon::alive(pid)).then_some(())),
    )
}

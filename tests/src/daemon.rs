//! The daemon (`xfrm-agent run`) in the lab, from a test: its view through `status
//! --daemon`, its process (the pid scripts/provision/agent recorded), restarts, policy file
//! writes the way editors and ConfigMaps do them, and polls with deadlines instead of
//! sleeps.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;

use crate::lab::{self, Lab};
use crate::xfrm;

/// Poll `f` every `every` until it returns Some, or fail after `limit` with what it last
/// said.
pub fn poll<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let end = Instant::now() + limit;
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => last.clear(),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= end {
            bail!("{what}: not within {:.1} s {last}", limit.as_secs_f64());
        }
        std::thread::sleep(every);
    }
}

/// The daemon's view in `host`, read from its control socket (the abstract unix socket
/// "@xfrm-agent" of that namespace, which writes the same JSON `status --daemon --json`
/// prints) by a thread that enters the namespace: polling it starts no process, and
/// process starts stall the whole UML guest (and with it the traffic a test measures).
pub fn view(host: &str) -> anyhow::Result<Value> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::linux::net::SocketAddrExt;
    let ns = std::fs::File::open(format!("/run/netns/{host}"))
        .with_context(|| format!("no namespace {host}"))?;
    let text = std::thread::scope(|sc| {
        sc.spawn(|| -> anyhow::Result<String> {
            // SAFETY: setns on this thread only, with an open namespace file.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            ensure!(rc == 0, "setns {host}: {}", std::io::Error::last_os_error());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(b"xfrm-agent")?;
            let mut s = std::os::unix::net::UnixStream::connect_addr(&addr)
                .with_context(|| format!("no daemon answers in {host}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .join()
        .expect("view thread")
    })?;
    serde_json::from_str(&text).with_context(|| format!("{host}: the daemon's view: {text}"))
}

/// The daemon's view through the CLI, as an operator sees it:
/// `xfrm-agent status --daemon --json --netns HOST`. Err when no daemon answers.
pub fn status_cli(host: &str) -> anyhow::Result<Value> {
    let out = Command::new(lab::agent_binary())
        .args(["status", "--daemon", "--json", "--netns", host])
        .output()
        .context("running xfrm-agent status")?;
    ensure!(
        out.status.success(),
        "no daemon answers in {host}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let v: Value = serde_json::from_slice(&out.stdout).context("status --daemon --json")?;
    Ok(match v.get("daemon") {
        Some(d) => d.clone(),
        None => v,
    })
}

/// A counter of the daemon's view (0 when absent).
pub fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a new policy file reaches the daemon.
#[derive(Clone, Copy, Debug)]
pub enum Write {
    /// Write a temporary file beside it and rename it into place (editors, `install`).
    Rename,
    /// Truncate and rewrite the file itself.
    InPlace,
}

pub fn write_policy(path: &Path, text: &str, how: Write) -> anyhow::Result<()> {
    match how {
        Write::Rename => {
            let tmp = path.with_extension("toml.new");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)?;
        }
        Write::InPlace => std::fs::write(path, text)?,
    }
    Ok(())
}

/// `ip -s xfrm state` of a host, parsed (`ip -n`: no extra process for the namespace).
pub fn states(host: &str) -> anyhow::Result<Vec<xfrm::State>> {
    Ok(xfrm::parse_states(&ip(host, &["-s", "xfrm", "state"])?))
}

/// `ip -s xfrm policy` of a host, parsed.
pub fn policies(host: &str) -> anyhow::Result<Vec<xfrm::Policy>> {
    Ok(xfrm::parse_policies(&ip(host, &["-s", "xfrm", "policy"])?))
}

fn ip(host: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip").args(["-n", host]).args(args).output()?;
    ensure!(
        out.status.success(),
        "ip -n {host} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// /proc/net/xfrm_stat of a host.
pub fn xfrm_stat(lab: &Lab, host: &str) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    Ok(xfrm::parse_stat(&lab.sh(host, "cat /proc/net/xfrm_stat")?))
}

/// The pid scripts/provision/agent recorded for `host`'s daemon.
pub fn recorded_pid(lab: &Lab, host: &str) -> anyhow::Result<u32> {
    let f = lab.state.join(format!("pids/agent-{host}"));
    let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("pid in {}", f.display()))
}

/// Whether `pid` is alive (a zombie, reaped or not, is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// The recorded pid is the daemon itself — the agent binary running `run`, the pid its own
/// view reports — not a wrapper (setsid, a shell) that tear-down would kill instead.
pub fn check_recorded_pid_is_daemon(lab: &Lab, host: &str) -> anyhow::Result<u32> {
    let pid = recorded_pid(lab, host)?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("{host}: recorded pid {pid} is not running"))?;
    let want = std::fs::canonicalize(lab::agent_binary())?;
    ensure!(
        exe == want,
        "{host}: recorded pid {pid} runs {}, not the agent",
        exe.display()
    );
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let args: Vec<_> = cmdline.split(|b| *b == 0).collect();
    ensure!(
        args.get(1) == Some(&&b"run"[..]),
        "{host}: recorded pid {pid} is `{}`, not `xfrm-agent run`",
        String::from_utf8_lossy(&cmdline).replace('\0', " ")
    );
    let v = view(host)?;
    ensure!(
        count(&v, "pid") == u64::from(pid),
        "{host}: the daemon's view says pid {}, the lab recorded {pid}",
        v["pid"]
    );
    Ok(pid)
}

/// SIGKILL the daemon of `host` and wait until it is gone.
pub fn kill9(lab: &Lab, host: &str) -> anyhow::Result<u32> {
    let pid = recorded_pid(lab, host)?;
    // SAFETY: kill(2) on a pid we checked is the agent.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    ensure!(
        rc == 0,
        "kill -9 {pid}: {}",
        std::io::Error::last_os_error()
    );
    poll(
        &format!("{host}: agent {pid} gone after SIGKILL"),
        Duration::from_secs(5),
        Duration::from_millis(10),
        || Ok((!alive(pid)).then_some(())),
    )?;
    Ok(pid)
}

/// Start `host`'s daemon again the way the lab does (scripts/provision/agent: it records
/// the new pid for tear-down) and wait until it answers `status` as that pid.
pub fn restart(lab: &Lab, host: &str) -> anyhow::Result<(u32, Value)> {
    let script = crate::repo_root().join("scripts/provision/agent");
    let out = Command::new("ip")
        .args(["netns", "exec", host])
        .arg(&script)
        .arg(host)
        .env("LAB_STATE", &lab.state)
        .env("LAB_POLICY", &lab.policy)
        .env("LAB_KEYS", &lab.keys)
        .env("XFRM_AGENT", lab::agent_binary())
        .output()?;
    ensure!(
        out.status.success(),
        "{host}: provision/agent failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let pid = recorded_pid(lab, host)?;
    let v = poll(
        &format!("{host}: restarted daemon {pid} answers status"),
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let v = view(host)?;
            Ok((count(&v, "pid") == u64::from(pid) && count(&v, "reconciles") > 0).then_some(v))
        },
    )?;
    Ok((pid, v))
}

/// Wait until no epoch boundary falls within the next `secs` in `host`'s daemon (its view
/// says when the next rotation is), so a test that must see "nothing changes" is not
/// disturbed by a scheduled key rotation.
pub fn quiet_for(host: &str, secs: f64) -> anyhow::Result<()> {
    let v = view(host)?;
    let Some(next) = v.get("next_rotation_unix").and_then(Value::as_f64) else {
        return Ok(());
    };
    let now = crate::probe::now_ns() as f64 / 1e9;
    if next - now < secs {
        let wait = (next - now).max(0.0) + 1.0;
        ensure!(wait < 120.0, "{host}: next rotation in {:.0} s", next - now);
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
    Ok(())
}

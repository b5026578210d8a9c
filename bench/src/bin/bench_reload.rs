//! The measuring half of `scripts/bench-reload`: makes 1-peer changes to a policy file and
//! times each one until the kernel reflects it, seen through XFRM netlink events.
//!
//!   bench_reload changes --config FILE --key KEY --stage DIR --mode MODE
//!                        --first I --count C [--states] [--agent BIN] [--timeout-ms MS]
//!
//! Run it inside the benchmark's network namespace (`ip netns exec NS …`): its event socket
//! sees that namespace's XFRM objects. Change number k moves host `h{I+k}` to another
//! address (the second octet's top bit flips), so every change is one peer, cumulative.
//! MODE says who carries the change to the kernel:
//! - `rename`: a running `xfrm-agent run` watching FILE; the new file is written in DIR (same
//!   filesystem, another directory, so the daemon sees no half-written file) and renamed
//!   over FILE — the clock starts just before rename(2). After each change the probe waits
//!   until `xfrm-agent status --daemon --json` shows the new file's sha256 (not timed).
//! - `apply`: a one-shot `xfrm-agent apply -c FILE --key KEY` (clock starts at the spawn).
//! - `batch`: `ip -batch` of exactly the kernel writes the change needs (the render of the
//!   old and new plan, diffed: removed lines become deletes) — the kernel's floor.
//!
//! "Reflected" means: every policy (and with --states, SA) key the compiler's plan loses
//! was deleted, and every key it gains or changes was added or updated — judged on the
//! events alone, no dumps and no polling. The clock stops when the last one arrives.
//! Per change: `change k=… ms=… events=… expected=…`; at the end `summary mode=… n=…
//! p50_ms=… p99_ms=… max_ms=… mean_ms=… failed=…` (p99 nearest-rank: with 50 changes it
//! is the maximum); in `apply` and `batch` mode also `cmd_cpu_p50_ms`, the command's own
//! CPU time (user + system), which the machine's load hardly moves.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::kernel::events::{XfrmEvent, XfrmEvents};
use agent::keys::{Identity, PrivateKey};
use agent::model::{Desired, PolicyKey, SaKey};
use agent::plan::{Compiler, LocalAddrs, Timestamp};
use anyhow::{bail, Context};

use bench::edit::move_host;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Rename,
    Apply,
    Batch,
}

struct Args {
    config: PathBuf,
    key: PathBuf,
    stage: PathBuf,
    mode: Mode,
    first: u32,
    count: u32,
    states: bool,
    agent: PathBuf,
    timeout: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = std::env::args().skip(1);
    if a.next().as_deref() != Some("changes") {
        bail!("usage: bench_reload changes --config FILE --key KEY --stage DIR --mode rename|apply|batch --first I --count C [--states] [--agent BIN] [--timeout-ms MS]");
    }
    let mut args = Args {
        config: PathBuf::new(),
        key: PathBuf::new(),
        stage: PathBuf::new(),
        mode: Mode::Rename,
        first: 1,
        count: 50,
        states: false,
        agent: PathBuf::from("xfrm-agent"),
        timeout: Duration::from_secs(30),
    };
    while let Some(flag) = a.next() {
        if flag == "--states" {
            args.states = true;
            continue;
        }
        let v = a.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--config" => args.config = v.into(),
            "--key" => args.key = v.into(),
            "--stage" => args.stage = v.into(),
            "--agent" => args.agent = v.into(),
            "--first" => args.first = v.parse()?,
            "--count" => args.count = v.parse()?,
            "--timeout-ms" => args.timeout = Duration::from_millis(v.parse()?),
            "--mode" => {
                args.mode = match v.as_str() {
                    "rename" => Mode::Rename,
                    "apply" => Mode::Apply,
                    "batch" => Mode::Batch,
                    _ => bail!("unknown mode {v}"),
                }
            }
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

/// The plan the daemon would compute from `text` (pair keys kept by `compiler`, as the
/// daemon's are).
fn plan(
    compiler: &mut Compiler,
    text: &str,
    id: &Identity,
    now: Timestamp,
) -> anyhow::Result<Desired> {
    let loaded = policy_schema::load("bench", text).map_err(|d| anyhow::anyhow!("{d}"))?;
    let policy = std::sync::Arc::new(loaded.policy);
    Ok(compiler
        .desired(&policy, id, &LocalAddrs::new(), now)?
        .clone())
}

/// What the kernel must show for the change old → new.
#[derive(Default)]
struct Expect {
    gone_p: BTreeSet<PolicyKey>,
    want_p: BTreeSet<PolicyKey>,
    gone_s: BTreeSet<SaKey>,
    want_s: BTreeSet<SaKey>,
}

impl Expect {
    fn new(old: &Desired, new: &Desired, states: bool) -> Expect {
        let mut e = Expect {
            gone_p: old
                .policies
                .keys()
                .filter(|k| !new.policies.contains_key(k))
                .copied()
                .collect(),
            want_p: new
                .policies
                .iter()
                .filter(|(k, p)| old.policies.get(k).map(|o| &o.spec) != Some(&p.spec))
                .map(|(k, _)| *k)
                .collect(),
            ..Expect::default()
        };
        if states {
            e.gone_s = old
                .states
                .keys()
                .filter(|k| !new.states.contains_key(k))
                .copied()
                .collect();
            e.want_s = new
                .states
                .iter()
                .filter(|(k, s)| old.states.get(k).map(|o| &o.spec) != Some(&s.spec))
                .map(|(k, _)| *k)
                .collect();
        }
        e
    }
    fn len(&self) -> usize {
        self.gone_p.len() + self.want_p.len() + self.gone_s.len() + self.want_s.len()
    }
    /// Tick off one event; false when events were lost.
    fn see(&mut self, ev: &XfrmEvent) -> bool {
        match ev {
            XfrmEvent::PolicyAdded(k) | XfrmEvent::PolicyUpdated(k) => {
                self.want_p.remove(k);
            }
            XfrmEvent::PolicyDeleted(k) => {
                self.gone_p.remove(k);
            }
            XfrmEvent::SaAdded(k) | XfrmEvent::SaUpdated(k) => {
                self.want_s.remove(k);
            }
            XfrmEvent::SaDeleted(k) => {
                self.gone_s.remove(k);
            }
            XfrmEvent::Resync => return false,
            _ => {}
        }
        true
    }
}

/// Wait for events until `exp` is satisfied; returns (time of the last needed event, count).
fn wait(
    ev: &mut XfrmEvents,
    exp: &mut Expect,
    deadline: Instant,
) -> anyhow::Result<(Instant, usize)> {
    let mut n = 0;
    loop {
        for e in ev.poll()? {
            n += 1;
            if !exp.see(&e) {
                bail!("event queue overrun: events lost");
            }
        }
        if exp.len() == 0 {
            return Ok((Instant::now(), n));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out with {} expected events missing", exp.len());
        }
        let mut pfd = libc::pollfd {
            fd: ev.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32 + 1) };
    }
}

/// `ip -batch` lines for old → new: deletes of removed lines, then the added ones.
fn batch(old: &Desired, new: &Desired, states: bool) -> String {
    let a = agent::report::ip_batch::render(old, true);
    let b = agent::report::ip_batch::render(new, true);
    let keep = |l: &&str| l.starts_with("xfrm policy") || (states && l.starts_with("xfrm state"));
    let olds: BTreeSet<&str> = a.lines().filter(keep).collect();
    let news: BTreeSet<&str> = b.lines().filter(keep).collect();
    let mut out = String::new();
    for l in olds.difference(&news).filter_map(|l| delete_line(l)) {
        out.push_str(&l);
        out.push('\n');
    }
    for l in b.lines().filter(keep).filter(|l| !olds.contains(l)) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// `xfrm policy add SEL dir D priority … [mark V mask M] …` → `xfrm policy delete SEL dir D
/// [mark V mask M]`; `xfrm state add src A dst B proto esp spi S …` → `xfrm state delete src
/// A dst B proto esp spi S`. None for a backstop's `mark 0x0 mask 0x2` half: iproute2 sends
/// no mark whose value is 0, so it cannot delete it (the baseline leaves it; [`unnamable`]).
fn delete_line(add: &str) -> Option<String> {
    let t: Vec<&str> = add.split_whitespace().collect();
    let cut = if t[1] == "policy" {
        t.iter()
            .position(|w| *w == "dir")
            .map_or(t.len(), |p| p + 2)
    } else {
        t.iter()
            .position(|w| *w == "spi")
            .map_or(t.len(), |p| p + 2)
    };
    let mut line = format!("xfrm {} delete {}", t[1], t[3..cut.min(t.len())].join(" "));
    if let Some(i) = t.iter().position(|w| *w == "mark") {
        let (v, m) = (t.get(i + 1)?, t.get(i + 3)?);
        if number(v) == Some(0) {
            return None;
        }
        line.push_str(&format!(" mark {v} mask {m}"));
    }
    Some(line)
}

/// A policy key iproute2 cannot name (a mark whose value is 0): `ip -batch` cannot delete
/// it, so the batch baseline neither does nor waits for it.
fn unnamable(k: &PolicyKey) -> bool {
    k.mark.is_some_and(|m| m.value == 0)
}

fn number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The daemon's view (`xfrm-agent status --daemon --json`), Null when none answers.
fn daemon_view(agent: &Path) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(agent)
        .args(["status", "--daemon", "--json"])
        .stderr(Stdio::null())
        .output()?;
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
}

/// Until the daemon has reconciled after `before` with the file's hash: (its last
/// reconcile's duration_ms, the unix time its reload finished: read, parse, key).
fn daemon_settled(
    agent: &Path,
    sha: &str,
    before: u64,
    deadline: Instant,
) -> anyhow::Result<(f64, f64)> {
    loop {
        let v = daemon_view(agent)?;
        if v["policy_sha256"].as_str() == Some(sha) && v["reconciles"].as_u64() > Some(before) {
            let num = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN);
            return Ok((
                num(&v["last_reconcile"]["duration_ms"]),
                num(&v["last_reload"]["unix"]),
            ));
        }
        if Instant::now() > deadline {
            bail!("the daemon never reported policy sha256 {sha}: {v}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted samples.
/// CPU time (user + system, ms) of every child process reaped so far: the difference
/// around one `wait` is that command's own CPU, which the machine's load hardly moves,
/// unlike its wall time (compare builds by it on a shared machine; docs/benchmarks.md).
fn children_cpu_ms() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return f64::NAN;
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let mut text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let first = policy_schema::load("bench", &text).map_err(|d| anyhow::anyhow!("{d}"))?;
    let id = Identity::resolve(&first.policy, PrivateKey::load(&a.key)?, None)?;
    let mut compiler = Compiler::new();
    let staged = a
        .stage
        .join(a.config.file_name().context("config has no file name")?);
    let batch_file = a.stage.join("change.batch");
    let mut ev = XfrmEvents::open()?;
    let (mut lat, mut failed, mut events, mut daemon_ms) = (Vec::new(), 0, 0, Vec::new());
    let mut cmd_failed = 0;
    let mut prev: Option<Desired> = None;
    let mut load_ms = Vec::new();
    let mut cmd_cpu_ms = Vec::new();
    for k in 0..a.count {
        let host = a.first + k;
        let next = move_host(&text, host)?;
        // The previous change's new plan is this one's old plan (a compile at 10,000 hosts
        // takes seconds), unless the plan's next_change (an epoch step) has passed.
        let now = agent::clock::now();
        let old_plan = match prev.take() {
            Some(p) if p.next_change.is_none_or(|t| now < t) => p,
            _ => plan(&mut compiler, &text, &id, now)?,
        };
        let new_plan = plan(&mut compiler, &next, &id, now)?;
        let mut exp = Expect::new(&old_plan, &new_plan, a.states);
        if matches!(a.mode, Mode::Batch) {
            exp.gone_p.retain(|k| !unnamable(k));
        }
        let expected = exp.len();
        if expected == 0 {
            bail!("moving h{host} changes nothing in the kernel: no timing possible");
        }
        let mut child = None;
        match a.mode {
            Mode::Rename => std::fs::write(&staged, &next)?,
            Mode::Apply => std::fs::write(&a.config, &next)?,
            Mode::Batch => std::fs::write(&batch_file, batch(&old_plan, &new_plan, a.states))?,
        }
        let before = match a.mode {
            Mode::Rename => daemon_view(&a.agent)?["reconciles"].as_u64().unwrap_or(0),
            _ => 0,
        };
        ev.poll()?; // anything before the clock starts is not this change's
        let t0 = Instant::now();
        let t0_unix = std::time::Duration::from_nanos(agent::clock::now().nanos()).as_secs_f64();
        match a.mode {
            Mode::Rename => std::fs::rename(&staged, &a.config)?,
            Mode::Apply => {
                child = Some(
                    Command::new(&a.agent)
                        .args(["apply", "-c"])
                        .arg(&a.config)
                        .arg("--key")
                        .arg(&a.key)
                        .stdout(Stdio::null())
                        .spawn()?,
                )
            }
            Mode::Batch => child = Some(Command::new("ip").arg("-batch").arg(&batch_file).spawn()?),
        }
        let res = wait(&mut ev, &mut exp, t0 + a.timeout);
        if let Some(mut c) = child {
            let cpu0 = children_cpu_ms();
            // `apply` exits 1 on a kernel without ESP (SA writes fail): counted, not fatal.
            if !c.wait()?.success() {
                cmd_failed += 1;
            }
            cmd_cpu_ms.push(children_cpu_ms() - cpu0);
        }
        text = next;
        prev = Some(new_plan);
        match a.mode {
            Mode::Batch => std::fs::write(&a.config, &text)?,
            Mode::Rename => {
                let (d, loaded) =
                    daemon_settled(&a.agent, &sha256_hex(&text), before, t0 + a.timeout)?;
                daemon_ms.push(d);
                load_ms.push((loaded - t0_unix) * 1e3);
            }
            Mode::Apply => {}
        }
        match res {
            Ok((t1, n)) => {
                let l = ms(t1 - t0);
                println!("change k={k} host=h{host} ms={l:.2} events={n} expected={expected}");
                lat.push(l);
                events += n;
            }
            Err(e) => {
                println!("change k={k} host=h{host} failed: {e:#}");
                failed += 1;
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    if lat.is_empty() {
        bail!("every change failed");
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let cpu = if cmd_cpu_ms.is_empty() {
        String::new()
    } else {
        cmd_cpu_ms.sort_by(f64::total_cmp);
        format!(" cmd_cpu_p50_ms={:.1}", pct(&cmd_cpu_ms, 50.0))
    };
    let dm = if daemon_ms.is_empty() {
        String::new()
    } else {
        daemon_ms.sort_by(f64::total_cmp);
        load_ms.sort_by(f64::total_cmp);
        format!(
            " daemon_load_p50_ms={:.1} daemon_reconcile_p50_ms={:.1}",
            pct(&load_ms, 50.0),
            pct(&daemon_ms, 50.0)
        )
    };
    println!(
        "summary n={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} mean_ms={:.2} failed={failed} cmd_failed={cmd_failed} events_per_change={:.1}{cpu}{dm}",
        lat.len(),
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        lat[lat.len() - 1],
        mean,
        events as f64 / lat.len() as f64
    );
    Ok(())
}

//! The namespace lab from a test: `scripts/lab up` / `down` behind a guard, the skip rule,
//! and an independent check that nothing of the lab is left behind.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context};

use crate::exec::Netns;
use crate::topology::Topology;

/// One lab at a time on a machine (the namespaces have fixed names).
static LAB_LOCK: Mutex<()> = Mutex::new(());

/// Whether this process can run the lab: root, on a kernel with ESP (scripts/lab probed it
/// and says so with LAB_ESP_KERNEL=1; inside UML that is always the case).
pub fn available() -> Result<(), String> {
    // Not agent::kernel::netns::is_root: this library depends on the agent only as a
    // dev-dependency, so that nothing the oracle and the verdicts use comes from the agent.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the lab needs root".into());
    }
    if std::env::var("LAB_ESP_KERNEL").as_deref() != Ok("1") {
        return Err("no ESP kernel known: run the lab tests with `scripts/lab test` (it boots UML when needed)".into());
    }
    Ok(())
}

/// Skip a lab test with a one-line reason; in CI a skipped lab is a failure.
pub fn skip(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "lab test cannot run in CI: {why}");
    eprintln!("skipped: {why}");
}

/// `return` from a test after [`skip`] when the lab cannot run here.
#[macro_export]
macro_rules! require_lab {
    () => {
        if let Err(why) = $crate::lab::available() {
            $crate::lab::skip(&why);
            return;
        }
    };
}

/// How to bring the lab up.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// Extra hosts of the topology to create (e.g. "peer").
    pub with: Vec<String>,
    /// Policy file instead of the seed.
    pub policy: Option<PathBuf>,
    /// Key directory instead of the seed's.
    pub keys: Option<PathBuf>,
    /// Start no agent (the test starts or configures hosts itself).
    pub no_agents: bool,
}

/// A running namespace lab; tear it down with [`Lab::down`] (Drop does it too, on panic).
pub struct Lab {
    pub topo: Topology,
    pub state: PathBuf,
    pub policy: PathBuf,
    pub keys: PathBuf,
    pub exec: Netns,
    namespaces: Vec<String>,
    root_xfrm_before: String,
    done: bool,
    _lock: MutexGuard<'static, ()>,
}

fn scripts_lab() -> PathBuf {
    crate::repo_root().join("scripts/lab")
}

/// The root namespace's XFRM objects (the lab must never change them).
fn root_xfrm() -> anyhow::Result<String> {
    let mut all = String::new();
    for what in ["state", "policy"] {
        let out = Command::new("ip").args(["xfrm", what, "list"]).output()?;
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    Ok(all)
}

impl Lab {
    pub fn up(o: &UpOptions) -> anyhow::Result<Lab> {
        let lock = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let topo = Topology::load(&Topology::default_path())?;
        let state =
            PathBuf::from(std::env::var("LAB_STATE").unwrap_or_else(|_| "/run/xfrm-lab".into()));
        let root_xfrm_before = root_xfrm()?;
        let mut namespaces = vec!["lab-sw".to_string()];
        namespaces.extend(
            topo.hosts
                .iter()
                .filter(|h| !h.extra || o.with.contains(&h.name))
                .map(|h| h.name.clone()),
        );
        let mut cmd = Command::new(scripts_lab());
        cmd.arg("up");
        for w in &o.with {
            cmd.args(["--with", w]);
        }
        if let Some(p) = &o.policy {
            cmd.env("LAB_POLICY_SRC", p);
        }
        if let Some(k) = &o.keys {
            cmd.env("LAB_KEYS_SRC", k);
        }
        if o.no_agents {
            cmd.env("LAB_AGENTS", "0");
        }
        let mut lab = Lab {
            exec: Netns {
                probe: probe_binary(),
                scratch: state.clone(),
            },
            policy: state.join("policy.toml"),
            keys: state.join("keys"),
            topo,
            state,
            namespaces,
            root_xfrm_before,
            done: false,
            _lock: lock,
        };
        let st = cmd.status().context("running scripts/lab up")?;
        if !st.success() {
            lab.done = true;
            let _ = Command::new(scripts_lab()).arg("down").status();
            bail!("scripts/lab up failed ({st})");
        }
        Ok(lab)
    }

    /// Run a command inside a host and return its stdout (error with stderr on failure).
    pub fn sh(&self, host: &str, script: &str) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", host, "sh", "-c", script])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{host}: `{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Tear down and prove nothing is left: namespaces, switch ports, processes, root XFRM.
    /// A process the test left running inside a lab host (anything but the recorded
    /// agents) is killed by the tear-down and still fails this call: the test leaked it.
    pub fn down(mut self) -> anyhow::Result<()> {
        self.done = true;
        let strays = self.stray_processes();
        let st = Command::new(scripts_lab()).arg("down").status()?;
        let mut problems = Vec::new();
        if !st.success() {
            problems.push(format!("scripts/lab down reported leftovers ({st})"));
        }
        let left = self.leftovers()?;
        if !left.is_empty() {
            problems.push(format!("left behind by the lab: {}", left.join(", ")));
        }
        if !strays.is_empty() {
            problems.push(format!(
                "the test left processes running in lab hosts (killed by the tear-down): {}",
                strays.join(", ")
            ));
        }
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }

    /// Processes inside the lab's namespaces other than the agents scripts/lab recorded.
    fn stray_processes(&self) -> Vec<String> {
        let recorded: Vec<u32> = std::fs::read_dir(self.state.join("pids"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect();
        let names: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        namespace_processes(&names)
            .into_iter()
            .filter(|(pid, _, _)| !recorded.contains(pid))
            .map(|(pid, ns, cmd)| format!("{pid} in {ns} ({cmd})"))
            .collect()
    }

    fn leftovers(&self) -> anyhow::Result<Vec<String>> {
        let mut left = Vec::new();
        for ns in &self.namespaces {
            if PathBuf::from("/run/netns").join(ns).exists() {
                left.push(format!("namespace {ns}"));
            }
        }
        for h in &self.topo.hosts {
            for l in &h.links {
                let port = format!(
                    "{}-{}",
                    &h.name[..h.name.len().min(6)],
                    &l.segment[..l.segment.len().min(8)]
                );
                if PathBuf::from("/sys/class/net").join(&port).exists() {
                    left.push(format!("veth {port}"));
                }
            }
        }
        if self.state.exists() {
            left.push(format!("state directory {}", self.state.display()));
        }
        left.extend(processes_mentioning(&[
            &self.state.display().to_string(),
            &probe_binary().display().to_string(),
        ]));
        if root_xfrm()? != self.root_xfrm_before {
            left.push("XFRM objects in the root namespace changed".into());
        }
        Ok(left)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.done {
            let _ = Command::new(scripts_lab()).arg("down").status();
        }
    }
}

/// The numeric entries of /proc: every process's pid.
fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim()
            .to_string(),
    )
}

/// (pid, namespace, command line) of every process inside one of the named network
/// namespaces: a process's /proc/PID/ns/net and /run/netns/NAME are the same nsfs inode.
pub fn namespace_processes(names: &[&str]) -> Vec<(u32, String, String)> {
    use std::os::unix::fs::MetadataExt;
    let inodes: Vec<(u64, &str)> = names
        .iter()
        .filter_map(|n| Some((std::fs::metadata(format!("/run/netns/{n}")).ok()?.ino(), *n)))
        .collect();
    pids()
        .into_iter()
        .filter(|&pid| pid != std::process::id())
        .filter_map(|pid| {
            let ino = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?.ino();
            let (_, ns) = inodes.iter().find(|(i, _)| *i == ino)?;
            Some((pid, ns.to_string(), cmdline(pid)?))
        })
        .collect()
}

/// Processes whose command line mentions one of `needles` (detection only; never killed
/// by name).
fn processes_mentioning(needles: &[&str]) -> Vec<String> {
    let me = std::process::id();
    pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let cmd = cmdline(pid)?;
            needles
                .iter()
                .any(|n| cmd.contains(n))
                .then(|| format!("process {pid} ({cmd})"))
        })
        .collect()
}

/// target/debug/lab-probe (or $LAB_PROBE).
pub fn probe_binary() -> PathBuf {
    std::env::var_os("LAB_PROBE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target/debug/lab-probe"))
}

/// target/debug/xfrm-agent (or $XFRM_AGENT).
pub fn agent_binary() -> PathBuf {
    std::env::var_os("XFRM_AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target/debug/xfrm-agent"))
}

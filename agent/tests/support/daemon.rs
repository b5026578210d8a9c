//! A daemon (`xfrm-agent run`) in a throw-away namespace: scratch files, start and stop,
//! its view, the namespace's policies. Shared by the daemon tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ns::{privileged, TestNetns};

pub const AGENT: &str = env!("CARGO_BIN_EXE_xfrm-agent");

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

/// A scratch directory with the dual-stack example policy and site's key (mode 0600).
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    pub fn new(tag: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("xa-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(repo("examples/dual-stack.toml"), dir.join("policy.toml")).unwrap();
        std::fs::copy(repo("examples/keys/site.key"), dir.join("site.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("site.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        Files { dir }
    }
    pub fn policy(&self) -> PathBuf {
        self.dir.join("policy.toml")
    }
    /// Replace the policy atomically, as config managers do.
    pub fn replace(&self, text: &str) {
        let tmp = self.dir.join(".policy.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policy()).unwrap();
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running daemon, killed on drop.
pub struct Daemon {
    pub child: Child,
}

/// `xfrm-agent run` in `ns` with the files of `f`, plus `extra` arguments.
pub fn run_command(ns: &TestNetns, f: &Files, extra: &[&str]) -> Command {
    let mut c = Command::new(AGENT);
    c.args(["run", "--netns", &ns.name, "-c"])
        .arg(f.policy())
        .arg("--key")
        .arg(f.dir.join("site.key"))
        .args(extra);
    c
}

/// A namespace with loopback up and the scratch files, or None (skipped) without root.
pub fn rig(test: &str, tag: &str) -> Option<(TestNetns, Files)> {
    if !privileged(test) {
        return None;
    }
    let ns = TestNetns::new(tag);
    ns.ip(&["link", "set", "lo", "up"]);
    Some((ns, Files::new(tag)))
}

impl Daemon {
    pub fn start(ns: &TestNetns, f: &Files, extra: &[&str]) -> Daemon {
        Daemon::spawn(ns, run_command(ns, f, extra))
    }
    /// Start `c` (a [`run_command`], perhaps with more environment) and wait until it
    /// answers.
    pub fn spawn(ns: &TestNetns, mut c: Command) -> Daemon {
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn xfrm-agent run");
        let mut d = Daemon { child };
        wait_for("the daemon to answer", || {
            assert!(
                d.child.try_wait().unwrap().is_none(),
                "the daemon exited early"
            );
            view(ns).is_some()
        });
        d
    }
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    pub fn wait_exit(&mut self) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "daemon did not exit"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `cond` every 5 ms for up to 5 s.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

/// The daemon's view in `ns` (None: no daemon answers).
pub fn view(ns: &TestNetns) -> Option<Value> {
    let out = Command::new(AGENT)
        .args(["status", "--daemon", "--json", "--netns", &ns.name])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("status JSON"))
}

/// The namespace's SPD policies, one line each, sorted. Per-socket policies (the daemon's
/// ESP-in-UDP sockets' bypass) live and die with the process and are left out.
pub fn policies(ns: &TestNetns) -> Vec<String> {
    let mut v: Vec<String> = ns
        .ip(&["-o", "xfrm", "policy", "list"])
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter(|w| *w != "\\")
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| !l.contains(" socket "))
        .collect();
    v.sort();
    v
}

pub const FOREIGN: [&str; 11] = [
    "xfrm",
    "policy",
    "add",
    "src",
    "192.0.2.1/32",
    "dst",
    "192.0.2.2/32",
    "dir",
    "out",
    "priority",
    "7",
];

/// Deletes site's catch-all outbound policy (of the dual-stack example): drift to repair.
pub const DELETE_CATCH_ALL_OUT: [&str; 9] = [
    "xfrm",
    "policy",
    "delete",
    "dir",
    "out",
    "src",
    "10.10.0.10/32",
    "dst",
    "0.0.0.0/0",
];

/// The policies a one-shot `apply` of `f`'s files gives a fresh namespace. (Without ESP
/// here, apply reports the refused SAs and exits non-zero; the policies are installed all
/// the same, fail-closed, as the daemon's are.)
pub fn applied_fresh(f: &Files) -> Vec<String> {
    let fresh = TestNetns::new("fresh");
    Command::new(AGENT)
        .args(["apply", "--netns", &fresh.name, "-c"])
        .arg(f.policy())
        .arg("--key")
        .arg(f.dir.join("site.key"))
        .output()
        .unwrap();
    policies(&fresh)
}

pub fn has_foreign(ns: &TestNetns) -> bool {
    policies(ns).iter().any(|l| l.contains("192.0.2.2/32"))
}

//! Throw-away network namespaces for privileged tests: created with `ip netns add`, removed
//! on drop (also when the test panics). Test bodies run on a thread that entered the
//! namespace, so the test harness's own threads stay in the root namespace.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// A named namespace that is deleted when dropped.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> TestNetns {
        let name = format!(
            "xa-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(st.success(), "ip netns add {name}");
        TestNetns { name }
    }

    /// Run `f` on a thread inside the namespace and return its result (panics propagate).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.name.clone();
        std::thread::spawn(move || {
            agent::kernel::netns::enter(&name).expect("enter netns");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// `ip -n NAME ARGS...`, asserting success; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {:?}: {}",
            self.name,
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Two new namespaces joined by veth (`va` in the first, `vb` in the second), each
    /// with one address (a /24) and loopback up.
    pub fn veth_pair(tags: (&str, &str), addrs: (&str, &str)) -> (TestNetns, TestNetns) {
        let (n1, n2) = (TestNetns::new(tags.0), TestNetns::new(tags.1));
        n1.ip(&[
            "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &n2.name,
        ]);
        for (n, dev, a) in [(&n1, "va", addrs.0), (&n2, "vb", addrs.1)] {
            n.ip(&["addr", "add", &format!("{a}/24"), "dev", dev]);
            n.ip(&["link", "set", dev, "up"]);
            n.ip(&["link", "set", "lo", "up"]);
        }
        (n1, n2)
    }

    /// `ip -n NAME -batch -` fed `commands`; Err carries ip's output when it refuses them.
    pub fn ip_batch(&self, commands: &str) -> Result<(), String> {
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ip");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(commands.as_bytes()).expect("write to ip");
        drop(stdin);
        let out = child.wait_with_output().expect("wait for ip");
        if out.status.success() {
            return Ok(());
        }
        Err(String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Whether privileged tests can run; prints the one-line reason when not.
pub fn privileged(test: &str) -> bool {
    let root = agent::kernel::netns::is_root();
    if !root {
        eprintln!("skipping {test}: needs root (network namespaces and XFRM)");
    }
    root
}

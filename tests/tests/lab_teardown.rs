//! The tear-down contract (run with `scripts/lab test`): whatever a failed test leaves
//! running inside a lab host is killed before the namespaces go, and the test that leaked
//! it is told so.

use std::process::{Child, Command, Stdio};

use e2e::lab::{Lab, UpOptions};
use e2e::require_lab;

/// A process started in a lab host and deliberately not stopped. Its output goes nowhere:
/// a leaked process holding the test's stdout would keep scripts/lab's `tee` waiting.
/// Drop kills it in case the tear-down under test did not.
struct Leak(Child);

impl Drop for Leak {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in(host: &str, script: &str) -> Leak {
    Leak(
        Command::new("ip")
            .args(["netns", "exec", host, "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in a lab host"),
    )
}

#[test]
#[ignore = "needs the lab: scripts/lab test"]
fn teardown_kills_leaked_processes_and_reports_them() {
    require_lab!();
    let lab = Lab::up(&UpOptions {
        no_agents: true,
        ..Default::default()
    })
    .expect("lab up");
    // A leaked capture-like process, and one that ignores SIGTERM (SIGKILL must follow).
    let mut plain = spawn_in("site", "exec sleep 600");
    let mut stubborn = spawn_in("lab-sw", "trap '' TERM; exec sleep 600");
    let started = std::time::Instant::now();
    while e2e::lab::namespace_processes(&["site", "lab-sw"]).len() < 2 {
        assert!(
            started.elapsed().as_secs() < 10,
            "the leaked processes never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let err = lab
        .down()
        .expect_err("a leak must fail the tear-down check");
    let msg = format!("{err:#}");
    assert!(msg.contains("left processes running"), "{msg}");
    assert!(msg.contains(&plain.0.id().to_string()), "{msg}");
    for (what, leak) in [("plain", &mut plain), ("stubborn", &mut stubborn)] {
        let st = leak.0.try_wait().expect("try_wait");
        assert!(st.is_some(), "the {what} leaked process still runs");
    }
    assert!(
        e2e::lab::namespace_processes(&["site", "lab-sw"]).is_empty(),
        "processes survived"
    );
    for ns in ["site", "lab-sw"] {
        assert!(
            !std::path::Path::new("/run/netns").join(ns).exists(),
            "namespace {ns} left"
        );
    }
}

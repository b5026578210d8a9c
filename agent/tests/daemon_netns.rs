//! The daemon (`xfrm-agent run`) against this machine's kernel, in throw-away namespaces:
//! drift repair, foreign objects left alone, invalid reloads rejected, restart with zero
//! ops, one instance per namespace, SIGTERM leaving state and `--flush-on-exit` removing
//! it. Policies only (this kernel may lack ESP; SAs and traffic are the lab's tests).
//! Needs root; skips with a reason otherwise.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::daemon::*;

#[test]
fn drift_is_repaired_within_a_second_and_foreign_objects_are_kept() {
    let Some((ns, f)) = rig(
        "drift_is_repaired_within_a_second_and_foreign_objects_are_kept",
        "drift",
    ) else {
        return;
    };
    let _d = Daemon::start(&ns, &f, &[]);
    let want = policies(&ns);
    assert!(want.len() > 10, "the daemon installed the policy: {want:?}");
    ns.ip(&FOREIGN);

    // Someone deletes one owned policy: restored, the foreign one untouched.
    let victim = DELETE_CATCH_ALL_OUT;
    assert!(
        want.iter()
            .any(|l| l.starts_with("src 10.10.0.10/32 dst 0.0.0.0/0 dir out priority")),
        "the catch-all out policy is installed"
    );
    ns.ip(&victim);
    let took = wait_for("the deleted policy to be restored", || {
        let now = policies(&ns);
        now.len() == want.len() + 1 && want.iter().all(|l| now.contains(l))
    });
    assert!(took < Duration::from_secs(1), "restored in {took:?}");
    assert!(has_foreign(&ns), "a foreign policy was touched");

    // A flush removes everything; the agent restores its own and nothing else.
    ns.ip(&["xfrm", "policy", "flush"]);
    let took = wait_for("the flushed policies to be restored", || {
        policies(&ns) == want
    });
    assert!(took < Duration::from_secs(1), "restored in {took:?}");
    let v = view(&ns).unwrap();
    assert!(v["drift_repairs"].as_u64().unwrap() >= 2, "{v}");
}

#[test]
fn invalid_file_keeps_the_last_good_policy_and_is_reported() {
    let Some((ns, f)) = rig(
        "invalid_file_keeps_the_last_good_policy_and_is_reported",
        "reload",
    ) else {
        return;
    };
    let _d = Daemon::start(&ns, &f, &[]);
    let before = policies(&ns);
    let good = std::fs::read_to_string(f.policy()).unwrap();

    f.replace(&format!(
        "{good}\n[[rules]]\nname = \"broken\"\naction = \"maybe\"\n"
    ));
    wait_for("the rejection", || {
        view(&ns).unwrap()["reloads_failed"].as_u64() == Some(1)
    });
    let v = view(&ns).unwrap();
    let err = v["last_error"].as_str().expect("last_error set");
    assert!(err.contains("policy.toml:"), "located error: {err}");
    assert_eq!(v["last_reload"]["ok"], Value::Bool(false));
    assert_eq!(policies(&ns), before, "nothing in the kernel changed");

    // Undoing the bad edit (the file in force is back) clears the error at once.
    f.replace(&good);
    wait_for("the error to clear", || {
        view(&ns).unwrap()["last_error"] == Value::Null
    });
    assert_eq!(view(&ns).unwrap()["reloads_failed"].as_u64(), Some(1));

    // Another user in the namespace is refused the daemon's view.
    let other = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .args(["--clear-groups", AGENT, "status", "--daemon", "--json"])
        .output()
        .unwrap();
    assert!(!other.status.success(), "nobody read the view");
    assert!(String::from_utf8_lossy(&other.stderr).contains("refused"));

    // A valid edit that changes policies (a new exemption) is applied.
    let edited = good.replacen(
        "[[exemptions]]",
        "[[exemptions]]\nname = \"syslog\"\nprotocol = \"udp\"\nports = [514]\n\n[[exemptions]]",
        1,
    );
    assert_ne!(edited, good, "the example has exemptions");
    f.replace(&edited);
    wait_for("the edit to reach the kernel", || {
        policies(&ns).iter().any(|l| l.contains("dport 514"))
    });
    let v = view(&ns).unwrap();
    assert_eq!(v["last_error"], Value::Null);
    assert_eq!(v["reloads_ok"].as_u64(), Some(1));

    // Key files are watched too: a key replaced in place (here by db's) reloads, and the
    // daemon now acts as the host that key belongs to; putting site's back returns.
    let key = f.dir.join("site.key");
    let replace_key = |from: &str| {
        let tmp = f.dir.join(".site.key.new");
        std::fs::copy(repo(from), &tmp).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &key).unwrap();
    };
    replace_key("examples/keys/db.key");
    wait_for("the key change to reload", || {
        view(&ns).unwrap()["host"].as_str() == Some("db")
    });
    replace_key("examples/keys/site.key");
    wait_for("site's key to be back", || {
        view(&ns).unwrap()["host"].as_str() == Some("site")
    });
    assert_eq!(view(&ns).unwrap()["reloads_ok"].as_u64(), Some(3));
}

#[test]
fn restart_applies_nothing_one_instance_per_namespace_and_exit_modes() {
    let Some((ns, f)) = rig(
        "restart_applies_nothing_one_instance_per_namespace_and_exit_modes",
        "restart",
    ) else {
        return;
    };
    let mut d = Daemon::start(&ns, &f, &[]);
    let want = policies(&ns);
    ns.ip(&FOREIGN);

    // A second agent in the same namespace refuses to start.
    let second = run_command(&ns, &f, &[]).output().unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));

    // SIGKILL: state stays; a restart with the same file changes nothing.
    d.signal("-KILL");
    d.wait_exit();
    assert!(policies(&ns).len() == want.len() + 1);
    let mut d = Daemon::start(&ns, &f, &[]);
    let v = view(&ns).unwrap();
    assert_eq!(v["last_reconcile"]["cause"], "start");
    assert_eq!(v["last_reconcile"]["ops"].as_u64(), Some(0), "{v}");

    // SIGTERM: exits 0 and leaves the policies (fail-closed).
    d.signal("-TERM");
    assert_eq!(d.wait_exit(), 0);
    assert_eq!(policies(&ns).len(), want.len() + 1);

    // --flush-on-exit: owned objects go, the foreign one stays.
    let d = Daemon::start(&ns, &f, &["--flush-on-exit"]);
    d.signal("-TERM");
    let mut d = d;
    assert_eq!(d.wait_exit(), 0);
    let left = policies(&ns);
    assert!(
        left.iter().all(|l| l.contains("192.0.2.2/32")),
        "only the foreign policy is left: {left:?}"
    );
    assert!(has_foreign(&ns));
}

#[test]
fn a_kernel_without_esp_is_probed_at_resync_not_flooded() {
    let Some((ns, f)) = rig(
        "a_kernel_without_esp_is_probed_at_resync_not_flooded",
        "probe",
    ) else {
        return;
    };
    // This machine's kernel refuses SAs (no ESP): the first reconcile tries them all.
    let _d = Daemon::start(&ns, &f, &["--resync", "1"]);
    let first = view(&ns).unwrap();
    if first["missing_features"]
        .as_array()
        .is_none_or(|m| m.is_empty())
    {
        eprintln!("skipped: this kernel has ESP (nothing to probe)");
        return;
    }
    // At a resync one SA per algorithm is probed; refused, no other SA write is sent.
    wait_for("a resync", || {
        view(&ns).unwrap()["last_reconcile"]["cause"].as_str() == Some("resync")
    });
    let v = view(&ns).unwrap();
    assert_eq!(v["last_reconcile"]["failed"].as_u64(), Some(0), "{v}");
    assert_eq!(v["missing_features"], first["missing_features"], "{v}");
}

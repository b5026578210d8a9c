//! The daemon never dies on input, in throw-away namespaces on this machine's kernel: for
//! each class of hostile policy file put in place under a running daemon (a FIFO, a device
//! through a symlink, an oversized file, invalid UTF-8, a low-order key, a huge duration, a
//! 50,000-part dotted key, a load or compile that panics) the process stays up, the kernel
//! keeps the last good policy, drift is still repaired, `status` shows the located error,
//! and the rejection is counted once however often the file is re-read. Then every spelling
//! class the adversarial review found (issue 11), one after another under one daemon, each
//! located at its line. Policies only. Needs root; skips with a reason otherwise.

mod support;

use std::process::Command;

use serde_json::Value;
use support::daemon::*;
use support::ns::TestNetns;

fn counter(ns: &TestNetns, name: &str) -> u64 {
    view(ns).expect("the daemon answers")[name]
        .as_u64()
        .unwrap()
}

/// After `bad` replaced the policy of a daemon started with `extra` (and a resync every
/// second, so the file is re-read): rejected once with an error located in the file that
/// contains `want`, the daemon alive with the kernel as it was, drift still repaired, and
/// the good file back clears the error.
fn survives(test: &str, tag: &str, extra: &[&str], bad: impl FnOnce(&Files), want: &str) {
    let Some((ns, f)) = rig(test, tag) else {
        return;
    };
    let good = std::fs::read_to_string(f.policy()).unwrap();
    let mut args = vec!["--resync", "1"];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(&ns, &f, &args);
    let before = policies(&ns);
    assert!(before.len() > 10, "the daemon installed the policy");

    bad(&f);
    wait_for("the rejection", || counter(&ns, "reloads_failed") >= 1);
    let v = view(&ns).unwrap();
    let err = v["last_error"]
        .as_str()
        .expect("last_error set")
        .to_string();
    let name = f.policy().display().to_string();
    assert!(err.starts_with(&format!("{name}:")), "located: {err}");
    assert!(err.contains(want), "{want:?} in: {err}");
    assert!(err.len() < 2000, "the error is cut: {} bytes", err.len());
    assert_eq!(v["reloads_ok"].as_u64(), Some(0), "{v}");
    assert_eq!(
        policies(&ns),
        before,
        "the kernel keeps the last good policy"
    );

    // Two resyncs re-read the file: the same rejected version is not counted again.
    let r0 = counter(&ns, "reconciles");
    wait_for("two resyncs", || counter(&ns, "reconciles") >= r0 + 2);
    assert_eq!(
        counter(&ns, "reloads_failed"),
        1,
        "counted once per version"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon is up");

    // Drift repair still runs.
    ns.ip(&DELETE_CATCH_ALL_OUT);
    wait_for("the deleted policy to be restored", || {
        policies(&ns) == before
    });

    f.replace(&good);
    wait_for("the error to clear", || {
        view(&ns).unwrap()["last_error"] == Value::Null
    });
    assert_eq!(policies(&ns), before);
}

/// Put `path` in place of the policy file by rename (as config managers do).
fn rename_over(f: &Files, path: &std::path::Path) {
    std::fs::rename(path, f.policy()).unwrap();
}

#[test]
fn a_fifo_as_the_policy_is_refused_without_blocking() {
    survives(
        "a_fifo_as_the_policy_is_refused_without_blocking",
        "fifo",
        &[],
        |f| {
            let fifo = f.dir.join(".fifo");
            let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
            assert!(st.success());
            rename_over(f, &fifo);
        },
        "is a FIFO (named pipe), not a regular file",
    );
}

#[test]
fn dev_zero_through_a_symlink_is_refused() {
    survives(
        "dev_zero_through_a_symlink_is_refused",
        "zero",
        &[],
        |f| {
            let link = f.dir.join(".zero");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            rename_over(f, &link);
        },
        "is a character device, not a regular file",
    );
}

#[test]
fn an_oversized_policy_is_refused_unread() {
    survives(
        "an_oversized_policy_is_refused_unread",
        "big",
        &["--max-policy-size", "64K"],
        |f| {
            let good = std::fs::read_to_string(f.policy()).unwrap();
            f.replace(&format!("{good}{}", "# padding\n".repeat(8000)));
        },
        "larger than the limit of 65536 bytes (--max-policy-size)",
    );
}

#[test]
fn invalid_utf8_is_located() {
    survives(
        "invalid_utf8_is_located",
        "utf8",
        &[],
        |f| {
            let mut bytes = std::fs::read(f.policy()).unwrap();
            bytes.extend_from_slice(b"\n# caf\xe9\n");
            let lines = bytes.iter().filter(|b| **b == b'\n').count();
            let tmp = f.dir.join(".latin1");
            std::fs::write(&tmp, &bytes).unwrap();
            rename_over(f, &tmp);
            assert!(lines > 10);
        },
        "error: the file is not valid UTF-8",
    );
}

#[test]
fn a_low_order_key_is_refused() {
    survives(
        "a_low_order_key_is_refused",
        "loword",
        &[],
        |f| {
            let good = std::fs::read_to_string(f.policy()).unwrap();
            // db's key replaced by a point of order 8: its shared secret would be all zeros.
            let bad = good.replace(
                "t8bqXUBXDk5Wy7r3iL2JDfz1/ooQRPrlEmOAyVtb0xk=",
                "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
            );
            assert_ne!(bad, good);
            f.replace(&bad);
        },
        "public-key",
    );
}

#[test]
fn a_huge_rekey_interval_is_refused() {
    // Without validation of its range this file passes `check` and panics in the compile
    // (an overflow in plan/compile/epoch.rs, debug builds): the reload boundary catches that too.
    survives(
        "a_huge_rekey_interval_is_refused",
        "huge",
        &[],
        |f| {
            let good = std::fs::read_to_string(f.policy()).unwrap();
            let bad = good.replace(
                "rekey-interval = \"1h\"",
                "rekey-interval = 6148914691236517206",
            );
            assert_ne!(bad, good);
            f.replace(&bad);
        },
        "rekey-interval",
    );
}

#[test]
fn a_deep_dotted_key_is_refused() {
    survives(
        "a_deep_dotted_key_is_refused",
        "deep",
        &[],
        |f| {
            let good = std::fs::read_to_string(f.policy()).unwrap();
            f.replace(&format!("{good}\n{}a = 1\n", "a.".repeat(49_999)));
        },
        "error:",
    );
}

/// A panic at the reload boundary, injected (debug builds: `XFRM_AGENT_INJECT_PANIC`)
/// into the load of one file and the compile of another: each is rejected like an invalid
/// file, the kernel keeps the last good policy, and a good file afterwards is applied.
#[test]
fn a_panic_in_load_or_compile_keeps_the_last_good_policy() {
    let test = "a_panic_in_load_or_compile_keeps_the_last_good_policy";
    if !cfg!(debug_assertions) {
        eprintln!("skipping {test}: the panic injection exists in debug builds only");
        return;
    }
    let Some((ns, f)) = rig(test, "panic") else {
        return;
    };
    let mut c = run_command(&ns, &f, &[]);
    c.env(
        "XFRM_AGENT_INJECT_PANIC",
        "load:# panic-in-load,compile:# panic-in-compile",
    );
    let mut d = Daemon::spawn(&ns, c);
    let before = policies(&ns);
    let sha = view(&ns).unwrap()["policy_sha256"].clone();
    let good = std::fs::read_to_string(f.policy()).unwrap();
    // An edit that changes the kernel (a new exemption), so a wrong apply would show.
    let edited = good.replacen(
        "[[exemptions]]",
        "[[exemptions]]\nname = \"syslog\"\nprotocol = \"udp\"\nports = [514]\n\n[[exemptions]]",
        1,
    );

    for (n, (marker, stage)) in [
        ("# panic-in-load", "loading"),
        ("# panic-in-compile", "compiling"),
    ]
    .into_iter()
    .enumerate()
    {
        f.replace(&format!("{edited}\n{marker}\n"));
        wait_for("the rejection", || {
            counter(&ns, "reloads_failed") == n as u64 + 1
        });
        let v = view(&ns).unwrap();
        let err = v["last_error"].as_str().unwrap();
        assert!(
            err.contains(&format!("internal error while {stage} the policy"))
                && err.contains("injected panic"),
            "{err}"
        );
        assert!(d.child.try_wait().unwrap().is_none(), "the daemon is up");
        assert_eq!(v["policy_sha256"], sha, "the last good policy is in force");
        assert_eq!(v["reloads_ok"].as_u64(), Some(0));
        assert_eq!(policies(&ns), before, "nothing changed in the kernel");
    }

    // Drift repair still runs, with the last good policy.
    ns.ip(&DELETE_CATCH_ALL_OUT);
    wait_for("the deleted policy to be restored", || {
        policies(&ns) == before
    });

    f.replace(&edited);
    wait_for("the good edit to reach the kernel", || {
        policies(&ns).iter().any(|l| l.contains("dport 514"))
    });
    let v = view(&ns).unwrap();
    assert_eq!(v["last_error"], Value::Null, "{v}");
    assert_eq!(v["reloads_ok"].as_u64(), Some(1));
}

/// Every spelling class of a hostile file, as an edit of the good one.
fn hostile(good: &str) -> Vec<(&'static str, String)> {
    let db_key = "t8bqXUBXDk5Wy7r3iL2JDfz1/ooQRPrlEmOAyVtb0xk=";
    let mp_key = "EN3ih2uQnXqaxfR2b9uFhs7UOdha9PFs2Fb9gUA9ixM=";
    // db's key with bit 255 set: the same X25519 point, a different string.
    let mut db_high = base64_decode(db_key);
    db_high[31] |= 0x80;
    let deep = vec!["a"; 50_000].join(".");
    vec![
        (
            "low-order key",
            good.replace(db_key, "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA="),
        ),
        (
            "one key in two spellings",
            good.replace(mp_key, &base64_encode(&db_high)),
        ),
        (
            "huge rekey-interval",
            good.replace(
                "rekey-interval = \"1h\"",
                "rekey-interval = 6148914691236517206",
            ),
        ),
        ("deep dotted key", format!("{good}\n{deep} = 1\n")),
        ("deep table header", format!("{good}\n[{deep}]\n")),
        (
            "IPv4-mapped address",
            good.replace("\"10.10.0.11\"", "\"::ffff:10.10.0.11\""),
        ),
    ]
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn hostile_files_are_rejected_and_the_daemon_keeps_the_last_good_policy() {
    let Some((ns, f)) = rig(
        "hostile_files_are_rejected_and_the_daemon_keeps_the_last_good_policy",
        "hostile",
    ) else {
        return;
    };
    let mut d = Daemon::start(&ns, &f, &[]);
    let before = policies(&ns);
    assert!(before.len() > 10, "the daemon installed the policy");
    let good = std::fs::read_to_string(f.policy()).unwrap();
    for (n, (what, text)) in hostile(&good).into_iter().enumerate() {
        assert!(text != good, "{what}: the edit applies to the example");
        f.replace(&text);
        wait_for(what, || {
            assert!(
                d.child.try_wait().unwrap().is_none(),
                "{what}: the daemon died"
            );
            view(&ns).unwrap()["reloads_failed"].as_u64() == Some(n as u64 + 1)
        });
        let v = view(&ns).unwrap();
        let err = v["last_error"].as_str().expect("last_error set");
        assert!(
            err.contains("policy.toml:") && !err.contains("policy.toml:1:1:"),
            "{what}: {err}"
        );
        assert!(
            err.len() < 4096,
            "{what}: a short message, {} bytes",
            err.len()
        );
        assert_eq!(
            policies(&ns),
            before,
            "{what}: nothing in the kernel changed"
        );
    }
    f.replace(&good);
    wait_for("the error to clear", || {
        view(&ns).unwrap()["last_error"] == Value::Null
    });
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon is up");
    assert_eq!(policies(&ns), before);
}

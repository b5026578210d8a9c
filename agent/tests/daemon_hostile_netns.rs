//! Hostile policy files under a running daemon, in a throw-away namespace: each class the
//! adversarial review found (issue 11) is rejected with a located error while the daemon
//! stays up and the kernel keeps the last good policy. Policies only. Needs root; skips
//! with a reason otherwise.

mod support;

use support::daemon::*;

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
        view(&ns).unwrap()["last_error"] == serde_json::Value::Null
    });
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon is up");
    assert_eq!(policies(&ns), before);
}

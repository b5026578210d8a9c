//! An in-place rewrite storm under a running daemon, on this machine's kernel in a
//! throw-away namespace: the policy file rewritten in place (truncate, then written in
//! pieces) about 100 times a second for 10 s, alternating with atomic renames, every
//! version valid. A reload must never reject a file caught half-written: 0 failed reloads
//! (the daemon's own counter), and the kernel ends where the last version puts it. Policies
//! only. Needs root; skips with a reason otherwise.
//!
//! `STORM_EXTRA="--debounce-ms 0"` runs the daemon without the settle window (a failure
//! is then counted as soon as a read fails): the test then fails, with hundreds of
//! rejections, as the daemon did before the window existed.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::daemon::*;

/// The example with one more exemption, on UDP port `port`: each version changes the kernel.
fn version(good: &str, port: u16) -> String {
    good.replacen(
        "[[exemptions]]",
        &format!(
            "[[exemptions]]\nname = \"v\"\nprotocol = \"udp\"\nports = [{port}]\n\n[[exemptions]]"
        ),
        1,
    )
}

/// Truncate and write in place, in three pieces (as a slow writer does).
fn write_in_place(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    let b = text.as_bytes();
    let third = b.len() / 3;
    for piece in [&b[..third], &b[third..2 * third], &b[2 * third..]] {
        f.write_all(piece).unwrap();
        std::thread::yield_now();
    }
}

#[test]
fn an_in_place_rewrite_storm_rejects_no_valid_file() {
    let Some((ns, f)) = rig("an_in_place_rewrite_storm_rejects_no_valid_file", "storm") else {
        return;
    };
    let good = std::fs::read_to_string(f.policy()).unwrap();
    let ports: Vec<u16> = (0..8).map(|i| 7000 + i).collect();
    let versions: Vec<String> = ports.iter().map(|p| version(&good, *p)).collect();
    let extra = std::env::var("STORM_EXTRA").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let mut d = Daemon::start(&ns, &f, &extra);

    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        let text = &versions[n % versions.len()];
        match n % 2 {
            0 => write_in_place(&f.policy(), text),
            _ => f.replace(text),
        }
        n += 1;
        // 100 writes a second, as far as the machine keeps up.
        let next = t0 + Duration::from_millis(10 * n as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let last = ports[(n - 1) % ports.len()];
    wait_for("the last version to reach the kernel", || {
        let p = policies(&ns);
        let has = |port: u16| p.iter().any(|l| l.contains(&format!("dport {port} ")));
        has(last) && ports.iter().filter(|p| **p != last).all(|p| !has(*p))
    });

    let v = view(&ns).unwrap();
    eprintln!(
        "storm: {n} writes in {:?}; reloads ok {}, failed {}",
        t0.elapsed(),
        v["reloads_ok"],
        v["reloads_failed"]
    );
    assert_eq!(v["reloads_failed"].as_u64(), Some(0), "{v}");
    assert!(v["last_rejected"].is_null(), "{v}");
    assert!(v["reloads_ok"].as_u64().unwrap() >= 1);
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon is up");

    // Exactly what a one-shot apply of the last version gives a fresh namespace.
    assert_eq!(policies(&ns), applied_fresh(&f));
}

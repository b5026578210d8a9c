//! `render` output is accepted by `ip -batch` (policy lines) on this machine's kernel, inside
//! a throw-away network namespace — never the root namespace. States need ESP, which this
//! kernel lacks: the lab checks those (tests/tests/lab_agents.rs, interoperability).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use agent::keys::{Identity, PrivateKey};
use agent::plan::{desired, Timestamp};

/// A network namespace removed on drop, also when the test fails.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        let name = format!("xa-render-{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .ok()?
            .success();
        ok.then_some(Netns(name))
    }
    fn ip(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut child = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn render_policy_lines_are_accepted_by_ip_batch() {
    if !is_root() {
        eprintln!("skipped: needs root to create a network namespace");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases = [
        ("seed-site-dmz", ["site", "db", "mp"].as_slice()),
        ("dual-stack", &["site", "db", "mp"]),
        ("exchange-ports", &["fe1", "fe2", "mailbox"]),
        ("two-site-tunnel", &["gw-east", "gw-west"]),
        ("db-cluster", &["app", "db1", "db2"]),
    ];
    for (example, hosts) in cases {
        let file = format!("examples/{example}.toml");
        let policy =
            policy_schema::load(&file, &std::fs::read_to_string(root.join(&file)).unwrap())
                .unwrap()
                .policy;
        for host in hosts {
            let key_text =
                std::fs::read_to_string(root.join(format!("examples/keys/{host}.key"))).unwrap();
            let id = Identity::resolve(
                &policy,
                PrivateKey::from_base64(&key_text, host).unwrap(),
                None,
            )
            .unwrap();
            let d = desired(
                &policy,
                &id,
                &BTreeSet::new(),
                Timestamp::from_secs(1_800_001_800),
            )
            .unwrap();
            let text = agent::report::ip_batch::render(&d, false);
            let lines = text
                .lines()
                .filter(|l| l.starts_with("xfrm policy add"))
                .count();
            assert!(
                lines >= d.policies.len(),
                "{example}/{host}: {lines} lines for {} policies",
                d.policies.len()
            );
            let ns = Netns::new(host).expect("ip netns add");
            let (ok, out) = ns.ip(&["-batch", "-"], Some(&text));
            assert!(
                ok,
                "{example}/{host}: ip -batch refused the render output:\n{out}\n---\n{text}"
            );
            let (_, listed) = ns.ip(&["xfrm", "policy", "list"], None);
            let installed = listed.lines().filter(|l| l.starts_with("src ")).count();
            assert_eq!(installed, lines, "{example}/{host}: installed policies");
        }
    }
}

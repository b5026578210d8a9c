//! `render` output is accepted by `ip -batch` (policy lines) on this machine's kernel, inside
//! a throw-away network namespace — never the root namespace. States need ESP, which this
//! kernel lacks: the lab checks those (tests/tests/lab_agents.rs, interoperability).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use agent::keys::{Identity, PrivateKey};
use agent::plan::{desired, Timestamp};
use support::ns::{privileged, TestNetns};

#[test]
fn render_policy_lines_are_accepted_by_ip_batch() {
    if !privileged("render_policy_lines_are_accepted_by_ip_batch") {
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
            let ns = TestNetns::new("render");
            if let Err(out) = ns.ip_batch(&text) {
                panic!(
                    "{example}/{host}: ip -batch refused the render output:\n{out}\n---\n{text}"
                );
            }
            let listed = ns.ip(&["xfrm", "policy", "list"]);
            let installed = listed.lines().filter(|l| l.starts_with("src ")).count();
            assert_eq!(installed, lines, "{example}/{host}: installed policies");
        }
    }
}

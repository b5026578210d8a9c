//! Fail-closed and interoperability in the namespace lab (run with `scripts/lab test`).

use std::collections::BTreeMap;

use e2e::lab::{self, Lab, UpOptions};
use e2e::matrix::{self, Options, Verdict};
use e2e::oracle::Outcome;
use e2e::remote::{self, Capture, Server};
use e2e::require_lab;
use e2e::topology::Family;
use policy_schema::Policy;

fn load(path: &std::path::Path) -> Policy {
    let text = std::fs::read_to_string(path).expect("policy file");
    policy_schema::load("policy.toml", &text)
        .unwrap_or_else(|d| panic!("policy does not load:\n{d}"))
        .policy
}

/// /proc/net/xfrm_stat of a host (per network namespace).
fn xfrm_stat(lab: &Lab, host: &str) -> BTreeMap<String, u64> {
    lab.sh(host, "cat /proc/net/xfrm_stat")
        .expect("xfrm_stat")
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

fn inbound_drops(s: &BTreeMap<String, u64>) -> u64 {
    [
        "XfrmInTmplMismatch",
        "XfrmInNoStates",
        "XfrmInNoPols",
        "XfrmInStateMismatch",
    ]
    .iter()
    .map(|k| s.get(*k).copied().unwrap_or(0))
    .sum()
}

/// mp loses every object (its agent flushed): traffic between mp and the intranet must be
/// dropped, and site must never send it in clear.
#[test]
#[ignore = "needs the lab: scripts/lab test"]
fn flushed_peer_fails_closed() {
    require_lab!();
    let lab = Lab::up(&UpOptions::default()).expect("lab up");
    let policy = load(&lab.policy);
    // Stop a daemon first (it would re-apply), then flush mp's objects.
    let pidfile = lab.state.join("pids/agent-mp");
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let agent = lab::agent_binary().display().to_string();
    lab.sh("mp", &format!("{agent} flush -c {}", lab.policy.display()))
        .expect("flush mp");
    assert_eq!(
        lab.sh("mp", "ip xfrm state; ip xfrm policy")
            .unwrap()
            .trim(),
        "",
        "mp still has XFRM objects"
    );

    // For the oracle, mp is now an outsider: no key in use, no policy.
    let mut without_mp = policy.clone();
    without_mp.hosts.retain(|h| h.name != "mp");
    let hosts: Vec<_> = ["site", "db", "mp"]
        .iter()
        .map(|h| lab.topo.host(h).unwrap())
        .collect();
    let cells: Vec<_> = matrix::cells(&without_mp, &lab.topo, &hosts)
        .into_iter()
        .filter(|c| (c.src == "mp") != (c.dst == "mp"))
        .collect();
    assert!(cells.iter().any(|c| c.expect.outcome == Outcome::Dropped));
    let before = xfrm_stat(&lab, "site");
    let obs = matrix::run(&lab.exec, &lab.topo, &cells, &Options::default()).expect("matrix run");
    let after = xfrm_stat(&lab, "site");
    let verdicts: Vec<_> = cells
        .iter()
        .zip(&obs)
        .map(|(c, o)| matrix::verdict(c, o, &Options::default()))
        .collect();
    println!("{}", e2e::report::render(&cells, &obs, &verdicts));
    lab.down().expect("clean tear-down");

    assert!(
        verdicts.iter().all(|v| *v == Verdict::Pass),
        "a cell did not fail closed (table above)"
    );
    let leaked: usize = cells
        .iter()
        .zip(&obs)
        .filter(|(c, _)| c.src == "site")
        .map(|(_, o)| o.counts.clear_by_src)
        .sum();
    assert_eq!(leaked, 0, "site sent clear packets to mp");
    assert!(
        inbound_drops(&after) > inbound_drops(&before),
        "site's kernel counted no dropped clear packet from mp"
    );
}

/// `peer` is configured only with the `ip xfrm` commands `xfrm-agent render --show-keys`
/// prints, talks ESP to agent-managed site, and tshark decrypts the capture with the keys
/// from `xfrm-agent plan --show-keys`: the SAs are standard ESP.
#[test]
#[ignore = "needs the lab: scripts/lab test"]
fn render_output_interoperates_and_tshark_decrypts() {
    require_lab!();
    let agent = lab::agent_binary();
    let scratch = e2e::repo_root().join("target/lab/interop");
    std::fs::create_dir_all(&scratch).unwrap();
    let (policy, key) = (scratch.join("policy.toml"), scratch.join("peer.key"));
    write_policy_with_peer(&agent, &policy, &key);

    let lab = Lab::up(&UpOptions {
        with: vec!["peer".into()],
        policy: Some(policy.clone()),
        ..Default::default()
    })
    .expect("lab up");
    let render = run(
        &agent,
        &[
            "render",
            "-c",
            &lab.policy.display().to_string(),
            "--key",
            &key.display().to_string(),
            "--show-keys",
        ],
    );
    std::fs::write(scratch.join("peer.ip"), &render).unwrap();
    lab.sh(
        "peer",
        &format!("ip -batch {}", scratch.join("peer.ip").display()),
    )
    .expect("render output applies with ip -batch");
    let plan = run(
        &agent,
        &[
            "plan",
            "-c",
            &lab.policy.display().to_string(),
            "--key",
            &key.display().to_string(),
            "--json",
            "--show-keys",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("plan --json");

    let site = lab.topo.host("site").unwrap();
    let peer = lab.topo.host("peer").unwrap();
    let server = Server::start(
        &lab.exec,
        "site",
        &[site.addr(Family::V4), site.addr(Family::V6)],
        &[443],
        &[53],
    )
    .unwrap();
    let cap = Capture::start(&lab.exec, "peer").unwrap();
    let probes = e2e::probe::Batch {
        concurrent: false,
        timeout_ms: 3000,
        settle_ms: 20,
        probes: [Family::V4, Family::V6]
            .iter()
            .enumerate()
            .map(|(i, f)| e2e::probe::Probe {
                id: i,
                src: peer.addr(*f),
                dst: site.addr(*f),
                proto: "tcp".into(),
                port: 443,
            })
            .collect(),
    };
    let results = remote::finish_probes(
        remote::start_probes(&lab.exec, "peer", &probes).unwrap(),
        "peer",
    )
    .unwrap();
    let mut server = server;
    server.mark().unwrap();
    let packets = cap.stop(true).unwrap();
    server.stop().unwrap();
    let pcap = std::fs::read(lab.state.join("capture-peer.pcap")).unwrap();
    std::fs::write(scratch.join("peer.pcap"), pcap).unwrap();
    lab.down().expect("clean tear-down");

    assert!(
        results.iter().all(|r| r.ok),
        "peer could not talk to site: {results:?}"
    );
    let esp = packets
        .iter()
        .filter(|p| p.outgoing && matches!(p.kind, e2e::pcap::Kind::Esp { .. }))
        .count();
    assert!(esp > 0, "peer sent no ESP");
    let decrypted = tshark_decrypted_payloads(&scratch, &plan);
    assert!(
        decrypted.iter().any(|p| p.contains("xfrm-lab probe")),
        "tshark decrypted no probe payload; got {decrypted:?}"
    );
}

fn run(bin: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("run xfrm-agent");
    assert!(
        out.status.success(),
        "xfrm-agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A copy of the lab's policy with `peer` added as a member, and peer's key (0600).
fn write_policy_with_peer(
    agent: &std::path::Path,
    policy: &std::path::Path,
    key: &std::path::Path,
) {
    let src = e2e::repo_root().join("tests/lab/keys/peer.key");
    std::fs::copy(&src, key).unwrap();
    std::fs::set_permissions(key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new(agent)
        .arg("pubkey")
        .stdin(std::fs::File::open(key).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "xfrm-agent pubkey");
    let public = String::from_utf8(out.stdout).unwrap();
    let base = std::fs::read_to_string(e2e::repo_root().join("examples/dual-stack.toml")).unwrap();
    let text = format!(
        "{base}\n# Added by the interop test: configured only by `xfrm-agent render`.\n[[hosts]]\nname = \"peer\"\naddresses = [\"10.10.0.12\", \"fd00:10::12\"]\npublic-key = \"{}\"\n",
        public.trim()
    );
    std::fs::write(policy, text).unwrap();
}

/// Decrypt the capture with tshark, given the SAs of `plan --json --show-keys`; returns
/// the decrypted TCP payloads as text.
fn tshark_decrypted_payloads(dir: &std::path::Path, plan: &serde_json::Value) -> Vec<String> {
    let conf = dir.join("wireshark");
    std::fs::create_dir_all(&conf).unwrap();
    let mut uat = String::from("# esp_sa from xfrm-agent plan --show-keys\n");
    for s in plan["states"].as_array().expect("states") {
        let (src, dst) = (s["src"].as_str().unwrap(), s["dst"].as_str().unwrap());
        let fam = if src.contains(':') { "IPv6" } else { "IPv4" };
        let icv = s["icv_bits"].as_u64().unwrap_or(128) / 8;
        let enc = format!("AES-GCM with {icv} octet ICV [RFC4106]");
        let key = s["key"]
            .as_str()
            .expect("key (--show-keys)")
            .trim_start_matches("0x");
        uat.push_str(&format!(
            "\"{fam}\",\"{src}\",\"{dst}\",\"{}\",\"{enc}\",\"0x{key}\",\"NULL\",\"\"\n",
            s["spi"].as_str().unwrap()
        ));
    }
    std::fs::write(conf.join("esp_sa"), uat).unwrap();
    let out = std::process::Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", &conf)
        .args(["-n", "-r"])
        .arg(dir.join("peer.pcap"))
        .args([
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-Y",
            "esp && tcp.payload",
            "-T",
            "fields",
            "-e",
            "tcp.payload",
        ])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|hex| {
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

//! Fail-closed and interoperability in the namespace lab (run with `scripts/lab test`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::interop::{self, RenderedSa};
use e2e::lab::{self, Lab, UpOptions};
use e2e::matrix::{self, Cell, Observation, Options, Verdict};
use e2e::oracle::Outcome;
use e2e::pcap::{Kind, Packet};
use e2e::probe::{Batch, Probe};
use e2e::remote::{self, Capture, Server};
use e2e::require_lab;
use e2e::topology::Family;
use policy_schema::Policy;

fn load(path: &Path) -> Policy {
    let text = std::fs::read_to_string(path).expect("policy file");
    policy_schema::load("policy.toml", &text)
        .unwrap_or_else(|d| panic!("policy does not load:\n{d}"))
        .policy
}

/// /proc/net/xfrm_stat of a host (per network namespace).
fn xfrm_stat(lab: &Lab, host: &str) -> BTreeMap<String, u64> {
    e2e::daemon::xfrm_stat(lab, host).expect("xfrm_stat")
}

/// Inbound packets the kernel dropped for want of a matching SA or policy.
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

/// Stop mp's daemon if one runs (it would re-apply), and wait until it is gone.
fn stop_agent(lab: &Lab, host: &str) {
    let Ok(pid) = std::fs::read_to_string(lab.state.join(format!("pids/agent-{host}"))) else {
        return;
    };
    let pid = pid.trim();
    let _ = std::process::Command::new("kill").arg(pid).status();
    let proc = PathBuf::from("/proc").join(pid);
    for _ in 0..100 {
        if !proc.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the agent on {host} (pid {pid}) did not exit within 10 s of SIGTERM");
}

/// Clear packets `host` sent of flows it must protect: the cells where the oracle says
/// this end requires ESP (exempt flows such as ICMP and AMT are clear by design).
fn clear_sent_by(host: &str, cells: &[Cell], obs: &[Observation]) -> usize {
    cells
        .iter()
        .zip(obs)
        .map(|(c, o)| {
            let by_src = if c.src == host && c.expect.src.requires_esp() {
                o.counts.clear_by_src
            } else {
                0
            };
            let by_dst = if c.dst == host && c.expect.dst.requires_esp() {
                o.counts.clear_by_dst
            } else {
                0
            };
            by_src + by_dst
        })
        .sum()
}

/// mp loses every object (its agent stopped and flushed): the flows between mp and the
/// intranet that the intranet must protect are dropped, and no intranet host ever sends
/// them in clear; what is exempt (ICMP, AMT) stays clear.
#[test]
#[ignore = "needs the lab: scripts/lab test"]
fn flushed_peer_fails_closed() {
    require_lab!();
    let lab = Lab::up(&UpOptions::default()).expect("lab up");
    let policy = load(&lab.policy);
    stop_agent(&lab, "mp");
    let agent = lab::agent_binary().display().to_string();
    lab.sh("mp", &format!("{agent} flush -c {}", lab.policy.display()))
        .expect("flush mp");
    let left = lab.sh("mp", "ip xfrm state; ip xfrm policy").unwrap();
    assert_eq!(left.trim(), "", "mp still has XFRM objects");

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
    let protected = |c: &Cell| c.expect.src.requires_esp() || c.expect.dst.requires_esp();
    assert!(cells
        .iter()
        .any(|c| protected(c) && c.expect.outcome == Outcome::Dropped));
    assert!(cells.iter().any(|c| c.expect.outcome == Outcome::Clear));
    let before = xfrm_stat(&lab, "site");
    let obs = matrix::run(&lab.exec, &lab.topo, &cells, &Options::default()).expect("matrix run");
    let after = xfrm_stat(&lab, "site");
    let verdicts: Vec<_> = cells
        .iter()
        .zip(&obs)
        .map(|(c, o)| matrix::verdict(c, o))
        .collect();
    println!("{}", e2e::report::render(&cells, &obs, &verdicts));
    lab.down().expect("clean tear-down");

    for ((c, o), v) in cells.iter().zip(&obs).zip(&verdicts) {
        assert_eq!(*v, Verdict::Pass, "{} -> {} {}", c.src, c.dst, c.service());
        if protected(c) {
            assert!(!o.ok, "{} -> {} {} got through", c.src, c.dst, c.service());
        }
    }
    for host in ["site", "db"] {
        assert_eq!(
            clear_sent_by(host, &cells, &obs),
            0,
            "{host} sent protected flows to mp in clear"
        );
    }
    // mp now answers and opens connections in clear: site's kernel must have refused them.
    assert!(
        inbound_drops(&after) > inbound_drops(&before),
        "site's kernel counted no dropped clear packet from mp: {before:?} -> {after:?}"
    );
}

/// `peer` is configured only with the `ip xfrm` commands `xfrm-agent render --show-keys`
/// prints, talks ESP to agent-managed site, and tshark decrypts the capture with the keys
/// from that same render output: the SAs are standard ESP.
#[test]
#[ignore = "needs the lab: scripts/lab test"]
fn render_output_interoperates_and_tshark_decrypts() {
    require_lab!();
    let agent = lab::agent_binary();
    let scratch = e2e::repo_root().join("target/lab/interop");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let (policy, key) = (scratch.join("policy.toml"), scratch.join("peer.key"));
    write_policy_with_peer(&agent, &policy, &key);

    let lab = Lab::up(&UpOptions {
        with: vec!["peer".into()],
        policy: Some(policy.clone()),
        ..Default::default()
    })
    .expect("lab up");
    let policy = lab.policy.display().to_string();
    away_from_epoch_steps(&agent, &policy, &key);
    let render = run(
        &agent,
        &["render", "-c", &policy, "--key", &path(&key), "--show-keys"],
    );
    // Site's agent applied when the lab came up; apply once more so that both ends' keys
    // come from the same key epoch even if one just ended (a one-shot apply does not
    // follow the epoch clock, and peer's configuration is static).
    let site_key = lab.keys.join("site.key");
    lab.sh(
        "site",
        &format!(
            "{} apply -c {policy} --key {}",
            path(&agent),
            path(&site_key)
        ),
    )
    .expect("re-apply site");
    let rendered = scratch.join("peer.ip");
    std::fs::write(&rendered, &render).unwrap();
    lab.sh("peer", &format!("ip -batch {}", path(&rendered)))
        .expect("render output applies with ip -batch");

    let (site, peer) = (
        lab.topo.host("site").unwrap(),
        lab.topo.host("peer").unwrap(),
    );
    let families = [Family::V4, Family::V6];
    let site_addrs: Vec<IpAddr> = families.iter().map(|f| site.addr(*f)).collect();
    let peer_addrs: Vec<IpAddr> = families.iter().map(|f| peer.addr(*f)).collect();
    let mut server = Server::start(&lab.exec, "site", &site_addrs, &[443], &[]).unwrap();
    // The capture is on site: its echo server sends the end marker there.
    let cap = Capture::start(&lab.exec, "site").unwrap();
    let batch = Batch {
        concurrent: false,
        timeout_ms: 3000,
        settle_ms: 20,
        probes: (0..families.len())
            .map(|i| Probe {
                id: i,
                src: peer_addrs[i],
                dst: site_addrs[i],
                proto: "tcp".into(),
                port: 443,
            })
            .collect(),
    };
    let results = remote::finish_probes(
        remote::start_probes(&lab.exec, "peer", &batch).unwrap(),
        "peer",
    )
    .unwrap();
    server.mark().unwrap();
    let packets = cap.stop(true).unwrap();
    server.stop().unwrap();
    let pcap = scratch.join("site.pcap");
    std::fs::copy(lab.state.join("capture-site.pcap"), &pcap).unwrap();
    lab.down().expect("clean tear-down");

    assert!(
        results.iter().all(|r| r.ok),
        "peer could not talk to site: {results:?}"
    );
    let sas = interop::sas_from_render(&render).expect("render's states");
    check_wire(&packets, &sas, &site_addrs, &peer_addrs);
    check_decrypted(&scratch, &pcap, &sas, &site_addrs, &peer_addrs);
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// On the wire between peer and site: ESP both ways in both families, on exactly the SPIs
/// of peer's rendered SAs, and no clear TCP.
fn check_wire(packets: &[Packet], sas: &[RenderedSa], site: &[IpAddr], peer: &[IpAddr]) {
    let between = |p: &&Packet| {
        (site.contains(&p.src) && peer.contains(&p.dst))
            || (peer.contains(&p.src) && site.contains(&p.dst))
    };
    let flow: Vec<&Packet> = packets.iter().filter(between).collect();
    for (s, d) in site.iter().zip(peer) {
        for (from, to) in [(s, d), (d, s)] {
            let esp: Vec<u32> = flow
                .iter()
                .filter(|p| p.src == *from && p.dst == *to)
                .filter_map(|p| match p.kind {
                    Kind::Esp { spi } => Some(spi),
                    _ => None,
                })
                .collect();
            assert!(!esp.is_empty(), "no ESP from {from} to {to}");
            for spi in esp {
                assert!(
                    sas.iter()
                        .any(|sa| sa.spi == spi && sa.src == *from && sa.dst == *to),
                    "ESP {from} -> {to} on SPI {spi:#010x}, not one of peer's rendered SAs"
                );
            }
        }
    }
    let clear: Vec<_> = flow
        .iter()
        .filter(|p| matches!(p.kind, Kind::Tcp { .. }))
        .collect();
    assert!(
        clear.is_empty(),
        "clear TCP between peer and site: {clear:?}"
    );
}

/// tshark, given only the rendered SAs, decrypts every ESP packet between peer and site
/// into TCP port 443 traffic and sees the probe's payload in each direction of each family,
/// on one of that direction's SAs (near an epoch step there are two: see
/// [`interop::directions_without_payload`]).
fn check_decrypted(dir: &Path, pcap: &Path, sas: &[RenderedSa], site: &[IpAddr], peer: &[IpAddr]) {
    let ours: Vec<RenderedSa> = sas
        .iter()
        .filter(|s| {
            (site.contains(&s.src) && peer.contains(&s.dst))
                || (peer.contains(&s.src) && site.contains(&s.dst))
        })
        .cloned()
        .collect();
    let dissected = interop::tshark_dissect(dir, pcap, &ours).expect("tshark");
    let mine: Vec<_> = dissected
        .iter()
        .filter(|d| ours.iter().any(|s| s.spi == d.spi))
        .collect();
    assert!(!mine.is_empty(), "tshark saw no ESP of peer's SAs");
    println!(
        "tshark: {} ESP packets of peer's {} SAs, {} decrypted to TCP, {} with a probe payload",
        mine.len(),
        ours.len(),
        mine.iter().filter(|d| d.tcp_ports.is_some()).count(),
        mine.iter()
            .filter(|d| d.payload.starts_with(b"xfrm-lab probe"))
            .count()
    );
    for d in &mine {
        let ports = d
            .tcp_ports
            .unwrap_or_else(|| panic!("tshark did not decrypt SPI {:#010x}: {d:?}", d.spi));
        assert!(
            ports.0 == 443 || ports.1 == 443,
            "inner TCP ports {ports:?}"
        );
    }
    let owned: Vec<interop::Dissected> = mine.into_iter().cloned().collect();
    let missing = interop::directions_without_payload(&ours, &owned, b"xfrm-lab probe");
    assert!(
        missing.is_empty(),
        "no decrypted probe payload on (source, destination, SPIs): {missing:x?}"
    );
}

/// Peer's SAs are static (rendered once) while site's daemon follows the epoch clock: if
/// the test ran across a rotation step, site would switch to SAs peer lacks and the test
/// would fail for a reason it does not test. Wait until the next step is ≥ 30 s away (the
/// test takes well under that); this waits on the wall clock by design, at most one step.
fn away_from_epoch_steps(agent: &Path, policy: &str, key: &Path) {
    for _ in 0..4 {
        let plan = run(
            agent,
            &["plan", "-c", policy, "--key", &path(key), "--json"],
        );
        let v: serde_json::Value = serde_json::from_str(&plan).expect("plan --json");
        let Some(next) = v["next_change"].as_u64() else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if next.saturating_sub(now) >= 30 {
            return;
        }
        eprintln!(
            "interop: the next epoch step is {} s away; waiting past it",
            next - now
        );
        std::thread::sleep(Duration::from_secs(next.saturating_sub(now) + 2));
    }
}

fn run(bin: &Path, args: &[&str]) -> String {
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
fn write_policy_with_peer(agent: &Path, policy: &Path, key: &Path) {
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

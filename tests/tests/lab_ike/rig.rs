//! The IKE lab's fixtures: the PKI (made once per test process by tests/lab/ike/mkpki.sh),
//! the policy variant, the key directory, the roamer's agent, TCP and UDP reachability
//! probes, and the daemon's IKE failure counters.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use e2e::daemon;
use e2e::lab::{self, Lab, UpOptions};
use e2e::probe::{Batch, Probe};
use e2e::remote;
use e2e::topology::Family;
use serde_json::Value;

/// The inventory hosts that get a corp certificate (every member of the lab).
pub const MEMBERS: [&str; 3] = ["site", "db", "mp"];

/// target/lab/ike: the PKI, policy, keys and charon's files (a host path: inside UML, /tmp
/// and /run are private tmpfs, and charon-ns.sh wants its folder outside both).
pub fn work_dir() -> PathBuf {
    e2e::repo_root().join("target/lab/ike")
}

/// The run's PKI, made once per test process by strongSwan's `pki`.
pub fn pki() -> &'static Path {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = work_dir().join("pki");
        let script = e2e::repo_root().join("tests/lab/ike/mkpki.sh");
        let out = Command::new(&script)
            .arg(&dir)
            .output()
            .expect("running tests/lab/ike/mkpki.sh");
        assert!(
            out.status.success(),
            "mkpki.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The seed (examples/dual-stack.toml) with the lab CA as authority `corp`, its rule
/// `intranet-isolation` admitting `ca:corp` instead of `any` (the same addresses, so the
/// flow matrix of the six standard hosts is unchanged), and site ↔ db keyed over IKEv2.
pub fn policy_text(pki: &Path) -> String {
    let seed = std::fs::read_to_string(e2e::repo_root().join("examples/dual-stack.toml"))
        .expect("examples/dual-stack.toml");
    let head = "[[rules]]\nname = \"intranet-isolation\"";
    let at = seed.find(head).expect("the seed's intranet-isolation rule");
    let (before, rule) = seed.split_at(at);
    let rule = rule.replacen("from = [\"any\"]", "from = [\"ca:corp\"]", 1);
    assert!(
        rule.contains("ca:corp"),
        "the seed's rule has no from = [\"any\"]"
    );
    let p = pki.display();
    format!(
        r#"{before}[[authorities]]
name = "corp"                 # the lab CA (tests/lab/ike/mkpki.sh, a fresh one per run)
ca-certificates = ["{p}/corp-ca.pem"]
crls = ["{p}/corp.crl"]
revocation = "strict"
scope = "any"                 # also vouches for inventory hosts keyed over IKEv2 (site, db)

[[rules]]
name = "site-db-ikev2"        # two inventory hosts keyed over IKEv2 (forward secrecy)
from = ["host:site"]
to = ["host:db"]
action = "require"
key-exchange = "ikev2"

{rule}"#
    )
}

/// A scratch folder `name` under target/lab/ike, holding the policy variant and a key
/// directory: the example X25519 keys of the members and their corp certificates.
pub fn prepare(name: &str) -> UpOptions {
    prepare_with(name, "")
}

/// [`prepare`] with `rules` (TOML `[[rules]]` entries) before the variant's rules.
pub fn prepare_with(name: &str, rules: &str) -> UpOptions {
    let pki = pki();
    let dir = work_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, with_rules(&policy_text(pki), rules)).unwrap();
    let examples = e2e::repo_root().join("examples/keys");
    for h in MEMBERS {
        copy(
            &examples.join(format!("{h}.key")),
            &keys.join(format!("{h}.key")),
            0o600,
        );
        install_cert(pki, h, h, &keys);
    }
    UpOptions {
        with: vec!["roamer".into()],
        policy: Some(policy),
        keys: Some(keys),
        no_agents: false,
    }
}

/// [`prepare`] with the members' CRL file a copy of the PKI's, which a test may replace
/// without touching the other tests' PKI. It lives under /tmp, a tmpfs inside UML: a
/// rename on the hostfs that target/ is on raised no inotify event for the daemons (seen
/// in UML; a tmpfs one does).
pub fn prepare_own_crl(name: &str) -> (UpOptions, PathBuf) {
    let options = prepare(name);
    let dir = work_dir().join(name);
    let crl_dir = std::env::temp_dir().join(format!("xfrm-lab-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&crl_dir).unwrap();
    let crl = crl_dir.join("corp.crl");
    copy(&pki().join("corp.crl"), &crl, 0o644);
    let text = policy_text(pki()).replace(
        &format!("{}/corp.crl", pki().display()),
        &crl.display().to_string(),
    );
    std::fs::write(dir.join("policy.toml"), text).unwrap();
    (options, crl)
}

/// strongSwan's `pki` with the lab PKI's configuration (tests/lab/ike/mkpki.sh).
pub fn pki_cmd(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("pki")
        .args(args)
        .env("STRONGSWAN_CONF", pki().join("pki.strongswan.conf"))
        .output()?;
    ensure!(
        out.status.success(),
        "pki {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out.stdout)
}

/// `text` with `rules` before its first rule.
pub fn with_rules(text: &str, rules: &str) -> String {
    let at = text.find("[[rules]]").expect("the variant has rules");
    format!("{}{rules}{}", &text[..at], &text[at..])
}

fn copy(from: &Path, to: &Path, mode: u32) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// `HOST-cert.{pem,key}` in `keys` from the PKI's `cert` (scripts/provision/agent passes
/// them as `--cert`/`--cert-key`).
pub fn install_cert(pki: &Path, cert: &str, host: &str, keys: &Path) {
    copy(
        &pki.join(format!("{cert}-cert.pem")),
        &keys.join(format!("{host}-cert.pem")),
        0o644,
    );
    copy(
        &pki.join(format!("{cert}-cert.key")),
        &keys.join(format!("{host}-cert.key")),
        0o600,
    );
}

/// The roamer's own policy file: the fleet's file lists it nowhere, so to its own agent
/// the roamer is the one inventory host, with `encapsulation = "udp"` (its path to the
/// intranet drops protocol 50), and every intranet host is a peer admitted by a corp
/// certificate (`scope = "any"` on the `zone:intranet` side).
pub fn roamer_policy_text(pki: &Path, public_key: &str) -> String {
    let p = pki.display();
    format!(
        r#"# The roamer's own file (tests/tests/lab_ike/rig.rs): a laptop outside the fleet.
version = 1

[defaults]
cipher = "aes-gcm-128"

[zones]
intranet = ["10.10.0.0/24", "fd00:10::/64"]

[[hosts]]
name = "roamer"
addresses = ["10.20.0.40", "fd00:20::40"]
public-key = "{public_key}"
encapsulation = "udp"

[[authorities]]
name = "corp"
ca-certificates = ["{p}/corp-ca.pem"]
crls = ["{p}/corp.crl"]
revocation = "strict"
scope = "any"

[[exemptions]]
name = "ike-nat-t"
protocol = "udp"
ports = [500, 4500]

[[exemptions]]
name = "icmp"
protocol = "icmp"

[[exemptions]]
name = "icmpv6"
protocol = "icmpv6"

[[rules]]
name = "to-the-intranet"
from = ["host:roamer"]
to = ["zone:intranet"]
action = "require"
"#
    )
}

/// Start xfrm-agent on the roamer with its own file ([`roamer_policy_text`]), a fresh
/// X25519 key and its corp certificate, through scripts/provision/agent (which records
/// its pid for tear-down); wait until its daemon answers and has reconciled.
pub fn start_roamer_agent(lab: &Lab) -> anyhow::Result<u32> {
    start_roamer_agent_with(lab, "roamer")
}

/// [`start_roamer_agent`] with the PKI's certificate `cert` (`CERT-cert.{pem,key}`).
pub fn start_roamer_agent_with(lab: &Lab, cert: &str) -> anyhow::Result<u32> {
    let agent = lab::agent_binary();
    let key = lab.keys.join("roamer.key");
    let out = Command::new(&agent).arg("keygen").output()?;
    ensure!(out.status.success(), "xfrm-agent keygen failed");
    std::fs::write(&key, &out.stdout)?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let out = Command::new(&agent)
        .arg("pubkey")
        .stdin(std::fs::File::open(&key)?)
        .output()?;
    ensure!(out.status.success(), "xfrm-agent pubkey failed");
    let public = String::from_utf8(out.stdout)?.trim().to_string();
    install_cert(pki(), cert, "roamer", &lab.keys);
    let policy = lab.state.join("roamer-policy.toml");
    std::fs::write(&policy, roamer_policy_text(pki(), &public))?;
    let out = Command::new("ip")
        .args(["netns", "exec", "roamer"])
        .arg(e2e::repo_root().join("scripts/provision/agent"))
        .arg("roamer")
        .env("LAB_STATE", &lab.state)
        .env("LAB_POLICY", &policy)
        .env("LAB_KEYS", &lab.keys)
        .env("XFRM_AGENT", &agent)
        .output()?;
    ensure!(
        out.status.success(),
        "roamer: provision/agent failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let pid = daemon::recorded_pid(lab, "roamer")?;
    daemon::poll(
        "the roamer's daemon answers",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let v = daemon::view("roamer")?;
            Ok((daemon::count(&v, "reconciles") > 0).then_some(()))
        },
    )?;
    Ok(pid)
}

pub fn addr(lab: &Lab, host: &str, f: Family) -> IpAddr {
    lab.topo.host(host).unwrap().addr(f)
}

/// One probe from `host` (src → dst, "tcp" or "udp", port): whether its echo came back.
pub fn probe_once(
    lab: &Lab,
    host: &str,
    src: IpAddr,
    dst: IpAddr,
    proto: &str,
    port: u16,
) -> anyhow::Result<bool> {
    Ok(probe(lab, host, (src, dst), proto, port, (2000, 50))?.ok)
}

/// One probe from `host`, given `timeout_ms` for its echo and `settle_ms` after it.
pub fn probe(
    lab: &Lab,
    host: &str,
    (src, dst): (IpAddr, IpAddr),
    proto: &str,
    port: u16,
    (timeout_ms, settle_ms): (u64, u64),
) -> anyhow::Result<e2e::probe::Result> {
    let batch = Batch {
        concurrent: false,
        timeout_ms,
        settle_ms,
        probes: vec![Probe {
            id: 0,
            src,
            dst,
            proto: proto.into(),
            port,
        }],
    };
    let run = remote::start_probes(&lab.exec, host, &batch)?;
    let res = remote::finish_probes(run, host)?;
    res.into_iter().next().context("no probe result")
}

/// Probe until one echo comes back (the first packets start the exchange and wait for
/// it), within `limit`; returns how long it took.
pub fn reach(
    lab: &Lab,
    host: &str,
    src: IpAddr,
    dst: IpAddr,
    proto: &str,
    port: u16,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    daemon::poll(
        &format!("{host}: {proto} {src} → {dst}:{port} answered"),
        limit,
        Duration::from_millis(200),
        || Ok(probe_once(lab, host, src, dst, proto, port)?.then_some(())),
    )?;
    Ok(t0.elapsed())
}

/// The first value named `key` anywhere in the daemon's view (its IKE section's place in
/// `status --daemon --json` is the daemon's business).
pub fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

/// The IKEv2 peers of the daemon's view (`peers`: identity, authority, address, suite,
/// rekeys, …).
pub fn ike_peers(v: &Value) -> Vec<Value> {
    find_key(v, "peers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The daemon's IKE failures by reason (`auth-failed`, `revoked`, …).
pub fn failures(v: &Value) -> BTreeMap<String, u64> {
    counts(v, "failures")
}

/// A number of the daemon's IKE view (`half_open`, `ike_sas`), 0 if absent.
pub fn number(v: &Value, key: &str) -> u64 {
    find_key(v, key).and_then(Value::as_u64).unwrap_or(0)
}

/// A map of counters of the daemon's IKE view by name (`failures`, `refused`).
pub fn counts(v: &Value, key: &str) -> BTreeMap<String, u64> {
    find_key(v, key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The 256-SPI slots (their first SPI) that static keying uses for site's pairs: every
/// SPI of `xfrm-agent render` for site with the seed (static keys for every pair, the
/// same inventory and SPI range as the IKE variant), rounded down to its slot. Site's
/// static pairs reach every inventory address, so these are all the static slots.
pub fn static_slots() -> anyhow::Result<std::collections::BTreeSet<u32>> {
    let root = e2e::repo_root();
    // The agent refuses a key others can read; git keeps no modes.
    let key = work_dir().join("render-site.key");
    std::fs::create_dir_all(work_dir())?;
    copy(&root.join("examples/keys/site.key"), &key, 0o600);
    let out = Command::new(lab::agent_binary())
        .arg("render")
        .arg("-c")
        .arg(root.join("examples/dual-stack.toml"))
        .arg("--key")
        .arg(&key)
        .output()?;
    ensure!(
        out.status.success(),
        "xfrm-agent render: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8(out.stdout)?;
    let slots: std::collections::BTreeSet<u32> = text
        .lines()
        .filter(|l| l.contains("state add"))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "spi");
            let spi = words.nth(1)?.trim_start_matches("0x");
            u32::from_str_radix(spi, 16).ok()
        })
        .map(|spi| spi & !0xff)
        .collect();
    ensure!(!slots.is_empty(), "no SA in render's output:\n{text}");
    Ok(slots)
}

/// Owned SAs of `host` between `a` and `b` (either direction), from `ip -s xfrm state`.
pub fn owned_sas(host: &str, a: IpAddr, b: IpAddr) -> anyhow::Result<Vec<e2e::xfrm::State>> {
    Ok(daemon::states(host)
        .with_context(|| format!("{host}: ip xfrm state"))?
        .into_iter()
        .filter(|s| s.owned() && ((s.src == a && s.dst == b) || (s.src == b && s.dst == a)))
        .collect())
}

//! Two daemons keying an inventory pair over IKEv2 (`key-exchange = "ikev2"`), each in its
//! own namespace over veth, with certificates from one test CA: traffic from site raises an
//! acquire, site's daemon starts the exchange, and both daemons report the peer
//! authenticated and try to install the negotiated SAs (the host kernel has no ESP, so the
//! writes are refused: the view says `esp` is missing). Real ESP runs in the UML lab.
//! A reload turns IKEv2 on and off without a restart: the IKE sockets open and close.
//! Skips without root.
//!   cargo test -p agent --test daemon_ike_pair_netns

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use ike::cert::testpki::rcgen::SanType;
use ike::cert::testpki::{Pki, TestKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::Value;
use support::daemon::{view, wait_for, Daemon, AGENT};
use support::ns::{privileged, TestNetns};

const SITE: &str = "10.10.0.10";
const DB: &str = "10.10.0.11";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = (b64.as_bytes().chunks(64))
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// The policy: site and db (the example keys), one CA of scope "any", and their pair
/// keyed over IKEv2 under `require`.
fn policy(ca: &Path) -> String {
    format!(
        r#"version = 1

[[authorities]]
name = "corp"
ca-certificates = ["{}"]
revocation = "relaxed"
scope = "any"

[[hosts]]
name = "site"
addresses = ["{SITE}"]
public-key = "afHYlNMD37507eZrZqsbd+jZV3lhnbG36Ad3QnFbgQE="

[[hosts]]
name = "db"
addresses = ["{DB}"]
public-key = "t8bqXUBXDk5Wy7r3iL2JDfz1/ooQRPrlEmOAyVtb0xk="

[[exemptions]]
name = "ike"
protocol = "udp"
ports = [500, 4500]

[[rules]]
name = "site-db"
from = ["host:site"]
to = ["host:db"]
action = "require"
key-exchange = "ikev2"
"#,
        ca.display()
    )
}

/// One host's files: policy, static key, certificate (IP SAN) and its key.
struct HostFiles {
    dir: PathBuf,
}

impl HostFiles {
    fn new(pki: &Pki, host: &str, addr: &str, seed: u8) -> HostFiles {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("xa-ikepair-{host}-{seed}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = write(&dir, "ca.pem", &pem("CERTIFICATE", &pki.ca_der), 0o644);
        write(&dir, "policy.toml", &policy(&ca), 0o644);
        let key = std::fs::read_to_string(repo(&format!("examples/keys/{host}.key"))).unwrap();
        write(&dir, "host.key", &key, 0o600);
        let k = TestKey::new(seed);
        let cert = pki.leaf(&k, u64::from(seed), |p| {
            p.subject_alt_names = vec![SanType::IpAddress(addr.parse().unwrap())];
        });
        write(&dir, "cert.pem", &pem("CERTIFICATE", &cert), 0o644);
        let sk = p256::SecretKey::from(&k.sk);
        let key_pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        write(&dir, "cert.key", &key_pem, 0o600);
        HostFiles { dir }
    }

    /// Replace the policy atomically with the pair keyed statically (no IKEv2 left).
    fn drop_ikev2(&self) {
        self.edit(|text| text.replace("key-exchange = \"ikev2\"\n", ""));
    }

    /// Replace the policy atomically with `f` of its text.
    fn edit(&self, f: impl FnOnce(&str) -> String) {
        let p = self.dir.join("policy.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        let tmp = self.dir.join(".policy.toml.new");
        std::fs::write(&tmp, f(&text)).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }

    fn start(&self, ns: &TestNetns) -> Daemon {
        let mut c = Command::new(AGENT);
        c.args(["run", "--netns", &ns.name, "-c"])
            .arg(self.dir.join("policy.toml"))
            .arg("--key")
            .arg(self.dir.join("host.key"))
            .arg("--cert")
            .arg(self.dir.join("cert.pem"))
            .arg("--cert-key")
            .arg(self.dir.join("cert.key"));
        Daemon::spawn(ns, c)
    }
}

impl Drop for HostFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ike_peer(v: &Value) -> Option<&Value> {
    v["ike"]["peers"].as_array()?.first()
}

#[test]
fn two_daemons_key_an_inventory_pair_over_ikev2() {
    if !privileged("two_daemons_key_an_inventory_pair_over_ikev2") {
        return;
    }
    let (n1, n2) = TestNetns::veth_pair(("ikp1", "ikp2"), (SITE, DB));
    let pki = Pki::new("Corp CA", 1);
    let (fs, fd) = (
        HostFiles::new(&pki, "site", SITE, 41),
        HostFiles::new(&pki, "db", DB, 42),
    );
    let _db = fd.start(&n2);
    let _site = fs.start(&n1);
    let v = view(&n1).expect("site answers");
    assert!(v["ike"].is_object(), "IKE runs: {v}");
    assert!(ike_peer(&v).is_none(), "no peer before traffic");
    // Traffic site → db: the require policy holds it and raises an acquire.
    n1.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let _ = s.send_to(b"hello", (DB, 9));
    });
    for (ns, peer) in [(&n1, DB), (&n2, SITE)] {
        wait_for("the peer to be authenticated", || {
            view(ns).is_some_and(|v| {
                ike_peer(&v).is_some_and(|p| p["identity"].as_str().is_some_and(|s| !s.is_empty()))
            })
        });
        let v = view(ns).unwrap();
        let p = ike_peer(&v).unwrap();
        assert_eq!(p["address"], peer, "{v}");
        assert_eq!(p["authority"], "corp", "{v}");
        assert!(p["established_unix"].is_u64(), "{v}");
        assert_eq!(v["ike"]["failures"], serde_json::json!({}), "{v}");
        // The negotiated SAs were handed to the reconcile, which the kernel refused.
        wait_for("the negotiated SAs to be tried", || {
            view(ns).is_some_and(|v| {
                v["missing_features"]
                    .as_array()
                    .is_some_and(|m| !m.is_empty())
            })
        });
    }
    let v = view(&n1).unwrap();
    assert!(v["ike"]["certificate_not_after"].is_i64(), "{v}");
    // The acquire went to keying, not to the unknown-peer counter; the keying reconcile
    // read only the negotiated SAs' keys (the kernel held the rest).
    assert_eq!(v["unknown_peer_acquires"], 0, "{v}");
    let last = &v["last_reconcile"];
    assert_eq!(last["cause"], "keying", "{v}");
    assert_eq!(last["read"], "2 keys", "{v}");
    assert_eq!(last["failed"], 2, "both negotiated SAs tried: {v}");

    // A reload that keys the pair statically: site deletes the IKE SA (db hears the
    // Delete), and neither keeps the peer.
    // (The dead IKE SA lingers in the engine a while to answer retransmissions.)
    // Site no longer uses IKEv2 at all: its IKE source closes.
    fs.drop_ikev2();
    for ns in [&n1, &n2] {
        wait_for("the IKE peer to be gone after the reload", || {
            view(ns).is_some_and(|v| ike_peer(&v).is_none())
        });
    }
    assert!(view(&n1).unwrap()["ike"].is_null());
    let v = view(&n2).unwrap();
    assert_eq!(v["ike"]["failures"], serde_json::json!({}), "a Delete: {v}");
    assert_eq!(view(&n1).unwrap()["reloads_ok"], 1);
}

/// Whether UDP `port` is free in `ns` (nothing of the daemon's bound to it).
fn udp_free(ns: &TestNetns, port: u16) -> bool {
    ns.run(move || std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok())
}

#[test]
fn a_reload_turns_ikev2_on_and_off_without_a_restart() {
    if !privileged("a_reload_turns_ikev2_on_and_off_without_a_restart") {
        return;
    }
    let (n1, _n2) = TestNetns::veth_pair(("ikr1", "ikr2"), (SITE, DB));
    let pki = Pki::new("Corp CA", 1);
    let fs = HostFiles::new(&pki, "site", SITE, 43);
    fs.drop_ikev2();
    let _site = fs.start(&n1);
    let v = view(&n1).expect("site answers");
    assert!(v["ike"].is_null(), "no IKE without an IKEv2 pair: {v}");
    assert!(udp_free(&n1, 500) && udp_free(&n1, 4500));
    // On: the sockets open, the view shows keying, the pair's acquires go to it.
    fs.edit(|t| {
        t.replace(
            "action = \"require\"\n",
            "action = \"require\"\nkey-exchange = \"ikev2\"\n",
        )
    });
    wait_for("IKE to start on the reload", || {
        view(&n1).is_some_and(|v| v["ike"].is_object())
    });
    assert!(
        !udp_free(&n1, 500) && !udp_free(&n1, 4500),
        "the IKE sockets hold 500 and 4500"
    );
    n1.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let _ = s.send_to(b"hello", (DB, 9));
    });
    wait_for("an exchange with db to start", || {
        view(&n1).is_some_and(|v| v["ike"]["ike_sas"].as_u64() >= Some(1))
    });
    assert_eq!(view(&n1).unwrap()["unknown_peer_acquires"], 0);
    // Off again: the sockets close and keying's view goes.
    fs.drop_ikev2();
    wait_for("IKE to stop on the reload", || {
        view(&n1).is_some_and(|v| v["ike"].is_null())
    });
    assert!(
        udp_free(&n1, 500) && udp_free(&n1, 4500),
        "the IKE sockets are closed"
    );
    let v = view(&n1).unwrap();
    assert_eq!(
        (v["reloads_ok"].as_u64(), v["last_error"].is_null()),
        (Some(2), true),
        "{v}"
    );
}

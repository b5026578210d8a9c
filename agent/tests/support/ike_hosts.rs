//! Two hosts' files for the daemons that key over IKEv2 in namespace tests: policy,
//! static key, a certificate from a test CA and its key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use ike::cert::testpki::rcgen::SanType;
use ike::cert::testpki::{Pki, TestKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use super::daemon::{Daemon, AGENT};
use super::ns::TestNetns;

pub const SITE: &str = "10.10.0.10";
pub const DB: &str = "10.10.0.11";

/// site and db (the example keys) with their pair keyed over IKEv2 under `require`, and
/// one authority `corp` of scope "any" whose other keys are `authority` (CA files, CRLs,
/// revocation).
pub fn pair_policy(authority: &str) -> String {
    format!(
        r#"version = 1

[[authorities]]
name = "corp"
{authority}
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
"#
    )
}

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = (b64.as_bytes().chunks(64))
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

pub fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// One host's files: policy, static key, certificate (IP SAN) and its key.
pub struct HostFiles {
    pub dir: PathBuf,
}

impl HostFiles {
    /// `policy` gets the CA file's path; the certificate has serial `seed`.
    pub fn new(
        pki: &Pki,
        (host, addr, seed): (&str, &str, u8),
        policy: impl Fn(&Path) -> String,
    ) -> HostFiles {
        // Per seed: tests that run in parallel may use the same host name.
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

    /// Replace file `name` atomically (written beside it, renamed into place).
    pub fn replace(&self, name: &str, text: &str) {
        let tmp = self.dir.join(format!(".{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
    }

    /// Replace the policy atomically with the pair keyed statically (no IKEv2 left).
    pub fn drop_ikev2(&self) {
        self.edit(|text| text.replace("key-exchange = \"ikev2\"\n", ""));
    }

    /// Replace the policy atomically with `f` of its text.
    pub fn edit(&self, f: impl FnOnce(&str) -> String) {
        let p = self.dir.join("policy.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        self.replace("policy.toml", &f(&text));
    }

    pub fn start(&self, ns: &TestNetns) -> Daemon {
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

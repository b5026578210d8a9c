//! Policies built in code (the file parser is another branch's work): a varied one for
//! "what the compiler emits installs and reads back identical" tests.

use agent::keys::{Identity, PrivateKey};
use agent::model::Desired;
use agent::plan::{desired, LocalAddrs, Timestamp};
use policy_schema::testkit::{self, exemption};
use policy_schema::*;

pub fn key(i: u32) -> PrivateKey {
    let mut b = [7u8; 32];
    b[..4].copy_from_slice(&i.to_be_bytes());
    PrivateKey::from_bytes(b)
}

fn host(i: u32, name: &str, addrs: &[&str], encap: Encapsulation) -> Host {
    let mut h = testkit::host(name, addrs, key(i).public());
    h.encapsulation = encap;
    h
}

fn rule(
    name: &str,
    to: &str,
    proto: Option<Protocol>,
    ports: &[u16],
    action: Action,
    cipher: Cipher,
) -> Rule {
    let mut r = testkit::rule(
        name,
        vec![Endpoint::Any],
        vec![Endpoint::Zone(to.into())],
        action,
    );
    r.protocol = proto;
    r.ports = ports.iter().map(|p| PortRange::single(*p)).collect();
    r.cipher = cipher;
    r
}

/// Dual-stack intranet with the usual exemptions, every cipher, ESP-in-UDP, request and
/// block rules.
pub fn varied() -> Policy {
    Policy {
        version: 1,
        defaults: Defaults::default(),
        ownership: Ownership::default(),
        zones: vec![
            Zone {
                name: "intranet".into(),
                prefixes: vec![
                    "10.10.0.0/24".parse().unwrap(),
                    "fd10::/64".parse().unwrap(),
                ],
            },
            Zone {
                name: "dmz".into(),
                prefixes: vec!["10.20.0.0/24".parse().unwrap()],
            },
        ],
        hosts: vec![
            host(0, "a", &["10.10.0.1", "fd10::1"], Encapsulation::None),
            host(1, "b", &["10.10.0.2", "fd10::2"], Encapsulation::None),
            host(2, "c", &["10.20.0.3"], Encapsulation::Udp),
            host(3, "d", &["10.10.0.4"], Encapsulation::None),
        ],
        clusters: vec![],
        authorities: vec![],
        exemptions: vec![
            exemption("icmp", Protocol::Icmp, &[], Direction::Both),
            exemption(
                "ike",
                Protocol::Udp,
                &[(500, 500), (4500, 4500)],
                Direction::Both,
            ),
            exemption("dhcp", Protocol::Udp, &[(67, 68)], Direction::Out),
            exemption("amt", Protocol::Tcp, &[(16992, 16995)], Direction::In),
        ],
        rules: vec![
            rule(
                "ssh-chacha",
                "intranet",
                Some(Protocol::Tcp),
                &[22],
                Action::Require,
                Cipher::Chacha20Poly1305,
            ),
            rule(
                "web-cbc",
                "intranet",
                Some(Protocol::Tcp),
                &[443],
                Action::Require,
                Cipher::AesCbcHmacSha256,
            ),
            rule(
                "dmz-request",
                "dmz",
                None,
                &[],
                Action::Request,
                Cipher::AesGcm256,
            ),
            rule(
                "telnet-block",
                "intranet",
                Some(Protocol::Tcp),
                &[23],
                Action::Block,
                Cipher::AesGcm128,
            ),
            rule(
                "isolation",
                "intranet",
                None,
                &[],
                Action::Require,
                Cipher::AesGcm128,
            ),
        ],
    }
}

/// The compiled plan for host `a` at a fixed time.
pub fn varied_desired() -> Desired {
    let p = varied();
    let id = Identity::resolve(&p, key(0), None).unwrap();
    desired(
        &p,
        &id,
        &LocalAddrs::new(),
        Timestamp::from_secs(1_800_000_000),
    )
    .unwrap()
}

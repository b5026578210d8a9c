//! Policies built in code for unit and property tests of the compiler.

use policy_schema::testkit::{self as shared, exemption as exempt};
use policy_schema::{
    Action, Authority, Cipher, Defaults, Direction, Encapsulation, Endpoint, Exemption, Host,
    Ownership, Policy, PortRange, Protocol, Revocation, Rule, Scope, Zone,
};

pub use policy_schema::testkit::{net, rule};

use crate::keys::{Identity, PrivateKey};

/// A deterministic private key per seed (tests only).
pub fn key(seed: u32) -> PrivateKey {
    let mut b = [7u8; 32];
    b[..4].copy_from_slice(&seed.to_be_bytes());
    PrivateKey::from_bytes(b)
}

/// A host whose key is `key(seed)`.
pub fn host(name: &str, addrs: &[&str], seed: u32) -> Host {
    shared::host(name, addrs, key(seed).public())
}

/// Any → `host` on TCP 5432, with another cipher than the default.
pub fn port_rule(name: &str, host: &str) -> Rule {
    let mut r = rule(
        name,
        vec![Endpoint::Any],
        vec![Endpoint::Host(host.into())],
        Action::Require,
    );
    r.protocol = Some(Protocol::Tcp);
    r.ports = vec![PortRange::single(5432)];
    r.cipher = Cipher::Chacha20Poly1305;
    r
}

/// An authority of scope `any` (every inventory host with its certificate), relaxed
/// revocation; its files are never read by the pure code.
pub fn authority(name: &str) -> Authority {
    Authority {
        name: name.into(),
        ca_certificates: vec!["/ca.pem".into()],
        crls: vec![],
        revocation: Revocation::Relaxed,
        scope: Scope::Any,
        identities: vec![],
        crl_warning: policy_schema::CRL_WARNING_DEFAULT,
    }
}

/// An exemption both ways, for every peer.
pub fn exemption(name: &str, protocol: Protocol, ports: &[(u16, u16)]) -> Exemption {
    exempt(name, protocol, ports, Direction::Both)
}

/// The seed scenario: site and db in the intranet, mp in the DMZ over UDP, any ↔ intranet
/// required, ICMP/IKE/AMT exempt. Keys: site 1, db 2, mp 3.
pub fn seed() -> Policy {
    let mut mp = host("mp", &["10.20.0.20", "fd00:20::20"], 3);
    mp.encapsulation = Encapsulation::Udp;
    Policy {
        version: 1,
        defaults: Defaults::default(),
        ownership: Ownership::default(),
        zones: vec![
            Zone {
                name: "intranet".into(),
                prefixes: vec![net("10.10.0.0/24"), net("fd00:10::/64")],
            },
            Zone {
                name: "dmz".into(),
                prefixes: vec![net("10.20.0.0/24"), net("fd00:20::/64")],
            },
        ],
        hosts: vec![
            host("site", &["10.10.0.10", "fd00:10::10"], 1),
            host("db", &["10.10.0.11", "fd00:10::11"], 2),
            mp,
        ],
        clusters: vec![],
        authorities: vec![],
        exemptions: vec![
            exemption("icmp", Protocol::Icmp, &[]),
            exemption("icmpv6", Protocol::Icmpv6, &[]),
            exemption("ike", Protocol::Udp, &[(500, 500), (4500, 4500)]),
            exemption("amt", Protocol::Tcp, &[(16992, 16995)]),
        ],
        rules: vec![rule(
            "intranet-isolation",
            vec![Endpoint::Any],
            vec![Endpoint::Zone("intranet".into())],
            Action::Require,
        )],
    }
}

/// The identity of `name`, whose key seed is `seed`.
pub fn identity(p: &Policy, seed: u32) -> Identity {
    Identity::resolve(p, key(seed), None).expect("host in policy")
}

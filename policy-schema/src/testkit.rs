//! Policies built in code, for tests (feature `testkit`): the builders the agent's unit and
//! integration tests and the e2e crate share, and the proptest strategy over the seed
//! scenario's endpoints.

use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use crate::{
    Action, Cipher, Direction, Encapsulation, Endpoint, Exemption, Host, Mode, PortRange, Protocol,
    PublicKey, Rule,
};

/// A prefix from its text (panics on a typo: test input).
pub fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

/// A host in no zone, without ESP-in-UDP, gateway for nothing.
pub fn host(name: &str, addrs: &[&str], public_key: PublicKey) -> Host {
    Host {
        name: name.into(),
        addresses: addrs
            .iter()
            .map(|a| a.parse::<IpAddr>().expect("addr"))
            .collect(),
        public_key,
        zones: vec![],
        encapsulation: Encapsulation::None,
        gateway_for: vec![],
    }
}

/// A rule over any protocol and port, transport mode, AES-GCM-128.
pub fn rule(name: &str, from: Vec<Endpoint>, to: Vec<Endpoint>, action: Action) -> Rule {
    Rule {
        name: name.into(),
        from,
        to,
        protocol: None,
        ports: vec![],
        action,
        mode: Mode::Transport,
        cipher: Cipher::AesGcm128,
        key_exchange: Default::default(),
        identities: vec![],
        admits: Default::default(),
    }
}

/// An exemption of `protocol` on the port ranges `(lo, hi)`, for every peer.
pub fn exemption(
    name: &str,
    protocol: Protocol,
    ports: &[(u16, u16)],
    direction: Direction,
) -> Exemption {
    Exemption {
        name: name.into(),
        protocol,
        ports: ports.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect(),
        direction,
        peers: vec![],
    }
}

/// Any endpoint of the seed scenario (zones intranet and dmz, hosts site, db and mp) or a
/// prefix outside it, for random rules.
pub fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        Just(Endpoint::Any),
        Just(Endpoint::Zone("intranet".into())),
        Just(Endpoint::Zone("dmz".into())),
        Just(Endpoint::Host("site".into())),
        Just(Endpoint::Host("db".into())),
        Just(Endpoint::Host("mp".into())),
        Just(Endpoint::Prefix(net("10.30.0.0/24"))),
        Just(Endpoint::Prefix(net("fd00:30::/64"))),
    ]
}

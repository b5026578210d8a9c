//! The typed result of `load` and the file handling of `load_path`.

use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn full_fixture_becomes_the_expected_model() {
    let l = load("full.toml", include_str!("valid/full.toml")).expect("loads");
    let p = &l.policy;
    assert_eq!(p.version, 1);
    assert_eq!(p.defaults.cipher, Cipher::AesGcm256);
    assert_eq!(p.defaults.rekey_interval, 5400);
    assert_eq!((p.defaults.clock_skew, p.defaults.grace), (15, 60));
    assert_eq!(p.defaults.replay_window, 4096);
    assert_eq!(p.ownership, Ownership::default());
    assert_eq!(
        p.zone("intranet").unwrap().prefixes,
        [net("10.10.0.0/24"), net("fd00:10::/64")]
    );

    let site = p.host("site").unwrap();
    assert_eq!(
        site.addresses,
        [
            "10.10.0.10".parse::<IpAddr>().unwrap(),
            "fd00:10::10".parse().unwrap()
        ]
    );
    assert_eq!(site.public_key, PublicKey([1; 32]));
    assert_eq!(site.zones, ["intranet"]);
    assert_eq!(p.host("mp").unwrap().encapsulation, Encapsulation::Udp);
    assert_eq!(p.host("hq-gw").unwrap().gateway_for, [net("10.10.0.0/24")]);
    assert_eq!(p.cluster("sql").unwrap().members, ["db", "db2"]);

    // Exemption peers are resolved at load time; protocol 6 is tcp.
    let amt = &p.exemptions[2];
    assert_eq!(amt.protocol, Protocol::Tcp);
    assert_eq!(amt.direction, Direction::In);
    assert_eq!(
        amt.ports,
        [PortRange {
            lo: 16992,
            hi: 16995
        }]
    );
    assert_eq!(
        amt.peers,
        [net("10.0.0.0/8"), net("10.20.0.0/24"), net("10.20.0.20/32")]
    );
    assert!(p.exemptions[0].peers.is_empty() && p.exemptions[0].ports.is_empty());
    assert_eq!(p.exemptions[1].direction, Direction::Both);

    // Rules keep symbolic endpoints and carry resolved defaults.
    let tunnel = &p.rules[0];
    assert_eq!(
        (tunnel.mode, tunnel.cipher),
        (Mode::Tunnel, Cipher::Chacha20Poly1305)
    );
    let sql = &p.rules[1];
    assert_eq!(sql.from, [Endpoint::Zone("intranet".into())]);
    assert_eq!(sql.to, [Endpoint::Cluster("sql".into())]);
    assert_eq!(
        sql.ports,
        [PortRange::single(5432), PortRange { lo: 1433, hi: 1434 }]
    );
    assert_eq!((sql.mode, sql.cipher), (Mode::Transport, Cipher::AesGcm256));
    assert_eq!(p.rules[2].from, [Endpoint::Any]);
    assert_eq!(p.rules[3].action, Action::Request);
    assert_eq!(l.warnings.len(), 1);
}

#[test]
fn minimal_file_takes_every_default() {
    let p = load("m.toml", "version = 1\n").expect("loads").policy;
    assert_eq!(p.defaults, Defaults::default());
    assert_eq!(p.ownership, Ownership::default());
    assert!(p.zones.is_empty() && p.hosts.is_empty() && p.rules.is_empty());
}

#[test]
fn diagnostics_display_as_file_line_col() {
    let text = "version = 1\n[[rules]]\nname = \"web\"\nfrom = [\"any\"]\nto = [\"any\"]\naction = \"requir\"\n";
    let err = load("examples/x.toml", text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "examples/x.toml:6:10: error: rules[0] \"web\": action \"requir\" is not one of require, request, permit, block (did you mean \"require\"?)"
    );
}

#[test]
fn load_path_reports_unreadable_and_non_utf8_files_located() {
    let dir = std::env::temp_dir().join(format!("policy-schema-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.toml");
    let d = load_path(&missing).unwrap_err();
    assert_eq!(d.0.len(), 1);
    assert_eq!((d.0[0].line, d.0[0].col), (1, 1));
    assert!(d.0[0]
        .to_string()
        .starts_with(&format!("{}:1:1: error: cannot read", missing.display())));

    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"version = 1\n# caf\xe9\n").unwrap();
    let d = load_path(&latin1).unwrap_err();
    assert_eq!((d.0[0].line, d.0[0].col), (2, 6), "{d}");

    let good = dir.join("good.toml");
    std::fs::write(&good, "version = 1\n").unwrap();
    assert!(load_path(&good).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

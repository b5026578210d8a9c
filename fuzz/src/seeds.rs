//! The starting inputs of each target, made from what the repository already has: the
//! example and test policies, the example keys, and netlink messages from the agent's own
//! encoder. `scripts/fuzz` writes them out before a campaign (beside the committed corpus,
//! which holds only what a campaign found that these lack), and the regression test runs
//! them too.

use std::path::{Path, PathBuf};

use crate::targets::{keys, reload};

mod netlink;

/// One named input.
pub type Seed = (String, Vec<u8>);

/// The generated seeds of a target (empty for an unknown name).
pub fn seeds(target: &str) -> Vec<Seed> {
    match target {
        "policy" => policy_files(),
        "reload" => reload_seeds(),
        "netlink" => netlink::seeds(),
        "keys" => key_seeds(),
        "ike" => ike_seeds(),
        _ => Vec::new(),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `.EXT` files of a repository folder, sorted, named `PREFIX-STEM`.
fn files(dir: &str, ext: &str, prefix: &str) -> Vec<Seed> {
    let mut out: Vec<Seed> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            let stem = p.file_stem().expect("a file name").to_string_lossy();
            let data = std::fs::read(&p).expect("readable seed");
            (format!("{prefix}-{stem}"), data)
        })
        .collect();
    out.sort();
    out
}

/// Every policy of the examples and of policy-schema's valid and invalid corpora.
fn policy_files() -> Vec<Seed> {
    let mut out = files("examples", "toml", "example");
    out.extend(files("policy-schema/tests/valid", "toml", "valid"));
    out.extend(files("policy-schema/tests/invalid", "toml", "invalid"));
    out
}

/// Each base after its index byte (reloaded over itself), and each test policy after the
/// index of the base it was written from (`full.toml`).
fn reload_seeds() -> Vec<Seed> {
    let full = reload::BASES
        .iter()
        .position(|b| *b == include_str!("../../policy-schema/tests/valid/full.toml"))
        .expect("full.toml is a base") as u8;
    let mut out: Vec<Seed> = (reload::BASES.iter().enumerate())
        .map(|(i, b)| (format!("base-{i}"), prefixed(i as u8, b.as_bytes())))
        .collect();
    for (name, text) in policy_files() {
        out.push((name, prefixed(full, &text)));
    }
    out
}

fn prefixed(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    v.extend_from_slice(rest);
    v
}

/// The example host keys (key files), the public keys of a policy, the low-order points
/// of issue 11, and near misses.
fn key_seeds() -> Vec<Seed> {
    let mut out = files("examples/keys", "key", "keyfile");
    let public = [
        ("public", "afHYlNMD37507eZrZqsbd+jZV3lhnbG36Ad3QnFbgQE="),
        ("order8", keys::LOW_ORDER_KEY),
        ("order8b", "X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc="),
        ("zero", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("one", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("url-safe", "afHYlNMD37507eZrZqsbd-jZV3lhnbG36Ad3QnFbgQE="),
        ("short", "afHYlNMD37507eZrZqsbd+jZV3lhnbG36Ad3QnFbgQ=="),
        ("spaced", " afHYlNMD37507eZrZqsbd+jZV3lhnbG36Ad3QnFbgQE=\n"),
    ];
    out.extend(
        public
            .iter()
            .map(|(n, k)| (n.to_string(), k.as_bytes().to_vec())),
    );
    out
}

/// IKE_SA_INIT and IKE_AUTH requests as the `ike` crate's encoder writes them: the payload
/// kinds an initiator sends (SA with transforms and a key length, KE, nonce, notifies, an
/// encrypted SK payload).
fn ike_seeds() -> Vec<Seed> {
    use ike::codec::{exchange, flags, notify, Header, Ke, Message, Notify, Payload};
    use ike::codec::{Proposal, Transform};
    let header = |exchange, message_id| Header {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: if message_id == 0 {
            0
        } else {
            0x1112_1314_1516_1718
        },
        exchange,
        flags: flags::INITIATOR,
        message_id,
    };
    let proposal = Proposal {
        number: 1,
        protocol: 1,
        spi: Vec::new(),
        transforms: vec![
            Transform::with_key_length(1, 20, 128),
            Transform::new(2, 5),
            Transform::new(4, 31),
            Transform::new(4, 19),
        ],
    };
    let init = Message {
        header: header(exchange::IKE_SA_INIT, 0),
        payloads: vec![
            Payload::Sa(vec![proposal]),
            Payload::Ke(Ke {
                group: 31,
                data: vec![9; 32],
            }),
            Payload::Nonce(vec![7; 32]),
            Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, vec![1; 20])),
            Payload::Notify(Notify::new(
                notify::NAT_DETECTION_DESTINATION_IP,
                vec![2; 20],
            )),
        ],
    };
    let auth = Message {
        header: header(exchange::IKE_AUTH, 1),
        payloads: vec![Payload::Sk {
            first_inner: 35,
            body: vec![0x5a; 96],
        }],
    };
    vec![
        ("ike-sa-init".to_string(), init.encode()),
        ("ike-auth".to_string(), auth.encode()),
    ]
}

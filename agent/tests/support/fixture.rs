//! The compact line format of desired and observed objects (golden fixtures, hand-built
//! kernel test sets).
//!
//! Line format, one object per line, `key=value` tokens (defaults in brackets):
//! ```text
//! policy dir=out src=10.0.0.0/24 dst=0.0.0.0/0 [proto=6] [sport=P[/MASK]] [dport=P[/MASK]]
//!        [mark=V/M] prio=65537 action=allow|block|esp [mode=transport] [reqid=0x7a000001]
//!        [level=required|use] [tunnel=SRC,DST] [origin=rule:NAME]
//! sa dst=10.0.0.2 spi=0x40000001 src=10.0.0.1 [reqid=0x7a000001] [mode=transport]
//!    [alg=gcm|chacha|cbc|3des] [key=1] [window=1024] [life=3600/3700] [encap=4500/4500]
//!    [peer=NAME dir=in|out epoch=1 seq=0]
//! foreign-policy <policy key fields>      foreign-sa dst=… spi=…
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

use agent::model::*;
use agent::secret::Secret;
use ipnet::IpNet;

use super::REQID;

fn fields(line: &str) -> (String, HashMap<String, String>) {
    let mut it = line.split_whitespace();
    let kind = it.next().unwrap_or_default().to_string();
    let map = it
        .map(|t| {
            let (k, v) = t
                .split_once('=')
                .unwrap_or_else(|| panic!("bad token {t:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    (kind, map)
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).expect("hex"),
        None => s.parse().expect("number"),
    }
}

fn port(s: Option<&String>) -> PortMatch {
    match s.map(String::as_str) {
        None | Some("any") => PortMatch::ANY,
        Some(s) => match s.split_once('/') {
            Some((p, m)) => PortMatch {
                port: num(p) as u16,
                mask: num(m) as u16,
            },
            None => PortMatch::exact(num(s) as u16),
        },
    }
}

fn policy_key(f: &HashMap<String, String>) -> PolicyKey {
    let dir = match f["dir"].as_str() {
        "in" => Dir::In,
        "out" => Dir::Out,
        "fwd" => Dir::Fwd,
        d => panic!("dir {d}"),
    };
    let sel = Selector {
        src: f["src"].parse().expect("src net"),
        dst: f["dst"].parse().expect("dst net"),
        proto: f.get("proto").map_or(0, |p| num(p) as u8),
        sport: port(f.get("sport")),
        dport: port(f.get("dport")),
    };
    let mark = f.get("mark").map(|m| {
        let (v, k) = m.split_once('/').expect("mark V/M");
        Mark {
            value: num(v) as u32,
            mask: num(k) as u32,
        }
    });
    PolicyKey { dir, sel, mark }
}

fn mode(f: &HashMap<String, String>) -> Mode {
    match f.get("mode").map(String::as_str) {
        None | Some("transport") => Mode::Transport,
        Some("tunnel") => Mode::Tunnel,
        Some(m) => panic!("mode {m}"),
    }
}

fn policy_spec(f: &HashMap<String, String>) -> PolicySpec {
    let action = match f["action"].as_str() {
        "allow" => PolicyAction::Allow,
        "block" => PolicyAction::Block,
        "esp" => PolicyAction::Protect(
            vec![Template {
                mode: mode(f),
                reqid: f.get("reqid").map_or(REQID, |r| num(r) as u32),
                level: match f.get("level").map(String::as_str) {
                    None | Some("required") => Level::Required,
                    Some("use") => Level::Use,
                    Some(l) => panic!("level {l}"),
                },
                tunnel: f.get("tunnel").map(|t| {
                    let (a, b) = t.split_once(',').expect("tunnel SRC,DST");
                    (a.parse().expect("addr"), b.parse().expect("addr"))
                }),
            }]
            .into(),
        ),
        a => panic!("action {a}"),
    };
    PolicySpec {
        priority: num(&f["prio"]) as u32,
        action,
    }
}

fn origin(f: &HashMap<String, String>) -> Origin {
    let o = f.get("origin").map_or("rule:r", String::as_str);
    let (k, n) = o.split_once(':').unwrap_or((o, ""));
    match k {
        "rule" => Origin::Rule(n.into()),
        "exemption" => Origin::Exemption(n.into()),
        "builtin" => Origin::Builtin(n.into()),
        "guard" => Origin::Guard,
        "backstop" => Origin::Backstop(n.into()),
        _ => panic!("origin {o}"),
    }
}

/// An algorithm by short name, keys filled with `byte`.
pub fn alg(name: &str, byte: u8) -> Algorithm {
    let aead = |n: &'static str, len| Algorithm::Aead {
        name: n.into(),
        key: Secret::new(vec![byte; len]),
        icv_bits: 128,
    };
    let encauth = |e: &'static str, elen, a: &'static str, alen, trunc| Algorithm::EncAuth {
        enc_name: e.into(),
        enc_key: Secret::new(vec![byte; elen]),
        auth_name: a.into(),
        auth_key: Secret::new(vec![byte; alen]),
        trunc_bits: trunc,
    };
    match name {
        "gcm" => aead("rfc4106(gcm(aes))", 20),
        "gcm256" => aead("rfc4106(gcm(aes))", 36),
        "chacha" => aead("rfc7539esp(chacha20,poly1305)", 36),
        "cbc" => encauth("cbc(aes)", 16, "hmac(sha256)", 32, 128),
        "3des" => encauth("cbc(des3_ede)", 24, "hmac(sha1)", 20, 96),
        n => panic!("alg {n}"),
    }
}

fn sa_key(f: &HashMap<String, String>) -> SaKey {
    SaKey {
        dst: f["dst"].parse().expect("dst"),
        spi: num(&f["spi"]) as u32,
    }
}

fn sa_spec(f: &HashMap<String, String>, dst: IpAddr) -> SaSpec {
    let src: IpAddr = f["src"].parse().expect("src");
    let pair = |s: &str| {
        let (a, b) = s.split_once('/').expect("A/B");
        (num(a), num(b))
    };
    let (soft, hard) = pair(f.get("life").map_or("3600/3700", String::as_str));
    SaSpec {
        src,
        reqid: f.get("reqid").map_or(REQID, |r| num(r) as u32),
        mode: mode(f),
        sel: Selector::between(IpNet::from(src), IpNet::from(dst)),
        alg: alg(
            f.get("alg").map_or("gcm", String::as_str),
            f.get("key").map_or(1, |k| num(k) as u8),
        ),
        replay_window: f.get("window").map_or(1024, |w| num(w) as u32),
        esn: true,
        encap: f.get("encap").map(|e| {
            let (s, d) = pair(e);
            Encap {
                sport: s as u16,
                dport: d as u16,
            }
        }),
        lifetime: Lifetime {
            soft_secs: soft,
            hard_secs: hard,
        },
    }
}

fn sa_meta(f: &HashMap<String, String>) -> SaMeta {
    SaMeta {
        peer: f.get("peer").cloned().unwrap_or_else(|| "p".into()),
        dir: match f.get("dir").map(String::as_str) {
            Some("in") => SaDir::In,
            _ => SaDir::Out,
        },
        epoch: f.get("epoch").map_or(1, |e| num(e)),
        initial_seq: f.get("seq").map_or(0, |e| num(e)),
    }
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Parse a `desired` fixture.
pub fn parse_desired(text: &str) -> Desired {
    let mut d = Desired::default();
    for line in lines(text) {
        let (kind, f) = fields(line);
        match kind.as_str() {
            "policy" => {
                d.policies.insert(
                    policy_key(&f),
                    DesiredPolicy {
                        spec: policy_spec(&f),
                        origin: origin(&f),
                    },
                );
            }
            "sa" => {
                let k = sa_key(&f);
                d.states.insert(
                    k,
                    DesiredSa {
                        spec: sa_spec(&f, k.dst),
                        meta: sa_meta(&f),
                    },
                );
            }
            k => panic!("desired: unknown kind {k}"),
        }
    }
    d
}

/// Parse an `observed` fixture.
pub fn parse_observed(text: &str) -> Observed {
    let mut o = Observed::default();
    for line in lines(text) {
        let (kind, f) = fields(line);
        match kind.as_str() {
            "policy" => {
                o.policies.insert(policy_key(&f), policy_spec(&f));
            }
            "sa" => {
                let k = sa_key(&f);
                let spec = sa_spec(&f, k.dst);
                o.states.insert(
                    k,
                    ObservedSa {
                        spec,
                        stats: SaStats::default(),
                    },
                );
            }
            "foreign-policy" => {
                o.foreign_policies.insert(policy_key(&f));
            }
            "foreign-sa" => {
                o.foreign_states.insert(sa_key(&f));
            }
            k => panic!("observed: unknown kind {k}"),
        }
    }
    o
}

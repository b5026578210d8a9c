//! Test support shared by the diff and kernel tests: a compact line format for desired and
//! observed objects (golden fixtures), the kernel's semantics in memory (apply ops, look a
//! flow up in the SPD), and builders.
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
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use agent::model::*;
use agent::secret::Secret;
use ipnet::IpNet;

pub const REQID: u32 = 0x7a00_0001;

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
        "esp" => PolicyAction::Protect(vec![Template {
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
        }]),
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
        _ => panic!("origin {o}"),
    }
}

/// An algorithm by short name, keys filled with `byte`.
pub fn alg(name: &str, byte: u8) -> Algorithm {
    let aead = |n: &str, len| Algorithm::Aead {
        name: n.into(),
        key: Secret::new(vec![byte; len]),
        icv_bits: 128,
    };
    let encauth = |e: &str, elen, a: &str, alen, trunc| Algorithm::EncAuth {
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

/// The kernel's semantics for our ops, in memory. Errors where the kernel would answer
/// EEXIST / ENOENT, or where an op would write a foreign object.
pub fn apply_in_memory(o: &Observed, ops: &[Op]) -> Result<Observed, String> {
    let mut o = o.clone();
    for op in ops {
        apply_one(&mut o, op)?;
    }
    Ok(o)
}

pub fn apply_one(o: &mut Observed, op: &Op) -> Result<(), String> {
    let foreign_p = |k: &PolicyKey, o: &Observed| o.foreign_policies.contains(k);
    match &op.kind {
        OpKind::AddPolicy(k, s) | OpKind::UpdatePolicy(k, s) if foreign_p(k, o) => {
            return Err(format!("writes foreign {k} with {s:?}"))
        }
        OpKind::AddPolicy(k, s) => {
            if o.policies.insert(*k, s.clone()).is_some() {
                return Err(format!("EEXIST {k}"));
            }
        }
        OpKind::UpdatePolicy(k, s) => {
            if o.policies.insert(*k, s.clone()).is_none() {
                return Err(format!("ENOENT {k}"));
            }
        }
        OpKind::DelPolicy(k) => {
            if o.policies.remove(k).is_none() {
                return Err(format!("ENOENT {k}"));
            }
        }
        OpKind::AddSa(k, _, _) | OpKind::UpdateSa(k, _) if o.foreign_states.contains(k) => {
            return Err(format!("writes foreign {k}"))
        }
        OpKind::AddSa(k, s, _) => {
            let v = ObservedSa {
                spec: s.clone(),
                stats: SaStats::default(),
            };
            if o.states.insert(*k, v).is_some() {
                return Err(format!("EEXIST {k}"));
            }
        }
        OpKind::UpdateSa(k, s) => match o.states.get_mut(k) {
            Some(have) => {
                have.spec.lifetime = s.lifetime;
                have.spec.encap = s.encap;
            }
            None => return Err(format!("ESRCH {k}")),
        },
        OpKind::DelSa(k) => {
            if o.states.remove(k).is_none() {
                return Err(format!("ESRCH {k}"));
            }
        }
    }
    Ok(())
}

/// A packet, for SPD lookups.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub dir: Dir,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub mark: u32,
}

fn port_matches(m: PortMatch, p: u16) -> bool {
    (p & m.mask) == (m.port & m.mask)
}

/// xfrm_selector_match + mark match.
pub fn matches(k: &PolicyKey, f: &Flow) -> bool {
    let s = &k.sel;
    k.dir == f.dir
        && s.src.contains(&f.src)
        && s.dst.contains(&f.dst)
        && (s.proto == 0 || s.proto == f.proto)
        && port_matches(s.sport, f.sport)
        && port_matches(s.dport, f.dport)
        && k.mark.is_none_or(|m| f.mark & m.mask == m.value)
}

/// The policy the kernel would pick: lowest priority number among the matching ones.
/// Callers keep priorities distinct (the kernel's tie-break is insertion order).
pub fn lookup<'a>(
    policies: &'a BTreeMap<PolicyKey, PolicySpec>,
    f: &Flow,
) -> Option<&'a PolicySpec> {
    policies
        .iter()
        .filter(|(k, _)| matches(k, f))
        .map(|(_, s)| s)
        .min_by_key(|s| s.priority)
}

/// Whether the flow is protected (dropped or ESP-required) under these policies.
pub fn protected(policies: &BTreeMap<PolicyKey, PolicySpec>, f: &Flow) -> bool {
    lookup(policies, f).is_some_and(|s| s.action.is_protective())
}

/// The SPD a Desired stands for.
pub fn desired_spd(d: &Desired) -> BTreeMap<PolicyKey, PolicySpec> {
    d.policies
        .iter()
        .map(|(k, p)| (*k, p.spec.clone()))
        .collect()
}

/// Expected-file form of a plan: one op per line, then conflicts.
pub fn render_plan(p: &agent::plan::diff::Plan) -> String {
    let mut out = String::new();
    for op in &p.ops {
        out.push_str(&op.to_string());
        out.push('\n');
    }
    for c in &p.conflicts {
        out.push_str(&format!("conflict: {c}\n"));
    }
    out
}

pub mod ns;

/// Parse fixture-format text (used by kernel tests to build Desired values by hand).
pub fn desired_from(text: &str) -> Desired {
    parse_desired(text)
}

/// A varied policy set: v4 and v6, ports, marks, allow/block/required/use, tunnel
/// templates, fwd.
pub const SAMPLE_POLICIES: &str = "
policy dir=out src=10.0.0.0/24 dst=10.0.0.0/24 proto=1 prio=0x10010 action=allow origin=exemption:icmp
policy dir=in src=10.0.0.0/24 dst=10.0.0.0/24 proto=1 prio=0x10010 action=allow origin=exemption:icmp
policy dir=in src=10.0.0.0/24 dst=10.0.0.1/32 proto=6 dport=16992/0xfffc prio=0x10011 action=allow origin=exemption:amt
policy dir=out src=10.0.0.1/32 dst=10.0.0.0/24 proto=17 sport=68 dport=67 prio=0x10012 action=allow origin=exemption:dhcp
policy dir=out src=10.0.0.0/24 dst=10.0.0.0/24 prio=0x10100 action=esp origin=rule:intranet
policy dir=in src=10.0.0.0/24 dst=10.0.0.0/24 prio=0x10100 action=esp origin=rule:intranet
policy dir=out src=10.0.0.0/24 dst=10.5.0.0/16 prio=0x10101 action=esp level=use origin=rule:lab
policy dir=fwd src=10.7.0.0/16 dst=10.8.0.0/16 prio=0x10102 action=esp mode=tunnel tunnel=192.0.2.1,192.0.2.2 origin=rule:gw
policy dir=out src=10.0.0.0/24 dst=10.9.0.0/16 prio=0x10103 action=block origin=rule:deny
policy dir=out src=fd00::/64 dst=fd00::/64 prio=0x10100 action=esp origin=rule:intranet6
policy dir=in src=fd00::/64 dst=fd00::/64 prio=0x10100 action=esp origin=rule:intranet6
policy dir=in src=::/0 dst=fd00::1/128 proto=58 sport=135/0xffff prio=0x10013 action=allow origin=builtin:nd
policy dir=out src=fd01::/64 dst=fd02::/64 prio=0x10104 action=esp mode=tunnel tunnel=fd00::1,fd00::2 origin=rule:gw6
policy dir=out src=10.0.0.0/24 dst=10.6.0.0/16 mark=0x10/0xff prio=0x10105 action=allow origin=rule:marked
";

/// A varied SA set: GCM, ChaCha20-Poly1305, CBC+HMAC-SHA256, 3DES+HMAC-SHA1, ESP-in-UDP,
/// IPv6, tunnel mode, both directions.
pub const SAMPLE_STATES: &str = "
sa dst=10.0.0.2 spi=0x40000102 src=10.0.0.1 alg=gcm peer=b dir=out epoch=3 seq=0x100000005
sa dst=10.0.0.1 spi=0x40000101 src=10.0.0.2 alg=gcm key=2 peer=b dir=in epoch=3
sa dst=10.0.0.3 spi=0x40000203 src=10.0.0.1 alg=chacha peer=c dir=out epoch=3
sa dst=10.0.0.1 spi=0x40000201 src=10.0.0.3 alg=cbc peer=c dir=in epoch=3
sa dst=10.0.0.4 spi=0x40000304 src=10.0.0.1 alg=3des peer=d dir=out epoch=3
sa dst=10.0.0.5 spi=0x40000405 src=10.0.0.1 alg=gcm256 encap=4500/4500 peer=e dir=out epoch=3
sa dst=fd00::2 spi=0x40000502 src=fd00::1 alg=gcm peer=b6 dir=out epoch=3
sa dst=fd00::1 spi=0x40000501 src=fd00::2 alg=cbc window=64 peer=b6 dir=in epoch=3
sa dst=192.0.2.2 spi=0x40000602 src=192.0.2.1 mode=tunnel alg=gcm peer=gw dir=out epoch=3
";

pub mod policy;

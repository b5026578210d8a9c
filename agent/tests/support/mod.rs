//! Test support shared by the diff and kernel tests: the kernel's semantics in memory
//! (apply ops, look a flow up in the SPD), fixtures (see `fixture`), builders.
#![allow(dead_code)]

pub mod daemon;
pub mod fixture;
pub mod ike_hosts;
pub mod ns;
pub mod policy;

use std::collections::BTreeMap;
use std::net::IpAddr;

use agent::model::*;
pub use fixture::*;

pub const REQID: u32 = 0x7a00_0001;

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

/// Reconcile `d` into the socket's namespace and require the engine's contract: every op
/// acknowledged, the read-back diff empty, and a second reconcile a no-op.
pub fn assert_installs_identical(
    sock: &mut agent::kernel::NlSocket,
    d: &Desired,
    own: &policy_schema::Ownership,
) {
    let n = d.policies.len() + d.states.len();
    let out = agent::engine::reconcile(sock, d, own, false).unwrap();
    let errs: Vec<String> = out
        .failed
        .iter()
        .map(|f| format!("{}: {}", f.op, f.error))
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
    assert_eq!(out.applied, n);
    assert!(out.verified, "remaining: {:#?}", out.remaining);
    let again = agent::engine::reconcile(sock, d, own, false).unwrap();
    assert!(
        again.plan.ops.is_empty(),
        "second apply: {:#?}",
        again.plan.ops
    );
}

/// The sample policies, and a second version: one priority raised (more precedence: no
/// guard needed), one policy removed, one added. With the keys (raised, removed, added).
pub fn two_versions() -> (Desired, Desired, [PolicyKey; 3]) {
    let d1 = desired_from(SAMPLE_POLICIES);
    let mut d2 = d1.clone();
    let first = *d2.policies.keys().next().unwrap();
    d2.policies.get_mut(&first).unwrap().spec.priority -= 7;
    let removed = *d2.policies.keys().nth(3).unwrap();
    d2.policies.remove(&removed);
    let added = desired_from(
        "policy dir=out src=10.0.0.0/24 dst=10.44.0.0/16 prio=0x10200 action=esp origin=rule:new",
    );
    let new = *added.policies.keys().next().unwrap();
    d2.policies.extend(added.policies);
    (d1, d2, [first, removed, new])
}

//! `status`: owned kernel objects grouped by peer (joined with Desired's SaMeta by SaKey),
//! ungrouped owned policies with their origin, stale objects (ours by range, not desired),
//! and the kernel's XFRM error counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Desired, Observed, Origin, PolicyKey, SaDir, SaKey};

/// Counters shown even when zero: the ones that explain "my traffic is dropped".
pub const ALWAYS_SHOWN: [&str; 6] = [
    "XfrmInNoStates",
    "XfrmInTmplMismatch",
    "XfrmInStateMismatch",
    "XfrmInStateSeqError",
    "XfrmOutNoStates",
    "XfrmOutPolBlock",
];

/// One SA of a peer.
#[derive(Clone, Debug, Serialize)]
pub struct SaStatus {
    pub dir: SaDir,
    pub spi: String,
    pub epoch: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub algorithm: String,
    /// Present in the kernel (false: desired but missing — run apply).
    pub installed: bool,
    pub bytes: u64,
    pub packets: u64,
    /// Unix seconds of last use, 0 = never.
    pub last_used: u64,
    pub replay_drops: u32,
    pub integrity_failures: u32,
}

/// A peer and its SAs.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub peer: String,
    pub addresses: Vec<IpAddr>,
    pub sas: Vec<SaStatus>,
}

/// An owned policy the policy file explains.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyStatus {
    pub policy: String,
    pub priority: u32,
    pub origin: Origin,
    pub installed: bool,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub host: String,
    pub peers: Vec<PeerStatus>,
    pub policies: Vec<PolicyStatus>,
    /// Ours by range but not desired (apply removes them).
    pub stale: Vec<String>,
    pub foreign_policies: usize,
    pub foreign_states: usize,
    /// /proc/net/xfrm_stat: every non-zero counter plus [`ALWAYS_SHOWN`].
    pub counters: BTreeMap<String, u64>,
}

/// Parse /proc/net/xfrm_stat text ("XfrmInError   0" lines), keeping what status shows.
pub fn parse_xfrm_stat(text: &str) -> BTreeMap<String, u64> {
    parse_xfrm_stat_all(text)
        .into_iter()
        .filter(|(k, v): &(String, u64)| *v != 0 || ALWAYS_SHOWN.contains(&k.as_str()))
        .collect()
}

/// Every counter of /proc/net/xfrm_stat text, zero or not (metrics).
pub fn parse_xfrm_stat_all(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// All of this namespace's counters (empty without CONFIG_XFRM_STATISTICS).
pub fn read_xfrm_stat_all() -> BTreeMap<String, u64> {
    std::fs::read_to_string("/proc/net/xfrm_stat")
        .map(|t| parse_xfrm_stat_all(&t))
        .unwrap_or_default()
}

/// Read this namespace's counters (empty when the kernel has no CONFIG_XFRM_STATISTICS).
pub fn read_xfrm_stat() -> BTreeMap<String, u64> {
    std::fs::read_to_string("/proc/net/xfrm_stat")
        .map(|t| parse_xfrm_stat(&t))
        .unwrap_or_default()
}

fn sa_status(k: &SaKey, d: &crate::model::DesiredSa, o: &Observed) -> SaStatus {
    let have = o.states.get(k);
    let stats = have.map(|h| h.stats).unwrap_or_default();
    SaStatus {
        dir: d.meta.dir,
        spi: format!("{:#010x}", k.spi),
        epoch: d.meta.epoch,
        src: d.spec.src,
        dst: k.dst,
        algorithm: d.spec.alg.display_name(),
        installed: have.is_some(),
        bytes: stats.bytes,
        packets: stats.packets,
        last_used: stats.use_time,
        replay_drops: stats.replay_drops,
        integrity_failures: stats.integrity_failures,
    }
}

/// Join what the kernel holds with what the policy wants.
pub fn build(d: &Desired, o: &Observed, counters: BTreeMap<String, u64>) -> Status {
    let mut peers: BTreeMap<String, PeerStatus> = BTreeMap::new();
    for (k, want) in &d.states {
        let p = peers
            .entry(want.meta.peer.clone())
            .or_insert_with(|| PeerStatus {
                peer: want.meta.peer.clone(),
                addresses: vec![],
                sas: vec![],
            });
        let addr = match want.meta.dir {
            SaDir::Out => k.dst,
            SaDir::In => want.spec.src,
        };
        if !p.addresses.contains(&addr) {
            p.addresses.push(addr);
        }
        p.sas.push(sa_status(k, want, o));
    }
    let policies = d
        .policies
        .iter()
        .map(|(k, p)| PolicyStatus {
            policy: k.to_string(),
            priority: p.spec.priority,
            origin: p.origin.clone(),
            installed: o.policies.get(k) == Some(&p.spec),
        })
        .collect();
    let stale_p = o
        .policies
        .keys()
        .filter(|k| !d.policies.contains_key(k))
        .map(PolicyKey::to_string);
    let stale_s = o
        .states
        .keys()
        .filter(|k| !d.states.contains_key(k))
        .map(SaKey::to_string);
    Status {
        host: d.host.clone(),
        peers: peers.into_values().collect(),
        policies,
        stale: stale_p.chain(stale_s).collect(),
        foreign_policies: o.foreign_policies.len(),
        foreign_states: o.foreign_states.len(),
        counters,
    }
}

/// Human-readable report.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "host {}", s.host);
    for p in &s.peers {
        let addrs: Vec<String> = p.addresses.iter().map(IpAddr::to_string).collect();
        let _ = writeln!(out, "peer {} ({})", p.peer, addrs.join(", "));
        for sa in &p.sas {
            let state = if sa.installed { "" } else { "  MISSING" };
            let _ = writeln!(
                out,
                "  {:<4} spi {} epoch {} {}  {} B  {} pkts  last used {}{}",
                match sa.dir {
                    SaDir::In => "in",
                    SaDir::Out => "out",
                },
                sa.spi,
                sa.epoch,
                sa.algorithm,
                sa.bytes,
                sa.packets,
                if sa.last_used == 0 {
                    "never".to_string()
                } else {
                    sa.last_used.to_string()
                },
                state
            );
        }
    }
    let _ = writeln!(out, "policies");
    for p in &s.policies {
        let state = if p.installed { "" } else { "  MISSING/DIFFERS" };
        let _ = writeln!(
            out,
            "  {} priority {} ({}){state}",
            p.policy, p.priority, p.origin
        );
    }
    if !s.stale.is_empty() {
        let _ = writeln!(out, "stale (ours, not in the policy; apply removes them)");
        for x in &s.stale {
            let _ = writeln!(out, "  {x}");
        }
    }
    let _ = writeln!(
        out,
        "foreign objects (never touched): {} policies, {} states",
        s.foreign_policies, s.foreign_states
    );
    let _ = writeln!(out, "kernel counters (/proc/net/xfrm_stat)");
    for (k, v) in &s.counters {
        let _ = writeln!(out, "  {k:<24} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_keep_nonzero_and_the_always_shown() {
        let t =
            "XfrmInError              0\nXfrmInNoStates           0\nXfrmOutBundleGenError    3\n";
        let c = parse_xfrm_stat(t);
        assert_eq!(c.get("XfrmInNoStates"), Some(&0));
        assert_eq!(c.get("XfrmOutBundleGenError"), Some(&3));
        assert!(!c.contains_key("XfrmInError"));
    }
}

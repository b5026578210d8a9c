//! `status`: owned kernel objects grouped by peer (joined with Desired's SaMeta by SaKey),
//! ungrouped owned policies with their origin, stale objects (ours by range, not desired),
//! and the kernel's XFRM error counters. On a gateway, each peer's tunnels: outer addresses
//! and the subnets they carry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{Desired, Dir, Mode, Observed, Origin, PolicyAction, PolicyKey, SaDir, SaKey};

/// Counters shown even when zero: the ones that explain "my traffic is dropped".
pub const ALWAYS_SHOWN: [&str; 6] = [
    "XfrmInNoStates",
    "XfrmInTmplMismatch",
    "XfrmInStateMismatch",
    "XfrmInStateSeqError",
    "XfrmOutNoStates",
    "XfrmOutPolBlock",
];

/// Shown even when zero on a tunnel gateway: decrypted tunnel traffic no inbound or forward
/// policy matched (the two gateways disagree about the subnets).
pub const TUNNEL_SHOWN: &str = "XfrmInNoPols";

/// One SA of a peer.
#[derive(Clone, Debug, Serialize)]
pub struct SaStatus {
    pub dir: SaDir,
    pub mode: Mode,
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
    /// Tunnel mode only: the tunnels to this peer (empty in transport mode).
    pub tunnels: Vec<TunnelStatus>,
    pub sas: Vec<SaStatus>,
}

/// An ESP tunnel to a peer gateway: its outer addresses and the subnets it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TunnelStatus {
    /// This end's outer address (the tunnel's source outbound).
    pub local: IpAddr,
    /// The peer gateway's outer address.
    pub remote: IpAddr,
    /// Inner subnets on this side and on the peer's (the outbound selectors).
    pub local_subnets: Vec<IpNet>,
    pub remote_subnets: Vec<IpNet>,
}

/// The tunnels the desired outbound policies name, by (local, remote) outer address.
fn tunnels(d: &Desired) -> BTreeMap<(IpAddr, IpAddr), TunnelStatus> {
    let mut out: BTreeMap<(IpAddr, IpAddr), TunnelStatus> = BTreeMap::new();
    for (k, p) in d.policies.iter().filter(|(k, _)| k.dir == Dir::Out) {
        let PolicyAction::Protect(ts) = &p.spec.action else {
            continue;
        };
        for (local, remote) in ts.iter().filter_map(|t| t.tunnel) {
            let t = out.entry((local, remote)).or_insert_with(|| TunnelStatus {
                local,
                remote,
                local_subnets: vec![],
                remote_subnets: vec![],
            });
            for (list, net) in [
                (&mut t.local_subnets, k.sel.src),
                (&mut t.remote_subnets, k.sel.dst),
            ] {
                if !list.contains(&net) {
                    list.push(net);
                }
            }
        }
    }
    out
}

/// The counters status shows: every non-zero one, [`ALWAYS_SHOWN`], and on a gateway
/// [`TUNNEL_SHOWN`].
fn shown(all: BTreeMap<String, u64>, gateway: bool) -> BTreeMap<String, u64> {
    all.into_iter()
        .filter(|(k, v)| {
            *v != 0 || ALWAYS_SHOWN.contains(&k.as_str()) || (gateway && k == TUNNEL_SHOWN)
        })
        .collect()
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

fn sa_status(k: &SaKey, d: &crate::model::DesiredSa, o: &Observed) -> SaStatus {
    let have = o.states.get(k);
    let stats = have.map(|h| h.stats).unwrap_or_default();
    SaStatus {
        dir: d.meta.dir,
        mode: d.spec.mode,
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

/// Join what the kernel holds with what the policy wants; `counters`: every counter of
/// /proc/net/xfrm_stat (status keeps those worth showing).
pub fn build(d: &Desired, o: &Observed, counters: BTreeMap<String, u64>) -> Status {
    let mut peers: BTreeMap<String, PeerStatus> = BTreeMap::new();
    for (k, want) in &d.states {
        let p = peers
            .entry(want.meta.peer.clone())
            .or_insert_with(|| PeerStatus {
                peer: want.meta.peer.clone(),
                addresses: vec![],
                tunnels: vec![],
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
    let tunnels = tunnels(d);
    for p in peers.values_mut() {
        p.tunnels = tunnels
            .values()
            .filter(|t| p.addresses.contains(&t.remote))
            .cloned()
            .collect();
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
        counters: shown(counters, !tunnels.is_empty()),
    }
}

/// Human-readable report.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "host {}", s.host);
    for p in &s.peers {
        let addrs: Vec<String> = p.addresses.iter().map(IpAddr::to_string).collect();
        let _ = writeln!(out, "peer {} ({})", p.peer, addrs.join(", "));
        for t in &p.tunnels {
            let nets = |n: &[IpNet]| {
                n.iter()
                    .map(IpNet::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "  tunnel {} -> {}: {} <-> {}",
                t.local,
                t.remote,
                nets(&t.local_subnets),
                nets(&t.remote_subnets)
            );
        }
        for sa in &p.sas {
            let mode = match sa.mode {
                Mode::Tunnel => format!(" tunnel {} -> {}", sa.src, sa.dst),
                Mode::Transport => String::new(),
            };
            let state = if sa.installed { "" } else { "  MISSING" };
            let _ = writeln!(
                out,
                "  {:<4} spi {} epoch {}{mode} {}  {} B  {} pkts  last used {}{}",
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

    #[test]
    fn a_gateway_shows_its_tunnels_and_the_tunnel_counter() {
        use crate::keys::{Identity, PrivateKey};
        use crate::plan::{desired, LocalAddrs, Timestamp};
        let p = policy_schema::load(
            "two-site-tunnel.toml",
            include_str!("../../../examples/two-site-tunnel.toml"),
        )
        .unwrap()
        .policy;
        let key = PrivateKey::from_base64(include_str!("../../../examples/keys/gw-east.key"), "k");
        let id = Identity::resolve(&p, key.unwrap(), None).unwrap();
        let d = desired(
            &p,
            &id,
            &LocalAddrs::new(),
            Timestamp::from_secs(1_800_000_000),
        );
        let all = parse_xfrm_stat_all("XfrmInError 0\nXfrmInNoPols 0\nXfrmInNoStates 0\n");
        let s = build(&d.unwrap(), &Observed::default(), all.clone());
        let west = s.peers.iter().find(|p| p.peer == "gw-west").unwrap();
        let net = |n: &str| n.parse::<IpNet>().unwrap();
        assert_eq!(
            west.tunnels,
            vec![TunnelStatus {
                local: "198.51.100.1".parse().unwrap(),
                remote: "203.0.113.1".parse().unwrap(),
                local_subnets: vec![net("10.1.0.0/16")],
                remote_subnets: vec![net("10.2.0.0/16")],
            }]
        );
        assert!(west.sas.iter().all(|sa| sa.mode == Mode::Tunnel));
        assert_eq!(s.counters.get(TUNNEL_SHOWN), Some(&0));
        assert!(!s.counters.contains_key("XfrmInError"));
        let text = render(&s);
        assert!(
            text.contains("  tunnel 198.51.100.1 -> 203.0.113.1: 10.1.0.0/16 <-> 10.2.0.0/16\n"),
            "{text}"
        );
        assert!(
            text.contains(" tunnel 198.51.100.1 -> 203.0.113.1 "),
            "{text}"
        );
        // A host without tunnels does not list the tunnel counter when it is zero.
        let plain = build(&Desired::default(), &Observed::default(), all);
        assert!(!plain.counters.contains_key(TUNNEL_SHOWN));
    }
}

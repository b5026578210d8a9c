//! The lab topology (tests/lab/topology.json), the one file the namespace lab, the e2e crate
//! and the Vagrantfile all read.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ipnet::IpNet;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The whole topology; hosts keep the file's order (it is the matrix's row order).
#[derive(Clone, Debug, Deserialize)]
pub struct Topology {
    pub name: String,
    pub segments: BTreeMap<String, Segment>,
    #[serde(deserialize_with = "ordered_hosts")]
    pub hosts: Vec<Host>,
}

/// One L2 segment (a bridge in `lab-sw`, a private network under Vagrant).
#[derive(Clone, Debug, Deserialize)]
pub struct Segment {
    pub ipv4: IpNet,
    pub ipv6: IpNet,
    pub index: u8,
}

/// What a host is in the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs xfrm-agent with its own key.
    Member,
    /// Forwards between segments; no agent.
    Router,
    /// Neither key nor agent.
    Outsider,
    /// Configured by `xfrm-agent render` output only (interop test).
    Interop,
    /// Not in the policy inventory: an IKEv2 peer with a certificate, whose agent or
    /// strongSwan the test starts (tests/tests/lab_ike.rs).
    Roamer,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Host {
    #[serde(skip)]
    pub name: String,
    pub role: Role,
    pub description: String,
    #[serde(default)]
    pub extra: bool,
    pub links: Vec<Link>,
    #[serde(default)]
    pub forwarding: bool,
    #[serde(default)]
    pub firewall: Option<Firewall>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Link {
    pub segment: String,
    pub ipv4: IpAddr,
    pub ipv6: IpAddr,
    pub mac: String,
}

/// The firewall a router enforces in its forward chain.
#[derive(Clone, Debug, Deserialize)]
pub struct Firewall {
    /// IP protocol 50 is dropped between these two segments, both ways, both families.
    pub drop_esp_between: [String; 2],
}

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        })
    }
}

impl Host {
    /// The address the matrix uses for this host: its first link's, in `family`.
    pub fn addr(&self, family: Family) -> IpAddr {
        let l = &self.links[0];
        match family {
            Family::V4 => l.ipv4,
            Family::V6 => l.ipv6,
        }
    }
}

impl Topology {
    pub fn load(path: &Path) -> anyhow::Result<Topology> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// tests/lab/topology.json of this repository, or `$LAB_TOPOLOGY`.
    pub fn default_path() -> PathBuf {
        std::env::var_os("LAB_TOPOLOGY")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::repo_root().join("tests/lab/topology.json"))
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Hosts of the standard lab (no `extra` ones).
    pub fn standard_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| !h.extra)
    }

    /// The segment whose prefix holds `addr`.
    pub fn segment_of(&self, addr: &IpAddr) -> Option<&str> {
        self.segments
            .iter()
            .find(|(_, s)| s.ipv4.contains(addr) || s.ipv6.contains(addr))
            .map(|(n, _)| n.as_str())
    }

    /// Whether some router drops ESP (protocol 50) between the segments of `a` and `b`.
    pub fn esp_dropped_between(&self, a: &IpAddr, b: &IpAddr) -> bool {
        let (Some(sa), Some(sb)) = (self.segment_of(a), self.segment_of(b)) else {
            return false;
        };
        self.hosts
            .iter()
            .filter_map(|h| h.firewall.as_ref())
            .any(|fw| {
                let [x, y] = &fw.drop_esp_between;
                (x == sa && y == sb) || (x == sb && y == sa)
            })
    }
}

/// Hosts as a JSON object, kept in file order (a plain map would sort them).
fn ordered_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Host>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Host>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of hosts")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Vec<Host>, A::Error> {
            let mut out = Vec::new();
            while let Some((name, mut host)) = m.next_entry::<String, Host>()? {
                host.name = name;
                out.push(host);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_topology_loads_in_file_order() {
        let t = Topology::load(&Topology::default_path()).unwrap();
        let names: Vec<_> = t.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["site", "db", "fw", "mp", "edge", "client", "peer", "roamer"]
        );
        assert_eq!(
            t.host("mp").unwrap().addr(Family::V6).to_string(),
            "fd00:20::20"
        );
    }

    #[test]
    fn fw_drops_esp_between_dmz_and_intranet_only() {
        let t = Topology::load(&Topology::default_path()).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(t.esp_dropped_between(&ip("10.10.0.10"), &ip("10.20.0.20")));
        assert!(t.esp_dropped_between(&ip("fd00:20::20"), &ip("fd00:10::11")));
        assert!(!t.esp_dropped_between(&ip("10.10.0.10"), &ip("10.10.0.11")));
        assert!(!t.esp_dropped_between(&ip("10.30.0.30"), &ip("10.20.0.20")));
    }

    #[test]
    fn macs_are_unique_and_locally_administered() {
        let t = Topology::load(&Topology::default_path()).unwrap();
        let macs: Vec<_> = t
            .hosts
            .iter()
            .flat_map(|h| h.links.iter().map(|l| l.mac.clone()))
            .collect();
        let mut dedup = macs.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), macs.len());
        assert!(macs.iter().all(|m| m.starts_with("02:")));
    }
}

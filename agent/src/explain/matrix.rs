//! The outcome table: every ordered pair of endpoints (hosts, clusters, named addresses)
//! and of zones, for each service, in both address families.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::Policy;
use serde::Serialize;

pub use super::service::{default_services, service_note, Service};
use super::{Explanation, Keying, Model, Transport};

/// A row and column of the table: a name and its addresses (the first of each family is
/// used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

/// The hosts of the file, then its clusters (`cluster:NAME`).
pub fn policy_endpoints(p: &Policy) -> Vec<Endpoint> {
    let hosts = p.hosts.iter().map(|h| Endpoint {
        name: h.name.clone(),
        addrs: h.addresses.clone(),
    });
    let clusters = p.clusters.iter().map(|c| Endpoint {
        name: format!("cluster:{}", c.name),
        addrs: c.addresses.clone(),
    });
    hosts.chain(clusters).collect()
}

/// One pair of addresses tried for a cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// `v4` or `v6`.
    pub family: &'static str,
    /// Who the addresses are (a host name, or `other in ZONE`).
    pub src: String,
    pub dst: String,
    pub src_addr: IpAddr,
    pub dst_addr: IpAddr,
    pub outcome: Transport,
    /// The deciding entries at the initiator and the responder.
    pub decided_by: [String; 2],
    /// Why, in one line (the dropping direction's reason, else the forward one's).
    pub reason: String,
    /// How the ESP is keyed (forward direction), when it is ESP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keying: Option<Keying>,
}

impl Sample {
    fn of(e: &Explanation, src: &str, dst: &str) -> Sample {
        let reason = if e.forward.transport == Transport::Dropped || e.outcome != Transport::Dropped
        {
            e.forward.reason.clone()
        } else {
            e.reply.reason.clone()
        };
        Sample {
            family: if e.flow.src.is_ipv4() { "v4" } else { "v6" },
            src: src.to_string(),
            dst: dst.to_string(),
            src_addr: e.flow.src,
            dst_addr: e.flow.dst,
            outcome: e.outcome,
            decided_by: [e.src.decider.describe(), e.dst.decider.describe()],
            reason,
            keying: e.forward.keying.clone(),
        }
    }
}

/// One cell: row `src`, column `dst`, service index `service`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub src: usize,
    pub dst: usize,
    pub service: usize,
    /// The distinct outcomes of the samples, in order esp, esp-in-udp, clear, dropped.
    pub outcomes: Vec<Transport>,
    pub samples: Vec<Sample>,
}

impl Cell {
    /// `esp`, or `esp/dropped` when the samples differ (families, zone members).
    pub fn summary(&self) -> String {
        let words: Vec<&str> = self.outcomes.iter().map(|t| t.as_str()).collect();
        if words.is_empty() {
            "-".into()
        } else {
            words.join("/")
        }
    }

    /// Whether some sample's ESP is negotiated over IKEv2 (not static keys).
    pub fn ikev2(&self) -> bool {
        (self.samples.iter()).any(|s| s.keying.as_ref().is_some_and(Keying::is_ikev2))
    }
}

/// A square table of cells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Grid {
    pub names: Vec<String>,
    /// Row-major: `src × dst × service` (the host table's diagonal has no samples).
    pub cells: Vec<Cell>,
    #[serde(skip)]
    services: usize,
}

impl Grid {
    /// The cell of row `src`, column `dst`, service `service`.
    pub fn cell(&self, src: usize, dst: usize, service: usize) -> &Cell {
        let n = self.names.len();
        &self.cells[(src * n + dst) * self.services + service]
    }
}

/// The whole table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Matrix {
    pub services: Vec<Service>,
    /// Per service, the entries that name its port (empty for ICMP).
    pub notes: Vec<String>,
    pub hosts: Grid,
    pub zones: Grid,
}

impl Matrix {
    /// Build the table of `endpoints` (and of the policy's zones) for `services`.
    pub fn build(m: &Model, endpoints: &[Endpoint], services: &[Service]) -> Matrix {
        let rows: Vec<Vec<(String, IpAddr)>> = endpoints
            .iter()
            .map(|e| firsts(&e.addrs).map(|a| (e.name.clone(), a)).collect())
            .collect();
        let zones = zone_rows(m.policy);
        Matrix {
            services: services.to_vec(),
            notes: services
                .iter()
                .map(|s| service_note(m.policy, *s))
                .collect(),
            hosts: grid(m, names(endpoints), &rows, services, false),
            zones: grid(
                m,
                zones.iter().map(|z| z.0.clone()),
                &reps(&zones),
                services,
                true,
            ),
        }
    }
}

/// The first address of each family.
fn firsts(addrs: &[IpAddr]) -> impl Iterator<Item = IpAddr> + '_ {
    let v4 = addrs.iter().find(|a| a.is_ipv4());
    let v6 = addrs.iter().find(|a| a.is_ipv6());
    v4.into_iter().chain(v6).copied()
}

fn names(endpoints: &[Endpoint]) -> impl Iterator<Item = String> + '_ {
    endpoints.iter().map(|e| e.name.clone())
}

/// Every cell of rows × rows × services; a row is a list of (who, address) to sample.
/// `diagonal`: a row is also paired with itself (a zone's members with each other).
fn grid(
    m: &Model,
    names: impl Iterator<Item = String>,
    rows: &[Vec<(String, IpAddr)>],
    services: &[Service],
    diagonal: bool,
) -> Grid {
    let mut cells = Vec::new();
    for (i, from) in rows.iter().enumerate() {
        for (j, to) in rows.iter().enumerate() {
            for (k, svc) in services.iter().enumerate() {
                let samples = if i == j && !diagonal {
                    Vec::new()
                } else {
                    samples(m, from, to, *svc)
                };
                let outcomes: BTreeSet<Transport> = samples.iter().map(|s| s.outcome).collect();
                cells.push(Cell {
                    src: i,
                    dst: j,
                    service: k,
                    outcomes: outcomes.into_iter().collect(),
                    samples,
                });
            }
        }
    }
    Grid {
        names: names.collect(),
        cells,
        services: services.len(),
    }
}

fn samples(
    m: &Model,
    from: &[(String, IpAddr)],
    to: &[(String, IpAddr)],
    svc: Service,
) -> Vec<Sample> {
    let mut out = Vec::new();
    for (s, a) in from {
        for (d, b) in to
            .iter()
            .filter(|(_, b)| b.is_ipv4() == a.is_ipv4() && b != a)
        {
            out.push(Sample::of(&m.explain(&svc.flow(*a, *b)), s, d));
        }
    }
    out
}

/// Members sampled per zone: a zone cell tries every pair of samples, so a zone of
/// thousands of hosts would cost millions of explanations for one cell.
const MEMBERS_PER_ZONE: usize = 16;

/// Each zone with its members' addresses (the first [`MEMBERS_PER_ZONE`] addresses) and one address of it that no host or cluster
/// holds (`other in ZONE`); then `elsewhere`, an address outside every zone.
fn zone_rows(p: &Policy) -> Vec<(String, Vec<(String, IpAddr)>)> {
    let owned: BTreeSet<IpAddr> = (p.hosts.iter().flat_map(|h| h.addresses.iter()))
        .chain(p.clusters.iter().flat_map(|c| c.addresses.iter()))
        .copied()
        .collect();
    let members = policy_endpoints(p);
    let mut out = Vec::new();
    for z in &p.zones {
        let inside = |a: &IpAddr| z.prefixes.iter().any(|n| n.contains(a));
        let mut reps: Vec<(String, IpAddr)> = (members.iter())
            .flat_map(|e| firsts(&e.addrs).map(|a| (e.name.clone(), a)))
            .filter(|(_, a)| inside(a))
            .take(MEMBERS_PER_ZONE)
            .collect();
        for net in first_of_each_family(&z.prefixes) {
            if let Some(a) = net.hosts().take(4096).find(|a| !owned.contains(a)) {
                reps.push((format!("other in {}", z.name), a));
            }
        }
        out.push((z.name.clone(), reps));
    }
    let in_a_zone = |a: &IpAddr| {
        p.zones
            .iter()
            .flat_map(|z| &z.prefixes)
            .any(|n| n.contains(a))
    };
    let mut elsewhere: Vec<(String, IpAddr)> = (members.iter())
        .flat_map(|e| firsts(&e.addrs).map(|a| (e.name.clone(), a)))
        .filter(|(_, a)| !in_a_zone(a))
        .take(MEMBERS_PER_ZONE)
        .collect();
    let outside = ELSEWHERE
        .iter()
        .map(|a| a.parse::<IpAddr>().expect("literal address"))
        .filter(|a| !in_a_zone(a) && !owned.contains(a));
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = outside.partition(|a| a.is_ipv4());
    for a in v4.first().into_iter().chain(v6.first()) {
        elsewhere.push(("an address outside every zone".into(), *a));
    }
    out.push(("elsewhere".into(), elsewhere));
    out
}

/// Documentation addresses (RFC 5737, RFC 3849) that stand for "somewhere else".
const ELSEWHERE: [&str; 6] = [
    "192.0.2.1",
    "198.51.100.201",
    "203.0.113.201",
    "2001:db8::1",
    "2001:db8:ffff::1",
    "100::1",
];

fn first_of_each_family(nets: &[IpNet]) -> impl Iterator<Item = &IpNet> {
    let v4 = nets.iter().find(|n| n.addr().is_ipv4());
    let v6 = nets.iter().find(|n| n.addr().is_ipv6());
    v4.into_iter().chain(v6)
}

fn reps(zones: &[(String, Vec<(String, IpAddr)>)]) -> Vec<Vec<(String, IpAddr)>> {
    zones.iter().map(|z| z.1.clone()).collect()
}

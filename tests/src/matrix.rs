//! The flow matrix: every ordered pair of hosts × a few services × both families; for each
//! cell the oracle's expectation, the observed outcome (did the echo come back, and what did
//! the captures see), and a verdict.
//!
//! Captures run on every host for the whole matrix; probes are bracketed by timestamps and a
//! cell's packets are the ones in its window, between its two addresses, sent by either end
//! (`outgoing` in that end's capture: what left the host, after XFRM). Cells that should
//! work run one at a time so ESP packets (which hide their ports) are attributed to the
//! right cell; cells expected to fail run concurrently — only their clear packets matter,
//! and those carry the flow's ports.

use std::collections::BTreeMap;

use policy_schema::Policy;

use crate::exec::Exec;
use crate::oracle::{self, Expectation, Flow, Outcome, Proto};
use crate::pcap::{Kind, Packet};
use crate::probe::{Batch, Probe};
use crate::remote::{self, Capture, Server};
use crate::topology::{Family, Host, Topology};

/// The services each pair is probed on.
pub const SERVICES: [(Proto, u16); 5] = [
    (Proto::Icmp, 0),
    (Proto::Tcp, 443),
    (Proto::Tcp, 80),
    (Proto::Udp, 53),
    (Proto::Tcp, 16992),
];

/// One cell: a flow between two named hosts, and what the oracle expects of it.
#[derive(Clone, Debug)]
pub struct Cell {
    pub src: String,
    pub dst: String,
    pub family: Family,
    pub flow: Flow,
    pub expect: Expectation,
}

impl Cell {
    pub fn service(&self) -> String {
        service_name(self.flow.proto, self.flow.port)
    }
}

pub fn service_name(proto: Proto, port: u16) -> String {
    match proto {
        Proto::Icmp => "icmp".into(),
        Proto::Tcp => format!("tcp/{port}"),
        Proto::Udp => format!("udp/{port}"),
    }
}

/// Packets of one cell, by who sent them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub clear_by_src: usize,
    pub clear_by_dst: usize,
    pub esp_by_src: usize,
    pub esp_by_dst: usize,
    pub udp_by_src: usize,
    pub udp_by_dst: usize,
}

/// What happened to a cell.
#[derive(Clone, Debug)]
pub struct Observation {
    pub ok: bool,
    pub detail: String,
    pub counts: Counts,
    pub outcome: Option<Outcome>,
}

/// The judgement of a cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    pub timeout_ms: u64,
    pub settle_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout_ms: 1500,
            settle_ms: 20,
        }
    }
}

/// Every ordered pair of `hosts`, every service, both families.
pub fn cells(policy: &Policy, topo: &Topology, hosts: &[&Host]) -> Vec<Cell> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        for s in hosts {
            for d in hosts.iter().filter(|d| d.name != s.name) {
                for (proto, port) in SERVICES {
                    let flow = Flow {
                        src: s.addr(family),
                        dst: d.addr(family),
                        proto,
                        port,
                    };
                    let expect = oracle::expect(policy, topo, &flow);
                    out.push(Cell {
                        src: s.name.clone(),
                        dst: d.name.clone(),
                        family,
                        flow,
                        expect,
                    });
                }
            }
        }
    }
    out
}

/// Whether the cell is expected to end without an echo (it then runs in the concurrent phase).
fn expected_to_fail(c: &Cell) -> bool {
    c.expect.outcome == Outcome::Dropped
}

/// Run the cells on the lab reached through `exec`; one observation per cell, in order.
pub fn run(
    exec: &dyn Exec,
    topo: &Topology,
    cells: &[Cell],
    o: &Options,
) -> anyhow::Result<Vec<Observation>> {
    let mut hosts: Vec<&str> = cells
        .iter()
        .flat_map(|c| [c.src.as_str(), c.dst.as_str()])
        .collect();
    hosts.sort();
    hosts.dedup();
    let tcp: Vec<u16> = SERVICES
        .iter()
        .filter(|s| s.0 == Proto::Tcp)
        .map(|s| s.1)
        .collect();
    let udp: Vec<u16> = SERVICES
        .iter()
        .filter(|s| s.0 == Proto::Udp)
        .map(|s| s.1)
        .collect();

    let mut servers = Vec::new();
    let mut captures = Vec::new();
    let started = (|| -> anyhow::Result<()> {
        for h in &hosts {
            let host = topo
                .host(h)
                .ok_or_else(|| anyhow::anyhow!("{h} is not in the topology"))?;
            let addrs = [host.addr(Family::V4), host.addr(Family::V6)];
            servers.push(Server::start(exec, h, &addrs, &tcp, &udp)?);
            captures.push(Capture::start(exec, h)?);
        }
        Ok(())
    })();
    let results = started.and_then(|()| probe_all(exec, &hosts, cells, o));
    // Stop everything whatever happened, then report the first error.
    let mut stop_err = None;
    let mut marked = results.is_ok();
    for s in &mut servers {
        if let Err(e) = s.mark() {
            (marked, stop_err) = (false, stop_err.or(Some(e)));
        }
    }
    let mut packets: BTreeMap<String, Vec<Packet>> = BTreeMap::new();
    for c in captures {
        let host = c.host.clone();
        match c.stop(marked) {
            Ok(p) => {
                packets.insert(host, p);
            }
            Err(e) => stop_err = stop_err.or(Some(e)),
        }
    }
    for s in servers {
        if let Err(e) = s.stop() {
            stop_err = stop_err.or(Some(e));
        }
    }
    let results = results?;
    if let Some(e) = stop_err {
        return Err(e);
    }
    Ok(cells
        .iter()
        .zip(results)
        .map(|(c, r)| {
            let counts = count(c, &packets, r.start_ns, r.end_ns);
            Observation {
                ok: r.ok,
                detail: r.detail,
                counts,
                outcome: classify(r.ok, &counts),
            }
        })
        .collect())
}

/// Phase 1: expected-to-work cells one at a time, one prober process per source host.
/// Phase 2: expected-to-fail cells, every source host at once.
fn probe_all(
    exec: &dyn Exec,
    hosts: &[&str],
    cells: &[Cell],
    o: &Options,
) -> anyhow::Result<Vec<crate::probe::Result>> {
    let mut results: Vec<Option<crate::probe::Result>> = vec![None; cells.len()];
    for concurrent in [false, true] {
        let mut running = Vec::new();
        for h in hosts {
            let probes: Vec<Probe> = cells
                .iter()
                .enumerate()
                .filter(|(_, c)| c.src == *h && expected_to_fail(c) == concurrent)
                .map(|(id, c)| Probe {
                    id,
                    src: c.flow.src,
                    dst: c.flow.dst,
                    proto: proto_name(c.flow.proto).into(),
                    port: c.flow.port,
                })
                .collect();
            if probes.is_empty() {
                continue;
            }
            let batch = Batch {
                concurrent,
                timeout_ms: o.timeout_ms,
                settle_ms: o.settle_ms,
                probes,
            };
            let child = remote::start_probes(exec, h, &batch)?;
            if concurrent {
                running.push((h, child));
            } else {
                store(&mut results, remote::finish_probes(child, h)?);
            }
        }
        for (h, child) in running {
            store(&mut results, remote::finish_probes(child, h)?);
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| anyhow::anyhow!("no result for cell {i}")))
        .collect()
}

fn store(into: &mut [Option<crate::probe::Result>], rs: Vec<crate::probe::Result>) {
    for r in rs {
        let id = r.id;
        into[id] = Some(r);
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Icmp => "icmp",
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

/// Whether `p` is one of the flow's own packets in clear, sent by `from` (src or dst end).
fn is_clear_of(flow: &Flow, p: &Packet, by_src: bool) -> bool {
    let (expected_src, expected_dst) = if by_src {
        (flow.src, flow.dst)
    } else {
        (flow.dst, flow.src)
    };
    if p.src != expected_src || p.dst != expected_dst {
        return false;
    }
    match (flow.proto, p.kind) {
        (Proto::Tcp, Kind::Tcp { sport, dport }) | (Proto::Udp, Kind::Udp { sport, dport }) => {
            if by_src {
                dport == flow.port
            } else {
                sport == flow.port
            }
        }
        (Proto::Icmp, Kind::Icmp { typ }) => {
            if by_src {
                typ == 8 || typ == 128
            } else {
                typ == 0 || typ == 129
            }
        }
        _ => false,
    }
}

/// Count the cell's packets in its window, each from the capture of the end that sent it.
pub fn count(
    c: &Cell,
    packets: &BTreeMap<String, Vec<Packet>>,
    start_ns: u64,
    end_ns: u64,
) -> Counts {
    let mut n = Counts::default();
    for (by_src, host, me, peer) in [
        (true, &c.src, c.flow.src, c.flow.dst),
        (false, &c.dst, c.flow.dst, c.flow.src),
    ] {
        let sent = packets.get(host).into_iter().flatten().filter(|p| {
            p.outgoing && p.ts_ns >= start_ns && p.ts_ns <= end_ns && p.src == me && p.dst == peer
        });
        for p in sent {
            let (clear, esp, udp) = match p.kind {
                Kind::Esp { .. } => (0, 1, 0),
                Kind::EspUdp { .. } => (0, 0, 1),
                _ => (usize::from(is_clear_of(&c.flow, p, by_src)), 0, 0),
            };
            if by_src {
                (n.clear_by_src, n.esp_by_src, n.udp_by_src) = (
                    n.clear_by_src + clear,
                    n.esp_by_src + esp,
                    n.udp_by_src + udp,
                );
            } else {
                (n.clear_by_dst, n.esp_by_dst, n.udp_by_dst) = (
                    n.clear_by_dst + clear,
                    n.esp_by_dst + esp,
                    n.udp_by_dst + udp,
                );
            }
        }
    }
    n
}

/// The observed outcome; None when the evidence fits no outcome (e.g. an echo with no
/// packet seen either way).
pub fn classify(ok: bool, n: &Counts) -> Option<Outcome> {
    let clear = n.clear_by_src + n.clear_by_dst;
    if !ok {
        Some(Outcome::Dropped)
    } else if n.clear_by_src > 0 && n.clear_by_dst > 0 {
        Some(Outcome::Clear)
    } else if clear == 0 && n.udp_by_src > 0 && n.udp_by_dst > 0 {
        Some(Outcome::EspUdp)
    } else if clear == 0 && n.esp_by_src > 0 && n.esp_by_dst > 0 {
        Some(Outcome::Esp)
    } else {
        None
    }
}

/// Judge a cell: the observed outcome must be the expected one, and an end that requires
/// ESP must never have sent the flow in clear (fail-closed), whatever the outcome.
pub fn verdict(c: &Cell, obs: &Observation) -> Verdict {
    let e = c.expect;
    if e.outcome != Outcome::Clear {
        if e.src.requires_esp() && obs.counts.clear_by_src > 0 {
            return Verdict::Fail(format!(
                "{} sent {} clear packets of the flow",
                c.src, obs.counts.clear_by_src
            ));
        }
        if e.dst.requires_esp() && obs.counts.clear_by_dst > 0 {
            return Verdict::Fail(format!(
                "{} sent {} clear packets of the flow",
                c.dst, obs.counts.clear_by_dst
            ));
        }
    }
    match obs.outcome {
        Some(seen) if seen == e.outcome => Verdict::Pass,
        Some(seen) => Verdict::Fail(format!(
            "expected {}, saw {} ({}; {:?})",
            e.outcome.as_str(),
            seen.as_str(),
            obs.detail,
            obs.counts
        )),
        None => Verdict::Fail(format!(
            "expected {}, evidence fits nothing: {:?}",
            e.outcome.as_str(),
            obs.counts
        )),
    }
}

#[cfg(test)]
#[path = "matrix_tests.rs"]
mod tests;

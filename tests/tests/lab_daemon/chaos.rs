//! Chaos under traffic (issue 11 item 8): someone else deletes the agents' own objects at
//! random while three members stream protected traffic. Each delete leaves a gap until the
//! daemon repairs it; a deleted outbound `require` policy used to send the flow in clear in
//! that gap. Its fail-closed backstop (docs/design.md) must drop instead.
//!
//! - deletes: ≥ 200 random deletes of owned policies and SAs, spread over the three
//!   members at ~20 Hz with random gaps (0–100 ms), sent over XFRM netlink from a thread in
//!   each namespace — the messages `ip xfrm policy|state delete` sends, to the objects it
//!   can name (not the 0/2 half of a backstop: iproute2 sends no mark whose value is 0),
//!   with no process per delete (a process start stalls the whole UML guest for ~0.2 s).
//!   Asserted: 0 clear packets of every flow (each end's own capture; on failure the
//!   deletes before each clear packet are printed), ≥ 200 deletes that found their
//!   object, every object back at the end. Losses are reported: a deleted SA or policy
//!   drops until it is back.
//! - flushes: `ip xfrm policy flush` on a random member, 10 times. A flush removes the
//!   backstops too: what leaks in the gap is reported, not asserted; every object must
//!   come back.
//! - flushes again, with the netfilter backstop of docs/design.md on every member
//!   (`tests/lab/flush-backstop`: nftables `rt ipsec missing`, or iptables' policy match
//!   where the kernel has no ip/inet nf_tables, as in UML): 0 clear packets asserted.

use std::collections::BTreeMap;
use std::time::Duration;

use agent::kernel::{self, encode, NlSocket};
use agent::model::OpKind;
use anyhow::{ensure, Context};
use e2e::daemon::poll;
use e2e::lab::Lab;
use e2e::probe::now_ns;
use e2e::remote::StreamRun;
use e2e::stream::{Report, Spec};
use e2e::topology::Family;
use e2e::wire::{self, Flow};
use policy_schema::Ownership;

use super::rig::{objects, same_keys, Objects};
use super::{addr, describe, member_captures, member_servers, stop_captures, PORT, RATE};

const MEMBERS: [&str; 3] = ["site", "db", "mp"];
const DELETES: usize = 240;
const MIN_HITS: usize = 200;
const FLUSHES: usize = 10;

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// An XFRM socket opened inside `host`'s namespace (it stays there when used elsewhere).
fn socket_in(host: &str) -> anyhow::Result<NlSocket> {
    std::thread::scope(|sc| {
        sc.spawn(|| -> anyhow::Result<NlSocket> {
            kernel::netns::enter(host).with_context(|| format!("entering {host}"))?;
            Ok(kernel::open()?)
        })
        .join()
        .expect("socket thread")
    })
}

/// What can be deleted on one member: the owned policies and SAs, by their kernel keys
/// (stable across the daemon's repairs, unlike policy indices).
struct Targets {
    sock: NlSocket,
    ops: Vec<(OpKind, &'static str)>,
}

fn targets(host: &str) -> anyhow::Result<Targets> {
    let mut sock = socket_in(host)?;
    let seen = kernel::observe(&mut sock, &Ownership::default())?;
    let mut ops = Vec::new();
    // What `ip xfrm policy delete` can name: iproute2 sends no mark whose value is 0, so
    // the 0/2 half of a backstop is beyond it (a flush removes it; phase 2). A deleter on
    // netlink that takes a policy *and* the backstop half its packets match within one
    // repair window is a double fault this backstop does not cover (docs/design.md).
    for k in seen
        .policies
        .keys()
        .filter(|k| k.mark.is_none_or(|m| m.value != 0))
    {
        let what = match (k.mark, k.dir.as_str()) {
            (Some(_), _) => "backstop half",
            (None, "out") => "out policy",
            _ => "in/fwd policy",
        };
        ops.push((OpKind::DelPolicy(*k), what));
    }
    for k in seen.states.keys() {
        ops.push((OpKind::DelSa(*k), "SA"));
    }
    ensure!(!ops.is_empty(), "{host}: no owned objects to delete");
    Ok(Targets { sock, ops })
}

/// Deletes done, per kind: (found their object, found it already gone).
type Tally = BTreeMap<&'static str, (usize, usize)>;

/// When each delete was sent, on which host, of what.
type DeleteLog = Vec<(u64, String)>;

fn delete_at_random(
    members: &mut [(String, Targets)],
    rng: &mut Rng,
) -> anyhow::Result<(Tally, DeleteLog)> {
    let mut tally = Tally::new();
    let mut log = DeleteLog::new();
    for _ in 0..DELETES {
        let (host, t) = &mut members[rng.below(MEMBERS.len() as u64) as usize];
        let (kind, what) = &t.ops[rng.below(t.ops.len() as u64) as usize];
        let key = match kind {
            OpKind::DelPolicy(k) => k.to_string(),
            OpKind::DelSa(k) => k.to_string(),
            _ => unreachable!("only deletes are made"),
        };
        log.push((now_ns(), format!("{host}: {key}")));
        let req = encode::op_request(kind);
        let ack = t.sock.transact(std::slice::from_ref(&req))?;
        let e = tally.entry(what).or_default();
        match ack.into_iter().next() {
            Some(Ok(())) => e.0 += 1,
            Some(Err(n)) if n.kind() == kernel::ErrorKind::NotFound => e.1 += 1,
            Some(Err(n)) => anyhow::bail!("delete {kind:?}: {n}"),
            None => anyhow::bail!("no answer to a delete"),
        }
        std::thread::sleep(Duration::from_millis(rng.below(100)));
    }
    Ok((tally, log))
}

/// The deletes sent in the 2 s before each clear packet, to tell what let it out.
fn explain(clear: &[u64], log: &DeleteLog) -> String {
    let mut out = String::new();
    for t in clear {
        out.push_str(&format!(
            "clear packet at {t}; deletes in the 2 s before it:\n"
        ));
        for (at, what) in log
            .iter()
            .filter(|(at, _)| *at <= *t && t - at < 2_000_000_000)
        {
            out.push_str(&format!("  -{:.1} ms {what}\n", (t - at) as f64 / 1e6));
        }
    }
    out
}

fn flush_at_random(rng: &mut Rng) -> anyhow::Result<Vec<&'static str>> {
    let mut hosts = Vec::new();
    for _ in 0..FLUSHES {
        let host = MEMBERS[rng.below(MEMBERS.len() as u64) as usize];
        let st = std::process::Command::new("ip")
            .args(["-n", host, "xfrm", "policy", "flush"])
            .status()?;
        ensure!(st.success(), "ip -n {host} xfrm policy flush");
        hosts.push(host);
        std::thread::sleep(Duration::from_millis(500 + rng.below(1000)));
    }
    Ok(hosts)
}

/// Installs (or removes) tests/lab/flush-backstop on every member, for the prefixes its
/// policies protect: everything from the intranet hosts, the intranet from mp. Returns
/// how (nftables, or iptables where the kernel has no ip/inet tables, as UML).
fn netfilter_backstop(lab: &Lab, install: bool) -> anyhow::Result<String> {
    let script = e2e::repo_root().join("tests/lab/flush-backstop");
    let mut how = Vec::new();
    for h in MEMBERS {
        let prefixes = if h == "mp" {
            "10.10.0.0/24 fd00:10::/64"
        } else {
            "0.0.0.0/0 ::/0"
        };
        let cmd = match install {
            true => format!("{} install {prefixes}", script.display()),
            false => format!("{} remove", script.display()),
        };
        how.push(lab.sh(h, &cmd)?.trim().to_string());
    }
    how.dedup();
    Ok(how.join(", "))
}

/// Every member holds its owned objects again (the daemon repaired all).
fn wait_restored(want: &[Objects]) -> anyhow::Result<()> {
    for (h, w) in MEMBERS.iter().zip(want) {
        poll(
            &format!("{h}: every owned object back"),
            Duration::from_secs(20),
            Duration::from_millis(200),
            || Ok(same_keys(&objects(h, true)?, w).then_some(())),
        )?;
    }
    Ok(())
}

struct Flows {
    list: [(&'static str, Flow, &'static str, &'static str); 3],
}

fn flows(lab: &Lab) -> Flows {
    let f = |c: &str, s: &str, fam| Flow {
        client: addr(lab, c, fam),
        server: addr(lab, s, fam),
        port: PORT,
    };
    Flows {
        list: [
            ("site→db v4", f("site", "db", Family::V4), "site", "db"),
            (
                "mp→site v4 ESP-in-UDP",
                f("mp", "site", Family::V4),
                "mp",
                "site",
            ),
            ("db→site v6", f("db", "site", Family::V6), "db", "site"),
        ],
    }
}

/// One flow's phase: its stream's report, when either end sent it in clear, a line.
type FlowOutcome = (Report, Vec<u64>, String);

/// One phase: streams and captures around `disrupt`; returns per flow (report, clear
/// packets on the wire from either end) and what `disrupt` said.
fn phase<T>(
    lab: &Lab,
    flows: &Flows,
    disrupt: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<FlowOutcome>, T)> {
    let site = [flows.list[1].1.server, flows.list[2].1.server];
    let mut servers = member_servers(lab, &site, &[flows.list[0].1.server])?;
    let caps = member_captures(lab)?;
    let t0 = now_ns();
    let streams = flows
        .list
        .iter()
        .map(|(_, f, client, _)| {
            let spec = Spec {
                src: f.client,
                dst: f.server,
                port: f.port,
                rate: RATE,
                linger_ms: 1000,
            };
            StreamRun::start(&lab.exec, client, &spec)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(500));
    let said = disrupt();
    std::thread::sleep(Duration::from_millis(500));
    let reports = streams
        .into_iter()
        .map(StreamRun::stop)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let t1 = now_ns();
    let packets = stop_captures(caps, &mut servers)?;
    for (_, s) in servers {
        s.stop()?;
    }
    let said = said?;
    let mut out = Vec::new();
    for ((name, f, c, s), r) in flows.list.iter().zip(reports) {
        let (cs, ss) = wire::both(&packets, c, s, f, t0, t1);
        let line = format!(
            "{}; on the wire: {c} sent {} protected + {} clear, {s} sent {} protected + {} clear",
            describe(name, &r),
            cs.protected(),
            cs.clear,
            ss.protected(),
            ss.clear
        );
        let none = Vec::new();
        let mut clear = wire::clear_times(packets.get(*c).unwrap_or(&none), f, true, t0, t1);
        clear.extend(wire::clear_times(
            packets.get(*s).unwrap_or(&none),
            f,
            false,
            t0,
            t1,
        ));
        out.push((r, clear, line));
    }
    Ok((out, said))
}

/// A phase's title and each flow's line into `out`; then waits until every member holds
/// all of `want` again (the daemons repaired everything).
fn record(
    out: &mut String,
    title: &str,
    phase: &[FlowOutcome],
    want: &[Objects],
) -> anyhow::Result<()> {
    out.push_str(title);
    out.push('\n');
    for (_, _, line) in phase {
        out.push_str(&format!("  {line}\n"));
    }
    wait_restored(want).with_context(|| out.clone())
}

pub fn deletes_and_flushes(lab: &Lab) -> anyhow::Result<String> {
    let seed = now_ns() | 1;
    let mut rng = Rng(seed);
    let mut out = format!("seed {seed:#x}\n");
    let want: Vec<Objects> = MEMBERS
        .iter()
        .map(|h| objects(h, true))
        .collect::<anyhow::Result<_>>()?;
    let flows = flows(lab);
    let mut members = MEMBERS
        .iter()
        .map(|h| Ok((h.to_string(), targets(h)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = std::time::Instant::now();
    let (deleted, (tally, log)) = phase(lab, &flows, || delete_at_random(&mut members, &mut rng))?;
    let secs = started.elapsed().as_secs_f64();
    let hits: usize = tally.values().map(|v| v.0).sum();
    let title = format!("deletes: {DELETES} in {secs:.1} s (with streams' start and stop), {hits} found their object; per kind (found, already gone): {tally:?}");
    record(&mut out, &title, &deleted, &want)?;

    let (flushed, hosts) = phase(lab, &flows, || flush_at_random(&mut rng))?;
    record(
        &mut out,
        &format!("policy flushes on {hosts:?}:"),
        &flushed,
        &want,
    )?;

    let how = netfilter_backstop(lab, true)?;
    let guarded = phase(lab, &flows, || flush_at_random(&mut rng));
    netfilter_backstop(lab, false)?;
    let (guarded, hosts) = guarded?;
    let title = format!("policy flushes on {hosts:?} with the netfilter backstop ({how}):");
    record(&mut out, &title, &guarded, &want)?;

    let clear: Vec<u64> = deleted.iter().flat_map(|d| d.1.iter().copied()).collect();
    ensure!(
        clear.is_empty(),
        "clear packets under deletes\n{out}{}",
        explain(&clear, &log)
    );
    let clear: usize = guarded.iter().map(|d| d.1.len()).sum();
    ensure!(
        clear == 0,
        "clear packets under flushes with the netfilter backstop\n{out}"
    );
    ensure!(
        hits >= MIN_HITS,
        "only {hits} deletes found their object\n{out}"
    );
    for (r, _, line) in deleted.iter().chain(&flushed).chain(&guarded) {
        ensure!(
            r.sent() > 0 && r.lost() < r.sent(),
            "no traffic: {line}\n{out}"
        );
    }
    Ok(out)
}

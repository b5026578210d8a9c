//! Continuous traffic for the daemon tests: a UDP stream of numbered datagrams at a fixed
//! rate to a `lab-probe serve` echo, each send and each echo timestamped, so a test can
//! count losses and measure outages (the time between the last echo before a disruption
//! and the first one after it) to the packet.
//!
//! The client runs inside a lab host (`lab-probe stream`, see [`run`]); the analysis
//! ([`Report`]) is pure and runs in the test.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::probe::now_ns;

/// What `lab-probe stream` is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub port: u16,
    /// Datagrams per second.
    pub rate: u32,
    /// After the stop, how long to wait for echoes still in flight.
    pub linger_ms: u64,
}

/// Every datagram of a stream: when it was sent and when its echo came back (wall clock,
/// ns since the Unix epoch: comparable with capture timestamps and other hosts' clocks,
/// which in the lab are one kernel's clock).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    pub sent_ns: Vec<u64>,
    pub echo_ns: Vec<Option<u64>>,
    /// send(2) calls that failed (the kernel refused the datagram, e.g. no SA under a
    /// `require` policy); those datagrams count as lost.
    pub send_errors: u64,
    /// Times the sender woke up more than [`MAX_LAG`] late (its whole machine was not
    /// scheduled: a User-Mode Linux guest on a loaded host), and the datagrams it did not
    /// send for it. It carries on from then instead of sending the backlog in one burst,
    /// which the lab's own queues (socket buffers, the backlog of a single-CPU guest)
    /// would drop and the test would count as the agent's losses.
    #[serde(default)]
    pub stalls: u64,
    #[serde(default)]
    pub skipped: u64,
}

/// How far behind its schedule the sender may fall before it skips ahead.
pub const MAX_LAG: Duration = Duration::from_millis(100);

/// A run of consecutive lost datagrams, with the echoes around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    pub first_seq: usize,
    pub lost: usize,
    /// Echo time of the last datagram answered before the run (None: the stream began
    /// with losses).
    pub last_echo_before_ns: Option<u64>,
    /// Echo time of the first datagram answered after the run (None: never restored).
    pub first_echo_after_ns: Option<u64>,
}

impl Outage {
    /// From the last echo before to the first echo after: an upper bound on how long the
    /// flow was broken (a disruption can only start after the last echo got through).
    pub fn gap_ns(&self) -> Option<u64> {
        Some(self.first_echo_after_ns? - self.last_echo_before_ns?)
    }
}

impl Report {
    pub fn sent(&self) -> usize {
        self.sent_ns.len()
    }

    pub fn lost(&self) -> usize {
        self.echo_ns.iter().filter(|e| e.is_none()).count()
    }

    /// Runs of lost datagrams, in order.
    pub fn outages(&self) -> Vec<Outage> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.echo_ns.len() {
            if self.echo_ns[i].is_some() {
                i += 1;
                continue;
            }
            let first = i;
            while i < self.echo_ns.len() && self.echo_ns[i].is_none() {
                i += 1;
            }
            out.push(Outage {
                first_seq: first,
                lost: i - first,
                last_echo_before_ns: self.echo_ns[..first].iter().rev().find_map(|e| *e),
                first_echo_after_ns: self.echo_ns[i..].iter().find_map(|e| *e),
            });
        }
        out
    }

    /// The longest time between two consecutive echoes (in arrival order), with the
    /// moment it ended: covers outages and slow paths alike. None with fewer than two
    /// echoes.
    pub fn max_echo_gap(&self) -> Option<(u64, u64)> {
        let mut echoes: Vec<u64> = self.echo_ns.iter().flatten().copied().collect();
        echoes.sort_unstable();
        echoes
            .windows(2)
            .map(|w| (w[1] - w[0], w[1]))
            .max_by_key(|(gap, _)| *gap)
    }

    /// The longest time between two consecutive echoes that arrived after `from_ns` or
    /// spanned it (the gap around a disruption that happened at `from_ns`).
    pub fn echo_gap_around(&self, from_ns: u64, to_ns: u64) -> Option<u64> {
        let mut echoes: Vec<u64> = self.echo_ns.iter().flatten().copied().collect();
        echoes.sort_unstable();
        echoes
            .windows(2)
            .filter(|w| w[1] >= from_ns && w[0] <= to_ns)
            .map(|w| w[1] - w[0])
            .max()
    }

    /// Datagrams sent in `[from_ns, to_ns]` and how many of them were lost.
    pub fn lost_between(&self, from_ns: u64, to_ns: u64) -> (usize, usize) {
        let mut sent = 0;
        let mut lost = 0;
        for (s, e) in self.sent_ns.iter().zip(&self.echo_ns) {
            if *s >= from_ns && *s <= to_ns {
                sent += 1;
                lost += usize::from(e.is_none());
            }
        }
        (sent, lost)
    }

    /// The disruption in `[from_ns, to_ns]`: bad moments are the send times of lost
    /// datagrams and `other_bad_ns` (in the window). None when nothing went wrong there.
    pub fn disruption(&self, from_ns: u64, to_ns: u64, other_bad_ns: &[u64]) -> Option<Disruption> {
        let within = |t: &u64| *t >= from_ns && *t <= to_ns;
        let lost: Vec<u64> = self
            .sent_ns
            .iter()
            .zip(&self.echo_ns)
            .filter(|(s, e)| e.is_none() && within(s))
            .map(|(s, _)| *s)
            .collect();
        let other: Vec<u64> = other_bad_ns.iter().copied().filter(within).collect();
        let start = lost.iter().chain(&other).min().copied()?;
        let end = lost.iter().chain(&other).max().copied()?;
        let last_good = self.echo_ns.iter().flatten().filter(|e| **e < start).max();
        let first_good = self
            .sent_ns
            .iter()
            .zip(&self.echo_ns)
            .filter(|(s, _)| **s > end)
            .find_map(|(_, e)| *e);
        Some(Disruption {
            lost: lost.len(),
            other: other.len(),
            span_ns: first_good
                .zip(last_good.copied())
                .map(|(b, a)| b.saturating_sub(a)),
        })
    }

    /// The first echo at or after `t_ns` whose datagram was sent at or after `t_ns`: when
    /// the flow was seen working again after something that happened at `t_ns`.
    pub fn first_echo_sent_after(&self, t_ns: u64) -> Option<u64> {
        self.sent_ns
            .iter()
            .zip(&self.echo_ns)
            .filter(|(s, _)| **s >= t_ns)
            .find_map(|(_, e)| *e)
    }
}

/// A disruption of a stream, as the application saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disruption {
    /// Datagrams lost.
    pub lost: usize,
    /// Bad moments given by the caller (e.g. clear packets of the flow on the wire).
    pub other: usize,
    /// From the last echo before the first bad moment to the first echo of a datagram sent
    /// after the last one: an upper bound on how long the flow was not working as it
    /// should (it cannot have broken before an echo that got through). None: never
    /// restored.
    pub span_ns: Option<u64>,
}

/// The datagram's payload: recognisable in a decrypted capture, carries its sequence.
fn payload(seq: usize) -> Vec<u8> {
    format!("xfrm-lab stream {seq:08}").into_bytes()
}

fn seq_of(data: &[u8]) -> Option<usize> {
    std::str::from_utf8(data)
        .ok()?
        .strip_prefix("xfrm-lab stream ")?
        .trim()
        .parse()
        .ok()
}

/// Stream until `stop` reads EOF (or a line "stop"), then linger for late echoes.
/// `started` is called once the first datagram is out.
pub fn run(
    spec: &Spec,
    stop: impl BufRead + Send + 'static,
    started: impl FnOnce(),
) -> std::io::Result<Report> {
    let sock = UdpSocket::bind(SocketAddr::new(spec.src, 0))?;
    sock.connect(SocketAddr::new(spec.dst, spec.port))?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let stopping = stopping.clone();
        std::thread::spawn(move || {
            for line in stop.lines() {
                match line {
                    Ok(l) if l.trim() != "stop" => continue,
                    _ => break,
                }
            }
            stopping.store(true, Ordering::SeqCst);
        });
    }
    let report = Arc::new(Mutex::new(Report::default()));
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (sock, report, done) = (sock.try_clone()?, report.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !done.load(Ordering::SeqCst) {
                // Errors (timeouts, ICMP errors on the connected socket) are not echoes.
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let at = now_ns();
                if let Some(seq) = seq_of(&buf[..n]) {
                    let mut r = report.lock().expect("report lock");
                    if let Some(slot @ None) = r.echo_ns.get_mut(seq) {
                        *slot = Some(at);
                    }
                }
            }
        })
    };
    let period = Duration::from_secs_f64(1.0 / f64::from(spec.rate.max(1)));
    let mut t0 = Instant::now();
    let mut seq = 0usize;
    let mut slot = 0u32;
    let mut started = Some(started);
    while !stopping.load(Ordering::SeqCst) {
        // Absolute schedule: a late wake-up does not slow the stream down. A long stall
        // skips ahead (see `Report::stalls`).
        let due = t0 + period * slot;
        let now = Instant::now();
        if let Some(wait) = due.checked_duration_since(now) {
            std::thread::sleep(wait);
        } else if now - due > MAX_LAG {
            let behind = ((now - due).as_secs_f64() / period.as_secs_f64()) as u32;
            let mut r = report.lock().expect("report lock");
            r.stalls += 1;
            r.skipped += u64::from(behind);
            (t0, slot) = (now, 0);
        }
        slot += 1;
        {
            let mut r = report.lock().expect("report lock");
            r.sent_ns.push(now_ns());
            r.echo_ns.push(None);
        }
        if sock.send(&payload(seq)).is_err() {
            report.lock().expect("report lock").send_errors += 1;
        }
        if let Some(f) = started.take() {
            f();
        }
        seq += 1;
    }
    let linger_end = Instant::now() + Duration::from_millis(spec.linger_ms);
    while Instant::now() < linger_end {
        if report
            .lock()
            .expect("report lock")
            .echo_ns
            .iter()
            .all(Option::is_some)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::SeqCst);
    let _ = receiver.join();
    let r = report.lock().expect("report lock").clone();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(echo: &[Option<u64>]) -> Report {
        Report {
            sent_ns: (0..echo.len() as u64).map(|i| i * 10).collect(),
            echo_ns: echo.to_vec(),
            ..Report::default()
        }
    }

    #[test]
    fn outages_are_runs_of_losses_with_the_echoes_around_them() {
        let r = report(&[Some(1), Some(11), None, None, Some(41), None]);
        assert_eq!(r.lost(), 3);
        let o = r.outages();
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].first_seq, o[0].lost), (2, 2));
        assert_eq!(o[0].gap_ns(), Some(30));
        assert_eq!(o[1].first_echo_after_ns, None);
        assert_eq!(o[1].gap_ns(), None);
    }

    #[test]
    fn gaps_follow_echo_arrival() {
        let r = report(&[Some(1), Some(11), None, None, Some(41), Some(51)]);
        assert_eq!(r.max_echo_gap(), Some((30, 41)));
        assert_eq!(r.echo_gap_around(20, 20), Some(30));
        assert_eq!(r.echo_gap_around(45, 60), Some(10));
        assert_eq!(r.lost_between(15, 35), (2, 2));
        assert_eq!(r.first_echo_sent_after(15), Some(41));
    }

    #[test]
    fn a_disruption_spans_losses_and_other_bad_moments() {
        // Sent at 0, 10, …; echoed 1 ns later unless lost.
        let r = report(&[Some(1), Some(11), None, Some(31), Some(41), Some(51)]);
        let d = r.disruption(0, 100, &[]).unwrap();
        assert_eq!((d.lost, d.other, d.span_ns), (1, 0, Some(20)));
        // A clear reply at 35 extends it: restored with the datagram sent at 40.
        let d = r.disruption(0, 100, &[35]).unwrap();
        assert_eq!((d.lost, d.other, d.span_ns), (1, 1, Some(30)));
        assert_eq!(r.disruption(30, 100, &[]), None);
        let never = report(&[Some(1), None, None]);
        assert_eq!(never.disruption(0, 100, &[]).unwrap().span_ns, None);
    }

    #[test]
    fn payload_round_trips_its_sequence() {
        assert_eq!(seq_of(&payload(1234)), Some(1234));
        assert_eq!(seq_of(b"xfrm-lab probe 1"), None);
    }
}

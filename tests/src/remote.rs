//! Long-running helpers on lab hosts, through the [`Exec`] seam: packet captures, echo
//! servers, and prober runs. Each is started, waited for by an event (a line on its
//! output), and stopped explicitly; none outlives the test: each is also a guard whose
//! Drop stops the process when a test fails (panics or returns early) before stopping it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::exec::Exec;
use crate::pcap::{self, Packet};
use crate::probe::{Batch, Result as ProbeResult};
use crate::stream::{Report as StreamReport, Spec as StreamSpec};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Forward a child's output lines to a channel, from a thread that drains it to the end.
fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Start a long-running lab-probe command (`argv[1]` names it) on `host`: stdin held open
/// as its control channel, stdout forwarded line by line.
fn spawn_probe(
    exec: &dyn Exec,
    host: &str,
    argv: &[String],
) -> anyhow::Result<(Child, mpsc::Receiver<String>)> {
    let what = argv.get(1).map_or("", String::as_str);
    let mut child = exec
        .command(host, argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting lab-probe {what} on {host}"))?;
    let rx = lines_of(child.stdout.take().expect("piped"));
    Ok((child, rx))
}

/// Wait for a line containing `needle`, or fail with what was seen.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, what: &str) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return Ok(()),
            Ok(l) => seen.push(l),
            Err(_) => bail!("{what} did not become ready: {}", seen.join(" | ")),
        }
    }
}

fn wait_bounded(child: &mut Child, what: &str) -> anyhow::Result<std::process::ExitStatus> {
    wait_within(child, what, Duration::from_secs(30))
}

fn wait_within(
    child: &mut Child,
    what: &str,
    limit: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("{what} did not exit within {} s (killed)", limit.as_secs())
}

/// Best-effort stop for a guard's Drop: `polite` (a signal, closing stdin), a short wait,
/// then SIGKILL, and always reap. Nothing is reported: the test is already failing.
fn stop_quietly(child: &mut Child, polite: impl FnOnce(&mut Child)) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    polite(child);
    if wait_within(child, "", Duration::from_secs(3)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `tcpdump -i any` inside one host, in SLL2 framing so the direction of each packet is known.
pub struct Capture<'a> {
    exec: &'a dyn Exec,
    pub host: String,
    child: Child,
    pidfile: String,
    file: String,
}

impl<'a> Capture<'a> {
    pub fn start(exec: &'a dyn Exec, host: &str) -> anyhow::Result<Capture<'a>> {
        let dir = exec.scratch_dir();
        let (pidfile, file) = (
            format!("{dir}/capture-{host}.pid"),
            format!("{dir}/capture-{host}.pcap"),
        );
        let script = format!(
            // --immediate-mode: without it packets wait in the ring for up to a second
            // and the ones still there when tcpdump is stopped are lost.
            "echo $$ > {pidfile}; exec tcpdump -i any -y LINUX_SLL2 --immediate-mode -U -n -s 256 -w {file} 'ip or ip6'"
        );
        let mut child = exec
            .command(host, &["sh".into(), "-c".into(), script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting tcpdump on {host}"))?;
        let rx = lines_of(child.stderr.take().expect("piped"));
        if let Err(e) = wait_for(&rx, "listening on", &format!("tcpdump on {host}")) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(Capture {
            exec,
            host: host.into(),
            child,
            pidfile,
            file,
        })
    }

    /// Stop the capture and read back its packets. With `marked`, first wait (bounded) until
    /// the file holds the loopback marker the host's echo server sent: then every packet
    /// sent before it is in the file too.
    pub fn stop(mut self, marked: bool) -> anyhow::Result<Vec<Packet>> {
        if marked {
            self.wait_for_marker()?;
        }
        self.exec
            .interrupt(&self.host, &self.child, &self.pidfile)?;
        let st = wait_bounded(&mut self.child, &format!("tcpdump on {}", self.host))?;
        anyhow::ensure!(
            st.success() || st.code() == Some(130),
            "tcpdump on {} ended with {st}",
            self.host
        );
        let bytes = self.exec.read_file(&self.host, &self.file)?;
        pcap::parse(&bytes).with_context(|| format!("capture of {}", self.host))
    }

    fn wait_for_marker(&self) -> anyhow::Result<()> {
        let is_marker = |p: &Packet| {
            p.dst == IpAddr::from([127, 0, 0, 1])
                && matches!(p.kind, pcap::Kind::Udp { dport, .. } if dport == crate::probe::MARK_PORT)
        };
        for _ in 0..300 {
            let bytes = self.exec.read_file(&self.host, &self.file)?;
            if pcap::parse(&bytes).is_ok_and(|ps| ps.iter().any(is_marker)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the capture on {} never saw its end marker", self.host)
    }

    /// Where the capture file is inside the host (kept for failure reports).
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl Drop for Capture<'_> {
    /// A capture the test did not stop (it failed first): interrupt tcpdump, then kill it.
    /// Without this a failing test leaves tcpdump running in the namespace and the next
    /// tear-down cannot delete it cleanly.
    fn drop(&mut self) {
        let (exec, host, pidfile) = (self.exec, self.host.clone(), self.pidfile.clone());
        stop_quietly(&mut self.child, |c| {
            let _ = exec.interrupt(&host, c, &pidfile);
        });
    }
}

/// `lab-probe serve` on one host: echo on TCP and UDP ports until its stdin closes.
pub struct Server {
    host: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(
        exec: &dyn Exec,
        host: &str,
        addrs: &[IpAddr],
        tcp: &[u16],
        udp: &[u16],
    ) -> anyhow::Result<Server> {
        Self::spawn(exec, host, addrs, tcp, udp, false)
    }

    /// UDP echo on addresses that need not be configured yet (IP_FREEBIND): a cluster's
    /// virtual address on each member, answered by whichever holds it.
    pub fn start_freebind(
        exec: &dyn Exec,
        host: &str,
        addrs: &[IpAddr],
        udp: &[u16],
    ) -> anyhow::Result<Server> {
        Self::spawn(exec, host, addrs, &[], udp, true)
    }

    fn spawn(
        exec: &dyn Exec,
        host: &str,
        addrs: &[IpAddr],
        tcp: &[u16],
        udp: &[u16],
        freebind: bool,
    ) -> anyhow::Result<Server> {
        let join = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let mut argv = vec![
            exec.probe_path(),
            "serve".into(),
            "--tcp".into(),
            join(tcp),
            "--udp".into(),
            join(udp),
        ];
        if freebind {
            argv.push("--freebind".into());
        }
        for a in addrs {
            argv.extend(["--addr".into(), a.to_string()]);
        }
        let (mut child, rx) = spawn_probe(exec, host, &argv)?;
        if let Err(e) = wait_for(&rx, "ready", &format!("echo server on {host}")) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(Server {
            host: host.into(),
            child,
            lines: rx,
        })
    }

    /// Have the host send a capture end marker (see [`Capture::stop`]).
    pub fn mark(&mut self) -> anyhow::Result<()> {
        let stdin = self.child.stdin.as_mut().expect("piped");
        stdin.write_all(b"mark\n")?;
        stdin.flush()?;
        wait_for(&self.lines, "marked", &format!("marker on {}", self.host))
    }

    /// Have the host announce `addr` on `dev`: a gratuitous ARP for IPv4, an unsolicited
    /// Neighbor Advertisement for IPv6 (see [`crate::garp`]).
    pub fn announce(&mut self, dev: &str, addr: IpAddr) -> anyhow::Result<()> {
        let stdin = self.child.stdin.as_mut().expect("piped");
        writeln!(stdin, "announce {dev} {addr}")?;
        stdin.flush()?;
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .with_context(|| format!("no answer to announce from {}", self.host))?;
            if l == "announced" {
                return Ok(());
            }
            anyhow::ensure!(!l.starts_with("announce failed"), "{}: {l}", self.host);
        }
    }

    /// Close its stdin and wait for it to exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        wait_bounded(&mut self.child, &format!("echo server on {}", self.host))?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_quietly(&mut self.child, |c| drop(c.stdin.take()));
    }
}

/// A running `lab-probe run`; [`finish_probes`] collects its results, Drop kills it.
pub struct ProbeRun {
    child: Child,
}

impl Drop for ProbeRun {
    fn drop(&mut self) {
        stop_quietly(&mut self.child, |c| {
            let _ = c.kill();
        });
    }
}

/// Start `lab-probe run` on `host` with `batch`; [`finish_probes`] collects the results.
pub fn start_probes(exec: &dyn Exec, host: &str, batch: &Batch) -> anyhow::Result<ProbeRun> {
    let child = exec
        .command(host, &[exec.probe_path(), "run".into()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting lab-probe run on {host}"))?;
    let mut run = ProbeRun { child };
    let mut stdin = run.child.stdin.take().expect("piped");
    stdin.write_all(serde_json::to_string(batch)?.as_bytes())?;
    drop(stdin);
    Ok(run)
}

/// Wait for a prober (it ends by itself: every probe has a timeout) and parse its results.
pub fn finish_probes(mut run: ProbeRun, host: &str) -> anyhow::Result<Vec<ProbeResult>> {
    let mut out = Vec::new();
    run.child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut out)
        .with_context(|| format!("reading results from {host}"))?;
    let st = run.child.wait()?;
    anyhow::ensure!(st.success(), "lab-probe run on {host} failed ({st})");
    serde_json::from_slice(&out).with_context(|| format!("results from {host}"))
}

/// A running `lab-probe stream` (numbered UDP datagrams to an echo at a fixed rate);
/// [`StreamRun::stop`] ends it and returns every datagram's fate, Drop kills it.
pub struct StreamRun {
    host: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl StreamRun {
    /// Start streaming from `host`; returns once the first datagram is out.
    pub fn start(exec: &dyn Exec, host: &str, spec: &StreamSpec) -> anyhow::Result<StreamRun> {
        let argv = vec![
            exec.probe_path(),
            "stream".into(),
            "--src".into(),
            spec.src.to_string(),
            "--dst".into(),
            spec.dst.to_string(),
            "--port".into(),
            spec.port.to_string(),
            "--rate".into(),
            spec.rate.to_string(),
            "--linger-ms".into(),
            spec.linger_ms.to_string(),
        ];
        let (child, lines) = spawn_probe(exec, host, &argv)?;
        let run = StreamRun {
            host: host.into(),
            child,
            lines,
        };
        // On failure the guard's Drop kills the prober.
        wait_for(&run.lines, "streaming", &format!("stream from {host}"))?;
        Ok(run)
    }

    /// Stop sending, wait for late echoes (the spec's linger), and return the report.
    pub fn stop(mut self) -> anyhow::Result<StreamReport> {
        drop(self.child.stdin.take());
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .with_context(|| format!("no report from the stream on {}", self.host))?;
        wait_bounded(&mut self.child, &format!("stream on {}", self.host))?;
        serde_json::from_str(&line).with_context(|| format!("stream report from {}", self.host))
    }
}

impl Drop for StreamRun {
    fn drop(&mut self) {
        stop_quietly(&mut self.child, |c| {
            let _ = c.kill();
        });
    }
}

/// Stop captures and read them back; a capture on a host with an echo server in `servers`
/// is stopped once that server's end marker is in it (see [`Capture::stop`]).
pub fn stop_captures(
    caps: Vec<Capture<'_>>,
    servers: &mut std::collections::BTreeMap<String, Server>,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<Packet>>> {
    let mut out = std::collections::BTreeMap::new();
    for c in caps {
        let host = c.host.clone();
        let marked = match servers.get_mut(&host) {
            Some(s) => {
                s.mark()?;
                true
            }
            None => false,
        };
        out.insert(host, c.stop(marked)?);
    }
    Ok(out)
}

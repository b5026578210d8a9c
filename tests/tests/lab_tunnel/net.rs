//! The tunnel lab's own five namespaces (not the main lab's hosts): two sites, their
//! gateways, and a transit segment, made by the test and removed by its guard's Drop.
//!
//! ```text
//!  east 10.91.0.10        gw-east                 gw-west        west 10.92.0.10
//!  fd00:91::10 ── .1 (lan) .1 ─── transit ─── .2 .1 (lan) ── fd00:92::10
//!                          10.93.0.0/24, fd00:93::/64 (a bridge in tun-transit,
//!                          which also has 10.93.0.66: the attacker on the wire)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

/// Namespace names, in the order of the chain.
pub const EAST: &str = "tun-east";
pub const GW_EAST: &str = "tun-gwe";
pub const TRANSIT: &str = "tun-transit";
pub const GW_WEST: &str = "tun-gww";
pub const WEST: &str = "tun-west";
const ALL: [&str; 5] = [EAST, GW_EAST, TRANSIT, GW_WEST, WEST];

/// Where the test keeps its policy, keys, logs and captures (tmpfs inside UML: keys 0600).
pub const SCRATCH: &str = "/run/xfrm-tunnel-lab";

/// Veth pairs (ns, ifname) ↔ (ns, ifname); the transit ends are enslaved to br0.
const LINKS: [(&str, &str, &str, &str); 4] = [
    (EAST, "lan0", GW_EAST, "lan0"),
    (GW_EAST, "wan0", TRANSIT, "p-east"),
    (GW_WEST, "wan0", TRANSIT, "p-west"),
    (WEST, "lan0", GW_WEST, "lan0"),
];

/// A site host (`site` 91 east, 92 west): `.10` on its LAN, the other site via its gateway.
fn site_host(site: u8, other: u8) -> String {
    format!(
        "ip addr add 10.{site}.0.10/24 dev lan0
         ip addr add fd00:{site}::10/64 dev lan0 nodad
         ip route add 10.{other}.0.0/24 via 10.{site}.0.1
         ip route add fd00:{other}::/64 via fd00:{site}::1"
    )
}

/// A gateway: `.1` on its site's LAN, `outer` on the transit, forwarding both families,
/// the other site via the peer gateway's outer address `peer`.
fn gateway(site: u8, other: u8, outer: u8, peer: u8) -> String {
    format!(
        "ip addr add 10.{site}.0.1/24 dev lan0
         ip addr add fd00:{site}::1/64 dev lan0 nodad
         ip addr add 10.93.0.{outer}/24 dev wan0
         ip addr add fd00:93::{outer}/64 dev wan0 nodad
         ip route add 10.{other}.0.0/24 via 10.93.0.{peer}
         ip route add fd00:{other}::/64 via fd00:93::{peer}
         echo 1 > /proc/sys/net/ipv4/ip_forward
         echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"
    )
}

/// Per namespace: the commands that give it its addresses, routes and forwarding. IPv6
/// addresses skip DAD (no waiting on a busy guest).
fn config(ns: &str) -> String {
    match ns {
        EAST => site_host(91, 92),
        WEST => site_host(92, 91),
        GW_EAST => gateway(91, 92, 1, 2),
        GW_WEST => gateway(92, 91, 2, 1),
        // The attacker: on the transit wire, with an east-site source on its loopback and
        // routes to the west site via gw-west, as a spoofer would set up.
        // br0 keeps its link-local address (the source of its neighbour solicitations),
        // without DAD: no tentative window on a busy guest.
        TRANSIT => "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
                    echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad
                    ip link add br0 type bridge
                    ip link set p-east master br0
                    ip link set p-west master br0
                    ip link set br0 up
                    ip addr add 10.93.0.66/24 dev br0
                    ip addr add fd00:93::66/64 dev br0 nodad
                    ip addr add 10.91.0.99/32 dev lo
                    ip addr add fd00:91::99/128 dev lo nodad
                    ip route add 10.92.0.0/24 via 10.93.0.2
                    ip route add fd00:92::/64 via fd00:93::2"
            .into(),
        _ => unreachable!("not a tunnel lab namespace: {ns}"),
    }
}

/// The running tunnel lab; Drop stops the agents and deletes the namespaces.
pub struct TunnelLab {
    agents: Vec<Child>,
    pub scratch: PathBuf,
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| what.to_string())?;
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run a shell script inside a namespace; its stdout.
pub fn sh(ns: &str, script: &str) -> anyhow::Result<String> {
    run(
        Command::new("ip").args(["netns", "exec", ns, "sh", "-ec", script]),
        &format!("{ns}: {script}"),
    )
}

fn ip_batch(batch: &str) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), batch.as_bytes())?;
    drop(child.stdin.take());
    ensure!(child.wait()?.success(), "ip -batch failed:\n{batch}");
    Ok(())
}

impl TunnelLab {
    /// Make the namespaces and links (both veth ends born inside their namespaces: the
    /// root namespace never holds a lab object) and configure every host.
    pub fn up() -> anyhow::Result<TunnelLab> {
        let lab = TunnelLab {
            agents: vec![],
            scratch: PathBuf::from(SCRATCH),
        };
        let _ = std::fs::remove_dir_all(&lab.scratch);
        std::fs::create_dir_all(&lab.scratch)?;
        let mut batch: String = ALL.iter().map(|n| format!("netns add {n}\n")).collect();
        for (a, ia, b, ib) in LINKS {
            batch += &format!("link add name {ia} netns {a} type veth peer name {ib} netns {b}\n");
        }
        ip_batch(&batch)?;
        for ns in ALL {
            let ifs: Vec<&str> = LINKS
                .iter()
                .flat_map(|&(a, ia, b, ib)| [(a, ia), (b, ib)])
                .filter(|&(n, _)| n == ns)
                .map(|(_, i)| i)
                .collect();
            let up: String = ifs
                .iter()
                .map(|i| format!("ip link set {i} up\n"))
                .collect();
            sh(ns, &format!("ip link set lo up\n{up}{}", config(ns)))?;
        }
        Ok(lab)
    }

    /// Start `xfrm-agent run` in a gateway's namespace with its key; returns once the
    /// daemon is running (readiness is the test's to poll, on kernel state).
    pub fn start_agent(&mut self, ns: &str, policy: &Path, key: &Path) -> anyhow::Result<()> {
        self.start_agent_with(ns, policy, key, &[])
    }

    /// [`TunnelLab::start_agent`] with more arguments (`--cert FILE --cert-key FILE`).
    pub fn start_agent_with(
        &mut self,
        ns: &str,
        policy: &Path,
        key: &Path,
        extra: &[&std::ffi::OsStr],
    ) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.scratch.join(format!("agent-{ns}.log")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(e2e::lab::agent_binary())
            .arg("run")
            .arg("-c")
            .arg(policy)
            .arg("--key")
            .arg(key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the agent in {ns}"))?;
        self.agents.push(child);
        Ok(())
    }

    /// Stop the agents (TERM, then KILL after 5 s), delete the namespaces, and check none
    /// is left.
    pub fn down(mut self) -> anyhow::Result<()> {
        self.teardown();
        let left: Vec<&str> = ALL
            .into_iter()
            .filter(|n| Path::new("/run/netns").join(n).exists())
            .collect();
        ensure!(left.is_empty(), "namespaces left behind: {left:?}");
        Ok(())
    }

    fn teardown(&mut self) {
        for c in &self.agents {
            // SAFETY: kill(2) on a child we spawned and have not reaped (`ip netns exec` execs).
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.agents {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.agents.clear();
        let batch: String = ALL
            .iter()
            .filter(|n| Path::new("/run/netns").join(n).exists())
            .map(|n| format!("netns del {n}\n"))
            .collect();
        if !batch.is_empty() {
            let _ = ip_batch(&batch);
        }
    }
}

impl Drop for TunnelLab {
    fn drop(&mut self) {
        self.teardown();
    }
}

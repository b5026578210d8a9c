//! Command-line interface: argument definitions and dispatch. Each command lives in its own
//! module and returns the process exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock;
use crate::load::{ClusterKeyFile, PolicyFiles};
use crate::plan::Timestamp;

mod apply;
mod check;
mod docs;
mod explain;
mod flush;
mod keys;
mod matrix;
mod plan;
mod run;
mod status;

/// xfrm-agent: one IPsec policy file → kernel XFRM policies and ESP SAs, kept in step.
#[derive(Parser, Debug)]
#[command(name = "xfrm-agent", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a policy file (exit 0 valid, 1 invalid; warnings on stderr).
    Check {
        /// The policy file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_size)]
        /// Refuse a policy file larger than this (suffixes K, M, G: powers of 1024).
        max_policy_size: u64,
    },
    /// Show the XFRM objects this host needs (and, as root, the diff against the kernel).
    Plan(PlanArgs),
    /// Print the desired objects as `ip xfrm` commands that `ip -batch -` accepts.
    Render(RenderArgs),
    /// Make the kernel match the policy once: observe, diff, apply, verify.
    Apply(ApplyArgs),
    /// Run the daemon: keep the kernel in step with the file, addresses, time and drift.
    Run(RunArgs),
    /// Owned objects grouped by peer, with counters and kernel error statistics.
    Status(StatusArgs),
    /// Remove every object this agent owns, and nothing else.
    Flush(FlushArgs),
    /// Which exemption or rule decides a flow, both ways, and how it goes (no root).
    Explain(explain::ExplainArgs),
    /// The host × host and zone × zone outcome table of a policy (no root).
    Matrix(matrix::MatrixArgs),
    /// Print the JSON Schema of the policy file.
    Schema,
    /// Print a shell completion script (bash: `source <(xfrm-agent completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: docs::Shell,
    },
    /// Write the man pages (xfrm-agent.1, xfrm-agent-COMMAND.1) into DIR (packaging).
    #[command(hide = true)]
    Manpages { dir: PathBuf },
    /// Print a new X25519 private key (base64).
    Keygen,
    /// Read a private key on stdin and print its public key.
    Pubkey,
}

/// Where the policy and this host's identity come from.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// The policy file.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// This host's private key file (must not be readable by group or others).
    #[arg(long)]
    pub key: PathBuf,
    /// Act as this host instead of the one the key identifies (tooling only).
    #[arg(long)]
    pub host: Option<String>,
    /// A cluster's private key, NAME=FILE (default: cluster-NAME.key beside --key).
    #[arg(long, value_name = "NAME=FILE", value_parser = parse_cluster_key)]
    pub cluster_key: Vec<ClusterKeyFile>,
    /// Compute for this Unix time instead of now (testing, time travel).
    #[arg(long, hide = true)]
    pub now: Option<u64>,
    /// Refuse a policy file larger than this (suffixes K, M, G: powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_size)]
    pub max_policy_size: u64,
    /// This host's IKEv2 certificate, PEM (chain allowed); needed when the policy keys
    /// some of its pairs over IKEv2.
    #[arg(long, value_name = "FILE", requires = "cert_key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert, PEM (must not be readable by group or others).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub cert_key: Option<PathBuf>,
    /// Our IKE identity: an address, host name or user@domain the certificate names
    /// (default: its subject DN).
    #[arg(long, value_name = "ID", requires = "cert")]
    pub cert_id: Option<String>,
}

impl PolicyArgs {
    /// The files to load the policy and identity from.
    pub fn files(&self) -> PolicyFiles {
        PolicyFiles {
            config: self.config.clone(),
            key: self.key.clone(),
            host: self.host.clone(),
            cluster_keys: self.cluster_key.clone(),
            max_policy_size: self.max_policy_size,
            cert: self.cert.clone(),
            cert_key: self.cert_key.clone(),
            cert_id: self.cert_id.clone(),
        }
    }

    /// `--now` or the system clock.
    pub fn now(&self) -> Timestamp {
        self.now.map_or_else(clock::now, Timestamp::from_secs)
    }
}

/// `--cluster-key NAME=FILE`: a cluster name and a non-empty file name.
pub fn parse_cluster_key(s: &str) -> Result<ClusterKeyFile, String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok(ClusterKeyFile {
            cluster: name.to_string(),
            path: PathBuf::from(path),
        }),
        _ => Err(format!(
            "{s:?} is not NAME=FILE (e.g. db=/etc/xfrm-agent/cluster-db.key)"
        )),
    }
}

/// A size in bytes: a number with an optional K, M or G suffix (powers of 1024; `KiB`,
/// `MB` and the like are read the same).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 16MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?}: unknown unit (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is not a size between 1 byte and 2^64"))
}

/// The network namespace to act in.
#[derive(Args, Debug, Clone, Default)]
pub struct NetnsArgs {
    /// Enter this named network namespace (/run/netns/NAME) first, like `ip netns exec`.
    #[arg(long)]
    pub netns: Option<String>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub netns: NetnsArgs,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Include key material (hex) in the output.
    #[arg(long)]
    pub show_keys: bool,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Include real keys; without it, keys are zero placeholders and states are commented out.
    #[arg(long)]
    pub show_keys: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub netns: NetnsArgs,
    /// Print the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object: added, updated, deleted, failed, verified.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub netns: NetnsArgs,
    /// On SIGTERM/SIGINT remove every owned object (default: leave them; fail-closed).
    #[arg(long)]
    pub flush_on_exit: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9814).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Seconds between full resyncs (re-read file, dump, diff): the safety net for lost
    /// netlink or inotify events.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync: u64,
    /// Quiet time after a change to the policy file that no close follows (a removal, new
    /// attributes) before it is reloaded. A rename into place or the writer closing the
    /// file reloads at once; an open writer is waited for up to 10 × this. A file that
    /// fails to load is reported once nobody wrote it in place for 10 × this.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// When this host starts holding an address of one of its clusters, announce it:
    /// a gratuitous ARP (IPv4) or an unsolicited Neighbor Advertisement (IPv6). For
    /// cluster managers that do not (keepalived and Pacemaker's IPaddr2 do).
    #[arg(long)]
    pub announce_cluster_addresses: bool,
    /// With IKEv2: `queue` sets net.core.xfrm_larval_drop = 0 in the daemon's namespace
    /// while it runs (restored on exit), so packets to a peer being keyed wait for its SA
    /// instead of being dropped; `system` leaves the sysctl alone.
    #[arg(long, value_enum, value_name = "HOW", default_value = "queue")]
    pub first_packets: crate::daemon::first_packets::FirstPackets,
}

#[derive(Args, Debug)]
#[command(
    group(clap::ArgGroup::new("what").required(true).args(["daemon", "config"])),
    override_usage = "xfrm-agent status -c <CONFIG> --key <KEY> [OPTIONS]\n       xfrm-agent status --daemon [--netns <NETNS>] [--json]"
)]
pub struct StatusArgs {
    /// Only the running daemon's view (no policy file or key needed); exit 1 when none runs.
    #[arg(long, conflicts_with_all = ["config", "key"])]
    pub daemon: bool,
    /// The policy and this host's key (absent with --daemon).
    #[command(flatten)]
    pub policy: Option<PolicyArgs>,
    #[command(flatten)]
    pub netns: NetnsArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FlushArgs {
    /// Policy file whose [ownership] ranges define "ours" (default ranges without it).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub netns: NetnsArgs,
    #[arg(long)]
    pub json: bool,
}

/// Die quietly on a closed stdout (`xfrm-agent plan | head`) instead of panicking, as
/// command-line tools do: restore the default SIGPIPE action Rust overrides.
fn default_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs on stderr: `info` for the daemon and `warn` for one-shot commands unless -v or
/// RUST_LOG say otherwise. Under journald (JOURNAL_STREAM set) no timestamps or colours:
/// the journal adds its own time, and escape codes read badly there.
fn init_logging(format: LogFormat, verbose: u8, daemon: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let default = match (verbose, daemon) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match format {
        LogFormat::Json => b.json().flatten_event(true).try_init(),
        LogFormat::Text if journald => b.without_time().with_ansi(false).try_init(),
        LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> ExitCode {
    default_sigpipe();
    init_logging(
        cli.log_format,
        cli.verbose,
        matches!(cli.command, Command::Run(_)),
    );
    let result = match cli.command {
        Command::Check {
            config,
            max_policy_size,
        } => check::run(&config, max_policy_size),
        Command::Plan(a) => plan::run_plan(&a),
        Command::Render(a) => plan::run_render(&a),
        Command::Apply(a) => apply::run(&a),
        Command::Run(a) => run::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Flush(a) => flush::run(&a),
        Command::Explain(a) => explain::run(&a),
        Command::Matrix(a) => matrix::run(&a),
        Command::Schema => check::run_schema(),
        Command::Completions { shell } => docs::run_completions(shell),
        Command::Manpages { dir } => docs::run_manpages(&dir),
        Command::Keygen => keys::run_keygen(),
        Command::Pubkey => keys::run_pubkey(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xfrm-agent: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_keys_are_name_equals_file() {
        let k = parse_cluster_key("db=/etc/k=1.key").unwrap();
        assert_eq!(k.cluster, "db");
        assert_eq!(k.path, PathBuf::from("/etc/k=1.key"));
        for bad in ["", "db", "=f", "db=", "/etc/cluster-db.key"] {
            assert!(parse_cluster_key(bad).is_err(), "{bad:?}");
        }
        // Refused by clap before any file is read, and parsed the same in every command.
        let argv = [
            "xfrm-agent",
            "plan",
            "-c",
            "p",
            "--key",
            "k",
            "--cluster-key",
            "db",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
        let argv = [
            "xfrm-agent",
            "status",
            "-c",
            "p",
            "--key",
            "k",
            "--cluster-key",
            "a=b",
        ];
        let Command::Status(s) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not status")
        };
        let files = s.policy.expect("policy files given").files();
        assert_eq!(files.cluster_keys[0].path, PathBuf::from("b"));
    }

    #[test]
    fn status_needs_the_policy_files_or_daemon() {
        let parse = |a: &[&str]| Cli::try_parse_from([&["xfrm-agent", "status"], a].concat());
        assert!(parse(&[]).is_err());
        assert!(
            parse(&["-c", "p"]).is_err(),
            "--key is required with --config"
        );
        assert!(parse(&["--daemon", "-c", "p", "--key", "k"]).is_err());
        let Command::Status(s) = parse(&["--daemon"]).unwrap().command else {
            panic!("not status")
        };
        assert!(s.daemon && s.policy.is_none());
    }

    #[test]
    fn host_certificate_flags_come_as_a_pair() {
        let parse = |a: &[&str]| {
            let base = ["xfrm-agent", "plan", "-c", "p", "--key", "k"];
            Cli::try_parse_from([&base[..], a].concat())
        };
        for bad in [
            &["--cert", "c.pem"][..],
            &["--cert-key", "c.key"],
            &["--cert-id", "a.example"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let both = [
            "--cert",
            "c.pem",
            "--cert-key",
            "c.key",
            "--cert-id",
            "a.example",
        ];
        let Command::Plan(a) = parse(&both).unwrap().command else {
            panic!("not plan")
        };
        let files = a.policy.files();
        assert_eq!(files.cert, Some(PathBuf::from("c.pem")));
        assert_eq!(files.cert_key, Some(PathBuf::from("c.key")));
        assert_eq!(files.cert_id.as_deref(), Some("a.example"));
        let Command::Plan(a) = parse(&[]).unwrap().command else {
            panic!("not plan")
        };
        assert_eq!(a.policy.files().cert, None);
    }

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1200"), Ok(1200));
        for bad in ["", "0", "x", "12 parsecs", "-1", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}

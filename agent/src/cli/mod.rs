//! Command-line interface: argument definitions and dispatch. Each command lives in its own
//! module and returns the process exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod apply;
mod check;
pub mod context;
mod flush;
mod keys;
mod plan;
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
    },
    /// Show the XFRM objects this host needs (and, as root, the diff against the kernel).
    Plan(PlanArgs),
    /// Print the desired objects as `ip xfrm` commands that `ip -batch -` accepts.
    Render(RenderArgs),
    /// Make the kernel match the policy once: observe, diff, apply, verify.
    Apply(ApplyArgs),
    /// Owned objects grouped by peer, with counters and kernel error statistics.
    Status(StatusArgs),
    /// Remove every object this agent owns, and nothing else.
    Flush(FlushArgs),
    /// Print the JSON Schema of the policy file.
    Schema,
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
    #[arg(long, value_name = "NAME=FILE")]
    pub cluster_key: Vec<String>,
    /// Compute for this Unix time instead of now (testing, time travel).
    #[arg(long, hide = true)]
    pub now: Option<u64>,
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
pub struct StatusArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
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

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> ExitCode {
    default_sigpipe();
    let result = match cli.command {
        Command::Check { config } => check::run(&config),
        Command::Plan(a) => plan::run_plan(&a),
        Command::Render(a) => plan::run_render(&a),
        Command::Apply(a) => apply::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Flush(a) => flush::run(&a),
        Command::Schema => check::run_schema(),
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

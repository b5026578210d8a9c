//! Loading what every policy command needs: the validated policy and this host's identity.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use policy_schema::{Diagnostic, Policy};

use super::PolicyArgs;
use crate::keys::{Identity, PrivateKey};
use crate::plan::Timestamp;

/// A loaded policy and identity.
pub struct Context {
    /// Shared: the daemon's incremental compiler keeps it to tell what the next one changed.
    pub policy: Arc<Policy>,
    pub warnings: Vec<Diagnostic>,
    pub identity: Identity,
    pub config: PathBuf,
}

/// Read and validate a policy file of at most `max` bytes; all located errors in one
/// message.
pub fn load_policy(path: &Path, max: u64) -> anyhow::Result<(Policy, Vec<Diagnostic>)> {
    match policy_schema::load_path_limited(path, max) {
        Ok(l) => Ok((l.policy, l.warnings)),
        Err(d) => Err(anyhow::anyhow!("{d}\n{}: invalid policy", path.display())),
    }
}

/// The file a cluster's private key is looked for in when no `--cluster-key` names it:
/// `cluster-NAME.key` beside the host key.
pub fn default_cluster_key(host_key: &Path, cluster: &str) -> PathBuf {
    dir_of(host_key).join(format!("cluster-{cluster}.key"))
}

/// The directory a file is in (`.` for a bare file name).
pub fn dir_of(file: &Path) -> &Path {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether a file name is one `default_cluster_key` could name.
pub fn is_default_cluster_key(name: &str) -> bool {
    name.starts_with("cluster-") && name.ends_with(".key")
}

/// The files named by `--cluster-key NAME=FILE`.
pub fn explicit_cluster_keys(args: &PolicyArgs) -> Vec<PathBuf> {
    args.cluster_key
        .iter()
        .filter_map(|s| s.split_once('=').map(|(_, p)| PathBuf::from(p)))
        .collect()
}

/// Load policy and identity, including the keys of the clusters this host is a member of.
pub fn load(args: &PolicyArgs) -> anyhow::Result<Context> {
    let (policy, warnings) = load_policy(&args.config, args.max_policy_size)?;
    with_identity(args, policy, warnings)
}

/// As [`load`], from the file's text already read (the daemon hashes exactly what it parses).
pub fn load_text(args: &PolicyArgs, text: &str) -> anyhow::Result<Context> {
    reload_text(args, text, &mut policy_schema::Reloader::new(), None)
}

/// As [`load_text`], reusing what `reloader` kept of the last load: unchanged entries are
/// taken from `previous` (the policy that load returned). The result is the same.
pub fn reload_text(
    args: &PolicyArgs,
    text: &str,
    reloader: &mut policy_schema::Reloader,
    previous: Option<&policy_schema::Policy>,
) -> anyhow::Result<Context> {
    let file = args.config.display().to_string();
    let (policy, warnings) = match reloader.load(&file, text, previous) {
        Ok(l) => (l.policy, l.warnings),
        Err(d) => return Err(anyhow::anyhow!("{d}\n{file}: invalid policy")),
    };
    with_identity(args, policy, warnings)
}

fn with_identity(
    args: &PolicyArgs,
    policy: Policy,
    warnings: Vec<Diagnostic>,
) -> anyhow::Result<Context> {
    let key = PrivateKey::load(&args.key)?;
    let mut identity = Identity::resolve(&policy, key, args.host.as_deref())?;
    let me = identity.host.clone();
    for c in policy.clusters.iter().filter(|c| c.members.contains(&me)) {
        let named = args.cluster_key.iter().find_map(|s| {
            s.split_once('=')
                .filter(|(n, _)| *n == c.name)
                .map(|(_, p)| PathBuf::from(p))
        });
        let path = named
            .clone()
            .unwrap_or_else(|| default_cluster_key(&args.key, &c.name));
        if named.is_none() && !path.exists() {
            tracing::warn!(cluster = %c.name, path = %path.display(),
                "member of a cluster without its key: its addresses get no SAs here");
            continue;
        }
        let ck = PrivateKey::load(&path)?;
        identity.add_cluster_key(&policy, &c.name, ck, &path)?;
    }
    let mut warnings = warnings;
    warnings.extend(published_private_keys(args, &policy, &identity));
    Ok(Context {
        policy: Arc::new(policy),
        warnings,
        identity,
        config: args.config.clone(),
    })
}

/// A warning for each private key of ours the policy names as a public key. A warning,
/// not an error: the key is compromised the moment the world-readable file is written,
/// and refusing the file would not un-publish it — the last good policy runs on the same
/// key — while it would hold back every other change. The fix is a new key.
fn published_private_keys(args: &PolicyArgs, policy: &Policy, id: &Identity) -> Vec<Diagnostic> {
    let found = id.published_private_keys(policy);
    if found.is_empty() {
        return Vec::new();
    }
    // Rare: read the file again only to point at the key, through the same guarded reader
    // (it may have been replaced by a FIFO or grown since it was loaded).
    let text = policy_schema::read_text(&args.config, args.max_policy_size).unwrap_or_default();
    let file = args.config.display().to_string();
    found
        .into_iter()
        .map(|(owner, entry, private)| {
            let message = format!(
                "the public-key of {entry} is the PRIVATE key of {owner}: it is published in the policy file and must be treated as compromised; make a new key (`xfrm-agent keygen`), put its `xfrm-agent pubkey` in the entry of {owner}, and never put a private key in the policy"
            );
            tracing::error!(owner = %owner, entry = %entry, "{message}");
            let (line, col) = locate(&text, &private);
            Diagnostic {
                severity: policy_schema::Severity::Warning,
                file: file.clone(),
                line,
                col,
                message,
            }
        })
        .collect()
}

/// 1-based line and column of the first `needle` in `text` (1:1 if absent).
fn locate(text: &str, needle: &str) -> (usize, usize) {
    let Some(at) = text.find(needle) else {
        return (1, 1);
    };
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..at].matches('\n').count() + 1;
    (line, text[line_start..at].chars().count() + 1)
}

/// `--now` or the system clock.
pub fn now(args: &PolicyArgs) -> Timestamp {
    args.now.map_or_else(system_now, Timestamp::from_secs)
}

/// The system clock as the compiler's timestamp (the clock is read here, never in `plan`).
pub fn system_now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_nanos() as u64)
}

/// Print warnings to stderr, located.
pub fn print_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        eprintln!("{w}");
    }
}

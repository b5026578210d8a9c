//! Loading what every policy command and the daemon need: the validated policy and this
//! host's identity, read from the files a [`PolicyFiles`] names. Below both the CLI (which
//! fills a `PolicyFiles` from its arguments) and the daemon (which reloads from one).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use policy_schema::{Diagnostic, Policy};

use crate::keys::{Identity, PrivateKey};

/// Where the policy and this host's identity come from.
#[derive(Clone, Debug)]
pub struct PolicyFiles {
    /// The policy file.
    pub config: PathBuf,
    /// This host's private key file.
    pub key: PathBuf,
    /// Act as this host instead of the one the key identifies (tooling only).
    pub host: Option<String>,
    /// Cluster private keys named explicitly (others: `cluster-NAME.key` beside `key`).
    pub cluster_keys: Vec<ClusterKeyFile>,
    /// Refuse a policy file larger than this many bytes.
    pub max_policy_size: u64,
    /// This host's IKEv2 certificate (PEM, chain allowed), when the policy keys pairs over
    /// IKEv2.
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (must not be readable by group or others).
    pub cert_key: Option<PathBuf>,
    /// Our IKE identity instead of the certificate's subject DN (`crate::ike_setup::parse_id`).
    pub cert_id: Option<String>,
}

/// No files yet, and the CLI's default size cap (a derived `Default` would cap at 0 bytes).
impl Default for PolicyFiles {
    fn default() -> PolicyFiles {
        PolicyFiles {
            config: PathBuf::new(),
            key: PathBuf::new(),
            host: None,
            cluster_keys: vec![],
            max_policy_size: policy_schema::DEFAULT_MAX_POLICY_SIZE,
            cert: None,
            cert_key: None,
            cert_id: None,
        }
    }
}

/// A cluster's private key file, named explicitly (`--cluster-key NAME=FILE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterKeyFile {
    pub cluster: String,
    pub path: PathBuf,
}

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

/// The cluster key files named explicitly.
pub fn explicit_cluster_keys(files: &PolicyFiles) -> Vec<PathBuf> {
    files.cluster_keys.iter().map(|c| c.path.clone()).collect()
}

/// Load policy and identity, including the keys of the clusters this host is a member of.
pub fn load(files: &PolicyFiles) -> anyhow::Result<Context> {
    let (policy, warnings) = load_policy(&files.config, files.max_policy_size)?;
    with_identity(files, policy, warnings)
}

/// As [`load`], from the file's text already read (the daemon hashes exactly what it parses).
pub fn load_text(files: &PolicyFiles, text: &str) -> anyhow::Result<Context> {
    reload_text(files, text, &mut policy_schema::Reloader::new(), None)
}

/// As [`load_text`], reusing what `reloader` kept of the last load: unchanged entries are
/// taken from `previous` (the policy that load returned). The result is the same.
pub fn reload_text(
    files: &PolicyFiles,
    text: &str,
    reloader: &mut policy_schema::Reloader,
    previous: Option<&policy_schema::Policy>,
) -> anyhow::Result<Context> {
    let file = files.config.display().to_string();
    let (policy, warnings) = match reloader.load(&file, text, previous) {
        Ok(l) => (l.policy, l.warnings),
        Err(d) => return Err(anyhow::anyhow!("{d}\n{file}: invalid policy")),
    };
    with_identity(files, policy, warnings)
}

fn with_identity(
    files: &PolicyFiles,
    policy: Policy,
    warnings: Vec<Diagnostic>,
) -> anyhow::Result<Context> {
    let key = PrivateKey::load(&files.key)?;
    let mut identity = Identity::resolve(&policy, key, files.host.as_deref())?;
    let me = identity.host.clone();
    for c in policy.clusters.iter().filter(|c| c.members.contains(&me)) {
        let named = (files.cluster_keys.iter())
            .find(|k| k.cluster == c.name)
            .map(|k| k.path.clone());
        let path = named
            .clone()
            .unwrap_or_else(|| default_cluster_key(&files.key, &c.name));
        if named.is_none() && !path.exists() {
            tracing::warn!(cluster = %c.name, path = %path.display(),
                "member of a cluster without its key: its addresses get no SAs here");
            continue;
        }
        let ck = PrivateKey::load(&path)?;
        identity.add_cluster_key(&policy, &c.name, ck, &path)?;
    }
    let mut warnings = warnings;
    warnings.extend(published_private_keys(files, &policy, &identity));
    Ok(Context {
        policy: Arc::new(policy),
        warnings,
        identity,
        config: files.config.clone(),
    })
}

/// A warning for each private key of ours the policy names as a public key. A warning,
/// not an error: the key is compromised the moment the world-readable file is written,
/// and refusing the file would not un-publish it — the last good policy runs on the same
/// key — while it would hold back every other change. The fix is a new key.
fn published_private_keys(files: &PolicyFiles, policy: &Policy, id: &Identity) -> Vec<Diagnostic> {
    let found = id.published_private_keys(policy);
    if found.is_empty() {
        return Vec::new();
    }
    // Rare: read the file again only to point at the key, through the same guarded reader
    // (it may have been replaced by a FIFO or grown since it was loaded).
    let text = policy_schema::read_text(&files.config, files.max_policy_size).unwrap_or_default();
    let file = files.config.display().to_string();
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

/// Print warnings to stderr, located.
pub fn print_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        eprintln!("{w}");
    }
}

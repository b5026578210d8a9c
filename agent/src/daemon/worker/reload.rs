//! Reloading: the policy file and the key files read, compared with what is in force,
//! parsed and validated — or rejected, keeping the last good policy.

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use super::{reload_info, Worker};
use crate::cli::context::{self, Context};
use crate::cli::PolicyArgs;

/// A policy that loaded, with the hash of exactly the text parsed.
pub(super) struct Loaded {
    pub(super) ctx: Context,
    pub(super) sha256: String,
    /// `key_fingerprint` when it was loaded.
    pub(super) keys: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// A digest of the key files a load reads: the host key, explicit cluster keys and the
/// `cluster-*.key` files beside the host key (which of those a load uses depends on the
/// policy). A replaced key file changes it, so the watcher's event reloads.
fn key_fingerprint(args: &PolicyArgs) -> String {
    let mut files = vec![args.key.clone()];
    files.extend(context::explicit_cluster_keys(args));
    if let Ok(entries) = std::fs::read_dir(context::dir_of(&args.key)) {
        let mut defaults: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(context::is_default_cluster_key)
            })
            .collect();
        defaults.sort();
        files.extend(defaults);
    }
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        match std::fs::read(&f) {
            Ok(bytes) => h.update(Sha256::digest(bytes)),
            Err(_) => h.update(b"unreadable"),
        }
    }
    hex(&h.finalize())
}

/// The policy file's text.
fn read_text(args: &PolicyArgs) -> anyhow::Result<String> {
    std::fs::read_to_string(&args.config)
        .with_context(|| format!("{}: cannot read the policy file", args.config.display()))
}

pub(super) fn read_and_load(
    args: &PolicyArgs,
    reloader: &mut policy_schema::Reloader,
) -> anyhow::Result<Loaded> {
    let keys = key_fingerprint(args);
    let text = read_text(args)?;
    let ctx = context::reload_text(args, &text, reloader, None)?;
    Ok(Loaded {
        sha256: sha256_hex(&text),
        keys,
        ctx,
    })
}

impl Worker {
    /// Re-read the file and the keys when either changed, or with `force` (SIGHUP).
    /// Returns true when a new policy is in force. An invalid file (or a key that does not
    /// fit it) leaves the last good one in force and is reported once (the same rejected
    /// text is not re-parsed at every resync).
    pub fn reload(&mut self, force: bool) -> bool {
        let text = match read_text(&self.args) {
            Ok(t) => t,
            Err(e) => {
                self.reject(e, None);
                return false;
            }
        };
        let sha256 = sha256_hex(&text);
        let keys = key_fingerprint(&self.args);
        let attempt = format!("{sha256}/{keys}");
        if !force && sha256 == self.loaded.sha256 && keys == self.loaded.keys {
            if self.view.last_error.take().is_some() {
                // The file in force is back (a rejected edit was undone).
                tracing::info!(sha256 = %sha256, "the policy in force is back on disk");
                self.rejected = None;
                self.view.last_reload = reload_info(None);
            }
            return false;
        }
        if !force && self.rejected.as_deref() == Some(attempt.as_str()) {
            return false;
        }
        let previous = Some(&*self.loaded.ctx.policy);
        match context::reload_text(&self.args, &text, &mut self.reloader, previous) {
            Ok(ctx) => {
                ctx.identity.adopt_cache(&self.loaded.ctx.identity);
                context::print_warnings(&ctx.warnings);
                tracing::info!(sha256 = %sha256, previous = %self.loaded.sha256, "policy reloaded");
                self.view.policy_sha256 = sha256.clone();
                self.view.host = ctx.identity.host.clone();
                self.view.last_reload = reload_info(None);
                self.view.last_error = None;
                self.view.reloads_ok += 1;
                self.rejected = None;
                let new = Loaded { ctx, sha256, keys };
                self.retired = Some(std::mem::replace(&mut self.loaded, new));
                true
            }
            Err(e) => {
                self.reject(e, Some(attempt));
                false
            }
        }
    }

    fn reject(&mut self, e: anyhow::Error, attempt: Option<String>) {
        let text = format!("{e:#}");
        tracing::error!(error = %text, "policy rejected; the last good policy stays in force");
        self.view.last_reload = reload_info(Some(text.clone()));
        self.view.last_rejected = Some(self.view.last_reload.clone());
        self.view.last_error = Some(text);
        self.view.reloads_failed += 1;
        self.rejected = attempt;
    }
}

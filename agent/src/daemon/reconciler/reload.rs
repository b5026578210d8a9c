//! Reloading: the policy file and the key files read, compared with what is in force,
//! parsed and validated — or rejected, keeping the last good policy. A failure is counted
//! only once the file is stable: a writer's half-done work is read again, not reported.

use std::time::Duration;

use policy_schema::file::{self, FileVersion};
use policy_schema::Diagnostics;
use sha2::{Digest, Sha256};

use super::{guard, reload_info, Reconciler};
use crate::keys::MAX_KEY_FILE_SIZE;
use crate::load::{self, Context, PolicyFiles};

/// A policy that loaded, with the hash of exactly the text parsed.
pub(super) struct Loaded {
    pub(super) ctx: Context,
    pub(super) sha256: String,
    /// `key_fingerprint` when it was loaded.
    pub(super) keys: String,
    /// The compile of this policy panics ([`guard::injected`], debug builds' tests only).
    pub(super) inject_compile_panic: bool,
}

/// What a reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// A new policy is loaded: the next reconcile compiles it, and puts it in force.
    New,
    /// Nothing new: the same content, a rejection already reported, or one reported now.
    Unchanged,
    /// The file changed while it was read, or so recently that its writer may not be done:
    /// nothing was decided or counted; read it again after this long.
    Unsettled(Duration),
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
fn key_fingerprint(args: &PolicyFiles) -> String {
    let mut files = vec![args.key.clone()];
    files.extend(load::explicit_cluster_keys(args));
    if let Ok(entries) = std::fs::read_dir(load::dir_of(&args.key)) {
        let mut defaults: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(load::is_default_cluster_key)
            })
            .collect();
        defaults.sort();
        files.extend(defaults);
    }
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        // Read as the key loader does: a FIFO or device named like a key must not block.
        match file::read_regular(&f, MAX_KEY_FILE_SIZE) {
            Ok(s) => h.update(Sha256::digest(&s.bytes)),
            Err(e) => h.update(format!("unreadable: {e}")),
        }
    }
    hex(&h.finalize())
}

/// The policy file as read.
struct PolicyText {
    text: String,
    version: FileVersion,
}

/// A policy file that could not be read or is not UTF-8, and its version (None: gone).
struct ReadFailure {
    error: anyhow::Error,
    version: Option<FileVersion>,
}

fn invalid(args: &PolicyFiles, d: &Diagnostics) -> anyhow::Error {
    anyhow::anyhow!("{d}\n{}: invalid policy", args.config.display())
}

/// Read the policy file as `check` does: regular files only, never blocking, at most
/// `--max-policy-size` bytes, UTF-8 (located error otherwise).
fn read_policy(args: &PolicyFiles) -> Result<PolicyText, ReadFailure> {
    let name = args.config.display().to_string();
    match file::read_regular(&args.config, args.max_policy_size) {
        Err(e) => Err(ReadFailure {
            error: invalid(args, &policy_schema::read_diagnostic(&name, &e)),
            version: FileVersion::at(&args.config).ok(),
        }),
        Ok(s) => match policy_schema::decode(&name, s.bytes) {
            Ok(text) => Ok(PolicyText {
                text,
                version: s.version,
            }),
            Err(d) => Err(ReadFailure {
                error: invalid(args, &d),
                version: Some(s.version),
            }),
        },
    }
}

/// Parse, validate and resolve the identity; the reload boundary's inside.
fn load(
    args: &PolicyFiles,
    text: &str,
    reloader: &mut policy_schema::Reloader,
    previous: Option<&policy_schema::Policy>,
) -> anyhow::Result<Context> {
    if guard::injected("load", text) {
        panic!("injected panic (XFRM_AGENT_INJECT_PANIC)");
    }
    load::reload_text(args, text, reloader, previous)
}

/// [`load`] with panics caught (reported as an error; `reloader` is then reset).
fn load_guarded(
    args: &PolicyFiles,
    text: &str,
    reloader: &mut policy_schema::Reloader,
    previous: Option<&policy_schema::Policy>,
) -> anyhow::Result<Context> {
    guard::catch(|| load(args, text, reloader, previous)).unwrap_or_else(|panic| {
        *reloader = policy_schema::Reloader::new();
        Err(guard::panic_error(&args.config, "loading", &panic))
    })
}

impl Loaded {
    fn new(ctx: Context, text: &str, keys: String) -> Loaded {
        Loaded {
            ctx,
            sha256: sha256_hex(text),
            keys,
            inject_compile_panic: guard::injected("compile", text),
        }
    }
}

/// The first load, at start: an unreadable or invalid file is an error (there is nothing
/// to keep in force).
pub(super) fn read_and_load(
    args: &PolicyFiles,
    reloader: &mut policy_schema::Reloader,
) -> anyhow::Result<Loaded> {
    let keys = key_fingerprint(args);
    let read = read_policy(args).map_err(|f| f.error)?;
    let ctx = load_guarded(args, &read.text, reloader, None)?;
    Ok(Loaded::new(ctx, &read.text, keys))
}

impl Reconciler {
    /// Re-read the file and the keys when either changed, or with `force` (SIGHUP).
    /// An invalid file (or a key that does not fit it) leaves the last good one in force
    /// and is reported once per version of the file (the same rejected text is not
    /// re-parsed at every resync), and only once the file is stable.
    pub fn reload(&mut self, force: bool) -> Reloaded {
        let keys = key_fingerprint(&self.args);
        let read = match read_policy(&self.args) {
            Ok(r) => r,
            Err(f) => {
                let attempt = format!("unreadable {:?}/{keys}", f.version);
                return self.failed(f.error, f.version, attempt, force);
            }
        };
        let sha256 = sha256_hex(&read.text);
        let attempt = format!("{sha256}/{keys}");
        if !force && sha256 == self.loaded.sha256 && keys == self.loaded.keys {
            if self.fresh.is_none() && self.view.last_error.take().is_some() {
                // The file in force is back (a rejected edit was undone).
                tracing::info!(sha256 = %sha256, "the policy in force is back on disk");
                self.rejected = None;
                self.view.last_reload = reload_info(None);
            }
            return Reloaded::Unchanged;
        }
        if !force && self.rejected.as_deref() == Some(attempt.as_str()) {
            return Reloaded::Unchanged;
        }
        let previous = Some(&*self.loaded.ctx.policy);
        let ctx = match load_guarded(&self.args, &read.text, &mut self.reloader, previous) {
            Ok(ctx) => ctx,
            Err(e) => return self.failed(e, Some(read.version), attempt, force),
        };
        if FileVersion::at(&self.args.config).ok() != Some(read.version) {
            // Valid by chance (a prefix of what is being written, say): not put in force.
            tracing::debug!("the policy file changed while it was read; reading it again");
            return Reloaded::Unsettled(self.debounce);
        }
        load::print_warnings(&ctx.warnings);
        let new = Loaded::new(ctx, &read.text, keys);
        let old = std::mem::replace(&mut self.loaded, new);
        // The policy to go back to if this one does not compile is the last one that did.
        if self.fresh.is_none() {
            self.retired = Some(old);
        }
        self.fresh = Some(attempt);
        Reloaded::New
    }

    /// The fresh policy compiled: it is in force now.
    pub(super) fn accept_fresh(&mut self) {
        let Some(_) = self.fresh.take() else { return };
        let previous = self.retired.as_ref().map_or("", |r| r.sha256.as_str());
        let sha256 = &self.loaded.sha256;
        tracing::info!(sha256 = %sha256, previous = %previous, "policy reloaded");
        self.view.policy_sha256 = sha256.clone();
        self.view.host = self.loaded.ctx.identity.host.clone();
        self.view.last_reload = reload_info(None);
        self.view.last_error = None;
        self.view.reloads_ok += 1;
        self.rejected = None;
        self.ike.policy_changed = true;
    }

    /// The fresh policy did not compile (`e`): back to the last one that did, reported
    /// like an invalid file. `e` back when there is no fresh policy to take back.
    pub(super) fn reject_fresh(&mut self, e: anyhow::Error) -> anyhow::Result<()> {
        match (self.fresh.take(), self.retired.take()) {
            (Some(attempt), Some(old)) => {
                self.loaded = old;
                self.reject(e, Some(attempt));
                Ok(())
            }
            (fresh, retired) => {
                (self.fresh, self.retired) = (fresh, retired);
                Err(e)
            }
        }
    }

    /// A read or load failed: report it, unless the file is still being written.
    fn failed(
        &mut self,
        e: anyhow::Error,
        version: Option<FileVersion>,
        attempt: String,
        force: bool,
    ) -> Reloaded {
        if let Some(wait) = self.unsettled(version) {
            tracing::debug!(error = %format!("{e:#}"), wait_ms = wait.as_millis() as u64,
                "the policy file is being written; reading it again once it is quiet");
            return Reloaded::Unsettled(wait);
        }
        if !force && self.rejected.as_deref() == Some(attempt.as_str()) {
            return Reloaded::Unchanged;
        }
        self.reject(e, Some(attempt));
        Reloaded::Unchanged
    }

    /// How long until a failure with the file at `read` can be trusted (None: now): the
    /// file must still be the version that was read, written in place by no one for
    /// `settle` (10 × the debounce, as long as an open writer is waited for), and last
    /// changed at least a debounce ago (a writer's truncation whose event is still on its
    /// way). A file renamed into place is complete, and is reported at once.
    fn unsettled(&self, read: Option<FileVersion>) -> Option<Duration> {
        let now = FileVersion::at(&self.args.config).ok();
        if now != read {
            return Some(self.debounce);
        }
        let settle = self.debounce * 10;
        let since_write = self.last_write.map(|t| t.elapsed());
        if let Some(wait) = since_write.and_then(|e| settle.checked_sub(e)) {
            return Some(wait + Duration::from_millis(1));
        }
        let age = crate::clock::now().nanos() as i128 - now?.changed_ns();
        let quiet = self.debounce.as_nanos() as i128;
        // A change time in the future (a clock step, `touch -d`) does not hold reports back.
        (0..quiet)
            .contains(&age)
            .then(|| Duration::from_nanos((quiet - age) as u64) + Duration::from_millis(1))
    }

    /// Someone wrote to the policy file in place (not a rename): see [`Self::unsettled`].
    pub fn note_write(&mut self) {
        self.last_write = Some(std::time::Instant::now());
    }

    pub(super) fn reject(&mut self, e: anyhow::Error, attempt: Option<String>) {
        let text = format!("{e:#}");
        tracing::error!(error = %text, "policy rejected; the last good policy stays in force");
        self.view.last_reload = reload_info(Some(text.clone()));
        self.view.last_rejected = Some(self.view.last_reload.clone());
        self.view.last_error = Some(text);
        self.view.reloads_failed += 1;
        self.rejected = attempt;
    }
}

//! Watching the policy file (and the key files) for hot reload, and the authorities' CA
//! and CRL files for IKEv2 keying. The directory is watched,
//! not the file: editors and config managers replace files by rename, and Kubernetes
//! ConfigMaps swap a `..data` symlink, none of which a watch on the old inode would see.
//! Which events mean "the file is complete" and which mean "still being written" is
//! decided here; the timing lives in
//! [`super::debounce::Debounce`].

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use super::debounce::FileEvent;
use crate::load::{self, PolicyFiles};

/// What an inotify event means for reloading (None: ignore — e.g. our own reads).
pub fn classify(kind: &EventKind) -> Option<FileEvent> {
    match kind {
        // The writer closed it, or it was renamed into place: complete.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(FileEvent::Complete),
        EventKind::Modify(ModifyKind::Name(_)) => Some(FileEvent::Complete),
        // Opening and reading (ours included) change nothing.
        EventKind::Access(_) => None,
        // Content written, or the file created: by an open writer, whose close follows.
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => Some(FileEvent::Writing),
        // Removed, attributes changed, or unknown: no close follows.
        EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => {
            Some(FileEvent::Changed)
        }
    }
}

/// What to watch and which paths in it matter: each watched file's own directory
/// (canonical) and the directory its symlink chain resolves into; the file under both
/// names, `..name` entries (a ConfigMap's `..data` symlink swap), and in the host key's
/// directory the default cluster key files (`cluster-NAME.key`).
struct Targets {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
    /// Where `cluster-*.key` files count.
    key_dirs: Vec<PathBuf>,
}

fn parent(p: &Path) -> PathBuf {
    let d = load::dir_of(p);
    std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())
}

impl Targets {
    /// The policy file, the host key and explicit cluster keys.
    fn of(config: &Path, key: &Path, cluster_keys: &[PathBuf]) -> Targets {
        let mut t = Targets {
            dirs: vec![],
            files: vec![],
            key_dirs: vec![parent(key)],
        };
        for f in [config, key]
            .into_iter()
            .chain(cluster_keys.iter().map(PathBuf::as_path))
        {
            t.add(f);
        }
        t
    }

    fn add(&mut self, file: &Path) {
        let name = file.file_name().unwrap_or_default();
        let dir = parent(file);
        self.files.push(dir.join(name));
        let mut dirs = vec![dir];
        if let Ok(real) = std::fs::canonicalize(file) {
            dirs.push(parent(&real));
            self.files.push(real);
        }
        for d in dirs {
            if !self.dirs.contains(&d) {
                self.dirs.push(d);
            }
        }
    }

    /// Whether an event on these paths can change what the files read as. Other files in
    /// the directory (a log, an editor's swap file) must not cause reloads.
    fn relevant(&self, paths: &[PathBuf]) -> bool {
        let cluster_key = |p: &PathBuf| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            load::is_default_cluster_key(n) && self.key_dirs.iter().any(|d| p.parent() == Some(d))
        };
        paths.is_empty()
            || paths.iter().any(|p| {
                self.files.contains(p)
                    || cluster_key(p)
                    || p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(".."))
            })
    }
}

/// Start watching the policy file and the key files; events go to `tx`. Keep the
/// returned watcher alive.
pub fn watch(
    args: &PolicyFiles,
    tx: UnboundedSender<FileEvent>,
) -> notify::Result<RecommendedWatcher> {
    let explicit = load::explicit_cluster_keys(args);
    start(Targets::of(&args.config, &args.key, &explicit), tx)
}

/// Start watching `files` (e.g. the authorities' CA certificates and CRLs) the same way:
/// renames into place, in-place writes and symlink swaps; events go to `tx`.
pub fn watch_files(
    files: &[PathBuf],
    tx: UnboundedSender<FileEvent>,
) -> notify::Result<RecommendedWatcher> {
    let mut t = Targets {
        dirs: vec![],
        files: vec![],
        key_dirs: vec![],
    };
    for f in files {
        t.add(f);
    }
    start(t, tx)
}

fn start(t: Targets, tx: UnboundedSender<FileEvent>) -> notify::Result<RecommendedWatcher> {
    let dirs = t.dirs.clone();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if let Some(k) = classify(&ev.kind).filter(|_| t.relevant(&ev.paths)) {
                let _ = tx.send(k);
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watch error; the periodic resync still reloads"),
    })?;
    for d in dirs {
        w.watch(&d, RecursiveMode::NonRecursive)?;
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RenameMode};

    #[test]
    fn only_the_file_and_configmap_swaps_matter() {
        let t = Targets {
            dirs: vec!["/etc/x".into(), "/etc/k".into()],
            files: vec![
                "/etc/x/policy.toml".into(),
                "/srv/p/policy.toml".into(),
                "/etc/k/host.key".into(),
            ],
            key_dirs: vec!["/etc/k".into()],
        };
        assert!(t.relevant(&["/etc/x/policy.toml".into()]));
        assert!(t.relevant(&["/srv/p/policy.toml".into()]));
        assert!(t.relevant(&["/etc/x/..data".into()]));
        assert!(!t.relevant(&["/etc/x/agent.log".into()]));
        assert!(!t.relevant(&["/etc/x/.policy.toml.swp".into()]));
        assert!(t.relevant(&["/etc/k/host.key".into()]));
        assert!(t.relevant(&["/etc/k/cluster-web.key".into()]));
        assert!(!t.relevant(&["/etc/x/cluster-web.key".into()]));
        assert!(!t.relevant(&["/etc/k/other.key".into()]));
    }

    #[test]
    fn reads_are_ignored_renames_and_closes_are_complete() {
        assert_eq!(
            classify(&EventKind::Access(AccessKind::Open(AccessMode::Any))),
            None
        );
        assert_eq!(
            classify(&EventKind::Access(AccessKind::Close(AccessMode::Read))),
            None
        );
        assert_eq!(
            classify(&EventKind::Access(AccessKind::Close(AccessMode::Write))),
            Some(FileEvent::Complete)
        );
        assert_eq!(
            classify(&EventKind::Modify(ModifyKind::Name(RenameMode::To))),
            Some(FileEvent::Complete)
        );
        assert_eq!(
            classify(&EventKind::Modify(ModifyKind::Data(DataChange::Content))),
            Some(FileEvent::Writing)
        );
        assert_eq!(
            classify(&EventKind::Create(CreateKind::File)),
            Some(FileEvent::Writing)
        );
        assert_eq!(
            classify(&EventKind::Remove(notify::event::RemoveKind::File)),
            Some(FileEvent::Changed)
        );
        assert_eq!(
            classify(&EventKind::Modify(ModifyKind::Metadata(
                notify::event::MetadataKind::Any
            ))),
            Some(FileEvent::Changed)
        );
    }
}

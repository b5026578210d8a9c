//! Watching the policy file for hot reload. The directory is watched, not the file: editors
//! and config managers replace files by rename, and Kubernetes ConfigMaps swap a `..data`
//! symlink, none of which a watch on the old inode would see. Which events mean "the file
//! is complete" and which mean "still being written" is decided here; the timing lives in
//! [`super::book::Debounce`].

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use super::book::FileEvent;

/// What an inotify event means for reloading (None: ignore — e.g. our own reads).
pub fn classify(kind: &EventKind) -> Option<FileEvent> {
    match kind {
        // The writer closed it, or it was renamed into place: complete.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(FileEvent::Complete),
        EventKind::Modify(ModifyKind::Name(_)) => Some(FileEvent::Complete),
        // Opening and reading (ours included) change nothing.
        EventKind::Access(_) => None,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => {
            Some(FileEvent::Writing)
        }
        EventKind::Any | EventKind::Other => Some(FileEvent::Writing),
    }
}

/// What to watch and which paths in it matter: the file's own directory (canonical) and
/// the directory its symlink chain resolves into; the file under both names, and `..name`
/// entries (a ConfigMap's `..data` symlink swap).
struct Targets {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl Targets {
    fn of(config: &Path) -> Targets {
        let parent = |p: &Path| {
            let d = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())
        };
        let name = config.file_name().unwrap_or_default();
        let dir = parent(config);
        let mut t = Targets {
            files: vec![dir.join(name)],
            dirs: vec![dir],
        };
        if let Ok(real) = std::fs::canonicalize(config) {
            let d = parent(&real);
            if !t.dirs.contains(&d) {
                t.dirs.push(d);
            }
            t.files.push(real);
        }
        t
    }

    /// Whether an event on these paths can change what the file reads as. Other files in
    /// the directory (a log, an editor's swap file) must not cause reloads.
    fn relevant(&self, paths: &[PathBuf]) -> bool {
        paths.is_empty()
            || paths.iter().any(|p| {
                self.files.contains(p)
                    || p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(".."))
            })
    }
}

/// Start watching; events go to `tx`. Keep the returned watcher alive.
pub fn watch(config: &Path, tx: UnboundedSender<FileEvent>) -> notify::Result<RecommendedWatcher> {
    let t = Targets::of(config);
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
            dirs: vec!["/etc/x".into()],
            files: vec!["/etc/x/policy.toml".into(), "/srv/p/policy.toml".into()],
        };
        assert!(t.relevant(&["/etc/x/policy.toml".into()]));
        assert!(t.relevant(&["/srv/p/policy.toml".into()]));
        assert!(t.relevant(&["/etc/x/..data".into()]));
        assert!(!t.relevant(&["/etc/x/agent.log".into()]));
        assert!(!t.relevant(&["/etc/x/.policy.toml.swp".into()]));
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
    }
}

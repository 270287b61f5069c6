//! Changes to files and folders the server reads (manifests, TLS certificates), as settled
//! bursts: one tick for an editor's save or a Kubernetes volume update, however many events they
//! make.
//!
//! Each target's parent folder is watched as well as the target, because a watch follows an
//! inode: a file saved by rename (`sed -i`, most editors), a Secret or ConfigMap volume swapping
//! its `..data` link, or a folder moved away and made again would otherwise end the watch for
//! good while the server went on saying it was ready.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Quiet time after an event before it counts, so that a burst of writes is one change.
const SETTLE: Duration = Duration::from_millis(200);

pub struct Changes {
    watcher: RecommendedWatcher,
    events: UnboundedReceiver<()>,
    /// Folders watched recursively, watched again after each change in case they were made anew.
    folders: Vec<PathBuf>,
}

/// Which events concern the targets: the targets themselves and what is under them, and in a
/// target's parent folder only the entries Kubernetes swaps when it updates a volume (`..data`
/// and its kin). Anything else there (a log file written next to the manifests, say) is not a
/// change, and must not be, or the reload's own log lines would feed a loop.
struct Relevant {
    targets: Vec<PathBuf>,
    parents: Vec<PathBuf>,
}

impl Relevant {
    fn concerns(&self, path: &Path) -> bool {
        let volume_swap = || {
            path.parent().is_some_and(|p| self.parents.iter().any(|parent| parent == p))
                && path.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b".."))
        };
        self.targets.iter().any(|t| path.starts_with(t)) || volume_swap()
    }
}

impl Changes {
    /// Watches `targets` (files or folders) and their parent folders.
    pub fn new(targets: &[&Path]) -> notify::Result<Changes> {
        let targets: Vec<PathBuf> = targets.iter().map(std::path::absolute).collect::<Result<_, _>>()?;
        let parents: Vec<PathBuf> = targets.iter().map(|t| parent(t).to_path_buf()).collect();
        let relevant = Relevant { targets: targets.clone(), parents: parents.clone() };
        let (tx, events) = unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !event.kind.is_access() && event.paths.iter().any(|p| relevant.concerns(p)) {
                let _ = tx.send(());
            }
        })?;
        let mut folders = Vec::new();
        for (target, parent) in targets.iter().zip(&parents) {
            watcher.watch(parent, RecursiveMode::NonRecursive)?;
            if target.is_dir() {
                watcher.watch(target, RecursiveMode::Recursive)?;
                folders.push(target.clone());
            }
        }
        Ok(Changes { watcher, events, folders })
    }

    /// Waits for the next settled change.
    pub async fn next(&mut self) -> Option<()> {
        self.events.recv().await?;
        loop {
            match tokio::time::timeout(SETTLE, self.events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return None,
                Err(_) => break,
            }
        }
        for folder in &self.folders {
            // A folder removed and made again has a new inode; an existing watch is kept as is.
            if folder.is_dir() {
                let _ = self.watcher.watch(folder, RecursiveMode::Recursive);
            }
        }
        Some(())
    }
}

/// The folder holding `path` (`/` for the root).
fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

/// Resolves on each SIGHUP; never where there is no such signal.
pub struct Hangups(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangups {
    pub fn new() -> Hangups {
        #[cfg(unix)]
        return Hangups(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok());
        #[cfg(not(unix))]
        Hangups()
    }

    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.0 {
            signal.recv().await;
            return;
        }
        std::future::pending().await
    }
}

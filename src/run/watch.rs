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

impl Changes {
    /// Watches `targets` (files or folders) and their parent folders.
    pub fn new(targets: &[&Path]) -> notify::Result<Changes> {
        let (tx, events) = unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })?;
        let mut folders = Vec::new();
        for target in targets {
            watcher.watch(parent(target), RecursiveMode::NonRecursive)?;
            if target.is_dir() {
                watcher.watch(target, RecursiveMode::Recursive)?;
                folders.push(target.to_path_buf());
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

/// The folder holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
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

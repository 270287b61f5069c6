//! File mode (DESIGN §6): load a folder of manifests, publish its snapshot, and reload when a
//! file changes. A reload whose files do not all parse keeps the previous index serving and
//! is reported (log, `/readyz`, `turnstile_reload_failures_total`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::cli::ServeArgs;
use crate::engine::Snapshot;
use crate::publisher::Publisher;
use crate::sources::files;

/// `turnstile serve`: publishes the folder, then serves it and reloads it on change.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let what = format!("`{}`", args.manifests.display());
    super::serve(&args.server, &what, |publisher| async move {
        // A folder that does not load leaves the server unready (every decision denies)
        // until a change fixes it.
        let _ = reload(&args.manifests, &publisher, args.refuse_empty);
        let watcher = watch(args.manifests.clone(), publisher, args.refuse_empty)
            .with_context(|| format!("cannot watch `{}`", args.manifests.display()))?;
        Ok(Box::new(watcher) as super::Guard)
    })
}

/// Quiet time after a change before reloading, so an editor's burst of writes is one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The `/readyz` source of the empty-folder warning.
const EMPTY: &str = "manifests";

/// Loads `dir` and publishes it; on a file that cannot be used, keeps what is serving.
/// A folder with no Turnstile object (a ConfigMap mounted at the wrong path, say) denies every
/// request: it is logged as an error and named on `/readyz`, and with `refuse_empty` it is not
/// published at all. Returns the number of objects published.
pub fn reload(dir: &Path, publisher: &Publisher, refuse_empty: bool) -> Result<usize, String> {
    let loaded = match files::load(dir) {
        Ok(l) => l,
        Err(e) => {
            let why = e.to_string();
            tracing::error!("reload failed, previous index kept: {why}");
            publisher.failed(why.clone());
            return Err(why);
        }
    };
    if !loaded.problems.is_empty() {
        for p in &loaded.problems {
            tracing::error!("{p}");
        }
        let why = format!("{} (and {} more)", loaded.problems[0], loaded.problems.len() - 1);
        let why = if loaded.problems.len() == 1 { loaded.problems[0].to_string() } else { why };
        tracing::error!("reload failed, previous index kept");
        publisher.failed(why.clone());
        return Err(why);
    }
    if loaded.resources.is_empty() {
        let why = format!("`{}` holds no Turnstile objects: every request is denied", dir.display());
        tracing::error!("{why}");
        if refuse_empty {
            publisher.failed(format!("{why}; not published (--refuse-empty)"));
            return Err(why);
        }
        publisher.problem(EMPTY, Some(why));
    } else {
        publisher.problem(EMPTY, None);
    }
    let (snapshot, report) = Snapshot::build(&loaded.definitions(), jiff::Timestamp::now());
    for (kind, name, p) in report.errors() {
        tracing::warn!("{kind}/{name} is not ready: {p}");
    }
    for (kind, name, p) in report.warnings() {
        tracing::warn!("{kind}/{name}: {p}");
    }
    publisher.publish(snapshot, &report);
    tracing::info!(objects = loaded.resources.len(), generation = publisher.generation(), "index published");
    Ok(loaded.resources.len())
}

/// Reloads `dir` whenever something under it changes. Keep the returned watcher alive.
pub fn watch(dir: PathBuf, publisher: Arc<Publisher>, refuse_empty: bool) -> notify::Result<RecommendedWatcher> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // wait for the writes to settle
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let (dir, publisher) = (dir.clone(), publisher.clone());
            let _ = tokio::task::spawn_blocking(move || reload(&dir, &publisher, refuse_empty)).await;
        }
    });
    Ok(watcher)
}

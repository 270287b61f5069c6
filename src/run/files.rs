//! File mode (DESIGN §6): load a folder of manifests, publish its snapshot, and reload when a
//! file changes. A reload whose files do not all parse keeps the previous index serving and
//! is reported (log, `/readyz`, `turnstile_reload_failures_total`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::ServeArgs;
use crate::engine::Snapshot;
use crate::publisher::Publisher;
use crate::sources::files;

use super::watch::{Changes, Hangups};

/// `turnstile serve`: publishes the folder, then serves it and reloads it on change.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let what = format!("`{}`", args.manifests.display());
    super::serve(&args.server, &what, |publisher| async move {
        // A folder that does not load leaves the server unready (every decision denies)
        // until a change fixes it.
        let _ = reload(&args.manifests, &publisher, args.refuse_empty);
        let reloader = watch(args.manifests.clone(), publisher, args.refuse_empty)
            .with_context(|| format!("cannot watch `{}`", args.manifests.display()))?;
        Ok(Box::new(reloader) as super::Guard)
    })
}

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

/// Reloads `target` (a folder or one file) whenever it changes or the process gets SIGHUP.
/// Keep the returned guard alive: dropping it stops the reloading.
pub fn watch(target: PathBuf, publisher: Arc<Publisher>, refuse_empty: bool) -> notify::Result<Reloader> {
    let mut changes = Changes::new(&[&target])?;
    let mut hangups = Hangups::new();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                change = changes.next() => if change.is_none() { return },
                () = hangups.next() => tracing::info!("SIGHUP: reloading `{}`", target.display()),
            }
            let (target, publisher) = (target.clone(), publisher.clone());
            let _ = tokio::task::spawn_blocking(move || reload(&target, &publisher, refuse_empty)).await;
        }
    });
    Ok(Reloader(task))
}

/// Reloads while it lives.
pub struct Reloader(tokio::task::JoinHandle<()>);

impl Drop for Reloader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

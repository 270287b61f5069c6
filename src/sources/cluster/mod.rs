//! Cluster mode's source: the five kinds watched on a Kubernetes API server.
//!
//! ```text
//! watcher per kind ─ apply / delete / relist ─▶ Store ─ changed ─▶ rebuild ─▶ Publisher
//!                                                 │                   │
//!                                                 └──── objects ──────┴─ report ─▶ status writer
//!                                                                                 (Lease holder only)
//! ```
//!
//! The store yields the same engine `Definitions` file mode builds, so both modes decide
//! through one code path. A change schedules a rebuild; a burst of changes is one rebuild, and a
//! steady stream still publishes every [`MAX_DELAY`]. Nothing is published until every kind has
//! been listed once, so `/readyz` stays 503 until then; afterwards a lost watch keeps the last
//! snapshot serving, reports itself on `/readyz`, and resumes with backoff.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

use super::convert::AnyResource;
use super::crd::{ApiCatalog, OrganizationalUnit, PermissionSet, Role, UserBinding};
use crate::engine::{Definitions, Kind, Report, Snapshot};
use crate::publisher::Publisher;

pub mod lease;
pub mod status;
mod store;

pub use store::Store;

/// Quiet time after a change before rebuilding, so that one `kubectl apply -f dir/` is one
/// rebuild.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// Longest a change waits for its rebuild while other changes keep arriving.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// The watchers' store and the signal that it changed.
#[derive(Default)]
pub struct Shared {
    store: Mutex<Store>,
    changed: Notify,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `f` to the store and schedules a rebuild when it says the engine's input changed.
    fn update(&self, f: impl FnOnce(&mut Store) -> bool) {
        if f(&mut self.store()) {
            self.changed.notify_one();
        }
    }
}

/// Starts one watcher per kind, feeding a new store. `selector` limits them to the objects
/// with those labels.
pub fn watch_all(client: &Client, selector: Option<&str>, publisher: &Arc<Publisher>) -> Arc<Shared> {
    let shared = Arc::new(Shared::default());
    let mut config = watcher::Config::default();
    if let Some(selector) = selector {
        config = config.labels(selector);
    }
    tokio::spawn(watch_kind::<OrganizationalUnit>(client.clone(), config.clone(), shared.clone(), publisher.clone()));
    tokio::spawn(watch_kind::<PermissionSet>(client.clone(), config.clone(), shared.clone(), publisher.clone()));
    tokio::spawn(watch_kind::<Role>(client.clone(), config.clone(), shared.clone(), publisher.clone()));
    tokio::spawn(watch_kind::<UserBinding>(client.clone(), config.clone(), shared.clone(), publisher.clone()));
    tokio::spawn(watch_kind::<ApiCatalog>(client.clone(), config, shared.clone(), publisher.clone()));
    shared
}

async fn watch_kind<K>(client: Client, config: watcher::Config, shared: Arc<Shared>, publisher: Arc<Publisher>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    AnyResource: From<K>,
{
    let kind = K::kind(&()).into_owned();
    let source = format!("watch {kind}");
    let mut events = std::pin::pin!(watcher(Api::<K>::all(client), config).default_backoff());
    // A (re)list arrives as Init, InitApply…, InitDone: buffered, then swapped in at once.
    let mut relist: Option<Vec<AnyResource>> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("{source}: {e}; retrying");
                publisher.problem(&source, Some(watch_error(&e)));
                continue;
            }
        };
        publisher.problem(&source, None);
        match event {
            Event::Init => relist = Some(Vec::new()),
            Event::InitApply(object) => relist.get_or_insert_default().push(object.into()),
            Event::InitDone => {
                let objects = relist.take().unwrap_or_default();
                let kind = Kind::parse(&kind).expect("a watched kind is one of the five");
                tracing::info!(objects = objects.len(), "listed {kind}");
                shared.update(|store| store.reset(kind, objects));
            }
            Event::Apply(object) => shared.update(|store| store.apply(object.into())),
            Event::Delete(object) => {
                let object = AnyResource::from(object);
                shared.update(|store| store.delete(object.kind(), object.name()));
            }
        }
    }
}

fn watch_error(e: &watcher::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Rebuilds and publishes the snapshot whenever the store changes or a binding expires, and
/// sends each build's report (with the time it was built for) to `reports`.
pub async fn rebuild(shared: Arc<Shared>, publisher: Arc<Publisher>, reports: watch::Sender<Option<Built>>) {
    let mut next_expiry: Option<jiff::Timestamp> = None;
    loop {
        let expiry = async {
            match next_expiry {
                Some(at) => tokio::time::sleep(until(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = expiry => {}
        }
        let first = tokio::time::Instant::now();
        while first.elapsed() < MAX_DELAY && tokio::time::timeout(DEBOUNCE, shared.changed.notified()).await.is_ok() {}
        let definitions = {
            let store = shared.store();
            if !store.is_listed() {
                continue;
            }
            store.definitions()
        };
        let now = jiff::Timestamp::now();
        next_expiry = first_expiry(&definitions, now);
        let built = tokio::task::spawn_blocking(move || Snapshot::build(&definitions, now)).await;
        let Ok((snapshot, report)) = built else {
            tracing::error!("building the index failed; the previous one keeps serving");
            publisher.failed("building the index failed".into());
            continue;
        };
        for (kind, name, p) in report.errors() {
            tracing::warn!("{kind}/{name} is not ready: {p}");
        }
        publisher.publish(snapshot, &report);
        tracing::info!(generation = publisher.generation(), "index published");
        reports.send_replace(Some(Built { report: Arc::new(report), at: now }));
    }
}

/// A build's report, for the status writer.
#[derive(Clone)]
pub struct Built {
    pub report: Arc<Report>,
    pub at: jiff::Timestamp,
}

/// The first `expiresAt` after `now`: the binding's status turns `Expired` then (decisions
/// check expiry on their own, at their time).
fn first_expiry(definitions: &Definitions, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let times = definitions.user_bindings.iter().filter_map(|b| b.expires_at.as_deref()?.parse().ok());
    times.filter(|&t| t > now).min()
}

fn until(at: jiff::Timestamp) -> Duration {
    let left = at.duration_since(jiff::Timestamp::now());
    // A little after, so that the build sees it expired.
    Duration::try_from(left).unwrap_or_default() + Duration::from_millis(10)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::sources::crd::{Role, RoleSpec};

    fn role(name: &str, description: &str) -> AnyResource {
        let mut r = Role::new(name, RoleSpec { description: Some(description.into()), ..Default::default() });
        r.metadata.generation = Some(1);
        r.into()
    }

    /// Nothing is published before every kind is listed; a burst is one publish; a steady
    /// stream of changes still publishes within `MAX_DELAY`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rebuilds_wait_for_the_lists_coalesce_bursts_and_keep_up_with_streams() {
        let shared = Arc::new(Shared::default());
        let publisher = Publisher::new();
        let (builds, _built) = watch::channel(None);
        tokio::spawn(rebuild(shared.clone(), publisher.clone(), builds));

        for kind in &Kind::ALL[..4] {
            shared.update(|store| store.reset(*kind, vec![]));
        }
        tokio::time::sleep(MAX_DELAY * 2).await;
        assert!(!publisher.is_ready(), "one kind is not listed yet");
        shared.update(|store| store.reset(Kind::ApiCatalog, vec![]));
        tokio::time::sleep(MAX_DELAY).await;
        assert_eq!(publisher.generation(), 1);

        for i in 0..20 {
            shared.update(|store| store.apply(role("r", &format!("burst {i}"))));
        }
        tokio::time::sleep(MAX_DELAY).await;
        assert_eq!(publisher.generation(), 2, "a burst is one rebuild");

        // A change every 10 ms never leaves 20 ms of quiet, and still publishes.
        let start = Instant::now();
        for i in 0.. {
            if publisher.generation() > 2 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(1), "a steady stream held the rebuild off");
            shared.update(|store| store.apply(role("r", &format!("stream {i}"))));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

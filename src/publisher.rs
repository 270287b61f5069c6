//! The published snapshot: the one cell that file mode and cluster mode write and the HTTP
//! server reads (STYLE 11, 12).
//!
//! ```text
//! run::files ──┐                       ┌─▶ decisions (lock-free load)
//!              ├─▶ Publisher::publish ─┤
//! run::cluster ┘   problems, readiness └─▶ /readyz, /metrics
//! ```
//!
//! A request loads the snapshot without a lock; a publish swaps in a new one atomically, and
//! requests under way keep the one they loaded. Nothing here knows where snapshots come from.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;

use crate::engine::{Kind, Report, Snapshot};

/// Objects of the serving index by kind: Ready (index 0) and not (index 1).
pub type ObjectCounts = [[u32; 2]; Kind::ALL.len()];

#[derive(Default)]
pub struct Publisher {
    /// `None` until the first publish: not ready, and every decision denies.
    snapshot: ArcSwapOption<Snapshot>,
    generation: AtomicU64,
    /// Unix seconds of the last publish.
    published_at: AtomicI64,
    /// Updates a source could not publish (the previous snapshot kept serving).
    failures: AtomicU64,
    /// The serving snapshot's build report (every object's status), replaced on every publish.
    report: ArcSwapOption<Report>,
    /// Set once the process is shutting down: not ready, while still serving.
    draining: std::sync::atomic::AtomicBool,
    /// Open problems by source (`reload`, `watch OrganizationalUnit`, …), until that source
    /// recovers.
    problems: Mutex<BTreeMap<String, String>>,
}

/// Why a source could not publish its last update, reported by that source.
pub const RELOAD: &str = "reload";

impl Publisher {
    pub fn new() -> Arc<Publisher> {
        Arc::default()
    }

    /// Publishes a snapshot and the report of its build, and clears the [`RELOAD`] problem.
    pub fn publish(&self, snapshot: Snapshot, report: &Report) {
        self.snapshot.store(Some(Arc::new(snapshot)));
        self.report.store(Some(Arc::new(report.clone())));
        self.published_at.store(jiff::Timestamp::now().as_second(), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.problem(RELOAD, None);
    }

    /// Records an update that could not be published; the previous snapshot keeps serving.
    pub fn failed(&self, why: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.problem(RELOAD, Some(why));
    }

    /// Sets or clears (`None`) the open problem of one source.
    pub fn problem(&self, source: &str, why: Option<String>) {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        match why {
            Some(why) => problems.insert(source.to_owned(), why),
            None => problems.remove(source),
        };
    }

    /// The serving snapshot, if one was published.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// Ready: a snapshot is published and the process is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.snapshot.load().is_some() && !self.is_draining()
    }

    /// Marks the process as shutting down: `/readyz` fails from now on, decisions go on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Number of snapshots published so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Unix seconds of the last publish, if any.
    pub fn published_at(&self) -> Option<i64> {
        Some(self.published_at.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    /// Updates that could not be published, since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Open problems, as `(source, why)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        problems.iter().map(|(s, w)| (s.clone(), w.clone())).collect()
    }

    /// The objects of the serving snapshot that are not Ready, one line each.
    pub fn not_ready(&self) -> Vec<String> {
        let Some(report) = self.report() else { return Vec::new() };
        report.errors().map(|(kind, name, p)| format!("{kind}/{name}: {p}")).collect()
    }

    /// The report of the serving snapshot's build.
    pub fn report(&self) -> Option<Arc<Report>> {
        self.report.load_full()
    }

    /// Objects of the serving snapshot by kind, Ready and not.
    pub fn objects(&self) -> ObjectCounts {
        let mut objects = ObjectCounts::default();
        for ((kind, _), status) in self.report().iter().flat_map(|r| &r.objects) {
            objects[*kind as usize][usize::from(!status.is_ready())] += 1;
        }
        objects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Definitions;

    fn empty() -> (Snapshot, Report) {
        Snapshot::build(&Definitions::default(), jiff::Timestamp::now())
    }

    #[test]
    fn not_ready_until_the_first_publish() {
        let p = Publisher::new();
        assert!(!p.is_ready() && p.snapshot().is_none() && p.published_at().is_none());
        let (s, r) = empty();
        p.publish(s, &r);
        assert!(p.is_ready());
        assert_eq!(p.generation(), 1);
    }

    #[test]
    fn a_failure_is_open_until_the_next_publish() {
        let p = Publisher::new();
        p.failed("bad file".into());
        p.problem("watch Role", Some("connection refused".into()));
        assert_eq!(p.failures(), 1);
        assert_eq!(p.problems().len(), 2);
        let (s, r) = empty();
        p.publish(s, &r);
        assert_eq!(p.problems(), [("watch Role".to_owned(), "connection refused".to_owned())]);
        p.problem("watch Role", None);
        assert!(p.problems().is_empty());
        assert_eq!(p.failures(), 1, "a failure is counted once");
    }
}

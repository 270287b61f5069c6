//! The shared ou-rbac workload at scales S, M and L (1k, 10k and 100k rules over raw paths):
//! index build time and memory, then every request of the scale decided and checked against
//! its expected decision, then timed one by one.
//!
//! `cargo bench --bench ou_rbac [-- S M L]` prints a line per scale for the README; it runs
//! `benches/ou-rbac.sh` first (python3). Without `--bench` (`cargo test --benches`) it checks
//! and times S only.
use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use turnstile::engine::{Definitions, Snapshot};

#[path = "workload/ou_rbac.rs"]
mod ou_rbac;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Timed decisions per scale, at least: every request once, as many rounds as reach this.
const TIMED: usize = 400_000;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// The median of three builds, in milliseconds.
fn build_ms(defs: &Definitions, now: jiff::Timestamp) -> f64 {
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            black_box(Snapshot::build(defs, now));
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[1]
}

/// The snapshot and the bytes it holds (allocated minus freed while building it, report dropped).
fn snapshot_bytes(defs: &Definitions, now: jiff::Timestamp) -> (Snapshot, isize) {
    let region = Region::new(GLOBAL);
    let (snap, report) = Snapshot::build(defs, now);
    assert!(report.is_clean(), "the workload must be valid");
    drop(report);
    let stats = region.change();
    (snap, stats.bytes_allocated as isize - stats.bytes_deallocated as isize)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut scales: Vec<String> = std::env::args().skip(1).filter(|a| ["S", "M", "L"].contains(&a.as_str())).collect();
    if scales.is_empty() {
        scales = if full { vec!["S".into(), "M".into(), "L".into()] } else { vec!["S".into()] };
    }
    let now = jiff::Timestamp::now();
    for scale in &scales {
        let (defs, checks) = ou_rbac::load(&ou_rbac::folder(scale));
        let build = build_ms(&defs, now);
        let (snap, bytes) = snapshot_bytes(&defs, now);

        let compared = ou_rbac::compare(&snap, &defs, &checks, now);
        let wrong = &compared.wrong;
        assert!(wrong.is_empty(), "{scale}: {} decisions differ from the expected, first: {}", wrong.len(), wrong[0]);

        let rounds = if full { TIMED.div_ceil(checks.len()) } else { 1 };
        let mut times = Vec::with_capacity(checks.len() * rounds);
        let mut allowed = 0usize;
        for _ in 0..rounds {
            for c in &checks {
                let req = c.request(now);
                let t = Instant::now();
                let d = snap.decide(black_box(&req));
                let ns = t.elapsed().as_nanos() as u64;
                allowed += d.allowed() as usize;
                black_box(d);
                times.push(ns);
            }
        }
        times.sort_unstable();
        let stats = snap.stats();
        println!(
            "ou-rbac {scale}: {} rules, {} bindings; index build {build:.1} ms, memory {:.1} MiB; {} decisions \
             as expected ({} HEAD by a GET rule); {} timed ({:.1}% allowed): p50 {} ns, p99 {} ns, p99.9 {} ns",
            stats.rules,
            stats.user_bindings,
            bytes as f64 / 1048576.0,
            checks.len(),
            compared.head_by_get_rule,
            times.len(),
            100.0 * allowed as f64 / times.len() as f64,
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            percentile(&times, 0.999),
        );
    }
}

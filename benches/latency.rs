//! Latency percentiles of single decisions and the index's memory on the generated workload.
//! `cargo bench --bench latency` prints a table for the README.
use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use turnstile::engine::Snapshot;

mod workload;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Bytes the snapshot holds (allocated minus freed while building it, report dropped).
fn snapshot_bytes(defs: &turnstile::engine::Definitions, now: jiff::Timestamp) -> (Snapshot, isize) {
    let region = Region::new(GLOBAL);
    let (snap, report) = Snapshot::build(defs, now);
    drop(report);
    let stats = region.change();
    (snap, stats.bytes_allocated as isize - stats.bytes_deallocated as isize)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full { &workload::FULL } else { &workload::SMOKE };
    let now = jiff::Timestamp::now();
    let defs = workload::definitions(size, &mut workload::Rng::new(7));
    let rules: usize = defs.permission_sets.iter().map(|s| s.allow.len() + s.deny.len()).sum();

    let started = Instant::now();
    let (snap, report) = Snapshot::build(&defs, now);
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(report.is_clean(), "the workload must be valid");
    drop(snap);

    let (snap, bytes) = snapshot_bytes(&defs, now);
    let mut no_bindings = workload::definitions(size, &mut workload::Rng::new(7));
    no_bindings.user_bindings.clear();
    let (_, bytes_without) = snapshot_bytes(&no_bindings, now);
    let per_binding = (bytes - bytes_without) as f64 / defs.user_bindings.len() as f64;

    println!(
        "workload: {} OUs, {} permission sets, {rules} rules, {} roles, {} bindings, {} operations",
        defs.organizational_units.len(),
        defs.permission_sets.len(),
        defs.roles.len(),
        defs.user_bindings.len(),
        defs.api_catalogs.iter().map(|c| c.operations.len()).sum::<usize>()
    );
    println!("index build: {build_ms:.1} ms");
    println!("index memory: {:.1} MiB in all, {per_binding:.0} bytes per binding", bytes as f64 / 1048576.0);
    // Many distinct requests walk cold parts of a 20 MiB index (memory-bound); a few
    // repeated ones stay in cache, as a server's active users do.
    for distinct in [4096, 64] {
        let sample = workload::requests(size, &mut workload::Rng::new(11), distinct);
        let rounds = if full { 409_600 / distinct } else { 1 };
        let (times, allowed) = time_decisions(&snap, &sample, rounds, now);
        println!(
            "decision, {distinct} distinct requests ({} timed, {:.1}% allowed): p50 {} ns, p99 {} ns, p99.9 {} ns",
            times.len(),
            100.0 * allowed as f64 / times.len() as f64,
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            percentile(&times, 0.999),
        );
    }
}

fn time_decisions(
    snap: &Snapshot,
    sample: &[workload::Sample],
    rounds: usize,
    now: jiff::Timestamp,
) -> (Vec<u64>, usize) {
    let mut times = Vec::with_capacity(sample.len() * rounds);
    let mut allowed = 0usize;
    for _ in 0..rounds {
        for s in sample {
            let req = s.request(now);
            let t = Instant::now();
            let d = snap.decide(black_box(&req));
            let ns = t.elapsed().as_nanos() as u64;
            allowed += d.allowed() as usize;
            black_box(d);
            times.push(ns);
        }
    }
    times.sort_unstable();
    (times, allowed)
}

//! Criterion benchmarks of the engine on the generated workload: one decision, and the
//! index build. `cargo bench --bench engine`
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use turnstile::engine::Snapshot;

mod workload;

fn size() -> &'static workload::Size {
    // `cargo test --benches` runs each benchmark once: keep that quick.
    if std::env::args().any(|a| a == "--bench") { &workload::FULL } else { &workload::SMOKE }
}

fn decide(c: &mut Criterion) {
    let size = size();
    let defs = workload::definitions(size, &mut workload::Rng::new(7));
    let now = jiff::Timestamp::now();
    let (snap, _) = Snapshot::build(&defs, now);
    let sample = workload::requests(size, &mut workload::Rng::new(11), 4096);
    let mut i = 0;
    c.bench_function("decide", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            let req = sample[i].request(now);
            black_box(snap.decide(black_box(&req)).allowed())
        })
    });
}

fn build(c: &mut Criterion) {
    let size = size();
    let defs = workload::definitions(size, &mut workload::Rng::new(7));
    let now = jiff::Timestamp::now();
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("index", |b| b.iter(|| black_box(Snapshot::build(black_box(&defs), now))));
    group.finish();
}

criterion_group!(benches, decide, build);
criterion_main!(benches);

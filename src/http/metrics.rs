//! Prometheus metrics: decisions by endpoint and result, decision latency, the index's
//! generation, age, publish time and reload failures, its objects by kind and readiness, the
//! token cache's hits and misses, failed key fetches, and the process's CPU, memory and
//! descriptors (under their standard `process_` names, without the `turnstile_` prefix).

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use super::authn::Authenticator;
use crate::engine::Kind;
use crate::publisher::Publisher;

mod process;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Endpoint {
    nginx,
    forward,
    envoy,
    /// Envoy `ext_authz` over gRPC.
    grpc,
    check,
    /// kube-apiserver's SubjectAccessReviews.
    sar,
}

impl Endpoint {
    const ALL: [Endpoint; 6] =
        [Endpoint::nginx, Endpoint::forward, Endpoint::envoy, Endpoint::grpc, Endpoint::check, Endpoint::sar];
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Result {
    allowed,
    denied,
    unauthenticated,
    /// The request could not be read, or no index was loaded: denied.
    error,
}

impl Result {
    const ALL: [Result; 4] = [Result::allowed, Result::denied, Result::unauthenticated, Result::error];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub endpoint: Endpoint,
    pub result: Result,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub commit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub kind: &'static str,
    pub ready: &'static str,
}

pub struct Metrics {
    /// Unprefixed, for the standard `process_*` metrics; the others are in its `turnstile`
    /// sub-registry.
    registry: Registry,
    /// The decision counters by endpoint and result, created up front: counting a decision is
    /// one atomic increment, and every series is exported from the start.
    decisions: [[Counter; Result::ALL.len()]; Endpoint::ALL.len()],
    latency: Histogram,
    generation: Gauge,
    age: Gauge,
    published: Gauge,
    reload_failures: Counter,
    token_cache_hits: Counter,
    token_cache_misses: Counter,
    key_fetch_failures: Counter,
    /// Objects of the serving index by kind, Ready (index 0) and not (index 1).
    objects: [[Gauge; 2]; Kind::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::Process::new()));
        let registry = root.sub_registry_with_prefix("turnstile");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register("decisions", "Decisions by endpoint and result", decisions.clone());
        let decisions = Endpoint::ALL.map(|endpoint| {
            Result::ALL.map(|result| decisions.get_or_create(&DecisionLabels { endpoint, result }).clone())
        });
        let latency = Histogram::new(exponential_buckets(1e-6, 2.0, 20));
        let latency = add(registry, "decision_duration_seconds", "Time to decide, after the request is read", latency);
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register("build_info", "The version and commit of this binary (always 1)", build.clone());
        build
            .get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION"), commit: env!("TURNSTILE_COMMIT") })
            .set(1);
        let generation = add(registry, "index_generation", "Number of indexes published since start", Gauge::default());
        let age = add(registry, "index_age_seconds", "Seconds since the serving index was published", Gauge::default());
        let published = add(
            registry,
            "index_last_publish_timestamp_seconds",
            "Unix time at which the serving index was published (0 before the first)",
            Gauge::default(),
        );
        let reload_failures =
            add(registry, "reload_failures", "Reloads that kept the previous index", Counter::default());
        let token_cache_hits =
            add(registry, "token_cache_hits", "Bearer tokens answered from the cache", Counter::default());
        let token_cache_misses =
            add(registry, "token_cache_misses", "Bearer tokens not in the cache, checked in full", Counter::default());
        let key_fetch_failures = add(
            registry,
            "jwks_fetch_failures",
            "Fetches of an issuer's keys that failed (the keys there were are kept)",
            Counter::default(),
        );
        let objects = Family::<ObjectLabels, Gauge>::default();
        registry.register("objects", "Objects of the serving index by kind and readiness", objects.clone());
        let objects = Kind::ALL.map(|kind| {
            ["true", "false"].map(|ready| objects.get_or_create(&ObjectLabels { kind: kind.as_str(), ready }).clone())
        });
        Metrics {
            registry: root,
            decisions,
            latency,
            generation,
            age,
            published,
            reload_failures,
            token_cache_hits,
            token_cache_misses,
            key_fetch_failures,
            objects,
        }
    }
}

/// Registers `metric` in `registry` and hands it back, to be updated.
fn add<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn decision(&self, endpoint: Endpoint, result: Result, took: Duration) {
        self.decisions[endpoint as usize][result as usize].inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// The text exposition format, with the index's figures read from `publisher`, the token
    /// cache's and key fetches' from `authn`, and the process's from `/proc`, now.
    pub fn render(&self, publisher: &Publisher, authn: &Authenticator) -> String {
        self.generation.set(publisher.generation() as i64);
        if let Some(at) = publisher.published_at() {
            self.age.set(jiff::Timestamp::now().as_second() - at);
            self.published.set(at);
        }
        self.reload_failures.inner().store(publisher.failures(), Ordering::Relaxed);
        let counts = authn.counts();
        self.token_cache_hits.inner().store(counts.cache_hits, Ordering::Relaxed);
        self.token_cache_misses.inner().store(counts.cache_misses, Ordering::Relaxed);
        self.key_fetch_failures.inner().store(counts.key_fetch_failures, Ordering::Relaxed);
        for (gauges, counts) in self.objects.iter().zip(publisher.objects()) {
            gauges[0].set(counts[0].into());
            gauges[1].set(counts[1].into());
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_indexed_by_declaration_order() {
        assert!(Endpoint::ALL.iter().enumerate().all(|(i, &e)| e as usize == i));
        assert!(Result::ALL.iter().enumerate().all(|(i, &r)| r as usize == i));
        assert!(Kind::ALL.iter().enumerate().all(|(i, &k)| k as usize == i));
    }
}

//! Prometheus metrics: decisions by endpoint and result, decision latency, the index's
//! generation, age and reload failures, and its objects by kind and readiness.

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::Kind;
use crate::publisher::Publisher;

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
    registry: Registry,
    /// The decision counters by endpoint and result, created up front: counting a decision is
    /// one atomic increment, and every series is exported from the start.
    decisions: [[Counter; Result::ALL.len()]; Endpoint::ALL.len()],
    latency: Histogram,
    generation: Gauge,
    age: Gauge,
    reload_failures: Counter,
    /// Objects of the serving index by kind, Ready (index 0) and not (index 1).
    objects: [[Gauge; 2]; Kind::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("turnstile");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register("decisions", "Decisions by endpoint and result", decisions.clone());
        let decisions = Endpoint::ALL.map(|endpoint| {
            Result::ALL.map(|result| decisions.get_or_create(&DecisionLabels { endpoint, result }).clone())
        });
        let latency = Histogram::new(exponential_buckets(1e-6, 2.0, 20));
        registry.register("decision_duration_seconds", "Time to decide, after the request is read", latency.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register("build_info", "The version and commit of this binary (always 1)", build.clone());
        build
            .get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION"), commit: env!("TURNSTILE_COMMIT") })
            .set(1);
        let generation = Gauge::default();
        registry.register("index_generation", "Number of indexes published since start", generation.clone());
        let age = Gauge::default();
        registry.register("index_age_seconds", "Seconds since the serving index was published", age.clone());
        let reload_failures = Counter::default();
        registry.register("reload_failures", "Reloads that kept the previous index", reload_failures.clone());
        let objects = Family::<ObjectLabels, Gauge>::default();
        registry.register("objects", "Objects of the serving index by kind and readiness", objects.clone());
        let objects = Kind::ALL.map(|kind| {
            ["true", "false"].map(|ready| objects.get_or_create(&ObjectLabels { kind: kind.as_str(), ready }).clone())
        });
        Metrics { registry, decisions, latency, generation, age, reload_failures, objects }
    }
}

impl Metrics {
    pub fn decision(&self, endpoint: Endpoint, result: Result, took: Duration) {
        self.decisions[endpoint as usize][result as usize].inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// The text exposition format, with the index's figures read from `publisher` now.
    pub fn render(&self, publisher: &Publisher) -> String {
        self.generation.set(publisher.generation() as i64);
        if let Some(at) = publisher.published_at() {
            self.age.set(jiff::Timestamp::now().as_second() - at);
        }
        self.reload_failures.inner().store(publisher.failures(), Ordering::Relaxed);
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

//! The HTTP authorizer (DESIGN §4), serving decisions from the current snapshot.
//!
//! Decisions come from the snapshot the [`Publisher`] serves: a request loads it without a
//! lock, and a reload swaps in a new one atomically.
//!
//! ```text
//! /authz/nginx, /authz/forward, /authz/envoy/*  adapters read the original request ─┐
//! /v1/check                                     JSON in ────────────────────────────┼─▶ authn ─▶ decide
//! /v1/allowed-operations, /v1/effective-permissions  UI views (subject given) ──────┘
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tower::Service;

use crate::engine::{Answer, Claims, Decision, Headers, Report, Request, Snapshot, Subject, split_url};
use crate::publisher::Publisher;

pub mod authn;
mod connections;
mod grpc;
pub mod metrics;
pub mod sar;
mod server;

pub use server::{DRAIN_TIMEOUT, FIRST_REQUEST_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, ServerOptions, serve};

/// The headers the adapters read and answer with, parsed once.
mod names {
    use axum::http::HeaderName;

    pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
    pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
    pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
    pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
    pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
    /// oauth2-proxy's identity, read only in trusted-header mode.
    pub const X_AUTH_REQUEST_USER: HeaderName = HeaderName::from_static("x-auth-request-user");
    pub const X_AUTH_REQUEST_GROUPS: HeaderName = HeaderName::from_static("x-auth-request-groups");
    pub const X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
    pub const X_AUTH_GROUPS: HeaderName = HeaderName::from_static("x-auth-groups");
    pub const X_AUTH_OU: HeaderName = HeaderName::from_static("x-auth-ou");
    pub const X_AUTH_ROLE: HeaderName = HeaderName::from_static("x-auth-role");
    pub const X_AUTH_OPERATION: HeaderName = HeaderName::from_static("x-auth-operation");
    pub const X_AUTH_REASON: HeaderName = HeaderName::from_static("x-auth-reason");
    /// The proxy's id of the original request, for the decision log.
    pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// Envoy's mark on a body it cut at `max_request_bytes` (`allow_partial_message`).
    pub const X_ENVOY_AUTH_PARTIAL_BODY: HeaderName = HeaderName::from_static("x-envoy-auth-partial-body");
}

use names::*;

use authn::{Authenticator, Identity};
use metrics::{Endpoint, Metrics};

/// Largest request body read (for `j()` extractors and the JSON API).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest original path (with query) decided; longer ones are denied.
pub const MAX_PATH_BYTES: usize = 8 * 1024;
/// Largest total size of a proxied request's headers; larger ones are denied.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Shared by every request.
pub struct AppState {
    /// The serving snapshot; until the first publish `/readyz` answers 503 and every decision
    /// denies.
    publisher: Arc<Publisher>,
    authn: Arc<Authenticator>,
    metrics: Metrics,
    options: Options,
}

/// How the server answers, beyond authentication.
#[derive(Clone, Default)]
pub struct Options {
    /// Answer a SubjectAccessReview that no rule allows with `denied`, instead of no opinion
    /// (which leaves it to the next authorizer, RBAC).
    pub sar_hard_deny: bool,
    /// The admission webhook's check of one object against the serving snapshot and its
    /// report: `Ok(warnings)` admits, `Err(why)` refuses. `None`: the webhook is off.
    pub admission: Option<AdmissionCheck>,
    /// Answer a denial on the proxy endpoints with the whole answer (user, groups, roles,
    /// deciding rule) instead of its status and reason. Proxies pass that body to the client.
    pub full_denial_body: bool,
    /// Over gRPC, take the user from the SPIFFE id of the client certificate Envoy verified
    /// (`attributes.source.principal`) when Envoy sends one, instead of from `Authorization`.
    pub grpc_peer_identity: bool,
    /// `/metrics` has a listener of its own ([`Surface::Metrics`], `--metrics-listen`), and the
    /// proxy listener does not serve it.
    pub metrics_listener: bool,
}

/// See [`Options::admission`].
pub type AdmissionCheck =
    Arc<dyn Fn(&Value, Option<(&Snapshot, &Report)>) -> Result<Vec<String>, String> + Send + Sync>;

impl AppState {
    pub fn new(publisher: Arc<Publisher>, authn: Arc<Authenticator>) -> Arc<AppState> {
        AppState::with_options(publisher, authn, Options::default())
    }

    pub fn with_options(publisher: Arc<Publisher>, authn: Arc<Authenticator>, options: Options) -> Arc<AppState> {
        Arc::new(AppState { publisher, authn, metrics: Metrics::default(), options })
    }

    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }
}

/// What a decision endpoint did, for the metrics and the decision log.
enum Outcome {
    /// Decided. The record is kept only when the decision log is on.
    Decided { status: u16, record: Option<Box<Record>> },
    /// Answered without deciding: the request could not be read, or no index is loaded.
    Refused { status: u16, reason: &'static str },
}

/// A decision endpoint's response and what it did.
type Handled = (Response, Outcome);

/// What the decision log says of a decision: the request as decided and the answer.
struct Record {
    asked: Asked,
    answer: Answer,
}

/// The request a decision was about, and what of the decision its answer leaves out.
struct Asked {
    method: String,
    host: String,
    /// Path with query.
    path: String,
    context_ou: Option<String>,
    resource_type: String,
}

impl Asked {
    fn new(decision: &Decision, method: &str, host: &str, path: &str) -> Asked {
        Asked {
            method: method.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            context_ou: decision.context_ou.map(str::to_owned),
            resource_type: decision.resource_type.to_owned(),
        }
    }
}

impl Outcome {
    fn result(&self) -> metrics::Result {
        match self {
            Outcome::Decided { status: 200, .. } => metrics::Result::allowed,
            Outcome::Decided { status: 401, .. } => metrics::Result::unauthenticated,
            Outcome::Decided { .. } => metrics::Result::denied,
            Outcome::Refused { .. } => metrics::Result::error,
        }
    }

    /// One line of the decision log, when it is on: a fresh decision id (UUIDv7, so ids sort by
    /// time across replicas), the proxy's `x-request-id`, and the request, subject and answer.
    fn log(&self, endpoint: Endpoint, request_id: Option<&str>, took: Duration) {
        let decision_id = tracing::field::display(uuid::Uuid::now_v7());
        let request_id = request_id.unwrap_or_default();
        let result = self.result();
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        match self {
            Outcome::Decided { record: Some(r), .. } => {
                let (asked, answer) = (&r.asked, &r.answer);
                tracing::info!(
                    target: "turnstile::decision",
                    decision_id,
                    request_id,
                    endpoint = ?endpoint,
                    user = answer.user.as_deref().unwrap_or_default(),
                    groups = %answer.groups.join(","),
                    method = %asked.method,
                    host = %asked.host,
                    path = %asked.path,
                    context_ou = asked.context_ou.as_deref().unwrap_or_default(),
                    ou = answer.ou.as_deref().unwrap_or_default(),
                    operation = %answer.operation,
                    resource_type = %asked.resource_type,
                    result = ?result,
                    allowed = answer.allowed,
                    status = answer.status,
                    rule = answer.rule.as_deref().unwrap_or_default(),
                    reason = %answer.reason,
                    took_us,
                    "decision"
                )
            }
            // The decision log is off.
            Outcome::Decided { record: None, .. } => {}
            Outcome::Refused { status, reason } => tracing::info!(
                target: "turnstile::decision",
                decision_id,
                request_id,
                endpoint = ?endpoint,
                result = ?result,
                allowed = false,
                status,
                reason,
                took_us,
                "decision"
            ),
        }
    }
}

pub(crate) fn decision_log_enabled() -> bool {
    tracing::enabled!(target: "turnstile::decision", tracing::Level::INFO)
}

/// Every request enters here. The decision endpoints are dispatched by path straight to their
/// handler: they answer every request an ingress serves, and axum's router (a boxed service
/// clone, a matched-path extension and boxed futures per request) costs more than a decision
/// (`benches/load.sh`). Health, metrics and the UI views go through the router.
#[derive(Clone)]
pub struct Authorizer {
    state: Arc<AppState>,
    router: Router,
    grpc: grpc::Service,
    surface: Surface,
    /// The bearer token `/v1/*` requires, when one is set.
    api_token: Option<Arc<[u8]>>,
}

/// Which endpoints a listener serves. `/v1/*` decides for any subject its caller names, so it
/// is kept off the port the ingress and its clients reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// What proxies and the API server call: `/authz/*`, the SubjectAccessReview and admission
    /// webhooks, health and metrics.
    Proxy,
    /// `/v1/*` (decisions and views for sidecars, tools and UIs), and health.
    Api,
    /// Both, on one listener.
    Both,
    /// `/metrics` and health only (`--metrics-listen`).
    Metrics,
}

impl Surface {
    fn proxy(self) -> bool {
        matches!(self, Surface::Proxy | Surface::Both)
    }

    fn api(self) -> bool {
        matches!(self, Surface::Api | Surface::Both)
    }

    /// Whether a listener of this surface answers `endpoint`.
    fn serves(self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::check => self.api(),
            Endpoint::nginx | Endpoint::forward | Endpoint::envoy | Endpoint::grpc | Endpoint::sar => self.proxy(),
        }
    }
}

impl Authorizer {
    pub fn new(state: Arc<AppState>, surface: Surface, api_token: Option<&str>) -> Authorizer {
        let api_token = api_token.map(|t| Arc::from(t.as_bytes()));
        Authorizer {
            router: router(state.clone(), surface),
            grpc: grpc::service(state.clone()),
            state,
            surface,
            api_token,
        }
    }

    /// The proxy endpoints only.
    pub fn proxy(state: Arc<AppState>) -> Authorizer {
        Authorizer::new(state, Surface::Proxy, None)
    }

    /// Whether `request` may use `/v1/*`: always without a token, else with
    /// `Authorization: Bearer <token>` (compared in constant time).
    fn api_caller_admitted<B>(&self, request: &axum::http::Request<B>) -> bool {
        let Some(token) = &self.api_token else { return true };
        let presented = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
        match presented.split_at_checked(7) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => bool::from(rest.ct_eq(token)),
            _ => false,
        }
    }
}

/// The decision endpoint serving `path`, if one does.
fn endpoint(path: &str) -> Option<Endpoint> {
    match path {
        "/authz/nginx" => Some(Endpoint::nginx),
        "/authz/forward" => Some(Endpoint::forward),
        "/v1/check" => Some(Endpoint::check),
        SAR_PATH => Some(Endpoint::sar),
        p if p == "/authz/envoy" || p.starts_with("/authz/envoy/") => Some(Endpoint::envoy),
        _ => None,
    }
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<B> Service<axum::http::Request<B>> for Authorizer
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> ResponseFuture {
        let request = request.map(Body::new);
        let path = request.uri().path();
        if path.starts_with("/v1/") && !self.surface.api() {
            let answer = (StatusCode::NOT_FOUND, "/v1/* is served on the API listener (--api-listen)\n");
            return Box::pin(std::future::ready(Ok(answer.into_response())));
        }
        if path.starts_with("/v1/") && self.surface.api() && !self.api_caller_admitted(&request) {
            let answer = (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer realm=\"turnstile-api\"")]);
            return Box::pin(std::future::ready(Ok(answer.into_response())));
        }
        if path.starts_with(grpc::SERVICE_PREFIX) && self.surface.serves(Endpoint::grpc) {
            // The gRPC service counts and logs its decisions itself.
            let answer = self.grpc.call(request);
            return Box::pin(async move {
                let Ok(response) = answer.await;
                Ok(response.map(Body::new))
            });
        }
        match endpoint(path).filter(|e| self.surface.serves(*e)) {
            Some(endpoint) => {
                let state = self.state.clone();
                Box::pin(async move { Ok(observe(&state, endpoint, request).await) })
            }
            None => Box::pin(self.router.call(request)),
        }
    }
}

/// Runs a decision endpoint, then counts, times and (when it is on) logs what it did.
async fn observe(state: &AppState, endpoint: Endpoint, request: axum::extract::Request) -> Response {
    let request_id = decision_log_enabled().then(|| header(request.headers(), &X_REQUEST_ID).map(str::to_owned));
    let handled = async {
        match endpoint {
            Endpoint::nginx => nginx(state, request.headers()).await,
            Endpoint::forward => forward(state, request.headers()).await,
            Endpoint::envoy => envoy(state, request).await,
            Endpoint::check => check(state, request).await,
            Endpoint::sar => subject_access_review(state, request).await,
            // `Authorizer::call` hands gRPC calls to the gRPC service, which observes its own.
            Endpoint::grpc => refuse("gRPC calls are answered by the gRPC service"),
        }
    };
    observed(state, endpoint, request_id.flatten().as_deref(), handled).await
}

/// Awaits a decision endpoint's answer, counting, timing and (when it is on) logging it with
/// the proxy's request id.
async fn observed<T>(
    state: &AppState,
    endpoint: Endpoint,
    request_id: Option<&str>,
    handled: impl Future<Output = (T, Outcome)>,
) -> T {
    let started = Instant::now();
    let (response, outcome) = handled.await;
    let took = started.elapsed();
    state.metrics.decision(endpoint, outcome.result(), took);
    outcome.log(endpoint, request_id, took);
    response
}

/// Health on every listener; the admission webhook beside the proxy endpoints, and metrics too
/// unless they have a listener of their own; the UI views beside `/v1/check`.
fn router(state: Arc<AppState>, surface: Surface) -> Router {
    let mut router = Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz));
    let metrics = match surface {
        Surface::Metrics => true,
        surface => surface.proxy() && !state.options.metrics_listener,
    };
    if metrics {
        router = router.route("/metrics", get(metrics_text));
    }
    if surface.proxy() {
        router = router.route("/admission/validate", post(admission));
    }
    if surface.api() {
        router = router
            .route("/v1/allowed-operations", post(allowed_operations))
            .route("/v1/effective-permissions", post(effective_permissions));
    }
    router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(state)
}

/// The validating admission webhook: an AdmissionReview v1 about one of the five kinds,
/// answered with `allowed`, the refusal's message, and `warnings` (which kubectl prints).
async fn admission(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not an AdmissionReview");
    };
    let request = &review["request"];
    let Some(uid) = request["uid"].as_str() else {
        return bad_request("the AdmissionReview has no `request.uid`");
    };
    let verdict = match (&state.options.admission, &request["object"]) {
        // A deletion has no object to check; removing an object can only take its grants away
        // (deny sets included, as any deletion; see the README).
        (_, Value::Null) => Ok(vec![]),
        (None, _) => Err("the admission webhook is not configured on this server".to_owned()),
        (Some(check), object) => {
            let snapshot = state.publisher.snapshot();
            let report = state.publisher.report();
            check(object, snapshot.as_deref().zip(report.as_deref()))
        }
    };
    let response = match verdict {
        Ok(warnings) => json!({"uid": uid, "allowed": true, "warnings": warnings}),
        Err(why) => json!({"uid": uid, "allowed": false, "status": {"code": 422, "reason": "Invalid", "message": why}}),
    };
    let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// Objects that are not Ready listed by `/readyz`, at most.
const READYZ_OBJECTS: usize = 50;

/// 503 until the first index; then 200, saying which generation serves, which sources have a
/// problem (the previous index keeps serving), and which objects are not Ready.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let publisher = &state.publisher;
    if publisher.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if !publisher.is_ready() {
        let mut text = String::from("no index loaded yet\n");
        for (source, why) in publisher.problems() {
            text.push_str(&format!("{source}: {why}\n"));
        }
        return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
    }
    let mut text = format!("ready: index generation {}\n", publisher.generation());
    for (source, why) in publisher.problems() {
        if source == crate::publisher::RELOAD {
            text.push_str(&format!("last reload failed, previous index kept: {why}\n"));
        } else {
            text.push_str(&format!("{source}: {why}\n"));
        }
    }
    // Broken objects deny where they apply: say which, so a bad reload is visible here.
    let objects = publisher.not_ready();
    if !objects.is_empty() {
        text.push_str(&format!("{} objects are not ready and deny where they apply:\n", objects.len()));
        for line in objects.iter().take(READYZ_OBJECTS) {
            text.push_str(&format!("  {line}\n"));
        }
        if objects.len() > READYZ_OBJECTS {
            text.push_str(&format!(
                "  … and {} more (`turnstile validate` lists them all)\n",
                objects.len() - READYZ_OBJECTS
            ));
        }
    }
    (StatusCode::OK, text).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let content_type = [("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")];
    (content_type, state.metrics.render(&state.publisher, &state.authn)).into_response()
}

/// A client error: 400 with a message.
fn bad_request(message: impl Into<String>) -> Response {
    let message = message.into();
    (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": message }))).into_response()
}

/// A denial given without deciding: the request cannot be read, or no index is loaded yet.
fn refusal(reason: &'static str) -> Response {
    let body = json!({ "allowed": false, "status": 403, "reason": reason });
    let mut r = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    r.headers_mut().insert(X_AUTH_REASON, HeaderValue::from_static(reason));
    r
}

/// The same, from a decision endpoint: counted and logged as refused.
fn refuse(reason: &'static str) -> Handled {
    (refusal(reason), Outcome::Refused { status: 403, reason })
}

const UNAVAILABLE: &str = "no index loaded yet";

fn unavailable() -> Response {
    refusal(UNAVAILABLE)
}

/// A decision request that cannot be read: 400 with a message.
fn malformed(message: impl Into<String>) -> Handled {
    (bad_request(message), Outcome::Refused { status: 400, reason: "bad request" })
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    unique_keys(body).map_err(|e| format!("request body is not valid: {e}"))?;
    serde_json::from_slice(body).map_err(|e| format!("request body is not valid: {e}"))
}

/// Checks that no JSON object in `body` names a key twice. serde_json keeps the last value of
/// a repeated key, while another reader of the same body (the upstream behind a proxy) may
/// keep the first: a `j()` extractor must not decide on a value the service does not act on.
fn unique_keys(body: &[u8]) -> Result<(), serde_json::Error> {
    use serde::de::{Deserializer, Error, MapAccess, SeqAccess, Visitor};
    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
            d.deserialize_any(Unique)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(A::Error::custom(format!("key `{key}` is given twice")));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
    }
    serde_json::from_slice::<Unique>(body).map(|_| ())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectIn {
    user: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckIn {
    subject: Option<SubjectIn>,
    token: Option<String>,
    method: String,
    #[serde(default)]
    host: String,
    path: String,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    body: Option<Value>,
    ou: Option<String>,
    #[serde(default)]
    explain: bool,
}

/// Headers of a `/v1/check` body: strings, each name once whatever its case.
fn header_pairs(headers: &serde_json::Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let Some(value) = value.as_str() else {
            return Err(format!("header `{name}` must be a string"));
        };
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(format!("header `{name}` is given twice"));
        }
        out.push((name.clone(), value.to_owned()));
    }
    Ok(out)
}

/// The JSON body of a POST to a decision endpoint, or the refusal: 405 for another method,
/// 400 for a body too large or not the expected JSON.
async fn posted<T: for<'de> Deserialize<'de>>(request: axum::extract::Request) -> Result<T, Handled> {
    if request.method() != Method::POST {
        let response = (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response();
        return Err((response, Outcome::Refused { status: 405, reason: "method not allowed" }));
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await else {
        return Err(malformed("request body is larger than 1 MiB or unreadable"));
    };
    parse(&body).map_err(malformed)
}

async fn check(state: &AppState, request: axum::extract::Request) -> Handled {
    let input: CheckIn = match posted(request).await {
        Ok(i) => i,
        Err(refused) => return refused,
    };
    let headers = match header_pairs(&input.headers) {
        Ok(h) => h,
        Err(e) => return malformed(e),
    };
    let original = Original { method: &input.method, host: &input.host, path: &input.path };
    if let Some(problem) = original.problem() {
        return malformed(problem);
    }
    let Some(snapshot) = state.publisher.snapshot() else { return refuse(UNAVAILABLE) };
    let identity = match (&input.subject, &input.token) {
        (_, Some(token)) => state.authn.verify(token).await.map_err(|e| e.to_string()),
        (Some(s), None) => Ok(Arc::new(Identity { user: s.user.clone(), groups: s.groups.clone(), claims: None })),
        (None, None) => Err("no `subject` or `token`".to_owned()),
    };
    let req = original.request(state, identity.as_deref().ok(), &headers, input.body.as_ref(), input.ou.as_deref());
    let (decision, trace) = match input.explain {
        true => {
            let (d, trace) = snapshot.explain(&req);
            (d, Some(trace))
        }
        false => (snapshot.decide(&req), None),
    };
    let answer = Answer { trace, ..decision.answer() };
    let asked = Asked::new(&decision, &input.method, &input.host, &input.path);
    decision_response(answer, asked, identity.as_ref().err().cloned(), Detail::Full)
}

/// Where kube-apiserver's webhook authorizer sends its SubjectAccessReviews.
pub const SAR_PATH: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// A SubjectAccessReview, answered with its status (always HTTP 200: the answer is in the
/// status). See [`sar`].
async fn subject_access_review(state: &AppState, request: axum::extract::Request) -> Handled {
    let review: k8s_openapi::api::authorization::v1::SubjectAccessReview = match posted(request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let (status, outcome) = match sar::map(&review.spec) {
        Err(why) => (sar::error(why), Outcome::Refused { status: 400, reason: "the review cannot be read" }),
        Ok(m) if sar::exempt(&m.user, &m.groups) => {
            // Not allowed by Turnstile; the next authorizer decides.
            (sar::left_to_rbac(), Outcome::Decided { status: 403, record: None })
        }
        Ok(m) => match state.publisher.snapshot() {
            None => (sar::error(UNAVAILABLE.into()), Outcome::Refused { status: 503, reason: UNAVAILABLE }),
            Some(snapshot) => {
                let d = sar::decide(&snapshot, &m);
                let record = decision_log_enabled().then(|| {
                    let asked = Asked::new(&d, &m.verb, "", &m.access_path);
                    Box::new(Record { asked, answer: d.answer() })
                });
                (sar::status(&d, state.options.sar_hard_deny), Outcome::Decided { status: d.status(), record })
            }
        },
    };
    let review = sar::answer(review, status);
    let body = serde_json::to_vec(&review).expect("a review serializes");
    (([(header::CONTENT_TYPE, "application/json")], body).into_response(), outcome)
}

fn claims_of<'a>(identity: Option<&'a Identity>, user_claim: &'a str) -> Claims<'a> {
    match identity.and_then(|i| i.claims.as_ref()) {
        Some(c) => Claims::Token(c),
        None => Claims::Subject { user_claim },
    }
}

/// A request's headers as the engine reads them.
struct HttpHeaders<'a>(&'a HeaderMap);

impl Headers for HttpHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The original request a proxy asks about.
struct Original<'a> {
    method: &'a str,
    host: &'a str,
    /// Path with query.
    path: &'a str,
}

impl<'a> Original<'a> {
    /// Why the original request cannot be decided, if it cannot.
    fn problem(&self) -> Option<&'static str> {
        if !self.path.starts_with('/') {
            Some("the original path does not start with `/`")
        } else if self.path.len() > MAX_PATH_BYTES {
            Some("the original path is longer than 8 KiB")
        } else {
            None
        }
    }

    /// The engine's request: this original, as the identity sends it.
    fn request(
        &self,
        state: &'a AppState,
        identity: Option<&'a Identity>,
        headers: &'a dyn Headers,
        body: Option<&'a Value>,
        ou: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            subject: identity.map(|i| Subject { user: &i.user, groups: &i.groups }),
            claims: claims_of(identity, &state.authn.config().user_claim),
            method: self.method,
            host: self.host,
            path: self.path,
            headers,
            body,
            ou,
            now: jiff::Timestamp::now(),
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

/// ingress-nginx `auth-url` / nginx `auth_request`: `X-Original-Method`, and `X-Original-URL`
/// or `X-Original-URI`. The host is the URL's, else `X-Forwarded-Host`; never the `Host` of the
/// subrequest, which names Turnstile itself.
async fn nginx(state: &AppState, headers: &HeaderMap) -> Handled {
    let Some(method) = header(headers, &X_ORIGINAL_METHOD) else {
        return refuse("missing `X-Original-Method`");
    };
    let (host, path) = match (header(headers, &X_ORIGINAL_URL), header(headers, &X_ORIGINAL_URI)) {
        (Some(url), _) => split_url(url),
        (None, Some(uri)) => ("", uri),
        (None, None) => return refuse("missing `X-Original-URL` and `X-Original-URI`"),
    };
    let host = match (host, header(headers, &X_FORWARDED_HOST)) {
        ("", Some(forwarded)) => forwarded,
        ("", None) => return refuse(NGINX_NO_HOST),
        (host, _) => host,
    };
    let original = Original { method, host, path };
    decide_proxied(state, headers, original, None, None).await
}

const NGINX_NO_HOST: &str = "missing `X-Forwarded-Host`: with `X-Original-URI` (or an `X-Original-URL` \
    without a host), add `proxy_set_header X-Forwarded-Host $host;` to the auth location";

/// Traefik ForwardAuth, Caddy `forward_auth`: `X-Forwarded-Method`, `-Host`, `-Uri`.
async fn forward(state: &AppState, headers: &HeaderMap) -> Handled {
    let (Some(method), Some(uri)) = (header(headers, &X_FORWARDED_METHOD), header(headers, &X_FORWARDED_URI)) else {
        return refuse("missing `X-Forwarded-Method` or `X-Forwarded-Uri`");
    };
    let Some(host) = header(headers, &X_FORWARDED_HOST) else {
        return refuse("missing `X-Forwarded-Host`");
    };
    let original = Original { method, host, path: uri };
    decide_proxied(state, headers, original, None, None).await
}

/// Envoy `ext_authz` HTTP service with `path_prefix: /authz/envoy`: the call's own method,
/// the rest of its path and query, its `Host` or `:authority`, and its JSON body when one is sent.
async fn envoy(state: &AppState, request: axum::extract::Request) -> Handled {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refuse("the request body is larger than 1 MiB or unreadable");
    };
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let rest = uri.path().strip_prefix("/authz/envoy").unwrap_or("");
    let mut path = if rest.is_empty() { "/".to_owned() } else { rest.to_owned() };
    if let Some(q) = uri.query() {
        path.push('?');
        path.push_str(q);
    }
    // HTTP/2 carries the host as `:authority` (and HTTP/1.1 may, in an absolute-form target),
    // which hyper keeps in the URI; a `Host` that says otherwise leaves the host in doubt.
    let host = match (uri.authority().map(|a| a.as_str()), header(&headers, &header::HOST)) {
        (Some(authority), Some(host)) if !authority.eq_ignore_ascii_case(host) => {
            return refuse("`Host` and `:authority` name different hosts");
        }
        (Some(host), _) | (None, Some(host)) => host,
        (None, None) => return refuse("missing `Host` (`:authority`)"),
    };
    let original = Original { method: method.as_str(), host, path: &path };
    let json = match json_body(&body, &headers) {
        Ok(json) => json,
        Err(refused) => return refused,
    };
    decide_proxied(state, &headers, original, json.as_ref(), None).await
}

/// The JSON body a proxy sent for `j()` extractors. A body that is not JSON, or one Envoy cut
/// short (`x-envoy-auth-partial-body: true`: a prefix of JSON can itself be JSON) leaves them
/// without input, and they deny. A body naming a key twice is refused.
#[allow(clippy::result_large_err)]
fn json_body(body: &[u8], headers: &HeaderMap) -> Result<Option<Value>, Handled> {
    let partial = headers.get(X_ENVOY_AUTH_PARTIAL_BODY).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if body.is_empty() || partial {
        return Ok(None);
    }
    let json = serde_json::from_slice::<Value>(body).ok();
    if json.is_some() && unique_keys(body).is_err() {
        return Err(refuse("the JSON body names a key twice"));
    }
    Ok(json)
}

async fn decide_proxied(
    state: &AppState,
    headers: &HeaderMap,
    original: Original<'_>,
    body: Option<&Value>,
    peer: Option<Identity>,
) -> Handled {
    if let Some(problem) = original.problem() {
        return refuse(problem);
    }
    if headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum::<usize>() > MAX_HEADER_BYTES {
        return refuse("the request headers are larger than 32 KiB");
    }
    let Some(snapshot) = state.publisher.snapshot() else { return refuse(UNAVAILABLE) };
    let identity = match peer {
        Some(peer) => Ok(Arc::new(peer)),
        None => state.authn.identify(headers).await.map_err(|e| e.to_string()),
    };
    let http_headers = HttpHeaders(headers);
    let req = original.request(state, identity.as_deref().ok(), &http_headers, body, None);
    let decision = snapshot.decide(&req);
    if !decision.allowed() || decision_log_enabled() {
        let answer = decision.answer();
        let asked = Asked::new(&decision, original.method, original.host, original.path);
        let detail = if state.options.full_denial_body { Detail::Full } else { Detail::Proxy };
        return decision_response(answer, asked, identity.as_ref().err().cloned(), detail);
    }
    // The hot path: an allowed answer is its headers, written straight from the decision.
    let mut headers = HeaderMap::with_capacity(5);
    let groups = decision.groups().join(",");
    let roles = decision.roles.join(",");
    for (name, value) in [
        (X_AUTH_USER, decision.user().unwrap_or_default()),
        (X_AUTH_GROUPS, groups.as_str()),
        (X_AUTH_OU, decision.ou.unwrap_or_default()),
        (X_AUTH_ROLE, roles.as_str()),
        (X_AUTH_OPERATION, decision.operation),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    ((StatusCode::OK, headers).into_response(), Outcome::Decided { status: 200, record: None })
}

/// How much of an answer its response body carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// The whole answer, allowed or not (`/v1/check`, or proxies with `--full-denial-body`).
    Full,
    /// For a proxy, which passes a denial's body on to the client: no body when allowed (the
    /// headers say it all), and only the status and reason when denied, so that a client does
    /// not learn the groups, roles and rules that decided.
    Proxy,
}

/// The short body of a denial on a proxy endpoint.
#[derive(serde::Serialize)]
struct Denial<'a> {
    allowed: bool,
    status: u16,
    reason: &'a str,
}

/// 200 with the `X-Auth-*` headers, 403 with `X-Auth-Reason`, or 401 with `WWW-Authenticate`;
/// the body as `detail` says.
fn decision_response(mut answer: Answer, asked: Asked, authn_error: Option<String>, detail: Detail) -> Handled {
    if answer.status == 401
        && let Some(e) = authn_error
    {
        answer.reason = e;
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut headers = HeaderMap::new();
    let mut set = |name: HeaderName, value: &str| {
        // A value that cannot be a header (control characters) is left out; the body has it.
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    if answer.allowed {
        set(X_AUTH_USER, answer.user.as_deref().unwrap_or_default());
        set(X_AUTH_GROUPS, &answer.groups.join(","));
        set(X_AUTH_OU, answer.ou.as_deref().unwrap_or_default());
        set(X_AUTH_ROLE, &answer.roles.join(","));
        set(X_AUTH_OPERATION, &answer.operation);
    } else {
        set(X_AUTH_REASON, &answer.reason);
        if answer.status == 401 {
            set(header::WWW_AUTHENTICATE, "Bearer realm=\"turnstile\"");
        }
    }
    let response = match (detail, answer.allowed) {
        (Detail::Full, _) => (status, headers, axum::Json(&answer)).into_response(),
        (Detail::Proxy, true) => (status, headers).into_response(),
        (Detail::Proxy, false) => {
            let denial = Denial { allowed: false, status: answer.status, reason: &answer.reason };
            (status, headers, axum::Json(denial)).into_response()
        }
    };
    let status = answer.status;
    let record = decision_log_enabled().then(|| Box::new(Record { asked, answer }));
    (response, Outcome::Decided { status, record })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewIn {
    subject: SubjectIn,
    ou: Option<String>,
    #[serde(default)]
    params: HashMap<String, String>,
}

/// The input of a UI view and the snapshot to answer it from.
// The error is the handler's early reply, built once on a cold path.
#[allow(clippy::result_large_err)]
fn view_input(state: &AppState, body: &Bytes) -> Result<(ViewIn, Arc<Snapshot>), Response> {
    let input: ViewIn = parse(body).map_err(bad_request)?;
    let snapshot = state.publisher.snapshot().ok_or_else(unavailable)?;
    Ok((input, snapshot))
}

async fn allowed_operations(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let (input, snapshot) = match view_input(&state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let subject = Subject { user: &input.subject.user, groups: &input.subject.groups };
    let ops = snapshot.allowed_operations(
        subject,
        Claims::Subject { user_claim: &state.authn.config().user_claim },
        input.ou.as_deref(),
        &input.params,
        jiff::Timestamp::now(),
    );
    axum::Json(json!({ "operations": ops })).into_response()
}

async fn effective_permissions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let (input, snapshot) = match view_input(&state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let subject = Subject { user: &input.subject.user, groups: &input.subject.groups };
    match snapshot.effective_permissions(subject, input.ou.as_deref(), jiff::Timestamp::now()) {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => {
            let reason = e.to_string();
            (StatusCode::FORBIDDEN, axum::Json(json!({ "allowed": false, "status": 403, "reason": reason })))
                .into_response()
        }
    }
}

//! The HTTP authorizer (DESIGN §4), serving decisions from the current snapshot.
//!
//! The snapshot sits behind an [`ArcSwapOption`]: a request loads it without a lock, and a
//! reload swaps in a new one atomically. This part serves the API for services and UIs
//! (`/v1/check`, `/v1/allowed-operations`, `/v1/effective-permissions`) and the health
//! endpoints; the ingress adapters and token authentication build on it.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{Answer, Claims, Request, Snapshot, Subject};

/// Shared by every request.
#[derive(Default)]
pub struct AppState {
    /// `None` until the first load: `/readyz` answers 503 and every decision denies.
    snapshot: ArcSwapOption<Snapshot>,
}

impl AppState {
    pub fn new() -> Arc<AppState> {
        Arc::new(AppState::default())
    }

    /// Publishes a new snapshot; requests under way keep the one they loaded.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Some(Arc::new(snapshot)));
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/check", post(check))
        .route("/v1/allowed-operations", post(allowed_operations))
        .route("/v1/effective-permissions", post(effective_permissions))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.snapshot.load().as_ref() {
        Some(_) => (StatusCode::OK, "ready").into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no index loaded yet").into_response(),
    }
}

/// A client error: 400 with a message.
fn bad_request(message: impl Into<String>) -> Response {
    let message = message.into();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// An answer that cannot be given (no index yet): deny.
fn unavailable() -> Response {
    let reason = "no index loaded yet";
    let mut r = (
        StatusCode::FORBIDDEN,
        axum::Json(json!({ "allowed": false, "status": 403, "reason": reason })),
    )
        .into_response();
    r.headers_mut().insert(
        "x-auth-reason",
        HeaderValue::from_static("no index loaded yet"),
    );
    r
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("request body is not valid: {e}"))
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

async fn check(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: CheckIn = match parse(&body) {
        Ok(i) => i,
        Err(e) => return bad_request(e),
    };
    let headers = match header_pairs(&input.headers) {
        Ok(h) => h,
        Err(e) => return bad_request(e),
    };
    if !input.path.starts_with('/') {
        return bad_request("`path` must start with `/`");
    }
    let Some(snapshot) = state.snapshot.load_full() else {
        return unavailable();
    };
    // Tokens are verified once issuers are configured; until then a token is no identity.
    let subject = match (&input.subject, &input.token) {
        (Some(s), None) => Some(Subject {
            user: &s.user,
            groups: &s.groups,
        }),
        _ => None,
    };
    let req = Request {
        subject,
        claims: Claims::Subject { user_claim: "sub" },
        method: &input.method,
        host: &input.host,
        path: &input.path,
        headers: &headers,
        body: input.body.as_ref(),
        ou: input.ou.as_deref(),
        now: jiff::Timestamp::now(),
    };
    let answer = if input.explain {
        let (d, trace) = snapshot.explain(&req);
        Answer {
            trace: Some(trace),
            ..d.answer()
        }
    } else {
        snapshot.decide(&req).answer()
    };
    decision_response(answer)
}

/// 200 with the `X-Auth-*` headers, 403 with `X-Auth-Reason`, or 401 with
/// `WWW-Authenticate`; the answer as JSON.
fn decision_response(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        // A value that cannot be a header (control characters) is left out; the body has it.
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    if answer.allowed {
        set("x-auth-user", answer.user.as_deref().unwrap_or_default());
        set("x-auth-groups", &answer.groups.join(","));
        set("x-auth-ou", answer.ou.as_deref().unwrap_or_default());
        set("x-auth-role", &answer.roles.join(","));
        set("x-auth-operation", &answer.operation);
    } else {
        set("x-auth-reason", &answer.reason);
        if answer.status == 401 {
            set("www-authenticate", "Bearer realm=\"turnstile\"");
        }
    }
    (status, headers, axum::Json(answer)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewIn {
    subject: SubjectIn,
    ou: Option<String>,
    #[serde(default)]
    params: HashMap<String, String>,
}

async fn allowed_operations(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: ViewIn = match parse(&body) {
        Ok(i) => i,
        Err(e) => return bad_request(e),
    };
    let Some(snapshot) = state.snapshot.load_full() else {
        return unavailable();
    };
    let subject = Subject {
        user: &input.subject.user,
        groups: &input.subject.groups,
    };
    let ops = snapshot.allowed_operations(
        subject,
        Claims::Subject { user_claim: "sub" },
        input.ou.as_deref(),
        &input.params,
        jiff::Timestamp::now(),
    );
    axum::Json(json!({ "operations": ops })).into_response()
}

async fn effective_permissions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: ViewIn = match parse(&body) {
        Ok(i) => i,
        Err(e) => return bad_request(e),
    };
    let Some(snapshot) = state.snapshot.load_full() else {
        return unavailable();
    };
    let subject = Subject {
        user: &input.subject.user,
        groups: &input.subject.groups,
    };
    match snapshot.effective_permissions(subject, input.ou.as_deref(), jiff::Timestamp::now()) {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => {
            let reason = e.to_string();
            (
                StatusCode::FORBIDDEN,
                axum::Json(json!({ "allowed": false, "status": 403, "reason": reason })),
            )
                .into_response()
        }
    }
}

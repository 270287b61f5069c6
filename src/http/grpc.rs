//! Envoy `ext_authz` over gRPC: `envoy.service.auth.v3.Authorization/Check`, served on the
//! decision listener beside the HTTP endpoints (HTTP/2, cleartext or TLS).
//!
//! A `CheckRequest` is read into the same original request, headers and body that
//! `/authz/envoy` reads, decided by the same code, and its HTTP-shaped answer is written back
//! as a `CheckResponse`: the two forms cannot decide differently.
//!
//! Every answer is a successful call. Envoy treats a failed call as an error, and
//! `failure_mode_allow` lets errors through, so a request that cannot be read is denied in a
//! `DeniedHttpResponse` like any other denial.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::HeaderValue as EnvoyHeader;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;

use super::authn::Identity;
use super::metrics::Endpoint;
use super::names::*;
use super::{
    AppState, Handled, MAX_BODY_BYTES, Original, decide_proxied, decision_log_enabled, json_body, observed, refuse,
};

/// The paths of the service; only `Check` is answered.
pub const SERVICE_PREFIX: &str = "/envoy.service.auth.v3.Authorization/";

/// Largest `CheckRequest` read. A larger one fails the call, which Envoy counts as an error (and
/// `failure_mode_allow` lets through), so the limit is well above what is decided: a body over
/// [`MAX_BODY_BYTES`] or headers over `MAX_HEADER_BYTES` in a message under this limit are
/// denied like any other request.
const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The headers an allowed answer sets upstream: each either overwrites the client's value or,
/// when Turnstile has no value for it, is removed.
const IDENTITY_HEADERS: [HeaderName; 5] = [X_AUTH_USER, X_AUTH_GROUPS, X_AUTH_OU, X_AUTH_ROLE, X_AUTH_OPERATION];

/// The tonic service answering `Check`.
pub type Service = AuthorizationServer<Check>;

pub fn service(state: Arc<AppState>) -> Service {
    AuthorizationServer::new(Check { state }).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

pub struct Check {
    state: Arc<AppState>,
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let check = request.into_inner();
        let request_id = decision_log_enabled().then(|| request_id(&check)).flatten();
        let response = observed(&self.state, Endpoint::grpc, request_id.as_deref(), decide(&self.state, check)).await;
        Ok(tonic::Response::new(check_response(response).await))
    }
}

async fn decide(state: &AppState, check: CheckRequest) -> Handled {
    let attributes = check.attributes.unwrap_or_default();
    let Some(http) = attributes.request.and_then(|r| r.http) else {
        return refuse("the CheckRequest has no `attributes.request.http`");
    };
    let Some(headers) = header_map(&http) else {
        return refuse("a header of the original request is not a valid HTTP header");
    };
    // `host` is the `:authority` (or `Host`) Envoy routed on.
    let host = match http.host.as_str() {
        "" => http.headers.get(":authority").map(String::as_str).unwrap_or_default(),
        host => host,
    };
    // Envoy sends the method it parsed; anything else (empty, spaces, a path) is not a request.
    if axum::http::Method::from_bytes(http.method.as_bytes()).is_err() {
        return refuse("the CheckRequest's `method` is not an HTTP method");
    }
    if host.is_empty() {
        return refuse("the CheckRequest has no `host`");
    }
    // `path` is the request target as the client sent it, query included.
    let original = Original { method: &http.method, host, path: &http.path };
    let body = if http.raw_body.is_empty() { http.body.as_bytes() } else { &http.raw_body };
    if body.len() > MAX_BODY_BYTES {
        return refuse("the request body is larger than 1 MiB");
    }
    let json = match json_body(body, &headers) {
        Ok(json) => json,
        Err(refused) => return refused,
    };
    let peer = match &state.options.grpc_peer_identity {
        true => attributes.source.and_then(|s| spiffe_identity(s.principal)),
        false => None,
    };
    decide_proxied(state, &headers, original, json.as_ref(), peer).await
}

/// The proxy's `x-request-id` of the original request, for the decision log.
fn request_id(check: &CheckRequest) -> Option<String> {
    let http = check.attributes.as_ref()?.request.as_ref()?.http.as_ref()?;
    let raw =
        http.header_map.iter().flat_map(|m| &m.headers).find(|h| h.key.eq_ignore_ascii_case(X_REQUEST_ID.as_str()));
    match raw {
        Some(h) if h.raw_value.is_empty() => Some(h.value.clone()),
        Some(h) => Some(String::from_utf8_lossy(&h.raw_value).into_owned()),
        None => http.headers.get(X_REQUEST_ID.as_str()).cloned(),
    }
}

/// The original request's headers: `header_map` when Envoy sends raw headers
/// (`encode_raw_headers`), else `headers`. Pseudo-headers are left out; `None` when a name or
/// value is not a valid HTTP header, or the map names a header twice in different cases.
fn header_map(http: &HttpRequest) -> Option<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(http.headers.len());
    let mut add = |name: &str, value: &[u8]| -> Option<()> {
        if !name.starts_with(':') {
            headers.append(HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_bytes(value).ok()?);
        }
        Some(())
    };
    match &http.header_map {
        Some(raw) => {
            for h in &raw.headers {
                let value = if h.raw_value.is_empty() { h.value.as_bytes() } else { &h.raw_value };
                add(&h.key, value)?;
            }
        }
        None => {
            for (name, value) in &http.headers {
                add(name, value.as_bytes())?;
            }
            // Envoy lower-cases the map's keys and merges repeated headers, so a name twice in
            // other cases is not its doing, and which copy a reader takes would be chance.
            if headers.keys_len() != headers.len() {
                return None;
            }
        }
    }
    Some(headers)
}

/// The identity of a peer Envoy verified by its certificate: its SPIFFE id, as the user.
fn spiffe_identity(principal: String) -> Option<Identity> {
    principal.starts_with("spiffe://").then(|| Identity { user: principal, groups: Vec::new(), claims: None })
}

/// The HTTP-shaped answer as Envoy reads it.
async fn check_response(response: Response) -> CheckResponse {
    let (parts, body) = response.into_parts();
    if parts.status == StatusCode::OK {
        return CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(HttpResponse::OkResponse(allowed(&parts.headers))),
            ..CheckResponse::default()
        };
    }
    // The bodies are built in memory: reading one cannot fail.
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let reason = parts.headers.get(X_AUTH_REASON).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let code = match parts.status {
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        _ => tonic::Code::PermissionDenied,
    };
    let denied = DeniedHttpResponse {
        status: Some(HttpStatus { code: i32::from(parts.status.as_u16()) }),
        headers: parts.headers.iter().map(|(name, value)| overwrite(name.as_str(), value.as_bytes())).collect(),
        body: text(body),
    };
    CheckResponse {
        status: Some(rpc::Status { code: code as i32, message: reason.to_owned(), details: Vec::new() }),
        http_response: Some(HttpResponse::DeniedResponse(denied)),
        ..CheckResponse::default()
    }
}

/// The identity headers to set upstream, and the ones to remove. Envoy applies
/// `headers_to_remove` after the headers it sets, so a header is in one list or the other,
/// never both; `X-Auth-Reason`, which an allowed answer never sets, is always removed.
fn allowed(headers: &HeaderMap) -> OkHttpResponse {
    let mut ok = OkHttpResponse::default();
    for name in IDENTITY_HEADERS {
        match headers.get(&name).filter(|v| !v.is_empty()) {
            Some(value) => ok.headers.push(overwrite(name.as_str(), value.as_bytes())),
            None => ok.headers_to_remove.push(name.as_str().to_owned()),
        }
    }
    ok.headers_to_remove.push(X_AUTH_REASON.as_str().to_owned());
    ok
}

/// A header that replaces any value of the same name (`append_action` defaults to appending).
fn overwrite(name: &str, value: &[u8]) -> HeaderValueOption {
    // The values were valid header values, which are visible ASCII.
    let value = String::from_utf8_lossy(value).into_owned();
    HeaderValueOption {
        header: Some(EnvoyHeader { key: name.to_owned(), value, raw_value: Vec::new() }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

fn text(body: Bytes) -> String {
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::HeaderMap as RawHeaders;

    use super::*;

    fn raw(key: &str, value: &str, raw_value: &[u8]) -> EnvoyHeader {
        EnvoyHeader { key: key.into(), value: value.into(), raw_value: raw_value.into() }
    }

    /// With `encode_raw_headers`, Envoy sends `header_map` (repeated names kept, values as
    /// bytes) instead of `headers`; pseudo-headers are not HTTP headers.
    #[test]
    fn raw_headers_are_read_in_place_of_the_map() {
        let http = HttpRequest {
            headers: [("authorization".to_owned(), "ignored".to_owned())].into(),
            header_map: Some(RawHeaders {
                headers: vec![
                    raw(":authority", "api.example.com", b""),
                    raw("authorization", "", b"Bearer t"),
                    raw("x-turnstile-ou", "accounting", b""),
                    raw("accept", "", b"text/html"),
                    raw("accept", "", b"application/json"),
                ],
            }),
            ..HttpRequest::default()
        };
        let headers = header_map(&http).unwrap();
        assert_eq!(headers.len(), 4);
        assert_eq!(headers["authorization"], "Bearer t");
        assert_eq!(headers.get_all("accept").iter().count(), 2);
        let bad =
            HttpRequest { headers: [("x-a".to_owned(), "line\nbreak".to_owned())].into(), ..HttpRequest::default() };
        assert!(header_map(&bad).is_none());
    }

    /// An identity header Turnstile has no value for (empty, or not a header value) is removed
    /// upstream, never left to the client, and never both set and removed.
    #[test]
    fn an_empty_identity_header_is_removed_not_set() {
        let mut headers = HeaderMap::new();
        headers.insert(X_AUTH_USER, HeaderValue::from_static("bob@example.com"));
        headers.insert(X_AUTH_ROLE, HeaderValue::from_static(""));
        headers.insert(X_AUTH_OPERATION, HeaderValue::from_static("ListThings"));
        let ok = allowed(&headers);
        let set: Vec<_> = ok.headers.iter().map(|h| h.header.as_ref().unwrap().key.as_str()).collect();
        assert_eq!(set, ["x-auth-user", "x-auth-operation"]);
        assert!(ok.headers.iter().all(|h| h.append_action == HeaderAppendAction::OverwriteIfExistsOrAdd as i32));
        assert_eq!(ok.headers_to_remove, ["x-auth-groups", "x-auth-ou", "x-auth-role", "x-auth-reason"]);
    }

    /// The decision log's request id is the original request's `x-request-id`, from either
    /// form of headers.
    #[test]
    fn the_request_id_is_the_original_requests() {
        let with = |http: HttpRequest| {
            let request = envoy_types::pb::envoy::service::auth::v3::attribute_context::Request {
                http: Some(http),
                ..Default::default()
            };
            let attributes = envoy_types::pb::envoy::service::auth::v3::AttributeContext {
                request: Some(request),
                ..Default::default()
            };
            request_id(&CheckRequest { attributes: Some(attributes) })
        };
        let map = HttpRequest { headers: [("x-request-id".to_owned(), "r-1".to_owned())].into(), ..Default::default() };
        assert_eq!(with(map).as_deref(), Some("r-1"));
        let raw = RawHeaders { headers: vec![raw("X-Request-Id", "", b"r-2")] };
        assert_eq!(with(HttpRequest { header_map: Some(raw), ..Default::default() }).as_deref(), Some("r-2"));
        assert_eq!(with(HttpRequest::default()), None);
        assert_eq!(request_id(&CheckRequest::default()), None);
    }
}

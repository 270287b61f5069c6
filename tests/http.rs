//! The service API over real HTTP on 127.0.0.1: `/v1/check`, the UI views and health.

mod common;

use std::path::Path;

use common::{Reply, http};
use serde_json::{Value, json};
use turnstile::engine::Snapshot;
use turnstile::http::authn::{Authenticator, AuthnConfig};
use turnstile::http::{AppState, Authorizer, ServerOptions, Surface};
use turnstile::publisher::Publisher;
use turnstile::sources::files;

/// The state of a server; with `examples`, it serves the seed manifests.
async fn state(examples: bool) -> std::sync::Arc<AppState> {
    let state = AppState::new(Publisher::new(), Authenticator::new(AuthnConfig::default()).await);
    if examples {
        state_from_examples(&state);
    }
    state
}

/// Publishes the seed manifests in `state`.
fn state_from_examples(state: &std::sync::Arc<AppState>) -> std::sync::Arc<AppState> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (snap, report) = Snapshot::build(&files::load(&dir).unwrap().definitions(), jiff::Timestamp::now());
    state.publisher().publish(snap, &report);
    state.clone()
}

/// Serves `authorizer` on an ephemeral port.
async fn listen(authorizer: Authorizer) -> std::net::SocketAddr {
    common::serve_on_loopback(authorizer, ServerOptions::default()).await
}

/// Starts a server with every endpoint on one port.
async fn start(examples: bool) -> std::net::SocketAddr {
    listen(Authorizer::new(state(examples).await, Surface::Both, None)).await
}

/// A proxy endpoint's denial carries its status and reason, unless the full body is asked for;
/// `/v1/check` always answers in full.
#[tokio::test]
async fn denials_on_proxy_endpoints_say_only_why_unless_asked() {
    let headers = [
        ("X-Forwarded-Method", "DELETE"),
        ("X-Forwarded-Host", "api.example.com"),
        ("X-Forwarded-Uri", "/api/v1/policy-definitions/p-1?ou=accounting"),
        ("X-Auth-Request-User", "bob@example.com"),
    ];
    for full in [false, true] {
        let authn = Authenticator::new(AuthnConfig { trusted_headers: true, ..AuthnConfig::default() }).await;
        let options = turnstile::http::Options { full_denial_body: full, ..Default::default() };
        let state = AppState::with_options(Publisher::new(), authn, options);
        let examples = state_from_examples(&state);
        let addr = listen(Authorizer::new(examples, Surface::Both, None)).await;
        let denied = http(addr, "GET", "/authz/forward", &headers, "").await;
        assert_eq!(denied.status, 403);
        let body = denied.json();
        assert!(body["reason"].as_str().unwrap().contains("DeletePolicyDefinition"), "{body}");
        assert_eq!(body.get("roles").is_some(), full, "{body}");
        assert_eq!(body.get("user").is_some(), full, "{body}");
    }
}

/// `/v1/*` answers for any subject its caller names, so it has a listener of its own: the proxy
/// listener does not serve it, the API listener serves nothing else, and with a token set it
/// answers only callers that send it.
#[tokio::test]
async fn v1_has_a_listener_of_its_own_and_an_optional_token() {
    let state = state(true).await;
    let proxy = listen(Authorizer::proxy(state.clone())).await;
    let api = listen(Authorizer::new(state.clone(), Surface::Api, None)).await;
    const TOKEN: &str = "0123456789abcdef-api-token";
    let guarded = listen(Authorizer::new(state, Surface::Api, Some(TOKEN))).await;
    let input = json!({"subject": {"user": "bob@example.com"}, "method": "GET", "host": "api.example.com",
                       "path": "/api/v1/policy-definitions", "ou": "accounting"})
    .to_string();
    let views = json!({"subject": {"user": "bob@example.com"}, "ou": "accounting"}).to_string();
    let forward = [("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "h"), ("X-Forwarded-Uri", "/")];

    assert_eq!(call(proxy, "POST", "/v1/check", &input).await.status, 404);
    assert_eq!(call(proxy, "POST", "/v1/allowed-operations", &views).await.status, 404);
    assert_eq!(call(proxy, "POST", "/v1/effective-permissions", &views).await.status, 404);
    assert_eq!(http(proxy, "GET", "/authz/forward", &forward, "").await.status, 401, "no identity");
    assert_eq!(call(proxy, "GET", "/metrics", "").await.status, 200);

    assert_eq!(call(api, "POST", "/v1/check", &input).await.status, 200);
    assert_eq!(call(api, "POST", "/v1/allowed-operations", &views).await.status, 200);
    assert_eq!(http(api, "GET", "/authz/forward", &forward, "").await.status, 404);
    assert_eq!(call(api, "GET", "/metrics", "").await.status, 404);
    assert_eq!(call(api, "GET", "/readyz", "").await.status, 200);

    let with = async |authorization: &str| {
        let headers = [("Content-Type", "application/json"), ("Authorization", authorization)];
        http(guarded, "POST", "/v1/check", &headers, &input).await.status
    };
    assert_eq!(call(guarded, "POST", "/v1/check", &input).await.status, 401, "no token");
    assert_eq!(with("Bearer 0123456789abcdef-api-tokeN").await, 401, "a wrong token");
    assert_eq!(with("Bearer 0123456789abcdef-api-token-and-more").await, 401, "a longer token");
    assert_eq!(with(&format!("Basic {TOKEN}")).await, 401, "another scheme");
    assert_eq!(with(&format!("bearer {TOKEN}")).await, 200);
    assert_eq!(call(guarded, "GET", "/healthz", "").await.status, 200, "health needs no token");
}

/// With a metrics listener (`--metrics-listen`), `/metrics` is served there, beside health, and
/// the proxy listener answers it 404; the metrics listener serves no decision.
#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let authn = Authenticator::new(AuthnConfig::default()).await;
    let options = turnstile::http::Options { metrics_listener: true, ..Default::default() };
    let state = state_from_examples(&AppState::with_options(Publisher::new(), authn, options));
    let proxy = listen(Authorizer::proxy(state.clone())).await;
    let both = listen(Authorizer::new(state.clone(), Surface::Both, None)).await;
    let metrics = listen(Authorizer::new(state, Surface::Metrics, None)).await;
    let forward = [("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "h"), ("X-Forwarded-Uri", "/")];

    assert_eq!(call(proxy, "GET", "/metrics", "").await.status, 404);
    assert_eq!(call(both, "GET", "/metrics", "").await.status, 404);
    assert_eq!(http(proxy, "GET", "/authz/forward", &forward, "").await.status, 401, "decisions stay");
    let scraped = call(metrics, "GET", "/metrics", "").await;
    assert_eq!(scraped.status, 200);
    assert_eq!(
        common::series(&scraped.body, "turnstile_decisions_total{endpoint=\"forward\",result=\"unauthenticated\"}"),
        1.0
    );
    assert_eq!(call(metrics, "GET", "/healthz", "").await.status, 200);
    assert_eq!(call(metrics, "GET", "/readyz", "").await.status, 200);
    assert_eq!(http(metrics, "GET", "/authz/forward", &forward, "").await.status, 404);
    assert_eq!(call(metrics, "POST", "/v1/check", "{}").await.status, 404);
    assert_eq!(call(metrics, "POST", "/admission/validate", "{}").await.status, 404);
}

/// The standard process metrics, under their own names, read from `/proc` at the scrape; and
/// the time the serving index was published.
#[tokio::test]
async fn process_metrics_and_the_publish_time_are_exported() {
    let addr = start(true).await;
    let metrics = call(addr, "GET", "/metrics", "").await.body;
    let value = |name: &str| common::series(&metrics, name);
    let now = jiff::Timestamp::now().as_second() as f64;

    assert!(value("process_resident_memory_bytes") > 1e6, "{metrics}");
    assert!(value("process_open_fds") > 0.0, "{metrics}");
    assert!(value("process_max_fds") >= value("process_open_fds"), "{metrics}");
    assert!(value("process_cpu_seconds_total") >= 0.0, "{metrics}");
    let started = value("process_start_time_seconds");
    assert!(started <= now + 1.0 && started > now - 3600.0, "this test process started {started}, now is {now}");
    assert!(metrics.contains("# TYPE process_cpu_seconds counter"), "{metrics}");
    assert!(!metrics.contains("turnstile_process_"), "{metrics}");

    let published = value("turnstile_index_last_publish_timestamp_seconds");
    assert!((now - published).abs() <= 60.0, "published at {published}, now is {now}");
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");

    let empty = call(start(false).await, "GET", "/metrics", "").await.body;
    assert_eq!(common::series(&empty, "turnstile_index_last_publish_timestamp_seconds"), 0.0, "nothing published");
}

async fn call(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    http(addr, method, path, &[("Content-Type", "application/json")], body).await
}

async fn check(addr: std::net::SocketAddr, input: Value) -> Reply {
    call(addr, "POST", "/v1/check", &input.to_string()).await
}

#[tokio::test]
async fn check_allows_with_identity_headers_and_denies_with_a_reason() {
    let addr = start(true).await;
    let allowed = check(
        addr,
        json!({"subject": {"user": "bob@example.com", "groups": ["finance"]}, "method": "GET",
               "host": "api.example.com", "path": "/api/v1/policy-definitions", "ou": "accounting"}),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.header("x-auth-user"), Some("bob@example.com"));
    assert_eq!(allowed.header("x-auth-groups"), Some("finance,system:authenticated"));
    assert_eq!(allowed.header("x-auth-ou"), Some("accounting"));
    assert_eq!(allowed.header("x-auth-role"), Some("read-only"));
    assert_eq!(allowed.header("x-auth-operation"), Some("ListPolicyDefinitions"));
    assert_eq!(allowed.json()["rule"], "PermissionSet/policy-management-partial/operations");

    let denied = check(
        addr,
        json!({"subject": {"user": "userA@duplocloud.com"}, "method": "GET",
               "path": "/v3/subscriptions/prod01/k8s/job", "explain": true}),
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-auth-reason"), Some("denied by PermissionSet/deny-k8s-job/deny/0"));
    assert!(denied.header("x-auth-user").is_none());
    let body = denied.json();
    assert_eq!(body["allowed"], false);
    assert_eq!(body["ou"], "prod01");
    assert!(body["trace"]["bindings"].is_array());
}

#[tokio::test]
async fn no_identity_is_401_and_malformed_input_is_400() {
    let addr = start(true).await;
    let r = check(addr, json!({"method": "GET", "path": "/x"})).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"turnstile\""));
    // With no issuer configured, no token identifies anyone.
    let r = check(addr, json!({"token": "a.b.c", "method": "GET", "path": "/x"})).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "bearer token is malformed");
    // No user is no identity.
    for user in ["", "   "] {
        let r =
            check(addr, json!({"subject": {"user": user, "groups": ["admins"]}, "method": "GET", "path": "/x"})).await;
        assert_eq!(r.status, 401, "{user:?}: {}", r.body);
        assert_eq!(r.header("x-auth-reason"), Some("no valid identity"));
    }
    // A host that is not a URI authority is a client error.
    let r = check(addr, json!({"subject": {"user": "u"}, "method": "GET", "host": "a:80:80", "path": "/x"})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["reason"], "the host is not a valid host name");

    let r = call(addr, "POST", "/v1/check", "{not json").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("request body is not valid"));
    let r = check(
        addr,
        json!({"subject": {"user": "u"}, "method": "GET", "path": "/x",
               "headers": {"X-Turnstile-OU": "a", "x-turnstile-ou": "b"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("given twice"), "{}", r.body);
    // A repeated JSON key: serde keeps the last, a service behind the proxy may keep the first.
    let twice = r#"{"subject": {"user": "u"}, "method": "GET", "path": "/x", "body": {"ws": "a", "ws": "b"}}"#;
    let r = call(addr, "POST", "/v1/check", twice).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("key `ws` is given twice"), "{}", r.body);
    let r = call(addr, "POST", "/authz/envoy/workspaces", r#"{"ws": "a", "ws": "b"}"#).await;
    assert_eq!((r.status, r.header("x-auth-reason")), (403, Some("the JSON body names a key twice")), "{}", r.body);
    let r = check(addr, json!({"subject": {"user": "u"}, "method": "GET", "path": "/x", "extra": 1})).await;
    assert_eq!(r.status, 400);
    let r = call(addr, "GET", "/v1/check", "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn views_answer_for_uis() {
    let addr = start(true).await;
    let r = call(
        addr,
        "POST",
        "/v1/allowed-operations",
        &json!({"subject": {"user": "bob@example.com"}, "ou": "accounting", "params": {"id": "p-1"}}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let ops = r.json()["operations"].as_array().unwrap().clone();
    let read = ops.iter().find(|o| o["operation"] == "ReadPolicyDefinition").unwrap();
    assert_eq!(read["allowed"], true);
    assert_eq!(read["href"], "/api/v1/policy-definitions/p-1");

    let r = call(
        addr,
        "POST",
        "/v1/effective-permissions",
        &json!({"subject": {"user": "carol@chistadata.io"}}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tree = r.json();
    assert_eq!(tree["complete"], true);
    assert_eq!(
        tree["tree"]["children"]["workspaces"]["children"]["id-12"]["children"]["clusters"]["children"]["id-10"]["children"]
            ["query"]["allowed"],
        true
    );
}

#[tokio::test]
async fn not_ready_until_an_index_is_loaded_and_then_decisions_deny() {
    let addr = start(false).await;
    assert_eq!(call(addr, "GET", "/healthz", "").await.status, 200);
    assert_eq!(call(addr, "GET", "/readyz", "").await.status, 503);
    let r = check(addr, json!({"subject": {"user": "u"}, "method": "GET", "path": "/x"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-auth-reason"), Some("no index loaded yet"));
    let ready = start(true).await;
    assert_eq!(call(ready, "GET", "/readyz", "").await.status, 200);
}

#[tokio::test]
async fn oversized_input_is_denied_with_a_reason() {
    let addr = start(true).await;
    let long = format!("/authz/envoy/{}", "a/".repeat(5000));
    let r = http(addr, "GET", &long, &[("X-Auth-Request-User", "u")], "").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-auth-reason"), Some("the original path is longer than 8 KiB"));
    let big = "x".repeat(20 * 1024);
    let r = http(addr, "GET", "/authz/envoy/x", &[("X-A", &big), ("X-B", &big)], "").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-auth-reason"), Some("the request headers are larger than 32 KiB"));
    let body = format!("{{\"pad\": \"{}\"}}", "y".repeat(2 * 1024 * 1024));
    let r = http(addr, "POST", "/authz/envoy/x", &[("Content-Type", "application/json")], &body).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-auth-reason"), Some("the request body is larger than 1 MiB or unreadable"));
    let r = call(addr, "POST", "/v1/check", &body).await;
    assert_eq!(r.status, 400);
    let long_check = json!({"subject": {"user": "u"}, "method": "GET", "path": format!("/{}", "a".repeat(9000))});
    let r = check(addr, long_check).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "the original path is longer than 8 KiB");
    // the server is still there
    assert_eq!(http(addr, "GET", "/healthz", &[], "").await.status, 200);
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let state = AppState::new(Publisher::new(), Authenticator::new(AuthnConfig::default()).await);
    let options = ServerOptions { idle_timeout: std::time::Duration::from_millis(300), ..ServerOptions::default() };
    let addr = common::serve_on_loopback(Authorizer::new(state, Surface::Both, None), options).await;

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server closes the connection instead of waiting for the headers");
    // A client that sends its request promptly is answered.
    assert_eq!(call(addr, "GET", "/healthz", "").await.status, 200);
}

fn review(user: &str, groups: &[&str], verb: &str, ns: &str, resource: &str) -> String {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": user, "groups": groups,
                    "resourceAttributes": {"verb": verb, "namespace": ns, "resource": resource, "group": "batch"}}})
    .to_string()
}

/// The SubjectAccessReview endpoint: allow, deny with a reason, no opinion, an evaluation
/// error (never an allow) before the first index and for a review that cannot be read, and
/// system identities left to RBAC whatever the index says.
#[tokio::test]
async fn subject_access_reviews_are_answered_in_their_status() {
    const PATH: &str = turnstile::http::SAR_PATH;
    let addr = start(true).await;
    let status = |r: Reply| {
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        assert_eq!(body["kind"], "SubjectAccessReview");
        body["status"].clone()
    };
    let s = status(call(addr, "POST", PATH, &review("user1@duplocloud.com", &[], "list", "prod01", "jobs")).await);
    assert_eq!((s["allowed"].as_bool(), s["denied"].as_bool()), (Some(true), None), "{s}");
    let s = status(call(addr, "POST", PATH, &review("userA@duplocloud.com", &[], "list", "prod01", "jobs")).await);
    assert_eq!((s["allowed"].as_bool(), s["denied"].as_bool()), (Some(false), Some(true)), "{s}");
    assert_eq!(s["reason"], "denied by PermissionSet/deny-k8s-job/deny/0");
    let s = status(call(addr, "POST", PATH, &review("stranger", &[], "list", "prod01", "jobs")).await);
    assert_eq!((s["allowed"].as_bool(), s["denied"].as_bool()), (Some(false), None), "no opinion: {s}");
    for (user, groups) in [("system:kube-scheduler", vec![]), ("admin", vec!["system:masters"])] {
        let s = status(call(addr, "POST", PATH, &review(user, &groups, "list", "prod01", "jobs")).await);
        assert_eq!((s["allowed"].as_bool(), s["denied"].as_bool()), (Some(false), None), "{user}: {s}");
    }
    let s = status(call(addr, "POST", PATH, &json!({"spec": {"user": "u"}}).to_string()).await);
    assert!(s["evaluationError"].as_str().unwrap().contains("neither resource"), "{s}");
    assert_eq!(call(addr, "POST", PATH, "{not json").await.status, 400);
    assert_eq!(call(addr, "GET", PATH, "").await.status, 405);

    let metrics = call(addr, "GET", "/metrics", "").await.body;
    assert!(metrics.contains(&format!("turnstile_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{metrics}");
    assert!(metrics.contains("turnstile_decisions_total{endpoint=\"sar\",result=\"allowed\"} 1"), "{metrics}");

    let empty = start(false).await;
    let s = status(call(empty, "POST", PATH, &review("user1@duplocloud.com", &[], "list", "prod01", "jobs")).await);
    assert_eq!((s["allowed"].as_bool(), s["evaluationError"].as_str()), (Some(false), Some("no index loaded yet")));
}

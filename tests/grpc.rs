//! Envoy `ext_authz` over gRPC, called by a client that is not Turnstile's code: Python's
//! `grpcio` with `xds-protos`, the gRPC project's generated code of Envoy's API
//! (`tests/grpc/check.py`, in the virtualenv `scripts/grpc-venv.sh` makes). The requests carry
//! the fields Envoy's documentation of `AttributeContext` lists.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::Reply;
use common::scenarios::{self, SEEDS};
use serde_json::{Value, json};
use turnstile::engine::{Snapshot, split_url};
use turnstile::http::authn::{Authenticator, AuthnConfig};
use turnstile::http::{AppState, Options};
use turnstile::publisher::Publisher;
use turnstile::sources::files;

const IDENTITY_HEADERS: [&str; 5] = ["x-auth-user", "x-auth-groups", "x-auth-ou", "x-auth-role", "x-auth-operation"];

/// The Python that has grpcio and xds-protos (`TURNSTILE_GRPC_PYTHON`, else the virtualenv of
/// `scripts/grpc-venv.sh`, made when missing).
fn python() -> String {
    std::env::var("TURNSTILE_GRPC_PYTHON").unwrap_or_else(|_| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/grpc-venv.sh");
        let out = std::process::Command::new("bash").arg(script).output().unwrap();
        assert!(out.status.success(), "scripts/grpc-venv.sh: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// Sends each `CheckRequest` (protobuf JSON) to `addr` with `tests/grpc/check.py`; the
/// `CheckResponse`s, or `{"error": code}` for a call that failed.
async fn check_all(addr: SocketAddr, requests: Vec<Value>) -> Vec<Value> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/check.py");
        let mut child = std::process::Command::new(python())
            .arg(script)
            .arg(addr.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(Value::from(requests).to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "check.py: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    })
    .await
    .unwrap()
}

async fn check_one(addr: SocketAddr, request: Value) -> Value {
    check_all(addr, vec![request]).await.remove(0)
}

/// The `CheckRequest` Envoy sends for `method url` from a client at 10.0.0.7: the peers, the
/// request time, and `attributes.request.http` with Envoy's request id, the lower-cased headers
/// with the pseudo-headers, path with query, host, scheme, protocol, size and, with
/// `with_request_body`, the body.
fn envoy_request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
    let (host, path) = split_url(url);
    let mut map: BTreeMap<String, String> = BTreeMap::from([
        (":authority".into(), host.into()),
        (":method".into(), method.into()),
        (":path".into(), path.into()),
        (":scheme".into(), "https".into()),
        ("user-agent".into(), "curl/8.5.0".into()),
        ("accept".into(), "*/*".into()),
        ("x-forwarded-proto".into(), "https".into()),
        ("x-request-id".into(), "9b2e7c4a-5d1f-4c1e-8f7e-2a4b6c8d0e1f".into()),
    ]);
    for (name, value) in headers {
        map.insert(name.to_ascii_lowercase(), (*value).into());
    }
    let mut http = json!({
        "id": "10520323913658853521",
        "method": method,
        "headers": map,
        "path": path,
        "host": host,
        "scheme": "https",
        "protocol": "HTTP/1.1",
        "size": body.map_or(0, str::len).to_string(),
    });
    if let Some(body) = body {
        map_insert(&mut http["headers"], "content-length", &body.len().to_string());
        http["body"] = body.into();
    }
    json!({"attributes": {
        "source": {"address": {"socket_address": {"address": "10.0.0.7", "port_value": 53422}}},
        "destination": {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 8443}}},
        "request": {"time": "2026-12-01T10:00:00.123Z", "http": http},
        "context_extensions": {"virtual_host": "api"},
    }})
}

fn map_insert(map: &mut Value, name: &str, value: &str) {
    map.as_object_mut().unwrap().insert(name.into(), value.into());
}

/// `examples/<folder>`; the whole `examples` folder when `folder` is empty.
fn examples(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(folder)
}

/// A server for the manifests in `dir` with `authn` and `options`, every endpoint on one port.
async fn serve(dir: &Path, authn: AuthnConfig, options: Options) -> SocketAddr {
    let state = AppState::with_options(Publisher::new(), Authenticator::new(authn).await, options);
    let (snap, report) = Snapshot::build(&files::load(dir).unwrap().definitions(), jiff::Timestamp::now());
    state.publisher().publish(snap, &report);
    common::serve_all(state).await
}

/// The identity headers an allowed `CheckResponse` sets upstream, and the ones it removes.
fn upstream_headers(response: &Value) -> (BTreeMap<String, String>, Vec<String>) {
    let ok = &response["ok_response"];
    let mut set = BTreeMap::new();
    for option in ok["headers"].as_array().into_iter().flatten() {
        // Without this, Envoy appends to a value the client sent.
        assert_eq!(option["append_action"], "OVERWRITE_IF_EXISTS_OR_ADD", "{option}");
        let header = &option["header"];
        let fresh =
            set.insert(header["key"].as_str().unwrap().to_owned(), header["value"].as_str().unwrap().to_owned());
        assert!(fresh.is_none(), "{header} is set twice");
    }
    let removed: Vec<String> =
        ok["headers_to_remove"].as_array().into_iter().flatten().map(|h| h.as_str().unwrap().to_owned()).collect();
    // Envoy removes after it sets: a header in both lists would reach the upstream unset.
    assert!(removed.iter().all(|r| !set.contains_key(r)), "set and removed: {response}");
    (set, removed)
}

/// The gRPC answer says what the HTTP answer to the same request said.
fn assert_same_answer(http: &Reply, grpc: &Value, context: &str) {
    assert!(grpc.get("error").is_none(), "{context}: the call failed: {grpc}");
    if http.status == 200 {
        assert_eq!(grpc["status"].get("code"), None, "{context}: OK is code 0: {grpc}");
        let (set, removed) = upstream_headers(grpc);
        for name in IDENTITY_HEADERS {
            match http.header(name).filter(|v| !v.is_empty()) {
                Some(value) => assert_eq!(set.get(name).map(String::as_str), Some(value), "{context}: {name}"),
                None => assert!(removed.iter().any(|r| r == name), "{context}: {name} is not removed: {grpc}"),
            }
        }
        assert!(removed.iter().any(|r| r == "x-auth-reason"), "{context}: {grpc}");
        return;
    }
    let (code, name) = match http.status {
        401 => (16, "Unauthorized"),
        403 => (7, "Forbidden"),
        400 => (7, "BadRequest"),
        other => panic!("{context}: HTTP answered {other}"),
    };
    assert_eq!(grpc["status"]["code"], code, "{context}: {grpc}");
    assert_eq!(grpc["status"]["message"].as_str(), http.header("x-auth-reason"), "{context}");
    let denied = &grpc["denied_response"];
    assert_eq!(denied["status"]["code"], name, "{context}: {grpc}");
    assert_eq!(denied["body"].as_str(), Some(http.body.as_str()), "{context}");
    let header = |name: &str| {
        denied["headers"].as_array().unwrap().iter().find(|h| h["header"]["key"] == name).map(|h| &h["header"]["value"])
    };
    assert_eq!(header("x-auth-reason").and_then(Value::as_str), http.header("x-auth-reason"), "{context}");
    assert_eq!(header("www-authenticate").and_then(Value::as_str), http.header("www-authenticate"), "{context}");
}

/// Every seed scenario, asked through `/authz/envoy` and through gRPC with the same method,
/// host, path, headers and body: the same status, identity headers, reason and body, and what
/// the scenario expects.
#[tokio::test(flavor = "multi_thread")]
async fn seed_scenarios_decide_the_same_over_grpc_as_over_http() {
    let authn = AuthnConfig { trusted_headers: true, ..AuthnConfig::default() };
    for seed in SEEDS {
        let addr = serve(&examples(seed), authn.clone(), Options::default()).await;
        let checks = scenarios::checks(seed);
        let (mut grpc, mut http) = (Vec::new(), Vec::new());
        for check in &checks {
            let (host, path) = split_url(&check.url);
            let groups = check.groups.join(",");
            let body = check.body.as_ref().map(Value::to_string);
            let mut headers = vec![("x-auth-request-user", check.user.as_str()), ("x-auth-request-groups", &groups)];
            if let Some(ou) = &check.ou {
                headers.push(("x-turnstile-ou", ou));
            }
            if body.is_some() {
                headers.push(("content-type", "application/json"));
            }
            headers.extend(check.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            grpc.push(envoy_request(&check.method, &check.url, &headers, body.as_deref()));
            headers.push(("host", host));
            let target = format!("/authz/envoy{path}");
            http.push(common::http(addr, &check.method, &target, &headers, body.as_deref().unwrap_or("")).await);
        }
        let answers = check_all(addr, grpc).await;
        assert_eq!(answers.len(), checks.len());
        for ((check, http), grpc) in checks.iter().zip(&http).zip(&answers) {
            let context = format!("{seed}: {}", check.name);
            assert_same_answer(http, grpc, &context);
            check.assert_status(http.status, &context);
        }
    }
}

/// With tokens: the upstream gets Turnstile's identity headers in place of a client's forged
/// ones; a denial is PERMISSION_DENIED with a 403, a missing or bad token UNAUTHENTICATED with
/// a 401 spelled out (Envoy would answer 403 without it); none is a failed call.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_sets_identity_upstream_and_denies_in_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = common::Issuer::new(dir.path());
    let addr = serve(&examples(""), issuer.config.clone(), Options::default()).await;
    let bob = format!("Bearer {}", issuer.token("bob@example.com"));
    let url = "https://api.example.com/api/v1/policy-definitions";
    let forged = [("x-auth-user", "mallory@example.com"), ("x-auth-ou", "global"), ("x-auth-reason", "x")];
    let ask = |method: &str, ou: &str, authorization: Option<&str>| {
        let mut headers = vec![("x-turnstile-ou", ou)];
        headers.extend(forged);
        headers.extend(authorization.map(|a| ("authorization", a)));
        envoy_request(method, url, &headers, None)
    };
    let answers = check_all(
        addr,
        vec![
            ask("GET", "accounting", Some(&bob)),
            ask("GET", "r-and-d", Some(&bob)),
            ask("DELETE", "accounting", Some(&bob)),
            ask("GET", "accounting", None),
            ask("GET", "accounting", Some("Bearer not.a.token")),
        ],
    )
    .await;

    let (set, removed) = upstream_headers(&answers[0]);
    assert_eq!(set["x-auth-user"], "bob@example.com");
    assert_eq!(set["x-auth-ou"], "accounting");
    assert_eq!(set["x-auth-role"], "read-only");
    assert_eq!(set["x-auth-operation"], "ListPolicyDefinitions");
    assert_eq!(set["x-auth-groups"], "system:authenticated");
    assert_eq!(removed, ["x-auth-reason"], "every identity header is set, so none is removed");

    for (answer, why) in [(&answers[1], "another OU"), (&answers[2], "an operation the role lacks")] {
        assert_eq!(answer["status"]["code"], 7, "{why}: {answer}");
        let denied = &answer["denied_response"];
        assert_eq!(denied["status"]["code"], "Forbidden", "{why}");
        let body: Value = serde_json::from_str(denied["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["status"], 403);
        assert!(body.get("user").is_none() && body.get("roles").is_none(), "a short body: {body}");
        assert!(answer.get("ok_response").is_none());
    }
    for (answer, why) in [(&answers[3], "no token"), (&answers[4], "a malformed token")] {
        assert_eq!(answer["status"]["code"], 16, "{why}: {answer}");
        let denied = &answer["denied_response"];
        assert_eq!(denied["status"]["code"], "Unauthorized", "{why}");
        let www = denied["headers"].as_array().unwrap().iter().find(|h| h["header"]["key"] == "www-authenticate");
        assert!(www.is_some(), "{why}: {answer}");
    }
}

/// The body Envoy sends with `with_request_body` feeds `j()` extractors, as a string or, with
/// `pack_as_bytes`, as bytes; a body Envoy cut short does not.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_bodies_feed_body_extractors() {
    let authn = AuthnConfig { trusted_headers: true, ..AuthnConfig::default() };
    let addr = serve(&examples("chistadata"), authn, Options::default()).await;
    let url = "https://api.chistadata.io/api/clusters";
    let headers = [("x-auth-request-user", "dave@chistadata.io"), ("content-type", "application/json")];
    let create = |body: &str| envoy_request("POST", url, &headers, Some(body));
    let in_12 = r#"{"workspace": "id-12", "name": "analytics"}"#;
    let mut as_bytes = create(in_12);
    let http = &mut as_bytes["attributes"]["request"]["http"];
    http.as_object_mut().unwrap().remove("body");
    http["raw_body"] = base64_of(in_12).into();
    let mut partial = create(in_12);
    map_insert(&mut partial["attributes"]["request"]["http"]["headers"], "x-envoy-auth-partial-body", "true");
    let answers = check_all(
        addr,
        vec![
            create(in_12),
            create(r#"{"workspace": "id-7", "name": "analytics"}"#),
            create(r#"{"name": "analytics"}"#),
            as_bytes,
            partial,
            create(r#"{"workspace": "id-7", "workspace": "id-12"}"#),
        ],
    )
    .await;
    let allowed: Vec<bool> = answers.iter().map(|a| a.get("ok_response").is_some()).collect();
    assert_eq!(allowed, [true, false, false, true, false, false], "{answers:#?}");
    assert_eq!(upstream_headers(&answers[0]).0["x-auth-operation"], "CreateCluster");
    let reason = answers[5]["status"]["message"].as_str().unwrap();
    assert!(reason.contains("twice"), "a key named twice is refused: {reason}");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A request Turnstile cannot read is denied in the answer, never by failing the call (which
/// `failure_mode_allow` would let through); so is one before any index is loaded.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_refusals_are_denials_not_failed_calls() {
    let authn = AuthnConfig { trusted_headers: true, ..AuthnConfig::default() };
    let addr = serve(&examples(""), authn.clone(), Options::default()).await;
    let user = [("x-auth-request-user", "bob@example.com")];
    let ok = envoy_request("GET", "https://api.example.com/api/v1/policy-definitions?ou=accounting", &user, None);
    let without = |field: &str| {
        let mut r = ok.clone();
        r["attributes"]["request"]["http"].as_object_mut().unwrap().remove(field);
        r
    };
    let mut bad_header = ok.clone();
    map_insert(&mut bad_header["attributes"]["request"]["http"]["headers"], "bad header", "x");
    let mut relative = ok.clone();
    relative["attributes"]["request"]["http"]["path"] = "api/v1/policy-definitions".into();
    let mut not_a_method = ok.clone();
    not_a_method["attributes"]["request"]["http"]["method"] = "GET /admin".into();
    let mut twice = ok.clone();
    map_insert(&mut twice["attributes"]["request"]["http"]["headers"], "X-Auth-Request-User", "alice@example.com");
    let cases = [
        (json!({}), "no attributes"),
        (without("method"), "no method"),
        (not_a_method, "a method that is not an HTTP token"),
        (without("path"), "no path"),
        (bad_header, "a header name with a space"),
        (twice, "a header named twice in different cases"),
        (relative, "a path without `/`"),
    ];
    let answers = check_all(addr, cases.iter().map(|(r, _)| r.clone()).collect()).await;
    for ((_, why), answer) in cases.iter().zip(&answers) {
        assert_eq!(answer["status"]["code"], 7, "{why}: {answer}");
        assert_eq!(answer["denied_response"]["status"]["code"], "Forbidden", "{why}: {answer}");
    }
    // The host comes from `:authority` when `host` is missing.
    assert!(check_one(addr, without("host")).await.get("ok_response").is_some());

    let empty = AppState::new(Publisher::new(), Authenticator::new(authn).await);
    let unloaded = common::serve_all(empty).await;
    let answer = check_one(unloaded, ok).await;
    assert_eq!(answer["status"]["code"], 7, "no index: {answer}");
    assert_eq!(answer["status"]["message"], "no index loaded yet");
}

/// With `--grpc-peer-identity`, the SPIFFE id of the peer Envoy verified is the user; a
/// principal that is not a SPIFFE id is not, and without the flag no principal is.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_peer_identity_is_opt_in() {
    let spiffe = "spiffe://cluster.local/ns/billing/sa/invoicer";
    let dir = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(examples("clumio")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, dir.path().join(file.file_name().unwrap())).unwrap();
    }
    let binding = format!(
        "apiVersion: turnstile.dev/v1alpha1\nkind: UserBinding\nmetadata: {{name: invoicer}}\n\
         spec: {{subjects: [{{kind: User, name: '{spiffe}'}}], role: read-only, organizationalUnits: [accounting]}}\n"
    );
    std::fs::write(dir.path().join("invoicer.yaml"), binding).unwrap();
    let ask = |principal: &str| {
        let mut r = envoy_request("GET", "https://api.example.com/api/v1/policy-definitions?ou=accounting", &[], None);
        r["attributes"]["source"]["principal"] = principal.into();
        r
    };
    let on = Options { grpc_peer_identity: true, ..Options::default() };
    for (options, spiffe_allowed) in [(Options::default(), false), (on, true)] {
        let addr = serve(dir.path(), AuthnConfig::default(), options).await;
        let answers = check_all(addr, vec![ask(spiffe), ask("invoicer.billing.svc")]).await;
        match spiffe_allowed {
            true => assert_eq!(upstream_headers(&answers[0]).0["x-auth-user"], spiffe),
            false => assert_eq!(answers[0]["status"]["code"], 16, "{:?}", answers[0]),
        }
        assert_eq!(answers[1]["status"]["code"], 16, "not a SPIFFE id: {:?}", answers[1]);
    }
}

/// Every way of writing the catalog's host (letter case, a trailing dot, a port) is the
/// catalog's host over gRPC, as over HTTP: the DELETE the catalog denies stays denied, where a
/// host that escaped the catalog would reach the path grant that allows it. A lower-case
/// method is the same method.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_host_and_method_forms_decide_as_http() {
    let dir = tempfile::tempdir().unwrap();
    let addr = common::host_scoped_turnstile(dir.path()).await;
    let user = [("x-auth-request-user", "alice")];
    let hosts =
        ["api.example.com", "API.Example.COM", "api.example.com.", "api.example.com:443", "api.example.com:80:80"];
    let mut requests = Vec::new();
    let mut http = Vec::new();
    for host in hosts {
        for method in ["DELETE", "delete"] {
            let url = format!("https://{host}/api/policies/p-1");
            requests.push(envoy_request(method, &url, &user, None));
            let headers = [user[0], ("host", host)];
            http.push(common::http(addr, method, "/authz/envoy/api/policies/p-1", &headers, "").await);
        }
    }
    let answers = check_all(addr, requests).await;
    for ((answer, http), (host, method)) in
        answers.iter().zip(&http).zip(hosts.iter().flat_map(|h| [(h, "DELETE"), (h, "delete")]))
    {
        let context = format!("{method} on {host}");
        assert!(answer.get("ok_response").is_none(), "{context} is never allowed: {answer}");
        assert_eq!(answer["status"]["code"], 7, "{context}: {answer}");
        assert_same_answer(http, answer, &context);
    }
    // The control: a host that is not the catalog's misses it, and the path grant allows.
    let elsewhere = envoy_request("DELETE", "https://other.example.com/api/policies/p-1", &user, None);
    assert!(check_one(addr, elsewhere).await.get("ok_response").is_some());
}

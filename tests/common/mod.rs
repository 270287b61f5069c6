//! Builders for engine definitions and a one-line decision helper.
#![allow(dead_code)]

use turnstile::engine::*;

pub mod cluster;
pub mod scenarios;

pub fn now() -> jiff::Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

pub fn mk_ou(name: &str, parent: Option<&str>, resources: &[&str]) -> OrganizationalUnitDef {
    OrganizationalUnitDef {
        meta: Meta::named(name),
        parent: parent.map(Into::into),
        resources: resources.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn rule() -> RuleDef {
    RuleDef::default()
}

pub fn rt(pattern: &str) -> RuleDef {
    RuleDef { resource_type: Some(pattern.into()), ..Default::default() }
}

pub fn api(pattern: &str) -> RuleDef {
    RuleDef { api_name: Some(pattern.into()), ..Default::default() }
}

pub fn paths(ps: &[&str]) -> RuleDef {
    RuleDef { paths: Some(ps.iter().map(|s| s.to_string()).collect()), ..Default::default() }
}

pub fn mk_set(name: &str, allow: Vec<RuleDef>, deny: Vec<RuleDef>) -> PermissionSetDef {
    PermissionSetDef { meta: Meta::named(name), allow, deny, ..Default::default() }
}

pub fn mk_ops(name: &str, ops: &[&str]) -> PermissionSetDef {
    PermissionSetDef {
        meta: Meta::named(name),
        operations: Some(ops.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

pub fn mk_role(name: &str, sets: &[&str]) -> RoleDef {
    RoleDef {
        meta: Meta::named(name),
        permission_sets: sets.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn user(name: &str) -> SubjectDef {
    SubjectDef { kind: SubjectKind::User, name: name.into(), namespace: None }
}

pub fn group(name: &str) -> SubjectDef {
    SubjectDef { kind: SubjectKind::Group, name: name.into(), namespace: None }
}

pub fn mk_binding(
    name: &str,
    subjects: Vec<SubjectDef>,
    role: Option<&str>,
    ous: &[&str],
    sets: &[&str],
) -> UserBindingDef {
    UserBindingDef {
        meta: Meta::named(name),
        subjects,
        role: role.map(Into::into),
        organizational_units: ous.iter().map(|s| s.to_string()).collect(),
        permission_sets: sets.iter().map(|s| s.to_string()).collect(),
        expires_at: None,
    }
}

pub fn op(id: &str, method: &str, path: &str, resource_type: &str) -> OperationDef {
    OperationDef {
        id: id.into(),
        method: method.into(),
        path: path.into(),
        resource_type: Some(resource_type.into()),
        ..Default::default()
    }
}

pub fn mk_catalog(name: &str, prefix: Option<&str>, ops: Vec<OperationDef>) -> ApiCatalogDef {
    ApiCatalogDef {
        meta: Meta::named(name),
        hosts: None,
        path_prefix: prefix.map(Into::into),
        operations: ops,
        ..Default::default()
    }
}

pub fn build(defs: &Definitions) -> (Snapshot, Report) {
    Snapshot::build(defs, now())
}

/// One request to decide, with everything but the essentials defaulted.
#[derive(Clone, Default)]
pub struct Ask {
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub method: String,
    pub url: String,
    pub ou: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
}

pub fn ask(user: &str, method: &str, url: &str) -> Ask {
    Ask { user: Some(user.into()), method: method.into(), url: url.into(), ..Default::default() }
}

impl Ask {
    pub fn ou(mut self, ou: &str) -> Self {
        self.ou = Some(ou.into());
        self
    }
    pub fn group(mut self, g: &str) -> Self {
        self.groups.push(g.into());
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: serde_json::Value) -> Self {
        self.body = Some(b);
        self
    }
    pub fn anonymous(mut self) -> Self {
        self.user = None;
        self
    }

    /// Runs `f` on this request as the engine sees it, decided at `at`.
    pub fn with_request<R>(&self, at: jiff::Timestamp, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let (host, path) = split_url(&self.url);
        let subject = self.user.as_deref().map(|u| Subject { user: u, groups: &self.groups });
        let req = Request {
            subject,
            claims: Claims::Subject { user_claim: "sub" },
            method: &self.method,
            host,
            path,
            headers: &self.headers,
            body: self.body.as_ref(),
            ou: self.ou.as_deref(),
            now: at,
        };
        f(&req)
    }

    pub fn answer(&self, snap: &Snapshot) -> Answer {
        self.with_request(now(), |req| {
            let fast = snap.decide(req).answer();
            // The explained decision must agree with the fast path, whatever it traces.
            let (explained, _) = snap.explain(req);
            assert_eq!(fast, explained.answer(), "explain disagrees with decide for {} {}", self.method, self.url);
            fast
        })
    }
}

/// An HTTP/1.1 reply read whole from a plain socket.
pub struct Reply {
    pub status: u16,
    /// Status line and headers, as received.
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request over a fresh connection (`Connection: close`); `Host: turnstile` unless given.
pub async fn http(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: turnstile\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // A server may answer and close before reading a large body: keep what it sent.
    let _ = s.write_all(req.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply { status, head: head.to_owned(), body: body.to_owned() }
}

/// Serves `authorizer` with `options` on an ephemeral loopback port while the test runs.
pub async fn serve_on_loopback(
    authorizer: turnstile::http::Authorizer,
    options: turnstile::http::ServerOptions,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        turnstile::http::serve(listener, authorizer, options, std::future::pending()).await.unwrap()
    });
    addr
}

/// Serves every endpoint of `state` on one loopback port, with the default options.
pub async fn serve_all(state: std::sync::Arc<turnstile::http::AppState>) -> std::net::SocketAddr {
    use turnstile::http::{Authorizer, ServerOptions, Surface};
    serve_on_loopback(Authorizer::new(state, Surface::Both, None), ServerOptions::default()).await
}

/// A token issuer for the HTTP tests: an ES256 key whose key set is written to `jwks.json` in a
/// folder, and an authentication config that trusts it.
pub struct Issuer {
    pem: String,
    pub config: turnstile::http::authn::AuthnConfig,
}

impl Issuer {
    pub const ISSUER: &str = "https://login.example.com";

    pub fn new(dir: &std::path::Path) -> Issuer {
        use base64::Engine as _;
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        use turnstile::http::authn::{AuthnConfig, IssuerConfig};

        let key = p256::SecretKey::random(&mut rand::thread_rng());
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
                                                "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}]});
        let jwks_file = dir.join("jwks.json");
        std::fs::write(&jwks_file, jwks.to_string()).unwrap();
        let config = AuthnConfig {
            issuers: vec![IssuerConfig {
                issuer: Issuer::ISSUER.into(),
                audiences: vec![],
                algorithms: vec![jsonwebtoken::Algorithm::ES256],
                jwks_file: Some(jwks_file),
                jwks_url: None,
                discovery: false,
            }],
            ..AuthnConfig::default()
        };
        Issuer { pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(), config }
    }

    /// A token for `user`, valid for ten minutes.
    pub fn token(&self, user: &str) -> String {
        use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("k1".into());
        let now = jiff::Timestamp::now().as_second();
        let claims = serde_json::json!({"iss": Issuer::ISSUER, "sub": user, "exp": now + 600});
        encode(&h, &claims, &EncodingKey::from_ec_pem(self.pem.as_bytes()).unwrap()).unwrap()
    }
}

/// The value of one series (its name and labels exactly as written) in a `/metrics` text.
pub fn series(metrics: &str, series: &str) -> f64 {
    let value = metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' '));
    let value = value.unwrap_or_else(|| panic!("no series `{series}` in:\n{metrics}"));
    value.trim().parse().unwrap_or_else(|e| panic!("`{series}` is `{value}`: {e}"))
}

/// A host-scoped catalog whose deletes are denied, beside a raw-path grant on the same paths:
/// a request decided on any host but `api.example.com` misses the catalog, and the grant
/// allows it. So a `DELETE` that gets through shows the host Turnstile decided on was not the
/// one the proxy routed on.
pub const HOST_SCOPED: &str = "apiVersion: turnstile.dev/v1alpha1
kind: ApiCatalog
metadata: {name: policies}
spec:
  hosts: [api.example.com]
  pathPrefix: /api
  operations:
    - {id: ReadPolicy, method: GET, path: '/policies/{id}', resourceType: policy}
    - {id: DeletePolicy, method: DELETE, path: '/policies/{id}', resourceType: policy}
---
apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {name: all-but-deletes}
spec:
  allow: [{paths: [/api]}, {apiName: ReadPolicy}]
  deny: [{apiName: DeletePolicy}]
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: alice}
spec:
  subjects: [{kind: User, name: alice}]
  permissionSets: [all-but-deletes]
  organizationalUnits: [global]
";

/// Turnstile on [`HOST_SCOPED`], reading the user from `X-Auth-Request-User`.
pub async fn host_scoped_turnstile(dir: &std::path::Path) -> std::net::SocketAddr {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("all.yaml"), HOST_SCOPED).unwrap();
    let config = turnstile::http::authn::AuthnConfig { trusted_headers: true, ..Default::default() };
    let state = turnstile::http::AppState::new(
        turnstile::publisher::Publisher::new(),
        turnstile::http::authn::Authenticator::new(config).await,
    );
    let (snap, report) = turnstile::engine::Snapshot::build(
        &turnstile::sources::files::load(&manifests).unwrap().definitions(),
        jiff::Timestamp::now(),
    );
    assert!(report.is_clean(), "{report:?}");
    state.publisher().publish(snap, &report);
    serve_all(state).await
}

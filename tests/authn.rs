//! Token authentication against keys served by a real JWKS endpoint on 127.0.0.1, and the
//! proxy adapters that use it. Every attack is a 401.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use turnstile::engine::Snapshot;
use turnstile::http::AppState;
use turnstile::http::authn::{Authenticator, AuthnConfig, AuthnError, IssuerConfig};
use turnstile::publisher::Publisher;
use turnstile::sources::files;

const ISSUER: &str = "https://issuer.test";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct Keys {
    rsa_private_pem: String,
    rsa_public_pem: String,
    rsa_jwk: Value,
    ec_private_pem: String,
    ec_jwk: Value,
}

fn keys() -> Keys {
    let mut rng = rand::thread_rng();
    let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let public = rsa.to_public_key();
    let ec = p256::SecretKey::random(&mut rng);
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&ec.public_key(), false);
    Keys {
        rsa_private_pem: rsa.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
        rsa_public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        rsa_jwk: json!({"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
                        "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}),
        ec_private_pem: ec.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        ec_jwk: json!({"kty": "EC", "kid": "ec-1", "crv": "P-256",
                       "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
    }
}

/// A JWKS endpoint whose key set can change, counting its fetches.
struct Jwks {
    url: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    /// The `issuer` the discovery document names; by default the server's own URL.
    discovered_issuer: Arc<Mutex<Option<String>>>,
}

async fn serve_jwks(initial: Value) -> Jwks {
    let keys = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let base = Arc::new(Mutex::new(String::new()));
    let discovered_issuer = Arc::new(Mutex::new(None::<String>));
    let (b, named) = (base.clone(), discovered_issuer.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let base = b.lock().unwrap().clone();
                let issuer = named.lock().unwrap().clone().unwrap_or_else(|| base.clone());
                async move { axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{base}/jwks")})) }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(k.lock().unwrap().clone())
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Jwks { url, keys, fetches, discovered_issuer }
}

fn config(jwks_url: &str, refresh: u64) -> AuthnConfig {
    AuthnConfig {
        issuers: vec![IssuerConfig {
            issuer: ISSUER.into(),
            audiences: vec!["turnstile".into()],
            algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::HS256],
            jwks_file: None,
            jwks_url: Some(jwks_url.into()),
            discovery: false,
        }],
        key_refresh_seconds: refresh,
        ..AuthnConfig::default()
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn claims(user: &str) -> Value {
    json!({"iss": ISSUER, "aud": "turnstile", "sub": user, "groups": ["finance"], "exp": now() + 600, "iat": now()})
}

fn rs256(k: &Keys, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.into());
    encode(&h, claims, &EncodingKey::from_rsa_pem(k.rsa_private_pem.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn valid_tokens_identify_and_every_attack_is_refused() {
    let k = keys();
    let jwks = serve_jwks(json!({"keys": [k.rsa_jwk.clone(), k.ec_jwk.clone()]})).await;
    let authn = Authenticator::new(config(&jwks.url, 3600)).await;

    let id = authn.verify(&rs256(&k, "rsa-1", &claims("alice"))).await.unwrap();
    assert_eq!((id.user.as_str(), id.groups.as_slice()), ("alice", &["finance".to_owned()][..]));
    assert_eq!(id.claims.as_ref().unwrap()["aud"], "turnstile");
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec-1".into());
    let es = encode(&h, &claims("erin"), &EncodingKey::from_ec_pem(k.ec_private_pem.as_bytes()).unwrap()).unwrap();
    assert_eq!(authn.verify(&es).await.unwrap().user, "erin");

    let valid = rs256(&k, "rsa-1", &claims("alice"));
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(claims("alice").to_string().as_bytes()));
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rsa-1".into());
    let hs_with_public_key =
        encode(&hs, &claims("alice"), &EncodingKey::from_secret(k.rsa_public_pem.as_bytes())).unwrap();
    let bad_signature = {
        let (rest, sig) = valid.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { sig.replacen('A', "B", 1) } else { format!("A{}", &sig[1..]) };
        format!("{rest}.{flipped}")
    };
    let with = |patch: Value| {
        let mut c = claims("alice");
        for (key, v) in patch.as_object().unwrap() {
            c[key] = v.clone();
        }
        rs256(&k, "rsa-1", &c)
    };
    let without = |key: &str| {
        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove(key);
        rs256(&k, "rsa-1", &c)
    };
    let mut rs384 = Header::new(Algorithm::RS384);
    rs384.kid = Some("rsa-1".into());
    let not_allowed =
        encode(&rs384, &claims("alice"), &EncodingKey::from_rsa_pem(k.rsa_private_pem.as_bytes()).unwrap()).unwrap();

    type Case = (&'static str, String, fn(&AuthnError) -> bool);
    let cases: Vec<Case> = vec![
        ("alg none", none, |e| matches!(e, AuthnError::Malformed)),
        ("HS256 with the RSA public key as secret", hs_with_public_key, |e| matches!(e, AuthnError::UnknownKey(_))),
        ("algorithm outside the allow-list", not_allowed, |e| matches!(e, AuthnError::Algorithm(_))),
        ("bad signature", bad_signature, |e| matches!(e, AuthnError::Invalid(_))),
        ("expired", with(json!({"exp": now() - 3600})), |e| matches!(e, AuthnError::Invalid(_))),
        ("not yet valid", with(json!({"nbf": now() + 3600})), |e| matches!(e, AuthnError::Invalid(_))),
        ("wrong issuer", with(json!({"iss": "https://evil.test"})), |e| matches!(e, AuthnError::UnknownIssuer(_))),
        ("wrong audience", with(json!({"aud": "someone-else"})), |e| matches!(e, AuthnError::Invalid(_))),
        ("no audience", without("aud"), |e| matches!(e, AuthnError::Invalid(_))),
        ("audience null", with(json!({"aud": null})), |e| matches!(e, AuthnError::Invalid(_))),
        ("audience list without ours", with(json!({"aud": ["a", "b"]})), |e| matches!(e, AuthnError::Invalid(_))),
        ("empty user claim", with(json!({"sub": ""})), |e| matches!(e, AuthnError::NoUser(_))),
        ("blank user claim", with(json!({"sub": "  "})), |e| matches!(e, AuthnError::NoUser(_))),
        ("unknown kid", rs256(&k, "rotated-away", &claims("alice")), |e| matches!(e, AuthnError::UnknownKey(_))),
        ("no user claim", with(json!({"sub": null})), |e| matches!(e, AuthnError::NoUser(_))),
        ("malformed", "not.a.jwt".to_owned(), |e| matches!(e, AuthnError::Malformed)),
        ("oversized", "a".repeat(9000), |e| matches!(e, AuthnError::TooLarge)),
    ];
    for (what, token, expected) in &cases {
        let err = authn.verify(token).await.expect_err(what);
        assert!(expected(&err), "{what}: {err:?}");
    }
}

#[tokio::test]
async fn keys_are_found_by_oidc_discovery() {
    let k = keys();
    let jwks = serve_jwks(json!({"keys": [k.rsa_jwk.clone()]})).await;
    // The discovery document lives under the issuer URL; here the test server plays the issuer.
    let issuer = jwks.url.trim_end_matches("/jwks").to_owned();
    let mut cfg = config(&jwks.url, 3600);
    cfg.issuers[0].issuer = issuer.clone();
    cfg.issuers[0].jwks_url = None;
    cfg.issuers[0].discovery = true;
    let authn = Authenticator::new(cfg).await;
    let mut c = claims("dora");
    c["iss"] = json!(issuer);
    assert_eq!(authn.verify(&rs256(&k, "rsa-1", &c)).await.unwrap().user, "dora");
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

    // A discovery document that names another issuer is not believed: its keys are not used.
    *jwks.discovered_issuer.lock().unwrap() = Some("https://elsewhere.example.com".into());
    let mut cfg = config(&jwks.url, 3600);
    cfg.issuers[0].issuer = issuer.clone();
    cfg.issuers[0].jwks_url = None;
    cfg.issuers[0].discovery = true;
    let authn = Authenticator::new(cfg).await;
    assert!(authn.verify(&rs256(&k, "rsa-1", &c)).await.is_err());
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "the keys were never fetched");
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_keys_at_a_limited_rate() {
    let k = keys();
    let jwks = serve_jwks(json!({"keys": []})).await;
    // Refresh at most once an hour: an unknown kid right after start does not refetch.
    let slow = Authenticator::new(config(&jwks.url, 3600)).await;
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        assert!(slow.verify(&rs256(&k, "rsa-1", &claims("a"))).await.is_err());
    }
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "refreshes are rate-limited");

    // With no limit, a key published after start is found on first use.
    let fast = Authenticator::new(config(&jwks.url, 0)).await;
    *jwks.keys.lock().unwrap() = json!({"keys": [k.rsa_jwk.clone()]});
    assert_eq!(fast.verify(&rs256(&k, "rsa-1", &claims("late"))).await.unwrap().user, "late");
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_it_expires_or_a_refresh_withdraws_its_key() {
    let k = keys();
    let jwks = serve_jwks(json!({"keys": [k.rsa_jwk.clone(), k.ec_jwk.clone()]})).await;
    let authn = Authenticator::new(AuthnConfig { leeway_seconds: 0, ..config(&jwks.url, 0) }).await;

    let token = rs256(&k, "rsa-1", &claims("alice"));
    let first = authn.verify(&token).await.unwrap();
    assert!(Arc::ptr_eq(&first, &authn.verify(&token).await.unwrap()), "the second use is answered from memory");

    // A token that expires within a second identifies until then, and not after.
    let mut brief = claims("brief");
    brief["exp"] = json!(now() + 1);
    let brief = rs256(&k, "rsa-1", &brief);
    assert_eq!(authn.verify(&brief).await.unwrap().user, "brief");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(matches!(authn.verify(&brief).await, Err(AuthnError::Invalid(e)) if e.contains("Expired")));

    // The issuer withdraws rsa-1; a token with an unknown kid makes the keys refresh, and the
    // refresh forgets alice's verified token.
    *jwks.keys.lock().unwrap() = json!({"keys": [k.ec_jwk.clone()]});
    assert!(matches!(authn.verify(&rs256(&k, "rsa-2", &claims("x"))).await, Err(AuthnError::UnknownKey(_))));
    assert!(matches!(authn.verify(&token).await, Err(AuthnError::UnknownKey(_))), "alice's key is gone");
}

/// A key withdrawn from the set stops verifying within `keyMaxAgeSeconds`, with no token
/// naming an unknown `kid` to trigger a fetch, and an unchanged set keeps verified tokens.
#[tokio::test]
async fn keys_are_fetched_again_on_a_period() {
    let k = keys();
    let jwks = serve_jwks(json!({"keys": [k.rsa_jwk.clone(), k.ec_jwk.clone()]})).await;
    let authn = Authenticator::new(AuthnConfig { key_max_age_seconds: 1, ..config(&jwks.url, 0) }).await;
    let token = rs256(&k, "rsa-1", &claims("alice"));
    let first = authn.verify(&token).await.unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(jwks.fetches.load(Ordering::SeqCst) >= 2, "fetched at start and after a period");
    let again = authn.verify(&token).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "an unchanged set keeps the verified token");

    *jwks.keys.lock().unwrap() = json!({"keys": [k.ec_jwk.clone()]});
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(matches!(authn.verify(&token).await, Err(AuthnError::UnknownKey(_))), "the withdrawn key still verifies");
}

/// `/metrics` counts the token cache's hits and misses, and the key fetches that failed: a JWKS
/// URL answering 500 and one where nothing listens, at start and on an unknown `kid`.
#[tokio::test]
async fn the_token_cache_and_failed_key_fetches_are_counted_in_metrics() {
    let k = keys();
    let jwks = serve_jwks(json!({"keys": [k.rsa_jwk.clone()]})).await;
    let addr = serve_examples(config(&jwks.url, 3600)).await;
    let metrics = || async move { common::http(addr, "GET", "/metrics", &[], "").await.body };
    let bob = format!("Bearer {}", rs256(&k, "rsa-1", &claims("bob@example.com")));
    let forward = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Host", "api.example.com"),
        ("X-Forwarded-Uri", "/api/v1/policy-definitions?ou=accounting"),
        ("Authorization", bob.as_str()),
    ];
    let before = metrics().await;
    assert_eq!(common::series(&before, "turnstile_token_cache_hits_total"), 0.0);
    assert_eq!(common::series(&before, "turnstile_token_cache_misses_total"), 0.0);
    assert_eq!(call(addr, "/authz/forward", &forward).await.0, 200);
    let once = metrics().await;
    assert_eq!(common::series(&once, "turnstile_token_cache_hits_total"), 0.0, "{once}");
    assert_eq!(common::series(&once, "turnstile_token_cache_misses_total"), 1.0, "{once}");
    assert_eq!(call(addr, "/authz/forward", &forward).await.0, 200);
    let twice = metrics().await;
    assert_eq!(common::series(&twice, "turnstile_token_cache_hits_total"), 1.0, "{twice}");
    assert_eq!(common::series(&twice, "turnstile_token_cache_misses_total"), 1.0, "{twice}");
    assert_eq!(common::series(&twice, "turnstile_jwks_fetch_failures_total"), 0.0, "{twice}");

    // Two issuers whose keys cannot be fetched: one answers 500, at the other nothing listens.
    let failing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let failing_url = format!("http://{}/jwks", failing.local_addr().unwrap());
    let error = axum::Router::new()
        .route("/jwks", axum::routing::get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }));
    tokio::spawn(async move { axum::serve(failing, error).await.unwrap() });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = config(&failing_url, 0);
    let mut unreachable = cfg.issuers[0].clone();
    unreachable.issuer = "https://unreachable.test".into();
    unreachable.jwks_url = Some(format!("http://{closed}/jwks"));
    cfg.issuers.push(unreachable);
    let addr = serve_examples(cfg).await;
    let at_start = common::http(addr, "GET", "/metrics", &[], "").await.body;
    assert_eq!(common::series(&at_start, "turnstile_jwks_fetch_failures_total"), 2.0, "{at_start}");
    // A token for the first issuer finds no key, which fetches its keys again, and fails again.
    assert_eq!(call(addr, "/authz/forward", &forward).await.0, 401);
    let after = common::http(addr, "GET", "/metrics", &[], "").await.body;
    assert_eq!(common::series(&after, "turnstile_jwks_fetch_failures_total"), 3.0, "{after}");
    assert_eq!(common::series(&after, "turnstile_token_cache_misses_total"), 1.0, "a refused token is a miss");
    assert_eq!(common::series(&after, "turnstile_token_cache_hits_total"), 0.0);
}

/// Serves the examples with token authentication as `cfg` says.
async fn serve_examples(cfg: AuthnConfig) -> std::net::SocketAddr {
    let state = AppState::new(Publisher::new(), Authenticator::new(cfg).await);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (snap, report) = Snapshot::build(&files::load(&dir).unwrap().definitions(), jiff::Timestamp::now());
    state.publisher().publish(snap, &report);
    common::serve_all(state).await
}

async fn call(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let r = common::http(addr, "GET", path, headers, "").await;
    (r.status, r.head.to_lowercase())
}

#[tokio::test]
async fn proxy_adapters_decide_the_original_request() {
    let k = keys();
    let jwks = serve_jwks(json!({"keys": [k.rsa_jwk.clone()]})).await;
    let mut cfg = config(&jwks.url, 3600);
    cfg.trusted_headers = false;
    let state = AppState::new(Publisher::new(), Authenticator::new(cfg).await);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (snap, report) = Snapshot::build(&files::load(&dir).unwrap().definitions(), jiff::Timestamp::now());
    state.publisher().publish(snap, &report);
    let addr = common::serve_all(state).await;

    let bob = format!("Bearer {}", rs256(&k, "rsa-1", &claims("bob@example.com")));
    let list = "https://api.example.com/api/v1/policy-definitions";
    let nginx = |method: &'static str, url: &'static str, bearer: Option<String>, ou: &'static str| {
        let bearer = bearer.clone();
        async move {
            let mut h: Vec<(&str, String)> = vec![
                ("X-Original-Method", method.to_owned()),
                ("X-Original-URL", url.to_owned()),
                ("X-Turnstile-OU", ou.to_owned()),
                ("X-Auth-User", "mallory".to_owned()),
            ];
            if let Some(b) = bearer {
                h.push(("Authorization", b));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            call(addr, "/authz/nginx", &h).await
        }
    };
    let (status, head) = nginx("GET", list, Some(bob.clone()), "accounting").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-auth-user: bob@example.com"), "the token's user, never the client's: {head}");
    assert!(head.contains("x-auth-role: read-only") && head.contains("x-auth-ou: accounting"), "{head}");
    let (status, head) =
        nginx("DELETE", "https://api.example.com/api/v1/policy-definitions/p-1", Some(bob.clone()), "accounting").await;
    assert_eq!(status, 403);
    assert!(head.contains("x-auth-reason: no permission set allows `deletepolicydefinition`"), "{head}");
    let (status, _) = nginx("GET", list, Some(bob.clone()), "r-and-d").await;
    assert_eq!(status, 403, "bob's binding is on accounting only");
    // The scheme is case-insensitive (RFC 7235); another scheme is no bearer token.
    let shouted = bob.replacen("Bearer", "BEARER", 1);
    assert_eq!(nginx("GET", list, Some(shouted), "accounting").await.0, 200);
    let basic = bob.replacen("Bearer", "Basic", 1);
    assert_eq!(nginx("GET", list, Some(basic), "accounting").await.0, 401);
    let (status, head) = nginx("GET", list, None, "accounting").await;
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(!head.contains("x-auth-user"), "{head}");

    // X-Original-URI with the Host, when no full URL is sent
    let (status, _) = call(
        addr,
        "/authz/nginx",
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/api/v1/policy-definitions?ou=accounting"),
            ("X-Forwarded-Host", "api.example.com"),
            ("Authorization", &bob),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (status, head) = call(addr, "/authz/nginx", &[("Authorization", &bob)]).await;
    assert_eq!(status, 403);
    assert!(head.contains("x-auth-reason: missing `x-original-method`"), "{head}");

    // Traefik / Caddy
    let forward = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Host", "api.example.com"),
        ("X-Forwarded-Uri", "/api/v1/policy-definitions/p-1?ou=accounting"),
        ("X-Forwarded-Proto", "https"),
        ("Authorization", bob.as_str()),
    ];
    let (status, head) = call(addr, "/authz/forward", &forward).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-auth-operation: readpolicydefinition"), "{head}");

    // Envoy: the call's own method and path
    let (status, head) = call(
        addr,
        "/authz/envoy/api/v1/policy-definitions?ou=accounting",
        &[("Host", "api.example.com"), ("Authorization", &bob), ("X-Turnstile-OU", "accounting")],
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-auth-operation: listpolicydefinitions"), "{head}");
}

#[tokio::test]
async fn trusted_headers_and_anonymous_are_opt_in() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let snap = || Snapshot::build(&files::load(&dir).unwrap().definitions(), jiff::Timestamp::now()).0;
    let start = |cfg: AuthnConfig, snap: Snapshot| async move {
        let state = AppState::new(Publisher::new(), Authenticator::new(cfg).await);
        state.publisher().publish(snap, &Default::default());
        common::serve_all(state).await
    };
    let proxied = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Host", "api.example.com"),
        ("X-Forwarded-Uri", "/api/v1/policy-definitions?ou=accounting"),
        ("X-Auth-Request-User", "bob@example.com"),
        ("X-Auth-Request-Groups", "finance, staff"),
    ];
    let off = start(AuthnConfig::default(), snap()).await;
    assert_eq!(call(off, "/authz/forward", &proxied).await.0, 401, "trusted headers are off by default");
    let on = start(AuthnConfig { trusted_headers: true, ..AuthnConfig::default() }, snap()).await;
    let (status, head) = call(on, "/authz/forward", &proxied).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-auth-groups: finance,staff,system:authenticated"), "{head}");
    let anon = start(AuthnConfig { anonymous: true, ..AuthnConfig::default() }, snap()).await;
    let (status, head) = call(anon, "/authz/forward", &proxied[..3]).await;
    assert_eq!(status, 403, "anonymous is a subject, with no grants here: {head}");
}

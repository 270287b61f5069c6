//! Who is asking (DESIGN §5): a JWT bearer token checked against configured issuers, or
//! (opt-in) oauth2-proxy's trusted headers, or (opt-in) the anonymous subject.
//!
//! A token's issuer is read from its unverified payload only to pick the issuer's keys and
//! rules; the signature, `iss`, `aud`, `exp` and `nbf` are then verified with an algorithm
//! from that issuer's allow-list and a key of that algorithm's family, so an RSA public key
//! can never be used as an HMAC secret and `none` is never accepted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Memory for verified tokens, counted as twice each token's length (the token and its claims).
const TOKEN_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Authentication settings (the `authn` section of the config file).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthnConfig {
    /// Token issuers; a token from any other issuer is refused.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Claim holding the user name.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim holding the groups (an array of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Allowed clock skew for `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Read `X-Auth-Request-User` / `-Groups` from oauth2-proxy when no token is sent.
    #[serde(default)]
    pub trusted_headers: bool,
    /// Treat a request without identity as `system:anonymous` instead of a 401.
    #[serde(default)]
    pub anonymous: bool,
    /// An unknown `kid` refetches an issuer's keys at most this often, in seconds.
    #[serde(default = "default_refresh")]
    pub key_refresh_seconds: u64,
    /// Every issuer's keys are fetched again this often, in seconds, so that a key withdrawn
    /// from a set stops verifying even when no token names an unknown `kid`; 0: never.
    #[serde(default = "default_key_max_age")]
    pub key_max_age_seconds: u64,
    /// A verified token is answered from memory for at most this long (its `exp` may end it
    /// sooner), in seconds; 0 checks every token every time.
    #[serde(default = "default_token_cache")]
    pub token_cache_seconds: u64,
}

impl Default for AuthnConfig {
    fn default() -> Self {
        AuthnConfig {
            issuers: Vec::new(),
            user_claim: default_user_claim(),
            groups_claim: default_groups_claim(),
            leeway_seconds: default_leeway(),
            trusted_headers: false,
            anonymous: false,
            key_refresh_seconds: default_refresh(),
            key_max_age_seconds: default_key_max_age(),
            token_cache_seconds: default_token_cache(),
        }
    }
}

fn default_user_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_refresh() -> u64 {
    10
}
fn default_key_max_age() -> u64 {
    300
}

fn default_token_cache() -> u64 {
    60
}

/// One trusted issuer.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; empty: `aud` is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Allowed signature algorithms (RS256, RS384, RS512, PS256, ES256, ES384, EdDSA, HS256...).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Keys from a JWKS file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Keys from a JWKS URL.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find the JWKS URL by OIDC discovery (`<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub discovery: bool,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256, Algorithm::ES256]
}

/// Why a request has no identity: every one is a 401.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("no credentials")]
    Missing,
    #[error("bearer token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("bearer token is malformed")]
    Malformed,
    #[error("token issuer `{0}` is not trusted")]
    UnknownIssuer(String),
    #[error("token algorithm `{0}` is not allowed for its issuer")]
    Algorithm(String),
    #[error("no key for the token (kid `{0}`)")]
    UnknownKey(String),
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("token has no usable `{0}` claim")]
    NoUser(String),
}

/// An authenticated subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    /// The verified token's claims, for `u(claim)`; `None` without a token.
    pub claims: Option<Map<String, Value>>,
}

struct Key {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Rsa,
    Ec(EllipticCurveKind),
    Ed,
    Hmac,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EllipticCurveKind {
    P256,
    P384,
}

fn family_of(alg: Algorithm) -> Option<Family> {
    use Algorithm::*;
    Some(match alg {
        HS256 | HS384 | HS512 => Family::Hmac,
        ES256 => Family::Ec(EllipticCurveKind::P256),
        ES384 => Family::Ec(EllipticCurveKind::P384),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        EdDSA => Family::Ed,
        _ => return None,
    })
}

fn key_of(jwk: &Jwk) -> Option<Key> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Family::Ec(EllipticCurveKind::P256),
            EllipticCurve::P384 => Family::Ec(EllipticCurveKind::P384),
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
        AlgorithmParameters::OctetKey(_) => Family::Hmac,
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { kid: jwk.common.key_id.clone(), family, key })
}

struct Issuer {
    config: IssuerConfig,
    keys: ArcSwap<Vec<Key>>,
    last_refresh: tokio::sync::Mutex<Fetched>,
}

/// When an issuer's keys were last fetched, and the set as fetched (to tell a change).
#[derive(Default)]
struct Fetched {
    at: Option<Instant>,
    set: Option<String>,
}

/// Checks credentials. Cheap to share.
pub struct Authenticator {
    config: AuthnConfig,
    issuers: Vec<Issuer>,
    http: reqwest::Client,
    /// Tokens that verified, by their exact text: a client sends the same bearer token with
    /// every request, and checking a signature costs far more than a decision
    /// (`cargo bench --bench authn`). An entry lasts until the token's `exp` (with the leeway)
    /// and at most `tokenCacheSeconds`; a refresh of any issuer's keys empties the cache, so a
    /// key withdrawn from a set is not honoured past the refresh that sees it gone.
    verified: quick_cache::sync::Cache<Box<str>, Verified, TokenWeight>,
    /// Lookups in `verified` that found a live token, and those that did not; `/metrics` reads them.
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Key fetches (JWKS file, URL or discovery) that failed, since start.
    key_fetch_failures: AtomicU64,
}

/// What [`Authenticator::counts`] reports, each since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthnCounts {
    /// Bearer tokens answered from the verified-token cache.
    pub cache_hits: u64,
    /// Bearer tokens that were not there (or had expired there) and were checked.
    pub cache_misses: u64,
    /// Fetches of an issuer's keys that failed (the keys there were are kept).
    pub key_fetch_failures: u64,
}

#[derive(Clone)]
struct Verified {
    identity: Arc<Identity>,
    until: Instant,
}

#[derive(Clone)]
struct TokenWeight;

impl quick_cache::Weighter<Box<str>, Verified> for TokenWeight {
    fn weight(&self, token: &Box<str>, _: &Verified) -> u64 {
        2 * token.len() as u64
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Authenticator {
    /// Loads every issuer's keys once; an issuer whose keys cannot be loaded starts with none
    /// (its tokens are refused) and is retried on the next unknown `kid`.
    pub async fn new(config: AuthnConfig) -> Arc<Authenticator> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        let issuers = config
            .issuers
            .iter()
            .map(|c| Issuer {
                config: c.clone(),
                keys: ArcSwap::from_pointee(Vec::new()),
                last_refresh: tokio::sync::Mutex::default(),
            })
            .collect();
        let verified = quick_cache::sync::Cache::with_weighter(4096, TOKEN_CACHE_BYTES, TokenWeight);
        let a = Arc::new(Authenticator {
            config,
            issuers,
            http,
            verified,
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            key_fetch_failures: AtomicU64::new(0),
        });
        for issuer in &a.issuers {
            if let Err(e) = a.refresh(issuer).await {
                tracing::warn!(issuer = %issuer.config.issuer, "cannot load keys: {e}");
            }
        }
        if a.config.key_max_age_seconds > 0 && !a.issuers.is_empty() {
            tokio::spawn(Authenticator::keep_keys_fresh(Arc::downgrade(&a)));
        }
        a
    }

    /// Fetches every issuer's keys again each `keyMaxAgeSeconds`, for as long as the
    /// authenticator lives. A fetch that fails keeps the keys there are (an issuer that cannot be
    /// reached would otherwise lock everyone out) and is logged.
    async fn keep_keys_fresh(authn: std::sync::Weak<Authenticator>) {
        let Some(period) = authn.upgrade().map(|a| Duration::from_secs(a.config.key_max_age_seconds)) else {
            return;
        };
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(authn) = authn.upgrade() else { return };
            for issuer in &authn.issuers {
                if let Err(e) = authn.refresh(issuer).await {
                    tracing::warn!(issuer = %issuer.config.issuer, "cannot refresh keys, keeping the ones there are: {e}");
                }
            }
        }
    }

    pub fn config(&self) -> &AuthnConfig {
        &self.config
    }

    /// The token cache's hits and misses and the failed key fetches, since start.
    pub fn counts(&self) -> AuthnCounts {
        AuthnCounts {
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            key_fetch_failures: self.key_fetch_failures.load(Ordering::Relaxed),
        }
    }

    async fn fetch_jwks(&self, c: &IssuerConfig) -> Result<JwkSet, String> {
        if let Some(path) = &c.jwks_file {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| format!("`{}`: {e}", path.display()))?;
            return serde_json::from_str(&text).map_err(|e| format!("`{}` is not a JWKS: {e}", path.display()));
        }
        let url = match (&c.jwks_url, c.discovery) {
            (Some(u), _) => u.clone(),
            (None, true) => {
                let well_known = format!("{}/.well-known/openid-configuration", c.issuer.trim_end_matches('/'));
                let d: Discovery = self.get_json(&well_known).await?;
                // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was
                // fetched for, or its keys could be anyone's.
                if d.issuer.trim_end_matches('/') != c.issuer.trim_end_matches('/') {
                    return Err(format!("`{well_known}` names issuer `{}`, not `{}`", d.issuer, c.issuer));
                }
                d.jwks_uri
            }
            (None, false) => return Err("no `jwksFile`, `jwksUrl` or `discovery`".into()),
        };
        self.get_json(&url).await
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, String> {
        let resp = self.http.get(url).send().await.map_err(|e| format!("`{url}`: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("`{url}`: status {}", resp.status()));
        }
        resp.json().await.map_err(|e| format!("`{url}`: {e}"))
    }

    /// Fetches an issuer's keys, unless they were fetched less than `keyRefreshSeconds` ago.
    /// A set that changed replaces the keys and forgets every verified token, so that a
    /// withdrawn key is not honoured past the fetch that sees it gone.
    async fn refresh(&self, issuer: &Issuer) -> Result<(), String> {
        let mut last = issuer.last_refresh.lock().await;
        if last.at.is_some_and(|t| t.elapsed() < Duration::from_secs(self.config.key_refresh_seconds)) {
            return Ok(());
        }
        last.at = Some(Instant::now());
        let set = self.fetch_jwks(&issuer.config).await.inspect_err(|_| {
            self.key_fetch_failures.fetch_add(1, Ordering::Relaxed);
        })?;
        let text = serde_json::to_string(&set).ok();
        if text.is_some() && text == last.set {
            return Ok(());
        }
        let keys: Vec<Key> = set.keys.iter().filter_map(key_of).collect();
        tracing::info!(issuer = %issuer.config.issuer, keys = keys.len(), "loaded keys");
        issuer.keys.store(Arc::new(keys));
        self.verified.clear();
        last.set = text;
        Ok(())
    }

    /// Verifies a bearer token, or finds it verified a moment ago.
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthnError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthnError::TooLarge);
        }
        if let Some(v) = self.verified.get(token) {
            if v.until > Instant::now() {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(v.identity);
            }
            self.verified.remove(token);
        }
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let identity = Arc::new(self.check(token).await?);
        if let Some(until) = self.cache_until(&identity) {
            self.verified.insert(token.into(), Verified { identity: identity.clone(), until });
        }
        Ok(identity)
    }

    /// Until when a verified token may be answered from memory: its `exp` with the leeway, and
    /// at most `tokenCacheSeconds` from now.
    fn cache_until(&self, identity: &Identity) -> Option<Instant> {
        let exp = identity.claims.as_ref()?.get("exp")?.as_f64()?;
        let left = exp + self.config.leeway_seconds as f64 - jiff::Timestamp::now().as_duration().as_secs_f64();
        let ttl = Duration::from_secs(self.config.token_cache_seconds);
        (left > 0.0 && !ttl.is_zero()).then(|| Instant::now() + Duration::from_secs_f64(left).min(ttl))
    }

    /// Checks a token's signature and claims against its issuer.
    async fn check(&self, token: &str) -> Result<Identity, AuthnError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthnError::Malformed)?;
        let iss = unverified_issuer(token).ok_or(AuthnError::Malformed)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| AuthnError::UnknownIssuer(iss.clone()))?;
        if !issuer.config.algorithms.contains(&header.alg) {
            return Err(AuthnError::Algorithm(format!("{:?}", header.alg)));
        }
        let family = family_of(header.alg).ok_or_else(|| AuthnError::Algorithm(format!("{:?}", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.config.issuer]);
        if issuer.config.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&issuer.config.audiences);
            // jsonwebtoken checks `aud` only when the token has one: require it (DESIGN §5).
            validation.required_spec_claims.insert("aud".to_owned());
        }
        validation.leeway = self.config.leeway_seconds;
        validation.validate_nbf = true;

        let attempt = |keys: &[Key]| -> Option<Result<Map<String, Value>, AuthnError>> {
            let mut candidates =
                keys.iter().filter(|k| k.family == family && (header.kid.is_none() || k.kid == header.kid)).peekable();
            candidates.peek()?;
            let mut last = AuthnError::Invalid("signature does not verify".into());
            for k in candidates {
                match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &validation) {
                    Ok(data) => return Some(Ok(data.claims)),
                    Err(e) => last = AuthnError::Invalid(e.to_string()),
                }
            }
            Some(Err(last))
        };
        let claims = match attempt(&issuer.keys.load()) {
            Some(r) => r?,
            None => {
                if let Err(e) = self.refresh(issuer).await {
                    tracing::warn!(issuer = %issuer.config.issuer, "cannot refresh keys: {e}");
                }
                match attempt(&issuer.keys.load()) {
                    Some(r) => r?,
                    None => return Err(AuthnError::UnknownKey(header.kid.unwrap_or_default())),
                }
            }
        };
        let user = claims
            .get(&self.config.user_claim)
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| AuthnError::NoUser(self.config.user_claim.clone()))?
            .to_owned();
        let groups = match claims.get(&self.config.groups_claim) {
            Some(Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
            Some(Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Ok(Identity { user, groups, claims: Some(claims) })
    }

    /// The identity of a proxied request: a bearer token if one is sent (and then only the
    /// token), else trusted headers when enabled, else anonymous when enabled.
    pub async fn identify(&self, headers: &axum::http::HeaderMap) -> Result<Arc<Identity>, AuthnError> {
        if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
            let auth = auth.to_str().map_err(|_| AuthnError::Malformed)?;
            // The scheme name is case-insensitive (RFC 7235 §2.1): `BEARER` is `Bearer`.
            let token = match auth.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ => return Err(AuthnError::Malformed),
            };
            return self.verify(token).await;
        }
        if self.config.trusted_headers
            && let Some(user) = headers
                .get(super::names::X_AUTH_REQUEST_USER)
                .and_then(|v| v.to_str().ok())
                .filter(|u| !u.trim().is_empty())
        {
            let groups = headers
                .get(super::names::X_AUTH_REQUEST_GROUPS)
                .and_then(|v| v.to_str().ok())
                .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default();
            return Ok(Arc::new(Identity { user: user.to_owned(), groups, claims: None }));
        }
        if self.config.anonymous {
            return Ok(Arc::new(Identity {
                user: crate::engine::ANONYMOUS_USER.into(),
                groups: vec![crate::engine::UNAUTHENTICATED_GROUP.into()],
                claims: None,
            }));
        }
        Err(AuthnError::Missing)
    }
}

/// The `iss` claim of a token, read without verification to choose the issuer.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

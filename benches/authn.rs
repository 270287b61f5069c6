//! Criterion benchmarks of bearer-token authentication: a token's first use (signature and
//! claims checked) and its later uses (answered from memory), for RS256 and ES256.
//! `cargo bench --bench authn`
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::json;
use turnstile::http::authn::{Authenticator, AuthnConfig, IssuerConfig};

const ISSUER: &str = "https://issuer.bench";

/// Runs a future that completes without waiting (keys are loaded from a file up front).
fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("authentication waited on I/O"),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An authenticator with `cache_seconds` of token memory, and an RS256 and an ES256 token.
fn setup(dir: &std::path::Path, cache_seconds: u64) -> (Arc<Authenticator>, [(&'static str, String); 2]) {
    let mut rng = rand::thread_rng();
    let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let public = rsa.to_public_key();
    let ec = p256::SecretKey::random(&mut rng);
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&ec.public_key(), false);
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())},
    ]});
    let file = dir.join(format!("jwks-{cache_seconds}.json"));
    std::fs::write(&file, jwks.to_string()).unwrap();
    let config = AuthnConfig {
        issuers: vec![IssuerConfig {
            issuer: ISSUER.into(),
            audiences: vec!["turnstile".into()],
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            jwks_file: Some(file),
            jwks_url: None,
            discovery: false,
        }],
        token_cache_seconds: cache_seconds,
        ..AuthnConfig::default()
    };
    let authn = tokio::runtime::Runtime::new().unwrap().block_on(Authenticator::new(config));
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"iss": ISSUER, "aud": "turnstile", "sub": "alice@example.com",
                        "groups": ["finance", "ops"], "iat": now, "exp": now + 3600});
    let sign = |alg, kid: &str, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let rs = sign(
        Algorithm::RS256,
        "rsa",
        &EncodingKey::from_rsa_pem(rsa.to_pkcs1_pem(LineEnding::LF).unwrap().as_bytes()).unwrap(),
    );
    let es = sign(
        Algorithm::ES256,
        "ec",
        &EncodingKey::from_ec_pem(ec.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap(),
    );
    (authn, [("RS256", rs), ("ES256", es)])
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for (cache_seconds, case) in [(0, "checked"), (60, "remembered")] {
        let (authn, tokens) = setup(dir.path(), cache_seconds);
        for (alg, token) in &tokens {
            c.bench_function(&format!("verify {alg} {case}"), |b| {
                b.iter(|| black_box(ready(authn.verify(black_box(token))).unwrap()))
            });
        }
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);

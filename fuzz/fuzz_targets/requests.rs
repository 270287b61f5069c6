//! Request normalisation and routing: arbitrary methods, hosts, paths, headers and bodies
//! against the shipped examples. Deciding never panics; a request with a dot segment or a
//! bad escape is never allowed.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use turnstile::engine::*;

#[derive(Arbitrary, Debug)]
struct Input {
    user: String,
    groups: Vec<String>,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    ou: Option<String>,
}

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let loaded = turnstile::sources::files::load(&dir).expect("the examples load");
        Snapshot::build(&loaded.definitions(), jiff::Timestamp::UNIX_EPOCH).0
    })
}

fuzz_target!(|input: Input| {
    let body = input.body.as_deref().and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok());
    let (host, path) = split_url(&input.url);
    let req = Request {
        subject: Some(Subject { user: &input.user, groups: &input.groups }),
        claims: Claims::Subject { user_claim: "sub" },
        method: &input.method,
        host,
        path,
        headers: &input.headers,
        body: body.as_ref(),
        ou: input.ou.as_deref(),
        now: jiff::Timestamp::UNIX_EPOCH,
    };
    let d = snapshot().decide(&req);
    let raw_path = path.split(['?', '#']).next().unwrap_or("");
    let dotted = raw_path.split('/').any(|s| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    });
    if dotted {
        assert!(!d.allowed(), "a dot segment was allowed: {path}");
    }
    let _ = d.answer();
});

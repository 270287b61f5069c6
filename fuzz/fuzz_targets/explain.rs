//! decide ≡ explain: the explained decision of any request against the shipped examples
//! and a few hostile sets is the fast one, answer for answer.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use turnstile::engine::*;

#[derive(Arbitrary, Debug)]
struct Input {
    user: u8,
    group: u8,
    method: String,
    host: String,
    path: String,
    ou: Option<String>,
}

const USERS: [&str; 6] =
    ["alice@example.com", "bob@example.com", "userA@duplocloud.com", "user1@duplocloud.com", "dev-lead@chistadata.io", "x"];
const GROUPS: [&str; 3] = ["r-and-d-team", "duplocloud-users", "system:unauthenticated"];

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let loaded = turnstile::sources::files::load(&dir).expect("the examples load");
        let mut defs = loaded.definitions();
        let rule = |methods: &str| RuleDef { methods: Some(methods.into()), ..Default::default() };
        defs.permission_sets.push(PermissionSetDef {
            meta: Meta::named("fuzz-methods"),
            allow: vec![rule("P.*|get"), rule(".*")],
            deny: vec![rule("PROPFIND|head"), RuleDef { paths: Some(vec!["/api/*/x".into()]), ..Default::default() }],
            system_wide: true,
            ..Default::default()
        });
        Snapshot::build(&defs, jiff::Timestamp::UNIX_EPOCH).0
    })
}

fuzz_target!(|input: Input| {
    let groups = vec![GROUPS[input.group as usize % GROUPS.len()].to_owned()];
    let req = Request {
        subject: Some(Subject { user: USERS[input.user as usize % USERS.len()], groups: &groups }),
        claims: Claims::Subject { user_claim: "sub" },
        method: &input.method,
        host: &input.host,
        path: &input.path,
        headers: &NoHeaders,
        body: None,
        ou: input.ou.as_deref(),
        now: jiff::Timestamp::UNIX_EPOCH,
    };
    let fast = snapshot().decide(&req).answer();
    let (explained, _) = snapshot().explain(&req);
    assert_eq!(fast, explained.answer());
});

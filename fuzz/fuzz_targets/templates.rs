//! Template and extractor parsing: a catalog with arbitrary templates, access paths and
//! resources compiles or is reported, and then routes arbitrary requests without panicking.
//! A catalog for every host and path, Ready or not, lets no request through that it does
//! not route (the set allows everything, so only the catalog can deny).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use turnstile::engine::*;

#[derive(Arbitrary, Debug)]
struct Input {
    prefix: Option<String>,
    hosts: Option<Vec<String>>,
    ops: Vec<(String, String, Option<String>, Option<String>)>,
    method: String,
    host: String,
    path: String,
}

fuzz_target!(|input: Input| {
    let operations = input
        .ops
        .into_iter()
        .take(8)
        .enumerate()
        .map(|(i, (method, path, access_path, resource))| OperationDef {
            id: format!("op{i}"),
            method,
            path,
            resource_type: Some("t".into()),
            access_path,
            resource,
        })
        .collect();
    let covers_everything = input.hosts.is_none() && input.prefix.as_deref().is_none_or(|p| p.split('/').all(str::is_empty));
    let catalog = ApiCatalogDef {
        meta: Meta::named("c"),
        hosts: input.hosts,
        path_prefix: input.prefix,
        operations,
        ..Default::default()
    };
    let allow_all = PermissionSetDef {
        meta: Meta::named("all"),
        allow: vec![RuleDef::default()],
        system_wide: true,
        ..Default::default()
    };
    let defs = Definitions { api_catalogs: vec![catalog], permission_sets: vec![allow_all], ..Default::default() };
    let (snap, report) = Snapshot::build(&defs, jiff::Timestamp::UNIX_EPOCH);
    let ready = report.get(Kind::ApiCatalog, "c").is_some_and(|s| s.is_ready());
    let groups = Vec::new();
    let req = Request {
        subject: Some(Subject { user: "u", groups: &groups }),
        claims: Claims::Subject { user_claim: "sub" },
        method: &input.method,
        host: &input.host,
        path: &input.path,
        headers: &NoHeaders,
        body: None,
        ou: None,
        now: jiff::Timestamp::UNIX_EPOCH,
    };
    let d = snap.decide(&req);
    if !ready && covers_everything {
        assert!(!d.allowed(), "a broken catalog for every host and path let a request through");
    }
    if ready && covers_everything && d.operation.is_empty() {
        assert!(!d.allowed(), "a catalog for every host and path let an unrouted request through");
    }
});

//! Fail closed: one regression test per class of input that once turned a 403 into a 200
//! (DESIGN §3.1). Each asserts the status and the reason; `Ask::answer` also checks that the
//! explained decision agrees with the fast one.

mod common;

use common::*;
use turnstile::engine::*;

/// A world with one catalogued API on `api.example.com` under `/api`:
/// global ─┬─ prod01 (resource `prod01`)
///         └─ dev01  (resource `dev01`)
fn world() -> Definitions {
    let mut get_secret = op("GetSecretData", "GET", "/tenants/{t}/secrets/{id}", "secret/k8s");
    get_secret.resource = Some("p(t)".into());
    let mut list_jobs = op("ListJobs", "GET", "/tenants/{t}/jobs", "k8s/job");
    list_jobs.resource = Some("p(t)".into());
    let mut get_user = op("GetUser", "GET", "/users/{id}", "iam/user");
    get_user.resource = None;
    let secrets_of_user = op("GetUserSecrets", "GET", "/users/{id}/secrets", "iam/secret");
    let mut webdav = vec![];
    for method in ["PROPFIND", "PURGE"] {
        let mut o = op(&format!("{method}Secret"), method, "/tenants/{t}/secrets/{id}", "secret/k8s");
        o.resource = Some("p(t)".into());
        webdav.push(o);
    }
    let mut ops = vec![get_secret, list_jobs, get_user, secrets_of_user];
    ops.extend(webdav);
    let mut catalog = mk_catalog("api", Some("/api"), ops);
    catalog.hosts = Some(vec!["api.example.com".into()]);
    Definitions {
        organizational_units: vec![mk_ou("prod01", None, &["prod01"]), mk_ou("dev01", None, &["dev01"])],
        permission_sets: vec![
            mk_set("all", vec![rule()], vec![]),
            mk_set(
                "any-method-but-secrets",
                vec![RuleDef { methods: Some(".*".into()), ..rule() }],
                vec![rt("secret/.*")],
            ),
        ],
        roles: vec![mk_role("admin", &["all"])],
        user_bindings: vec![
            mk_binding("alice-admin", vec![user("alice")], Some("admin"), &["global"], &[]),
            mk_binding("mallory-no-secrets", vec![user("mallory")], None, &["global"], &["any-method-but-secrets"]),
        ],
        api_catalogs: vec![catalog],
    }
}

const SECRET: &str = "https://api.example.com/api/tenants/prod01/secrets/s1";
const JOBS: &str = "https://api.example.com/api/tenants/prod01/jobs";

fn expect(s: &Snapshot, rows: &[(&str, Ask, u16, &str)]) {
    for (what, req, status, reason) in rows {
        let a = req.answer(s);
        assert_eq!(a.status, *status, "{what}: {a:?}");
        assert!(a.reason.contains(reason), "{what}: reason `{}` lacks `{reason}`", a.reason);
    }
}

fn snap(defs: &Definitions) -> Snapshot {
    build(defs).0
}

#[test]
fn a_rule_without_methods_matches_every_method_token() {
    let s = snap(&world());
    let deny = "denied by PermissionSet/any-method-but-secrets/deny/0";
    for method in ["GET", "PROPFIND", "PURGE", "propfind", "Purge"] {
        expect(&s, &[(method, ask("mallory", method, SECRET).ou("prod01"), 403, deny)]);
    }
    // uncatalogued requests: a deny by path without `methods` covers every token
    let mut defs = world();
    defs.permission_sets.push(mk_set("no-admin-paths", vec![], vec![paths(&["/admin"])]));
    defs.user_bindings.push(mk_binding("mallory-paths", vec![user("mallory")], None, &["global"], &["no-admin-paths"]));
    let s = snap(&defs);
    for method in ["GET", "PROPFIND", "MKCOL", "X-CUSTOM", "BREW", "M-SEARCH", "purge"] {
        let req = ask("mallory", method, "https://other.example.com/admin/users");
        expect(&s, &[(method, req, 403, "denied by PermissionSet/no-admin-paths/deny/0")]);
        let req = ask("mallory", method, "https://other.example.com/public");
        expect(&s, &[(method, req, 200, "allowed by PermissionSet/any-method-but-secrets/allow/0")]);
    }
    // `allow: [{}]` allows every method too, and a deny without methods still wins.
    let mut defs = world();
    defs.permission_sets.push(mk_set("open", vec![rule()], vec![rt("secret/.*")]));
    defs.user_bindings.push(mk_binding("bob-open", vec![user("bob")], None, &["global"], &["open"]));
    let s = snap(&defs);
    expect(
        &s,
        &[
            ("PROPFIND on a job", ask("bob", "PROPFIND", JOBS), 403, "routes no operation"),
            ("PROPFIND on a secret", ask("bob", "PROPFIND", SECRET), 403, "denied by PermissionSet/open/deny/0"),
            ("GET on a job", ask("bob", "GET", JOBS), 200, "allowed by PermissionSet/open/allow/0"),
            ("PURGE elsewhere", ask("bob", "PURGE", "https://other.example.com/x"), 200, "open/allow/0"),
        ],
    );
}

#[test]
fn head_is_covered_by_rules_on_get_and_methods_ignore_case() {
    let mut defs = world();
    defs.permission_sets.push(mk_set("no-get", vec![], vec![RuleDef { methods: Some("GET".into()), ..rule() }]));
    defs.permission_sets.push(mk_set("no-get-lower", vec![], vec![RuleDef { methods: Some("get".into()), ..rule() }]));
    defs.permission_sets.push(mk_set("read-lower", vec![RuleDef { methods: Some("get".into()), ..rule() }], vec![]));
    defs.user_bindings.extend([
        mk_binding("carol", vec![user("carol")], Some("admin"), &["global"], &["no-get"]),
        mk_binding("dave", vec![user("dave")], Some("admin"), &["global"], &["no-get-lower"]),
        mk_binding("erin", vec![user("erin")], None, &["global"], &["read-lower"]),
    ]);
    let s = snap(&defs);
    expect(
        &s,
        &[
            ("HEAD under a GET deny", ask("carol", "HEAD", JOBS), 403, "denied by PermissionSet/no-get/deny/0"),
            ("head under a GET deny", ask("carol", "head", JOBS), 403, "no-get/deny/0"),
            ("GET under a `get` deny", ask("dave", "GET", JOBS), 403, "no-get-lower/deny/0"),
            ("HEAD under a `get` deny", ask("dave", "HEAD", JOBS), 403, "no-get-lower/deny/0"),
            ("POST is not GET", ask("carol", "POST", "https://x.example.com/y"), 200, "all/allow/0"),
            ("a `get` allow allows GET", ask("erin", "GET", JOBS), 200, "read-lower/allow/0"),
            ("and HEAD", ask("erin", "HEAD", JOBS), 200, "read-lower/allow/0"),
        ],
    );
}

#[test]
fn a_regex_cannot_escape_its_anchors() {
    let mut defs = world();
    defs.permission_sets.push(mk_set("get-user", vec![api("GetUser)|(ListUsers")], vec![]));
    defs.user_bindings.push(mk_binding("frank", vec![user("frank")], None, &["global"], &["get-user"]));
    let (s, report) = build(&defs);
    let err = report.get(Kind::PermissionSet, "get-user").unwrap().error.clone().unwrap();
    assert_eq!(err.reason, Reason::InvalidRegex);
    assert!(err.message.contains("invalid regex `GetUser)|(ListUsers`"), "{}", err.message);
    expect(
        &s,
        &[(
            "GetUserSecrets through an unbalanced pattern",
            ask("frank", "GET", "https://api.example.com/api/users/u1/secrets"),
            403,
            "user binding `frank` applies here but is not ready",
        )],
    );
}

/// A binding that only takes access away from mallory in `prod01`.
fn deny_only(set: &str) -> UserBindingDef {
    mk_binding("mallory-deny", vec![user("mallory")], None, &["prod01"], &[set])
}

#[test]
fn broken_links_deny_where_they_apply() {
    type Breaker = Box<dyn Fn(&mut Definitions)>;
    let cases: Vec<(&str, Breaker, &str)> = vec![
        (
            "invalid regex in a deny set",
            Box::new(|d| {
                d.permission_sets.push(mk_set("deny-jobs", vec![], vec![rt("k8s/job(")]));
                d.user_bindings.push(deny_only("deny-jobs"));
            }),
            "user binding `mallory-deny` applies here but is not ready (permission set `deny-jobs` is missing",
        ),
        (
            "empty paths in a deny set",
            Box::new(|d| {
                d.permission_sets.push(mk_set("deny-jobs", vec![], vec![paths(&[])]));
                d.user_bindings.push(deny_only("deny-jobs"));
            }),
            "permission set `deny-jobs` is missing or not ready",
        ),
        (
            "a misspelt set name",
            Box::new(|d| d.user_bindings.push(deny_only("deny-jbos"))),
            "permission set `deny-jbos` is missing or not ready",
        ),
        (
            "a duplicated deny set",
            Box::new(|d| {
                d.permission_sets.push(mk_set("deny-jobs", vec![], vec![rt("k8s/job")]));
                d.permission_sets.push(mk_set("deny-jobs", vec![], vec![rt("k8s/job")]));
                d.user_bindings.push(deny_only("deny-jobs"));
            }),
            "permission set `deny-jobs` is missing or not ready",
        ),
        (
            "a role naming a broken set",
            Box::new(|d| {
                d.permission_sets.push(mk_set("deny-jobs", vec![], vec![rt("(")]));
                d.roles.push(mk_role("restricted", &["all", "deny-jobs"]));
                d.user_bindings.push(mk_binding(
                    "mallory-deny",
                    vec![user("mallory")],
                    Some("restricted"),
                    &["prod01"],
                    &[],
                ));
            }),
            "role `restricted` is missing or not ready",
        ),
        (
            "a deny set whose source could not read it",
            Box::new(|d| {
                let mut set = mk_set("deny-jobs", vec![], vec![]);
                set.meta.invalid = Some("unknown field `spec.denny`".into());
                d.permission_sets.push(set);
                d.user_bindings.push(deny_only("deny-jobs"));
            }),
            "permission set `deny-jobs` is missing or not ready",
        ),
        (
            "a binding with an unreadable field",
            Box::new(|d| {
                let mut b = mk_binding("mallory-deny", vec![user("mallory")], None, &["prod01"], &[]);
                b.meta.invalid = Some("unknown field `spec.expiresat`".into());
                d.user_bindings.push(b);
            }),
            "unknown field `spec.expiresat`",
        ),
        (
            "a duplicated binding",
            Box::new(|d| {
                d.permission_sets.push(mk_set("deny-jobs", vec![], vec![rt("k8s/job")]));
                d.user_bindings.push(deny_only("deny-jobs"));
                d.user_bindings.push(deny_only("deny-jobs"));
            }),
            "2 objects of kind UserBinding are named `mallory-deny`",
        ),
        (
            "a service-account subject without namespace",
            Box::new(|d| {
                d.permission_sets.push(mk_set("deny-jobs", vec![], vec![rt("k8s/job")]));
                let sa = SubjectDef { kind: SubjectKind::ServiceAccount, name: "ci".into(), namespace: None };
                d.user_bindings.push(mk_binding(
                    "mallory-deny",
                    vec![user("mallory"), sa],
                    None,
                    &["prod01"],
                    &["deny-jobs"],
                ));
            }),
            "has no `namespace`",
        ),
    ];
    for (what, break_it, reason) in cases {
        let mut defs = world();
        break_it(&mut defs);
        let s = snap(&defs);
        expect(&s, &[(what, ask("mallory", "GET", JOBS).ou("prod01"), 403, reason)]);
        // where the broken binding does not apply, mallory keeps her access
        let dev = "https://api.example.com/api/tenants/dev01/jobs";
        expect(&s, &[(what, ask("mallory", "GET", dev).ou("dev01"), 200, "any-method-but-secrets/allow/0")]);
    }
}

#[test]
fn a_broken_system_wide_set_denies_in_its_scope() {
    for (what, scope, broken) in [
        ("invalid regex", Some(vec!["prod01".to_owned()]), mk_set("deny-all-jobs", vec![], vec![rt("[")])),
        ("duplicated", Some(vec!["prod01".to_owned()]), mk_set("deny-all-jobs", vec![], vec![rt("k8s/job")])),
        ("unreadable", None, mk_set("deny-all-jobs", vec![], vec![rt("k8s/job")])),
    ] {
        let mut defs = world();
        let mut set = broken;
        set.system_wide = true;
        set.scope = scope.clone();
        match what {
            "duplicated" => defs.permission_sets.extend([set.clone(), set]),
            "unreadable" => {
                set.meta.invalid = Some("unknown field `spec.scope.organisationalUnits`".into());
                defs.permission_sets.push(set);
            }
            _ => defs.permission_sets.push(set),
        }
        let s = snap(&defs);
        let reason = "system-wide permission set `deny-all-jobs` is not ready";
        expect(&s, &[(what, ask("alice", "GET", JOBS).ou("prod01"), 403, reason)]);
        let dev = ask("alice", "GET", "https://api.example.com/api/tenants/dev01/jobs").ou("dev01");
        match scope {
            Some(_) => expect(&s, &[(what, dev, 200, "all/allow/0")]),
            None => expect(&s, &[(what, dev, 403, reason)]),
        }
    }
}

#[test]
fn a_duplicated_catalog_fails_closed_in_its_hosts_and_prefix() {
    let mut defs = world();
    let copy = defs.api_catalogs[0].clone();
    defs.api_catalogs.push(copy);
    let (s, report) = build(&defs);
    assert_eq!(report.get(Kind::ApiCatalog, "api").unwrap().error.as_ref().unwrap().reason, Reason::DuplicateName);
    expect(
        &s,
        &[
            (
                "a catalogued operation",
                ask("mallory", "GET", SECRET).ou("prod01"),
                403,
                "api catalog `api` covers this",
            ),
            ("elsewhere", ask("mallory", "GET", "https://other.example.com/api/x"), 200, ""),
        ],
    );
}

#[test]
fn a_duplicated_ou_puts_its_resources_in_an_unknown_ou() {
    let mut defs = world();
    defs.organizational_units.push(mk_ou("prod01", None, &["prod01"]));
    let s = snap(&defs);
    expect(
        &s,
        &[
            (
                "context global",
                ask("alice", "GET", JOBS),
                403,
                "resource `prod01` belongs to an organizational unit that is not ready",
            ),
            ("context prod01", ask("alice", "GET", JOBS).ou("prod01"), 403, "`prod01` is unknown or not ready"),
        ],
    );
}

#[test]
fn a_contested_resource_belongs_to_neither_ou() {
    let mut defs = world();
    defs.organizational_units.push(mk_ou("aaa-new", None, &["prod01"]));
    defs.user_bindings.push(mk_binding("eve-new", vec![user("eve")], Some("admin"), &["aaa-new"], &[]));
    let s = snap(&defs);
    let contested = "resource `prod01` is listed by more than one organizational unit";
    expect(
        &s,
        &[
            ("in the new OU", ask("eve", "GET", JOBS).ou("aaa-new"), 403, contested),
            ("in the old OU", ask("alice", "GET", JOBS).ou("prod01"), 403, contested),
        ],
    );
}

#[test]
fn unrouted_variants_inside_a_catalog_are_denied() {
    let s = snap(&world());
    for path in [
        "/api/tenants/prod01/jobs;x=1",
        "/API/tenants/prod01/jobs",
        "/api/tenants/prod01/jobs.json",
        "/api/tenants/prod01/jobs%20",
        "/api/Tenants/prod01/jobs",
    ] {
        let url = format!("https://api.example.com{path}");
        expect(&s, &[(path, ask("mallory", "GET", &url), 403, "api catalog `api` covers this host and path")]);
    }
    // `unmatched: Uncatalogued` decides them as uncatalogued requests instead
    let mut defs = world();
    defs.api_catalogs[0].unmatched = Unmatched::Uncatalogued;
    let s = snap(&defs);
    expect(&s, &[("uncatalogued", ask("mallory", "GET", "https://api.example.com/api/x.json"), 200, "")]);
}

#[test]
fn a_resource_id_that_nearly_matches_a_listed_one_is_denied() {
    let mut defs = world();
    let mut by_query = op("Tenant", "GET", "/tenant", "t");
    by_query.resource = Some("q(t)".into());
    defs.api_catalogs[0].operations.push(by_query);
    let s = snap(&defs);
    for id in ["PROD01", "prod01.", "Prod01", "prod01%20"] {
        let url = format!("https://api.example.com/api/tenant?t={id}");
        expect(&s, &[(id, ask("mallory", "GET", &url), 403, "is listed by no organizational unit, but `prod01` is")]);
    }
    expect(
        &s,
        &[("exact", ask("mallory", "GET", "https://api.example.com/api/tenant?t=prod01").ou("prod01"), 200, "")],
    );
}

#[test]
fn hosts_are_normalized_and_invalid_ones_refused() {
    let mut defs = world();
    defs.permission_sets.push(mk_set("no-jobs", vec![], vec![api("ListJobs")]));
    defs.user_bindings.push(mk_binding("mallory-no-jobs", vec![user("mallory")], None, &["global"], &["no-jobs"]));
    let s = snap(&defs);
    for host in ["api.example.com.", "API.EXAMPLE.COM", "api.example.com:443", "api.example.com.:8443"] {
        let url = format!("https://{host}/api/tenants/prod01/jobs");
        expect(&s, &[(host, ask("mallory", "GET", &url), 403, "denied by PermissionSet/no-jobs/deny/0")]);
    }
    for host in ["api.example.com:80:80", "api example.com", "api.example.com.."] {
        let url = format!("https://{host}/api/tenants/prod01/jobs");
        expect(&s, &[(host, ask("mallory", "GET", &url), 400, "not a valid host")]);
    }
}

#[test]
fn anonymous_subjects_get_no_system_wide_set_and_are_not_authenticated() {
    let mut defs = world();
    let mut everyone = mk_set("everyone", vec![rule()], vec![]);
    everyone.system_wide = true;
    defs.permission_sets.push(everyone);
    defs.permission_sets.push(mk_set("read", vec![RuleDef { methods: Some("GET".into()), ..rule() }], vec![]));
    defs.user_bindings.push(mk_binding("authn", vec![group("system:authenticated")], None, &["global"], &["all"]));
    defs.user_bindings.push(mk_binding("anon", vec![group("system:unauthenticated")], None, &["global"], &["read"]));
    let s = snap(&defs);
    let anon = || ask("system:anonymous", "POST", "https://other.example.com/x").group("system:unauthenticated");
    let a = anon().answer(&s);
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.groups, ["system:unauthenticated"]);
    expect(
        &s,
        &[(
            "anonymous may read",
            ask("system:anonymous", "GET", "https://other.example.com/x").group("system:unauthenticated"),
            200,
            "read/allow/0",
        )],
    );
    expect(&s, &[("a user gets the system-wide set", ask("zed", "POST", "https://other.example.com/x"), 200, "")]);
}

#[test]
fn an_empty_user_is_no_identity() {
    let s = snap(&world());
    for user in ["", " "] {
        let a = ask(user, "GET", "https://other.example.com/x").answer(&s);
        assert_eq!((a.status, a.reason.as_str(), a.user.as_deref()), (401, "no valid identity", None), "{user:?}");
    }
}

/// The same world written as manifests, with one line changed: what file mode loads.
fn from_yaml(extra: &str) -> (Snapshot, turnstile::sources::files::Loaded) {
    let base = r#"
apiVersion: turnstile.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: prod01}
spec: {resources: [prod01]}
---
apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {name: all}
spec: {allow: [{}]}
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: mallory-all}
spec:
  subjects: [{kind: User, name: mallory}]
  organizationalUnits: [global]
  permissionSets: [all]
"#;
    let mut loaded = turnstile::sources::files::Loaded::default();
    let text = format!("{base}---\n{extra}");
    turnstile::sources::files::load_str(std::path::Path::new("world.yaml"), &text, &mut loaded);
    (build(&loaded.definitions()).0, loaded)
}

#[test]
fn a_misspelt_field_is_an_error_never_a_default() {
    let deny_jobs = |rule: &str| {
        format!(
            "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {{name: no-jobs}}\n\
             spec: {{systemWide: true, {rule}}}\n"
        )
    };
    let jobs = "https://other.example.com/jobs";
    // `denny:` would have dropped the deny; the set is InvalidSpec, and a broken system-wide
    // set denies everywhere.
    let (s, loaded) = from_yaml(&deny_jobs("denny: [{}]"));
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    expect(&s, &[("denny", ask("mallory", "GET", jobs), 403, "system-wide permission set `no-jobs` is not ready")]);
    let (s, _) = from_yaml(&deny_jobs("deny: [{}]"));
    expect(&s, &[("spelt right", ask("mallory", "GET", jobs), 403, "denied by PermissionSet/no-jobs/deny/0")]);

    // `apiname:` in an allow rule would have matched any operation: the set grants nothing.
    let (s, _) = from_yaml(
        "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: get-user}\n\
         spec: {allow: [{apiname: GetUser}]}\n---\n\
         apiVersion: turnstile.dev/v1alpha1\nkind: UserBinding\nmetadata: {name: eve}\n\
         spec: {subjects: [{kind: User, name: eve}], organizationalUnits: [global], permissionSets: [get-user]}\n",
    );
    expect(&s, &[("apiname", ask("eve", "GET", jobs), 403, "permission set `get-user` is missing or not ready")]);

    // `expiresat:` would have meant the binding never expires: it denies until fixed.
    let (s, _) = from_yaml(
        "apiVersion: turnstile.dev/v1alpha1\nkind: UserBinding\nmetadata: {name: temp}\n\
         spec: {subjects: [{kind: User, name: mallory}], organizationalUnits: [global], permissionSets: [all],\n\
         expiresat: \"2020-01-01T00:00:00Z\"}\n",
    );
    expect(&s, &[("expiresat", ask("mallory", "GET", jobs), 403, "unknown field `spec.expiresat`")]);
}

#[test]
fn a_misspelt_api_version_is_a_load_problem_not_a_skipped_document() {
    let (_, loaded) = from_yaml(
        "apiVersion: turnstile.dev.io/v1alpha1\nkind: PermissionSet\nmetadata: {name: no-jobs}\n\
         spec: {systemWide: true, deny: [{}]}\n",
    );
    assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.notes);
    assert!(loaded.problems[0].to_string().contains("turnstile.dev/v1alpha1"), "{}", loaded.problems[0]);
}

#[test]
fn dot_segments_with_path_parameters_are_refused_everywhere() {
    let s = snap(&world());
    for path in ["/public/..;/admin", "/public/.;x=1/admin", "/public/%2e%2e;/admin", "/a/%2E%2E/admin"] {
        let url = format!("https://other.example.com{path}");
        expect(&s, &[(path, ask("alice", "GET", &url), 403, "path has a `.` or `..` segment")]);
    }
}

#[test]
fn a_deny_on_a_raw_path_also_covers_its_variants() {
    let mut defs = world();
    defs.permission_sets.push(mk_set("no-admin", vec![], vec![paths(&["/admin/*/keys"])]));
    defs.user_bindings.push(mk_binding("alice-no-admin", vec![user("alice")], None, &["global"], &["no-admin"]));
    defs.permission_sets.push(mk_set("admin-keys", vec![paths(&["/admin/*/keys"])], vec![]));
    defs.user_bindings.push(mk_binding("zed-admin", vec![user("zed")], None, &["global"], &["admin-keys"]));
    let s = snap(&defs);
    for path in
        ["/admin/u1/keys", "/Admin/u1/keys", "/admin;jsessionid=1/u1/keys", "/admin/u1/KEYS/k1", "/admin%20/u1/keys"]
    {
        let url = format!("https://other.example.com{path}");
        expect(&s, &[(path, ask("alice", "GET", &url), 403, "denied by PermissionSet/no-admin/deny/0")]);
    }
    // an allow on the same path is exact: a variant gains nothing
    expect(&s, &[("exact", ask("zed", "GET", "https://other.example.com/admin/u1/keys"), 200, "admin-keys/allow/0")]);
    expect(
        &s,
        &[("variant", ask("zed", "GET", "https://other.example.com/Admin/u1/keys"), 403, "no permission set allows")],
    );
}

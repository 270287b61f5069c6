//! Decision tables: one per numbered step of DESIGN §3, and one per condition reason of §2.

mod common;

use common::*;
use serde_json::json;
use turnstile::engine::*;

/// global ─┬─ accounting ── payroll
///         └─ r-and-d
fn world() -> Definitions {
    let mut ws = op("RunQuery", "POST", "/ws/{ws}/query", "db/cluster");
    ws.access_path = Some("/workspaces/p(ws)/query".into());
    let mut by_header = op("TenantInfo", "GET", "/tenant", "db/tenant");
    by_header.access_path = Some("/tenants/h(x-tenant)".into());
    let mut by_query = op("Search", "GET", "/search", "db/search");
    by_query.access_path = Some("/search/q(scope)".into());
    let mut by_body = op("CreateCluster", "POST", "/clusters", "db/cluster");
    by_body.access_path = Some("/workspaces/j(workspace)/clusters/create".into());
    let mut by_claim = op("Me", "GET", "/me", "db/user");
    by_claim.access_path = Some("/users/u(sub)".into());
    let mut things = op("ListThings", "GET", "/accounts/{acct}/things", "aws/account");
    things.resource = Some("p(acct)".into());
    let mut delete = op("DeleteThing", "DELETE", "/accounts/{acct}/things/{id}", "aws/account");
    delete.resource = Some("p(acct)".into());
    Definitions {
        organizational_units: vec![
            mk_ou("accounting", None, &["aws-account-1"]),
            mk_ou("payroll", Some("accounting"), &["payroll-db"]),
            mk_ou("r-and-d", None, &["aws-account-2"]),
        ],
        permission_sets: vec![
            mk_set("all", vec![rule()], vec![]),
            mk_set("read", vec![RuleDef { methods: Some("GET|HEAD".into()), ..rule() }], vec![]),
            mk_set("no-jobs", vec![], vec![rt("k8s/job")]),
            mk_set("no-delete", vec![], vec![api("Delete.*")]),
            mk_set("query-any", vec![paths(&["/workspaces/*/query"])], vec![]),
        ],
        roles: vec![mk_role("admin", &["all"]), mk_role("reader", &["read"])],
        user_bindings: vec![
            mk_binding("alice-accounting", vec![user("alice")], Some("admin"), &["accounting"], &[]),
            mk_binding("bob-payroll", vec![user("bob")], Some("reader"), &["payroll"], &[]),
            mk_binding("finance-read", vec![group("finance")], Some("reader"), &["accounting"], &[]),
            mk_binding("carol-no-delete", vec![user("carol")], Some("admin"), &["global"], &["no-delete"]),
            mk_binding("dave-queries", vec![user("dave")], None, &["global"], &["query-any"]),
            mk_binding("erin-all", vec![user("erin")], Some("admin"), &["global"], &[]),
        ],
        api_catalogs: vec![mk_catalog(
            "api",
            Some("/api"),
            vec![things, delete, op("ListJobs", "GET", "/jobs", "k8s/job"), ws, by_header, by_query, by_body, by_claim],
        )],
    }
}

fn snap() -> Snapshot {
    let (s, report) = build(&world());
    assert!(report.is_clean(), "{:?}", report.errors().collect::<Vec<_>>());
    s
}

/// (what, request, expected status, expected reason fragment)
fn table(s: &Snapshot, rows: &[(&str, Ask, u16, &str)]) {
    for (what, req, status, reason) in rows {
        let a = req.answer(s);
        assert_eq!(a.status, *status, "{what}: {a:?}");
        assert!(a.reason.contains(reason), "{what}: reason `{}` lacks `{reason}`", a.reason);
    }
}

#[test]
fn step1_no_identity_is_401() {
    let s = snap();
    table(&s, &[("anonymous", ask("x", "GET", "/api/jobs").anonymous(), 401, "no valid identity")]);
}

#[test]
fn step2_operation_resolution_and_extractors() {
    let s = snap();
    let a = ask("erin", "GET", "https://any.host/api/jobs").answer(&s);
    assert_eq!((a.status, a.operation.as_str()), (200, "ListJobs"));
    let a = ask("erin", "GET", "/somewhere/else").answer(&s);
    assert_eq!((a.status, a.operation.as_str()), (200, ""), "uncatalogued requests have no operation");
    table(
        &s,
        &[
            ("path param", ask("dave", "POST", "/api/ws/id-1/query"), 200, "query-any/allow/0"),
            ("header", ask("dave", "GET", "/api/tenant"), 403, "extractor `h(x-tenant)`"),
            ("header present", ask("erin", "GET", "/api/tenant").header("X-Tenant", "t1"), 200, "allowed"),
            ("header with slash", ask("erin", "GET", "/api/tenant").header("x-tenant", "a/b"), 403, "h(x-tenant)"),
            ("query", ask("erin", "GET", "/api/search"), 403, "extractor `q(scope)`"),
            ("query present", ask("erin", "GET", "/api/search?scope=x&scope=y"), 200, "allowed"),
            ("query empty", ask("erin", "GET", "/api/search?scope="), 403, "q(scope)"),
            ("body missing", ask("erin", "POST", "/api/clusters"), 403, "extractor `j(workspace)`"),
            ("body null", ask("erin", "POST", "/api/clusters").body(json!({"workspace": null})), 403, "j(workspace)"),
            ("body object", ask("erin", "POST", "/api/clusters").body(json!({"workspace": {}})), 403, "j(workspace)"),
            ("body number", ask("erin", "POST", "/api/clusters").body(json!({"workspace": 12})), 200, "allowed"),
            ("claim", ask("erin", "GET", "/api/me"), 200, "allowed"),
            ("dot segment", ask("erin", "GET", "/api/../jobs"), 403, "`.` or `..`"),
            ("bad escape", ask("erin", "GET", "/api/%zz"), 403, "percent-escape"),
            ("encoded slash", ask("erin", "GET", "/api/a%2Fb"), 403, "encoded `/`"),
        ],
    );
}

#[test]
fn step2_access_paths_get_extracted_values() {
    let s = snap();
    // dave may query any workspace through the wildcard grant, whatever the id.
    for ws in ["id-1", "id-12", "x%20y"] {
        let a = ask("dave", "POST", &format!("/api/ws/{ws}/query")).answer(&s);
        assert!(a.allowed, "{ws}: {a:?}");
    }
    let a = ask("dave", "GET", "/api/jobs").answer(&s);
    assert_eq!(a.status, 403, "the grant covers query paths only");
}

#[test]
fn step2_broken_catalog_fails_closed() {
    let mut defs = world();
    let mut bad = op("Broken", "GET", "/x/{id}", "k8s/x");
    bad.access_path = Some("/p(nope)".into());
    defs.api_catalogs.push(mk_catalog("broken", Some("/broken"), vec![bad]));
    let (s, report) = build(&defs);
    assert_eq!(report.get(Kind::ApiCatalog, "broken").unwrap().error.as_ref().unwrap().reason, Reason::InvalidTemplate);
    table(
        &s,
        &[
            ("inside the broken catalog", ask("erin", "GET", "/broken/x/1"), 403, "api catalog `broken`"),
            ("elsewhere", ask("erin", "GET", "/api/jobs"), 200, "allowed"),
        ],
    );
}

#[test]
fn step3_ou_resolution() {
    let s = snap();
    table(
        &s,
        &[
            ("unknown context", ask("erin", "GET", "/api/jobs").ou("nowhere"), 403, "`nowhere` is unknown"),
            (
                "resource below context",
                ask("alice", "GET", "/api/accounts/aws-account-1/things").ou("accounting"),
                200,
                "",
            ),
            ("resource from global context", ask("alice", "GET", "/api/accounts/payroll-db/things"), 200, ""),
            (
                "resource outside context",
                ask("erin", "GET", "/api/accounts/aws-account-2/things").ou("accounting"),
                403,
                "outside the context `accounting`",
            ),
            ("header context", ask("erin", "GET", "/api/jobs").header("X-Turnstile-OU", "nowhere"), 403, "nowhere"),
            ("query context", ask("erin", "GET", "/api/jobs?ou=nowhere"), 403, "nowhere"),
            (
                "resource in no OU belongs to global",
                ask("alice", "GET", "/api/accounts/unlisted/things").ou("accounting"),
                403,
                "in organizational unit `global`",
            ),
        ],
    );
    // the /v1/check field beats the header, which beats the query parameter
    let a = ask("erin", "GET", "/api/jobs?ou=r-and-d").header("x-turnstile-ou", "accounting").ou("payroll").answer(&s);
    assert_eq!(a.ou.as_deref(), Some("payroll"));
    let a = ask("erin", "GET", "/api/jobs?ou=r-and-d").header("x-turnstile-ou", "accounting").answer(&s);
    assert_eq!(a.ou.as_deref(), Some("accounting"));
    let a = ask("erin", "GET", "/api/jobs?ou=r-and-d").answer(&s);
    assert_eq!(a.ou.as_deref(), Some("r-and-d"));
    // the effective OU is the resource's
    let a = ask("alice", "GET", "/api/accounts/payroll-db/things").answer(&s);
    assert_eq!(a.ou.as_deref(), Some("payroll"));
}

#[test]
fn step3_resource_of_an_unready_ou_is_denied() {
    let mut defs = world();
    defs.organizational_units.push(mk_ou("ghost", Some("missing"), &["aws-account-1"]));
    let (s, _) = build(&defs);
    table(
        &s,
        &[(
            "resource claimed by a broken OU",
            ask("erin", "GET", "/api/accounts/aws-account-1/things"),
            403,
            "not ready",
        )],
    );
}

#[test]
fn step4_ou_access_covers_descendants_never_siblings_or_ancestors() {
    let s = snap();
    table(
        &s,
        &[
            ("own OU", ask("alice", "DELETE", "/x").ou("accounting"), 200, "all/allow/0"),
            ("descendant", ask("alice", "DELETE", "/x").ou("payroll"), 200, ""),
            ("sibling", ask("alice", "DELETE", "/x").ou("r-and-d"), 403, "no permission set allows"),
            ("ancestor", ask("alice", "DELETE", "/x"), 403, "no permission set allows"),
            ("bob in payroll", ask("bob", "GET", "/x").ou("payroll"), 200, ""),
            ("bob above payroll", ask("bob", "GET", "/x").ou("accounting"), 403, ""),
        ],
    );
    let a = ask("alice", "DELETE", "/x").ou("payroll").answer(&s);
    assert_eq!(a.roles, vec!["admin".to_owned()]);
    assert_eq!(a.rule.as_deref(), Some("PermissionSet/all/allow/0"));
}

#[test]
fn step4_groups_and_implied_groups() {
    let mut defs = world();
    defs.user_bindings.push(mk_binding(
        "everyone-reads",
        vec![group("system:authenticated")],
        Some("reader"),
        &["r-and-d"],
        &[],
    ));
    defs.user_bindings.push(mk_binding(
        "ci",
        vec![SubjectDef { kind: SubjectKind::ServiceAccount, name: "ci".into(), namespace: Some("tools".into()) }],
        Some("admin"),
        &["r-and-d"],
        &[],
    ));
    defs.user_bindings.push(mk_binding(
        "tools-sas",
        vec![group("system:serviceaccounts:tools")],
        Some("admin"),
        &["payroll"],
        &[],
    ));
    let (s, report) = build(&defs);
    assert!(report.is_clean());
    table(
        &s,
        &[
            ("group binding", ask("zed", "GET", "/x").group("finance").ou("payroll"), 200, "read/allow/0"),
            ("group binding, write", ask("zed", "POST", "/x").group("finance").ou("payroll"), 403, ""),
            ("without the group", ask("zed", "GET", "/x").ou("payroll"), 403, ""),
            ("system:authenticated", ask("zed", "GET", "/x").ou("r-and-d"), 200, ""),
            ("service account user", ask("system:serviceaccount:tools:ci", "POST", "/x").ou("r-and-d"), 200, ""),
            (
                "service account namespace group",
                ask("system:serviceaccount:tools:other", "POST", "/x").ou("payroll"),
                200,
                "",
            ),
            ("other namespace", ask("system:serviceaccount:prod:ci", "POST", "/x").ou("payroll"), 403, ""),
        ],
    );
    let a = ask("system:serviceaccount:tools:ci", "GET", "/x").answer(&s);
    assert_eq!(a.groups, vec!["system:authenticated", "system:serviceaccounts", "system:serviceaccounts:tools"]);
}

#[test]
fn step4_system_wide_sets_and_scopes() {
    let mut defs = world();
    let mut compat = mk_set("compat", vec![rule()], vec![]);
    compat.system_wide = true;
    let mut prod_only = mk_set("deny-prod-jobs", vec![], vec![rt("k8s/job")]);
    prod_only.system_wide = true;
    prod_only.scope = Some(vec!["accounting".into()]);
    defs.permission_sets.extend([compat, prod_only]);
    let (s, _) = build(&defs);
    table(
        &s,
        &[
            ("system-wide allow, no binding", ask("nobody", "DELETE", "/x"), 200, "compat/allow/0"),
            (
                "scoped deny applies below its OU",
                ask("nobody", "GET", "/api/jobs").ou("payroll"),
                403,
                "deny-prod-jobs/deny/0",
            ),
            ("scoped deny does not apply elsewhere", ask("nobody", "GET", "/api/jobs").ou("r-and-d"), 200, ""),
        ],
    );
}

#[test]
fn step4_expired_binding_grants_nothing() {
    let mut defs = world();
    let mut temp = mk_binding("temp", vec![user("tmp")], Some("admin"), &["global"], &[]);
    temp.expires_at = Some("2026-01-01T00:00:00Z".into());
    let mut later = mk_binding("later", vec![user("later")], Some("admin"), &["global"], &[]);
    later.expires_at = Some("2026-06-01T00:00:01Z".into());
    defs.user_bindings.extend([temp, later]);
    let (s, report) = build(&defs);
    assert_eq!(report.get(Kind::UserBinding, "temp").unwrap().error.as_ref().unwrap().reason, Reason::Expired);
    table(
        &s,
        &[("expired", ask("tmp", "GET", "/x"), 403, ""), ("not yet expired", ask("later", "GET", "/x"), 200, "")],
    );
    // A binding that expires after the snapshot was built stops granting at its time.
    let later = "2026-06-01T00:00:02Z".parse().unwrap();
    assert!(!ask("later", "GET", "/x").with_request(later, |req| s.decide(req).allowed()));
}

#[test]
fn step5_deny_beats_allow_and_no_allow_denies() {
    let s = snap();
    table(
        &s,
        &[
            ("allow", ask("carol", "GET", "/api/accounts/aws-account-1/things"), 200, "all/allow/0"),
            (
                "deny beats allow",
                ask("carol", "DELETE", "/api/accounts/aws-account-1/things/t1"),
                403,
                "no-delete/deny/0",
            ),
            ("no allow", ask("nobody", "GET", "/api/jobs"), 403, "no permission set allows `ListJobs`"),
        ],
    );
}

#[test]
fn step5_operations_shorthand_and_methods() {
    let mut defs = world();
    defs.permission_sets.push(mk_ops("policy-partial", &["ListThings"]));
    defs.user_bindings.push(mk_binding("ro", vec![user("ro")], None, &["global"], &["policy-partial"]));
    let (s, _) = build(&defs);
    table(
        &s,
        &[
            (
                "listed operation",
                ask("ro", "GET", "/api/accounts/aws-account-1/things"),
                200,
                "policy-partial/operations",
            ),
            ("unlisted operation", ask("ro", "DELETE", "/api/accounts/aws-account-1/things/1"), 403, ""),
            ("lowercase method is uppercased", ask("bob", "get", "/x").ou("payroll"), 200, ""),
            ("HEAD is its own method", ask("bob", "HEAD", "/x").ou("payroll"), 200, ""),
        ],
    );
}

#[test]
fn a_missing_deny_set_grants_nothing() {
    let mut defs = world();
    defs.user_bindings.push(mk_binding("frank", vec![user("frank")], Some("admin"), &["global"], &["deny-typo"]));
    let (s, report) = build(&defs);
    assert_eq!(
        report.get(Kind::UserBinding, "frank").unwrap().error.as_ref().unwrap().reason,
        Reason::PermissionSetNotFound
    );
    table(
        &s,
        &[("binding with a missing deny set", ask("frank", "GET", "/x"), 403, "user binding `frank` applies here")],
    );
    // A role naming a set with a bad regex grants nothing either.
    let mut defs = world();
    defs.permission_sets.push(mk_set("bad-deny", vec![], vec![rt("(")]));
    defs.roles.push(mk_role("admin-but", &["all", "bad-deny"]));
    defs.user_bindings.push(mk_binding("gina", vec![user("gina")], Some("admin-but"), &["global"], &[]));
    let (s, report) = build(&defs);
    assert_eq!(
        report.get(Kind::Role, "admin-but").unwrap().error.as_ref().unwrap().reason,
        Reason::PermissionSetNotFound
    );
    table(
        &s,
        &[("role with an invalid deny set", ask("gina", "GET", "/x"), 403, "role `admin-but` is missing or not ready")],
    );
}

fn reason_of(report: &Report, kind: Kind, name: &str) -> Option<Reason> {
    report.get(kind, name).and_then(|s| s.error.as_ref().map(|p| p.reason))
}

fn warnings_of(report: &Report, kind: Kind, name: &str) -> Vec<Reason> {
    report.get(kind, name).map(|s| s.warnings.iter().map(|p| p.reason).collect()).unwrap_or_default()
}

#[test]
fn every_condition_reason() {
    let mut d = world();
    d.organizational_units.extend([
        mk_ou("orphan", Some("missing"), &[]),
        mk_ou("loop-a", Some("loop-b"), &[]),
        mk_ou("loop-b", Some("loop-a"), &[]),
        mk_ou("global", Some("accounting"), &[]),
        mk_ou("claims-it-too", None, &["aws-account-2"]),
        mk_ou("dup", None, &[]),
        mk_ou("dup", Some("accounting"), &[]),
    ]);
    let mut scoped = mk_set("scoped", vec![rule()], vec![]);
    scoped.scope = Some(vec!["nowhere".into(), "accounting".into()]);
    let mut lower = mk_set("lowercase", vec![RuleDef { methods: Some("get".into()), ..rule() }], vec![]);
    lower.description = Some("x".into());
    d.permission_sets.extend([
        mk_set("bad-regex", vec![api("([")], vec![]),
        mk_set("empty-paths", vec![paths(&[])], vec![]),
        mk_ops("empty-ops", &[]),
        scoped,
        lower,
    ]);
    d.roles.push(mk_role("broken-role", &["nope"]));
    let mut expired = mk_binding("expired", vec![user("x")], Some("admin"), &["global"], &[]);
    expired.expires_at = Some("2020-01-01T00:00:00Z".into());
    let mut bad_time = mk_binding("bad-time", vec![user("x")], Some("admin"), &["global"], &[]);
    bad_time.expires_at = Some("next tuesday".into());
    d.user_bindings.extend([
        mk_binding("no-role", vec![user("x")], Some("nope"), &["global"], &[]),
        mk_binding("no-ou", vec![user("x")], Some("admin"), &["nope"], &[]),
        mk_binding("unready-ou", vec![user("x")], Some("admin"), &["orphan"], &[]),
        mk_binding("no-set", vec![user("x")], None, &["global"], &["nope"]),
        mk_binding("no-ous", vec![user("x")], Some("admin"), &[], &[]),
        mk_binding(
            "sa-no-ns",
            vec![SubjectDef { kind: SubjectKind::ServiceAccount, name: "ci".into(), namespace: None }],
            Some("admin"),
            &["global"],
            &[],
        ),
        mk_binding("alice-reader", vec![user("alice")], Some("reader"), &["payroll"], &[]),
        expired,
        bad_time,
    ]);
    let mut bad_template = op("X", "GET", "/x/{id", "t");
    bad_template.resource = None;
    let mut bad_extractor = op("Y", "GET", "/y/{id}", "t");
    bad_extractor.access_path = Some("/ws-p(id)".into());
    let mut undeclared = op("Z", "GET", "/z", "t");
    undeclared.resource = Some("p(id)".into());
    let mut empty_hosts = mk_catalog("empty-hosts", None, vec![op("A", "GET", "/a", "t")]);
    empty_hosts.hosts = Some(vec![]);
    d.api_catalogs.extend([
        mk_catalog("bad-template", None, vec![bad_template]),
        mk_catalog("bad-extractor", None, vec![bad_extractor]),
        mk_catalog("undeclared-param", None, vec![undeclared]),
        empty_hosts,
    ]);
    let (_, r) = build(&d);
    use Kind::*;
    use Reason::*;
    let expected_errors = [
        (OrganizationalUnit, "orphan", ParentNotFound),
        (OrganizationalUnit, "loop-a", Cycle),
        (OrganizationalUnit, "loop-b", Cycle),
        (OrganizationalUnit, "global", InvalidParent),
        (OrganizationalUnit, "dup", DuplicateName),
        (PermissionSet, "bad-regex", InvalidRegex),
        (PermissionSet, "empty-paths", InvalidSpec),
        (PermissionSet, "empty-ops", InvalidSpec),
        (Role, "broken-role", PermissionSetNotFound),
        (UserBinding, "no-role", RoleNotFound),
        (UserBinding, "no-ou", OrganizationalUnitNotFound),
        (UserBinding, "unready-ou", OrganizationalUnitNotFound),
        (UserBinding, "no-set", PermissionSetNotFound),
        (UserBinding, "no-ous", InvalidSpec),
        (UserBinding, "sa-no-ns", InvalidSpec),
        (UserBinding, "expired", Expired),
        (UserBinding, "bad-time", InvalidSpec),
        (ApiCatalog, "bad-template", InvalidTemplate),
        (ApiCatalog, "bad-extractor", InvalidTemplate),
        (ApiCatalog, "undeclared-param", InvalidTemplate),
        (ApiCatalog, "empty-hosts", InvalidSpec),
    ];
    for (kind, name, reason) in expected_errors {
        assert_eq!(reason_of(&r, kind, name), Some(reason), "{kind}/{name}");
    }
    assert_eq!(r.errors().count(), expected_errors.len(), "{:#?}", r.errors().collect::<Vec<_>>());
    // a contested resource is reported on every OU that lists it
    assert_eq!(warnings_of(&r, OrganizationalUnit, "r-and-d"), vec![ResourceConflict]);
    assert_eq!(warnings_of(&r, OrganizationalUnit, "claims-it-too"), vec![ResourceConflict]);
    assert_eq!(warnings_of(&r, PermissionSet, "scoped"), vec![ScopeNotFound]);
    assert_eq!(warnings_of(&r, UserBinding, "alice-reader"), vec![RoleConflict]);
    assert_eq!(warnings_of(&r, UserBinding, "alice-accounting"), vec![RoleConflict]);
    assert!(r.get(OrganizationalUnit, "r-and-d").unwrap().is_ready());
}

#[test]
fn scope_whose_entries_all_dropped_applies_nowhere() {
    let mut d = world();
    let mut s = mk_set("nowhere-allow", vec![rule()], vec![]);
    s.system_wide = true;
    s.scope = Some(vec!["missing".into()]);
    d.permission_sets.push(s);
    let (s, _) = build(&d);
    table(&s, &[("dropped scope", ask("nobody", "GET", "/x"), 403, "")]);
}

#[test]
fn explain_traces_bindings_sets_and_rules() {
    let s = snap();
    let (allowed, t) = ask("carol", "DELETE", "/api/accounts/aws-account-1/things/t1").with_request(now(), |req| {
        let (d, t) = s.explain(req);
        (d.allowed(), t)
    });
    assert!(!allowed);
    assert_eq!(t.route.as_ref().unwrap().operation, "DeleteThing");
    assert_eq!(t.effective_ou.as_deref(), Some("accounting"));
    assert_eq!(t.bindings.len(), 1);
    assert!(t.bindings[0].applies);
    let names: Vec<&str> = t.permission_sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["all", "no-delete"]);
    let deny = &t.permission_sets[1].rules[0];
    assert_eq!((deny.rule.as_str(), deny.matched), ("PermissionSet/no-delete/deny/0", true));
}

/// A request resolved without a catalog (kube-apiserver's reviews) is decided from step 3 on
/// by the same code: its resource's OU, the bindings there, deny before allow; and `explain`
/// agrees.
#[test]
fn resolved_requests_skip_the_catalog() {
    let defs = Definitions {
        organizational_units: vec![
            mk_ou("prod01", None, &["namespace/prod01"]),
            mk_ou("dev01", None, &["namespace/dev01"]),
        ],
        permission_sets: vec![
            mk_set("k8s-all", vec![rt("k8s/.*")], vec![]),
            mk_set("no-jobs", vec![], vec![rt("k8s/jobs?")]),
            mk_ops("read", &["get", "list"]),
            mk_set("no-secret-reads", vec![], vec![RuleDef { methods: Some("GET".into()), ..rt("k8s/secrets") }]),
        ],
        user_bindings: vec![
            mk_binding("tenants", vec![user("alice"), user("bob")], None, &["prod01", "dev01"], &["k8s-all"]),
            mk_binding("alice-no-jobs", vec![user("alice")], None, &["prod01"], &["no-jobs"]),
            mk_binding("readers", vec![user("carol")], None, &["global"], &["read", "no-secret-reads"]),
        ],
        ..Default::default()
    };
    let (snap, report) = build(&defs);
    assert!(report.is_clean());
    let ask = |user: &str, verb: &str, method: &str, resource_type: &str, path: &str, ns: Option<&str>| {
        let groups: Vec<String> = vec![];
        let resource = ns.map(|n| format!("namespace/{n}"));
        let r = Resolved {
            subject: Some(Subject { user, groups: &groups }),
            method,
            resource_type,
            api_name: verb,
            access_path: path,
            resource: resource.as_deref(),
            ou: None,
            now: now(),
        };
        let fast = snap.decide_resolved(&r).answer();
        let (explained, _) = snap.explain_resolved(&r);
        assert_eq!(fast, explained.answer());
        fast
    };
    let a = ask("alice", "list", "GET", "k8s/jobs", "/namespaces/prod01/jobs", Some("prod01"));
    assert_eq!(
        (a.allowed, a.rule.as_deref(), a.ou.as_deref()),
        (false, Some("PermissionSet/no-jobs/deny/0"), Some("prod01"))
    );
    // What the decision log reads beside the answer: the resource type, and the context OU
    // (`global`, none being asked for) beside the effective one.
    let groups: Vec<String> = vec![];
    let resolved = Resolved {
        subject: Some(Subject { user: "alice", groups: &groups }),
        method: "GET",
        resource_type: "k8s/jobs",
        api_name: "list",
        access_path: "/namespaces/prod01/jobs",
        resource: Some("namespace/prod01"),
        ou: None,
        now: now(),
    };
    let d = snap.decide_resolved(&resolved);
    assert_eq!((d.resource_type, d.context_ou, d.ou), ("k8s/jobs", Some("global"), Some("prod01")));
    let a = ask("alice", "list", "GET", "k8s/jobs", "/namespaces/dev01/jobs", Some("dev01"));
    assert_eq!((a.allowed, a.rule.as_deref()), (true, Some("PermissionSet/k8s-all/allow/0")));
    let a = ask("bob", "create", "POST", "k8s/jobs", "/namespaces/prod01/jobs", Some("prod01"));
    assert!(a.allowed, "{a:?}");
    // A namespace no OU lists is in `global`, where the tenants' binding does not apply.
    let a = ask("bob", "get", "GET", "k8s/pods", "/namespaces/other/pods/p", Some("other"));
    assert_eq!((a.allowed, a.ou.as_deref()), (false, Some("global")));
    // The `operations` shorthand and `apiName` see the verb.
    let a = ask("carol", "list", "GET", "k8s/pods", "/namespaces/prod01/pods", Some("prod01"));
    assert_eq!((a.allowed, a.rule.as_deref()), (true, Some("PermissionSet/read/operations")));
    let a = ask("carol", "delete", "DELETE", "k8s/pods", "/namespaces/prod01/pods/p", Some("prod01"));
    assert!(!a.allowed);
    let a = ask("carol", "get", "get", "k8s/secrets", "/namespaces/prod01/secrets/s", Some("prod01"));
    assert_eq!(a.rule.as_deref(), Some("PermissionSet/no-secret-reads/deny/0"), "methods ignore case");
    // An unusual verb reaches the rules as an unusual method: a deny without `methods` covers it.
    let a = ask("alice", "escalate", "ESCALATE", "k8s/jobs", "/namespaces/prod01/jobs", Some("prod01"));
    assert_eq!(a.rule.as_deref(), Some("PermissionSet/no-jobs/deny/0"));
    // The access path is checked as a request path is.
    let a = ask("bob", "get", "GET", "k8s/pods", "/namespaces/prod01/pods/..", Some("prod01"));
    assert_eq!((a.allowed, a.status), (false, 403));
    let a = ask("", "get", "GET", "k8s/pods", "/cluster/nodes", None);
    assert_eq!(a.status, 401);
}

/// The grant index leaves out rules whose methods cannot match and sets with no grant on the
/// path. A deny must still find every variant a lenient backend reads as its path and method:
/// another case, a `;param`, a trailing slash, HEAD under a deny on GET, a lower-case method,
/// a method outside the usual nine. The allow on `/admin` stays for what no deny covers.
#[test]
fn method_restricted_path_denies_catch_every_form() {
    let mut defs = world();
    let deny_get = RuleDef { methods: Some("GET".into()), ..paths(&["/admin"]) };
    let deny_dav = RuleDef { methods: Some("PROPFIND|mkcol".into()), ..paths(&["/admin/*"]) };
    defs.permission_sets.push(mk_set("admin-any", vec![paths(&["/admin"])], vec![]));
    defs.permission_sets.push(mk_set("admin-no-reads", vec![], vec![deny_get, deny_dav]));
    defs.user_bindings.push(mk_binding("frank", vec![user("frank")], None, &["global"], &["admin-any"]));
    // The denies are in a set of their own, in a second binding: the index must visit it.
    defs.user_bindings.push(mk_binding("frank-limits", vec![user("frank")], None, &["global"], &["admin-no-reads"]));
    let (s, report) = build(&defs);
    assert!(report.is_clean(), "{:?}", report.errors().collect::<Vec<_>>());
    let get = "denied by PermissionSet/admin-no-reads/deny/0";
    let dav = "denied by PermissionSet/admin-no-reads/deny/1";
    table(
        &s,
        &[
            ("GET", ask("frank", "GET", "/admin"), 403, get),
            ("lower-case get", ask("frank", "get", "/admin/users"), 403, get),
            ("HEAD under a deny on GET", ask("frank", "HEAD", "/admin"), 403, get),
            ("another case", ask("frank", "GET", "/ADMIN/users"), 403, get),
            ("a ;param", ask("frank", "GET", "/admin;jsessionid=1/users"), 403, get),
            ("a trailing slash", ask("frank", "GET", "/admin/"), 403, get),
            ("PROPFIND, outside the usual nine", ask("frank", "PROPFIND", "/Admin/x"), 403, dav),
            ("mkcol, its regex ignores case", ask("frank", "mkcol", "/admin/x;a"), 403, dav),
            (
                "PROPFIND on the node itself: the deny is on its children",
                ask("frank", "PROPFIND", "/admin"),
                200,
                "admin-any",
            ),
            ("POST, no deny", ask("frank", "POST", "/admin/users"), 200, "allowed by PermissionSet/admin-any/allow/0"),
            ("another case is not the allowed path", ask("frank", "POST", "/ADMIN/users"), 403, "no permission set"),
        ],
    );
}

//! Properties of the decision over generated worlds (proptest): deny rules only take access
//! away, removing a binding never adds access, a broken object never adds access, a new OU
//! changes nothing on resources it does not list, object order does not matter, and the
//! explained decision agrees with the fast one on arbitrary methods, hosts and paths.

mod common;

use common::*;
use proptest::prelude::*;
use turnstile::engine::*;

const RESOURCE_TYPES: &[&str] = &["aws/.*", "k8s/job", "k8s/.*", "db/cluster", ".*"];
const API_NAMES: &[&str] = &["List.*", "GetSecretData", "Delete.*", "RunQuery", "ListJobs"];
const METHODS: &[&str] = &["GET", "GET|HEAD", "POST|DELETE", ".*", "get", "PROPFIND|PURGE", "P.*", "HEAD"];
const PATHS: &[&str] = &["/workspaces/*/query", "/workspaces/w1", "/api", "/api/jobs"];
const USERS: &[&str] = &["u0", "u1", "u2", "u3"];
const GROUPS: &[&str] = &["g0", "g1"];
const URLS: &[&str] = &[
    "/api/jobs",
    "/api/secrets/s1",
    "/api/accounts/acct-0/things",
    "/api/accounts/acct-1/things/t",
    "/api/accounts/acct-2/things",
    "/api/ws/w1/query",
    "/api/ws/w2/query",
    "/elsewhere",
];
/// The catalog's operation ids, for `operations` shorthands.
const OPERATIONS: &[&str] = &["ListJobs", "GetSecretData", "ListThings", "DeleteThing", "RunQuery"];
const REQUEST_METHODS: &[&str] = &["GET", "POST", "DELETE", "HEAD", "PROPFIND", "get", "PURGE"];

#[derive(Clone, Debug)]
struct RuleSpec(Option<usize>, Option<usize>, Option<usize>, Option<usize>);

#[derive(Clone, Debug)]
struct SetSpec {
    allow: Vec<RuleSpec>,
    deny: Vec<RuleSpec>,
    system_wide: bool,
    scope: Option<usize>,
    /// The `operations` shorthand: indexes into OPERATIONS.
    operations: Option<Vec<usize>>,
}

#[derive(Clone, Debug)]
struct BindingSpec {
    user: Option<usize>,
    group: Option<usize>,
    role: Option<usize>,
    ou: usize,
    sets: Vec<usize>,
}

#[derive(Clone, Debug)]
struct World {
    /// OU i's parent is `None` (global) or an OU before it.
    parents: Vec<Option<usize>>,
    sets: Vec<SetSpec>,
    roles: Vec<Vec<usize>>,
    bindings: Vec<BindingSpec>,
}

#[derive(Clone, Debug)]
struct Req {
    user: usize,
    group: Option<usize>,
    method: usize,
    url: usize,
    ou: Option<usize>,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        proptest::option::weighted(0.4, 0..RESOURCE_TYPES.len()),
        proptest::option::weighted(0.4, 0..API_NAMES.len()),
        proptest::option::weighted(0.3, 0..METHODS.len()),
        proptest::option::weighted(0.3, 0..PATHS.len()),
    )
        .prop_map(|(a, b, c, d)| RuleSpec(a, b, c, d))
}

fn world() -> impl Strategy<Value = World> {
    let parents = (1usize..5).prop_flat_map(|n| {
        (0..n).map(|i| proptest::option::of(0..i.max(1)).prop_map(move |p| p.filter(|p| *p < i))).collect::<Vec<_>>()
    });
    let sets = proptest::collection::vec(
        (
            proptest::collection::vec(rule_spec(), 0..3),
            proptest::collection::vec(rule_spec(), 0..2),
            proptest::bool::weighted(0.2),
            proptest::option::weighted(0.2, 0..4usize),
            proptest::option::weighted(0.2, proptest::collection::vec(0..OPERATIONS.len(), 1..3)),
        )
            .prop_map(|(allow, deny, system_wide, scope, operations)| SetSpec {
                allow,
                deny,
                system_wide,
                scope,
                operations,
            }),
        1..5,
    );
    (parents, sets).prop_flat_map(|(parents, sets)| {
        let (n_ou, n_set) = (parents.len(), sets.len());
        let roles = proptest::collection::vec(proptest::collection::vec(0..n_set, 0..3), 0..3);
        (Just(parents), Just(sets), roles).prop_flat_map(move |(parents, sets, roles)| {
            let n_role = roles.len();
            let binding = (
                proptest::option::of(0..USERS.len()),
                proptest::option::weighted(0.3, 0..GROUPS.len()),
                if n_role == 0 { Just(None).boxed() } else { proptest::option::of(0..n_role).boxed() },
                0..n_ou + 1,
                proptest::collection::vec(0..n_set, 0..2),
            )
                .prop_map(|(user, group, role, ou, sets)| BindingSpec { user, group, role, ou, sets });
            (Just(parents), Just(sets), Just(roles), proptest::collection::vec(binding, 0..6))
                .prop_map(|(parents, sets, roles, bindings)| World { parents, sets, roles, bindings })
        })
    })
}

fn requests() -> impl Strategy<Value = Vec<Req>> {
    proptest::collection::vec(
        (
            0..USERS.len(),
            proptest::option::of(0..GROUPS.len()),
            0..REQUEST_METHODS.len(),
            0..URLS.len(),
            proptest::option::weighted(0.5, 0..6usize),
        )
            .prop_map(|(user, group, method, url, ou)| Req { user, group, method, url, ou }),
        12,
    )
}

fn ou_name(i: usize) -> String {
    // index n (one past the OUs) means the root
    format!("ou-{i}")
}

fn rule_def(r: &RuleSpec) -> RuleDef {
    RuleDef {
        resource_type: r.0.map(|i| RESOURCE_TYPES[i].to_owned()),
        api_name: r.1.map(|i| API_NAMES[i].to_owned()),
        methods: r.2.map(|i| METHODS[i].to_owned()),
        paths: r.3.map(|i| vec![PATHS[i].to_owned()]),
    }
}

fn catalog() -> ApiCatalogDef {
    let mut things = op("ListThings", "GET", "/accounts/{acct}/things", "aws/account");
    things.resource = Some("p(acct)".into());
    let mut delete = op("DeleteThing", "DELETE", "/accounts/{acct}/things/{id}", "aws/account");
    delete.resource = Some("p(acct)".into());
    let mut query = op("RunQuery", "GET", "/ws/{ws}/query", "db/cluster");
    query.access_path = Some("/workspaces/p(ws)/query".into());
    mk_catalog(
        "api",
        Some("/api"),
        vec![
            op("ListJobs", "GET", "/jobs", "k8s/job"),
            op("GetSecretData", "GET", "/secrets/{s}", "k8s/secret"),
            things,
            delete,
            query,
        ],
    )
}

fn definitions(w: &World) -> Definitions {
    let n_ou = w.parents.len();
    let ou_ref = |i: usize| {
        if i >= n_ou { "global".to_owned() } else { ou_name(i) }
    };
    Definitions {
        organizational_units: w
            .parents
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let parent = p.map(ou_name);
                mk_ou(&ou_name(i), parent.as_deref(), &[&format!("acct-{i}")])
            })
            .collect(),
        permission_sets: w
            .sets
            .iter()
            .enumerate()
            .map(|(i, s)| PermissionSetDef {
                meta: Meta::named(format!("set-{i}")),
                allow: s.allow.iter().map(rule_def).collect(),
                deny: s.deny.iter().map(rule_def).collect(),
                system_wide: s.system_wide,
                scope: s.scope.map(|o| vec![ou_ref(o)]),
                operations: s.operations.as_ref().map(|ops| ops.iter().map(|o| OPERATIONS[*o].to_owned()).collect()),
                ..Default::default()
            })
            .collect(),
        roles: w
            .roles
            .iter()
            .enumerate()
            .map(|(i, sets)| {
                let names: Vec<String> = sets.iter().map(|s| format!("set-{s}")).collect();
                RoleDef { meta: Meta::named(format!("role-{i}")), permission_sets: names, ..Default::default() }
            })
            .collect(),
        user_bindings: w
            .bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut subjects: Vec<SubjectDef> = b.user.map(|u| user(USERS[u])).into_iter().collect();
                subjects.extend(b.group.map(|g| group(GROUPS[g])));
                if subjects.is_empty() {
                    subjects.push(user(USERS[0]));
                }
                UserBindingDef {
                    meta: Meta::named(format!("binding-{i}")),
                    subjects,
                    role: b.role.map(|r| format!("role-{r}")),
                    organizational_units: vec![ou_ref(b.ou)],
                    permission_sets: b.sets.iter().map(|s| format!("set-{s}")).collect(),
                    expires_at: None,
                }
            })
            .collect(),
        api_catalogs: vec![catalog()],
    }
}

fn answers(defs: &Definitions, reqs: &[Req]) -> Vec<Answer> {
    let (snap, _) = build(defs);
    reqs.iter()
        .map(|r| {
            let mut a = ask(USERS[r.user], REQUEST_METHODS[r.method], URLS[r.url]);
            if let Some(g) = r.group {
                a = a.group(GROUPS[g]);
            }
            if let Some(o) = r.ou {
                a = a.ou(&if o >= 5 { "global".to_owned() } else { ou_name(o) });
            }
            a.answer(&snap)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn adding_a_deny_rule_never_allows_more(w in world(), reqs in requests(), set in 0usize..8, deny in rule_spec()) {
        let before = answers(&definitions(&w), &reqs);
        let mut w2 = w.clone();
        let n = w2.sets.len();
        w2.sets[set % n].deny.push(deny);
        let after = answers(&definitions(&w2), &reqs);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(!a.allowed || b.allowed, "a deny rule turned {b:?} into {a:?}");
        }
    }

    /// A binding that carries deny rules (DuploCloud's `deny-k8s-job` assigned to a user)
    /// takes access away by design, so removing it may restore access; any other binding
    /// can only add access.
    #[test]
    fn removing_a_binding_never_adds_access(w in world(), reqs in requests(), which in 0usize..8) {
        prop_assume!(!w.bindings.is_empty());
        let which = which % w.bindings.len();
        let b = &w.bindings[which];
        let role_sets = b.role.map(|r| w.roles[r].clone()).unwrap_or_default();
        prop_assume!(role_sets.iter().chain(&b.sets).all(|s| w.sets[*s].deny.is_empty()));
        let before = answers(&definitions(&w), &reqs);
        let mut w2 = w.clone();
        w2.bindings.remove(which);
        let after = answers(&definitions(&w2), &reqs);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(!a.allowed || b.allowed, "removing a binding turned {b:?} into {a:?}");
        }
    }

    #[test]
    fn object_order_does_not_matter(w in world(), reqs in requests(), seed in any::<u64>()) {
        let defs = definitions(&w);
        let mut shuffled = defs.clone();
        let mut rng = seed;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n.max(1) as u64) as usize
        };
        fn shuffle<T>(v: &mut [T], next: &mut impl FnMut(usize) -> usize) {
            for i in (1..v.len()).rev() {
                v.swap(i, next(i + 1));
            }
        }
        shuffle(&mut shuffled.organizational_units, &mut next);
        shuffle(&mut shuffled.permission_sets, &mut next);
        shuffle(&mut shuffled.roles, &mut next);
        shuffle(&mut shuffled.user_bindings, &mut next);
        prop_assert_eq!(answers(&defs, &reqs), answers(&shuffled, &reqs));
        prop_assert_eq!(build(&defs).1, build(&shuffled).1);
    }
}

/// A broken object, in every way DESIGN §3.1 names.
#[derive(Clone, Debug)]
enum Broken {
    /// An invalid regex in a set, system-wide or not, named by a binding or a role or not.
    BadRegex { system_wide: bool, bound: Option<usize>, in_role: Option<usize> },
    /// `paths: []`.
    EmptyPaths { bound: Option<usize> },
    /// A second object with the name of an existing one.
    Duplicate(DupKind, usize),
    /// An object the source could not read (an unknown field).
    Unreadable(DupKind, usize),
    /// A binding naming a set, role or OU that does not exist.
    DanglingBinding { user: usize, ou: usize, what: usize },
    /// An OU whose parent does not exist, listing an existing resource.
    Orphan { resource: usize },
    /// A catalog that does not parse, covering the API's prefix.
    BadCatalog,
    /// A role naming a missing set, given to a user.
    BadRole { user: usize, ou: usize },
}

#[derive(Clone, Copy, Debug)]
enum DupKind {
    Ou,
    Set,
    Role,
    Binding,
    Catalog,
}

fn broken() -> impl Strategy<Value = Broken> {
    let kind = prop_oneof![
        Just(DupKind::Ou),
        Just(DupKind::Set),
        Just(DupKind::Role),
        Just(DupKind::Binding),
        Just(DupKind::Catalog)
    ];
    prop_oneof![
        (any::<bool>(), proptest::option::of(0..USERS.len()), proptest::option::of(0..3usize))
            .prop_map(|(system_wide, bound, in_role)| Broken::BadRegex { system_wide, bound, in_role }),
        proptest::option::of(0..USERS.len()).prop_map(|bound| Broken::EmptyPaths { bound }),
        (kind.clone(), 0..8usize).prop_map(|(k, i)| Broken::Duplicate(k, i)),
        (kind, 0..8usize).prop_map(|(k, i)| Broken::Unreadable(k, i)),
        (0..USERS.len(), 0..6usize, 0..3usize).prop_map(|(user, ou, what)| Broken::DanglingBinding { user, ou, what }),
        (0..3usize).prop_map(|resource| Broken::Orphan { resource }),
        Just(Broken::BadCatalog),
        (0..USERS.len(), 0..6usize).prop_map(|(user, ou)| Broken::BadRole { user, ou }),
    ]
}

/// Adds the broken object to the definitions.
fn add_broken(defs: &mut Definitions, b: &Broken) {
    let ou_ref = |defs: &Definitions, i: usize| {
        defs.organizational_units.get(i).map_or("global".to_owned(), |o| o.meta.name.clone())
    };
    let deny_set = |name: &str| mk_set(name, vec![], vec![rt("k8s/(")]);
    let bind_broken_set = |u: usize| mk_binding("broken-b", vec![user(USERS[u])], None, &["global"], &["broken-set"]);
    match b {
        Broken::BadRegex { system_wide, bound, in_role } => {
            let mut set = deny_set("broken-set");
            set.system_wide = *system_wide;
            defs.permission_sets.push(set);
            defs.user_bindings.extend(bound.map(bind_broken_set));
            if let Some(r) = in_role.and_then(|r| defs.roles.get_mut(r)) {
                r.permission_sets.push("broken-set".into());
            }
        }
        Broken::EmptyPaths { bound } => {
            defs.permission_sets.push(mk_set("broken-set", vec![], vec![paths(&[])]));
            defs.user_bindings.extend(bound.map(bind_broken_set));
        }
        Broken::Duplicate(kind, i) | Broken::Unreadable(kind, i) => {
            let unreadable = matches!(b, Broken::Unreadable(..));
            fn pick<T: Clone>(v: &mut Vec<T>, i: usize, unreadable: bool, meta: fn(&mut T) -> &mut Meta) {
                if v.is_empty() {
                    return;
                }
                let i = i % v.len();
                if unreadable {
                    meta(&mut v[i]).invalid = Some("unknown field `spec.x`".into());
                } else {
                    let copy = v[i].clone();
                    v.push(copy);
                }
            }
            match kind {
                DupKind::Ou => pick(&mut defs.organizational_units, *i, unreadable, |d| &mut d.meta),
                DupKind::Set => pick(&mut defs.permission_sets, *i, unreadable, |d| &mut d.meta),
                DupKind::Role => pick(&mut defs.roles, *i, unreadable, |d| &mut d.meta),
                DupKind::Binding => pick(&mut defs.user_bindings, *i, unreadable, |d| &mut d.meta),
                DupKind::Catalog => pick(&mut defs.api_catalogs, *i, unreadable, |d| &mut d.meta),
            }
        }
        Broken::DanglingBinding { user: u, ou, what } => {
            let ou = ou_ref(defs, *ou);
            let mut b = mk_binding("dangling", vec![user(USERS[*u])], None, &[&ou], &[]);
            match what {
                0 => b.permission_sets.push("no-such-set".into()),
                1 => b.role = Some("no-such-role".into()),
                _ => b.organizational_units.push("no-such-ou".into()),
            }
            defs.user_bindings.push(b);
        }
        Broken::Orphan { resource } => {
            defs.organizational_units.push(mk_ou("orphan", Some("no-such-parent"), &[&format!("acct-{resource}")]))
        }
        Broken::BadCatalog => {
            let mut bad = mk_catalog("broken-catalog", Some("/api"), vec![op("X", "GET", "/x/{id", "t")]);
            bad.operations[0].resource = None;
            defs.api_catalogs.push(bad);
        }
        Broken::BadRole { user: u, ou } => {
            defs.roles.push(mk_role("broken-role", &["no-such-set"]));
            let ou = ou_ref(defs, *ou);
            defs.user_bindings.push(mk_binding(
                "broken-role-b",
                vec![user(USERS[*u])],
                Some("broken-role"),
                &[&ou],
                &[],
            ));
        }
    }
}

/// An RFC 9110 method token: `tchar`s.
fn method_token() -> impl Strategy<Value = String> {
    prop_oneof![proptest::sample::select(REQUEST_METHODS).prop_map(str::to_owned), "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}",]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("api.example.com".to_owned()),
        Just("API.example.com.".to_owned()),
        Just("api.example.com:8443".to_owned()),
        Just("a:80:80".to_owned()),
        Just("[::1]:80".to_owned()),
        "[a-zA-Z0-9.:\\[\\] -]{0,12}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        proptest::sample::select(
            &[
                "api",
                "API",
                "jobs",
                "secrets",
                "s1",
                "accounts",
                "acct-0",
                "acct-1",
                "things",
                "t",
                "ws",
                "w1",
                "query",
                ".",
                "..",
                "%2e",
                "..;",
                "a;x=1",
                "jobs.json",
                "%20",
                "%2F",
                "%zz",
                "",
                "Acct-0",
                "workspaces",
                "Workspaces;x=1",
                "JOBS",
                "%20api"
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-zA-Z0-9%;.~_-]{1,6}",
    ];
    (proptest::collection::vec(segment, 0..6), proptest::option::of("[a-z=&0-9]{0,8}")).prop_map(|(segs, q)| {
        let mut p = format!("/{}", segs.join("/"));
        if let Some(q) = q {
            p.push('?');
            p.push_str(&q);
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// `Ask::answer` decides each request twice, fast and explained, and asserts they agree.
    #[test]
    fn explain_agrees_with_decide_on_any_method_host_and_path(
        w in world(),
        reqs in proptest::collection::vec((0..USERS.len(), method_token(), host(), path(), proptest::option::of(0..6usize)), 1..16),
    ) {
        let defs = definitions(&w);
        let (snap, _) = build(&defs);
        for (u, method, host, path) in reqs.iter().map(|(u, m, h, p, _)| (u, m, h, p)) {
            let url = if host.is_empty() { path.clone() } else { format!("https://{host}{path}") };
            let _ = ask(USERS[*u], method, &url).answer(&snap);
        }
    }

}

proptest! {
    // Each case builds about eighty worlds.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// The generated broken object, and then every existing object in turn duplicated and
    /// made unreadable (that is where a broken object used to take a deny away).
    #[test]
    fn a_broken_object_never_turns_a_denial_into_an_allow(w in world(), reqs in requests(), b in broken()) {
        let defs = definitions(&w);
        let before = answers(&defs, &reqs);
        let kinds = [DupKind::Ou, DupKind::Set, DupKind::Role, DupKind::Binding, DupKind::Catalog];
        let every = kinds.iter().flat_map(|k| (0..8).flat_map(move |i| [Broken::Duplicate(*k, i), Broken::Unreadable(*k, i)]));
        for b in std::iter::once(b).chain(every) {
            let mut broken = defs.clone();
            add_broken(&mut broken, &b);
            let after = answers(&broken, &reqs);
            for (x, y) in before.iter().zip(&after) {
                prop_assert!(!y.allowed || x.allowed, "{b:?} turned {x:?} into {y:?}");
            }
        }
    }

    /// A new OU listing only ids no one else lists (and that differ from every listed id by
    /// more than case or trailing dots: those are refused as near misses) changes no decision
    /// on anything else.
    #[test]
    fn a_new_ou_changes_nothing_on_resources_it_does_not_list(
        w in world(),
        reqs in requests(),
        parent in 0usize..6,
        lists in proptest::collection::vec("new-[a-z]{1,4}", 0..3),
    ) {
        let defs = definitions(&w);
        let before = answers(&defs, &reqs);
        let mut more = defs.clone();
        let parent = more.organizational_units.get(parent).map(|o| o.meta.name.clone());
        let lists: Vec<&str> = lists.iter().map(String::as_str).collect();
        more.organizational_units.push(mk_ou("zz-new", parent.as_deref(), &lists));
        prop_assert_eq!(before, answers(&more, &reqs));
    }
}

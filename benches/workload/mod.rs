//! A generated workload the size the design targets: 1,000 OUs up to depth 8, 1,000
//! permission sets with 100,000 rules, 100 roles, 10,000 bindings and 500 catalog
//! operations; plus a sample of requests against it. Deterministic (fixed seed).
#![allow(dead_code)]

use turnstile::engine::*;

pub struct Size {
    pub ous: usize,
    pub sets: usize,
    pub rules_per_set: usize,
    pub roles: usize,
    pub bindings: usize,
    pub catalogs: usize,
    pub ops_per_catalog: usize,
}

pub const FULL: Size = Size {
    ous: 1_000,
    sets: 1_000,
    rules_per_set: 100,
    roles: 100,
    bindings: 10_000,
    catalogs: 10,
    ops_per_catalog: 50,
};

/// Small enough for `cargo test --benches`.
pub const SMOKE: Size =
    Size { ous: 50, sets: 20, rules_per_set: 10, roles: 5, bindings: 100, catalogs: 2, ops_per_catalog: 10 };

/// xorshift64*: a tiny deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const RESOURCES_PER_OU: usize = 5;

fn op_id(c: usize, k: usize) -> String {
    format!("Svc{c}Op{k}")
}

pub fn definitions(size: &Size, rng: &mut Rng) -> Definitions {
    // OUs: each parent is an earlier OU less than 8 deep, so the tree is at most 8 deep.
    let mut depth = Vec::with_capacity(size.ous);
    let mut ous = Vec::with_capacity(size.ous);
    for i in 0..size.ous {
        let parent = if i < 10 { None } else { Some(rng.below(i)).filter(|p| depth[*p] < 8) };
        depth.push(parent.map_or(1, |p| depth[p] + 1));
        ous.push(OrganizationalUnitDef {
            meta: Meta::named(format!("ou-{i}")),
            parent: parent.map(|p| format!("ou-{p}")),
            resources: (0..RESOURCES_PER_OU).map(|k| format!("res-{i}-{k}")).collect(),
            ..Default::default()
        });
    }

    let mut catalogs = Vec::with_capacity(size.catalogs);
    for c in 0..size.catalogs {
        let operations = (0..size.ops_per_catalog)
            .map(|k| OperationDef {
                id: op_id(c, k),
                method: METHODS[k % 4].into(),
                path: if k % 2 == 0 {
                    format!("/things-{}/{{id}}", k / 4)
                } else {
                    format!("/things-{}/{{id}}/sub-{k}", k / 4)
                },
                resource_type: Some(format!("svc{c}/thing{}", k % 10)),
                access_path: None,
                resource: (k % 3 != 0).then(|| "p(id)".to_owned()),
            })
            .collect();
        catalogs.push(ApiCatalogDef {
            meta: Meta::named(format!("svc-{c}")),
            hosts: Some(vec![format!("svc-{c}.example.com")]),
            path_prefix: Some(format!("/svc-{c}/v1")),
            unmatched: Default::default(),
            operations,
        });
    }

    // Rules: mostly operation IDs, as catalogued APIs are written; some patterns over resource
    // type and method; one in ten a deny.
    let mut sets = Vec::with_capacity(size.sets);
    for s in 0..size.sets {
        let mut allow = Vec::new();
        let mut deny = Vec::new();
        for _ in 0..size.rules_per_set {
            let c = rng.below(size.catalogs);
            let k = rng.below(size.ops_per_catalog);
            let rule = match rng.below(100) {
                0..=89 => RuleDef { api_name: Some(op_id(c, k)), ..Default::default() },
                90..=94 => RuleDef {
                    resource_type: Some(format!("svc{c}/thing[0-{}]", k % 10)),
                    methods: Some("GET|HEAD".into()),
                    ..Default::default()
                },
                _ => RuleDef {
                    api_name: Some(format!("Svc{c}Op{}.*", k % 10)),
                    methods: Some("GET".into()),
                    ..Default::default()
                },
            };
            if rng.chance(10) { deny.push(rule) } else { allow.push(rule) }
        }
        sets.push(PermissionSetDef {
            meta: Meta::named(format!("set-{s}")),
            allow,
            deny,
            system_wide: s < 2,
            scope: (s % 10 == 0).then(|| vec![format!("ou-{}", rng.below(size.ous))]),
            ..Default::default()
        });
    }
    // the two system-wide sets stay small, as such sets are
    for set in sets.iter_mut().take(2) {
        set.allow.truncate(2);
        set.deny.truncate(2);
    }

    let roles = (0..size.roles)
        .map(|r| RoleDef {
            meta: Meta::named(format!("role-{r}")),
            permission_sets: (0..5).map(|_| format!("set-{}", rng.below(size.sets))).collect(),
            ..Default::default()
        })
        .collect();

    let users = size.bindings / 2;
    let bindings = (0..size.bindings)
        .map(|b| {
            let subject = if b % 10 == 9 {
                SubjectDef { kind: SubjectKind::Group, name: format!("group-{}", rng.below(100)), namespace: None }
            } else {
                SubjectDef { kind: SubjectKind::User, name: format!("user-{}", rng.below(users)), namespace: None }
            };
            UserBindingDef {
                meta: Meta::named(format!("binding-{b}")),
                subjects: vec![subject],
                role: Some(format!("role-{}", rng.below(size.roles))),
                organizational_units: (0..1 + rng.below(2)).map(|_| format!("ou-{}", rng.below(size.ous))).collect(),
                permission_sets: if rng.chance(30) { vec![format!("set-{}", rng.below(size.sets))] } else { vec![] },
                expires_at: None,
            }
        })
        .collect();

    Definitions {
        organizational_units: ous,
        permission_sets: sets,
        roles,
        user_bindings: bindings,
        api_catalogs: catalogs,
    }
}

/// One request of the sample, owned.
pub struct Sample {
    pub user: String,
    pub groups: Vec<String>,
    pub method: &'static str,
    pub host: String,
    pub path: String,
}

/// Requests for catalogued operations on resources of random OUs, by random users.
pub fn requests(size: &Size, rng: &mut Rng, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|_| {
            let c = rng.below(size.catalogs);
            let k = rng.below(size.ops_per_catalog);
            let id = format!("res-{}-{}", rng.below(size.ous), rng.below(RESOURCES_PER_OU));
            let tail = if k.is_multiple_of(2) {
                format!("/things-{}/{id}", k / 4)
            } else {
                format!("/things-{}/{id}/sub-{k}", k / 4)
            };
            Sample {
                user: format!("user-{}", rng.below(size.bindings / 2)),
                groups: vec![format!("group-{}", rng.below(100))],
                method: METHODS[k % 4],
                host: format!("svc-{c}.example.com"),
                path: format!("/svc-{c}/v1{tail}?x=1"),
            }
        })
        .collect()
}

impl Sample {
    pub fn request<'a>(&'a self, now: jiff::Timestamp) -> Request<'a> {
        Request {
            subject: Some(Subject { user: &self.user, groups: &self.groups }),
            claims: Claims::Subject { user_claim: "sub" },
            method: self.method,
            host: &self.host,
            path: &self.path,
            headers: &NoHeaders,
            body: None,
            ou: None,
            now,
        }
    }
}

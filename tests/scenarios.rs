//! The seed scenarios: each example folder loads clean, and every check listed for it in
//! `tests/scenarios/<example>.yaml` decides as written there.

mod common;

use std::path::Path;

use common::{Ask, scenarios};
use turnstile::engine::{Snapshot, SubjectKind};
use turnstile::sources::files;

fn load(dir: &Path) -> Snapshot {
    let loaded = files::load(dir).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let (snapshot, report) = Snapshot::build(&loaded.definitions(), common::now());
    assert!(report.is_clean(), "{}: {:?}", dir.display(), report.errors().collect::<Vec<_>>());
    assert_eq!(report.warnings().count(), 0, "{:?}", report.warnings().collect::<Vec<_>>());
    snapshot
}

fn run(example: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checks = scenarios::checks(example);
    // Each example alone, and all of them together as `turnstile serve --manifests examples`
    // loads them: the seeds must not leak into each other.
    for dir in [root.join("examples").join(example), root.join("examples")] {
        let snap = load(&dir);
        for c in &checks {
            let a = c.ask().answer(&snap);
            c.assert(a.allowed, a.status, a.rule.as_deref(), &format!("{}: {a:?}", dir.display()));
        }
    }
}

#[test]
fn clumio() {
    run("clumio");
}

#[test]
fn duplocloud() {
    run("duplocloud");
}

#[test]
fn chistadata() {
    run("chistadata");
}

/// Served together, the seeds are isolated: a user bound in none of a seed's OUs (nor at
/// `global`, above them all) gets nothing from the seed's API, in any OU context, whatever
/// ids they put in its paths, query, headers and body.
#[test]
fn seeds_are_isolated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let all = load(&root);
    let seeds: Vec<(&str, turnstile::engine::Definitions)> =
        scenarios::SEEDS.into_iter().map(|s| (s, files::load(&root.join(s)).unwrap().definitions())).collect();
    let mut users: Vec<String> = vec!["stranger@example.com".into()];
    let mut ids: Vec<String> = vec!["x".into()];
    let mut contexts: Vec<Option<String>> = vec![None, Some("global".into())];
    for (_, defs) in &seeds {
        for b in &defs.user_bindings {
            users.extend(b.subjects.iter().filter(|s| s.kind == SubjectKind::User).map(|s| s.name.clone()));
        }
        for ou in &defs.organizational_units {
            contexts.push(Some(ou.meta.name.clone()));
            ids.extend(ou.resources.iter().cloned());
            ids.push(ou.meta.name.clone());
        }
    }
    let mut asked = 0;
    for (seed, defs) in &seeds {
        let own: Vec<&str> = defs.organizational_units.iter().map(|o| o.meta.name.as_str()).chain(["global"]).collect();
        let bound_here = |user: &str| {
            defs.user_bindings.iter().chain(seeds.iter().flat_map(|(_, d)| &d.user_bindings)).any(|b| {
                b.subjects.iter().any(|s| s.name == user)
                    && b.organizational_units.iter().any(|o| own.contains(&o.as_str()))
            })
        };
        for user in users.iter().filter(|u| !bound_here(u)) {
            for catalog in &defs.api_catalogs {
                let host = catalog.hosts.as_ref().map_or("any.example.com", |h| h[0].as_str());
                for op in &catalog.operations {
                    for id in &ids {
                        let template = format!("{}{}", catalog.path_prefix.as_deref().unwrap_or(""), op.path);
                        let path: Vec<String> = template
                            .split('/')
                            .map(|s| if s.starts_with('{') { id.clone() } else { s.to_owned() })
                            .collect();
                        let url = format!("https://{host}{}?scope={id}&q={id}", path.join("/"));
                        let fields = ["workspace", "ws", "cluster", "tenant", "account", "id"];
                        let body: serde_json::Map<String, serde_json::Value> =
                            fields.iter().map(|f| (f.to_string(), serde_json::Value::from(id.as_str()))).collect();
                        for ou in &contexts {
                            let ask = Ask {
                                user: Some(user.clone()),
                                groups: vec![],
                                method: op.method.clone(),
                                url: url.clone(),
                                ou: ou.clone(),
                                headers: vec![("x-tenant".into(), id.clone())],
                                body: Some(body.clone().into()),
                            };
                            let a = ask.answer(&all);
                            asked += 1;
                            assert!(!a.allowed, "{seed}: {user} {} {url} in {ou:?}: {a:?}", op.method);
                        }
                    }
                }
            }
        }
    }
    assert!(asked > 1000, "only {asked} requests were tried");
}

//! The seed scenarios: each example folder loads clean, and every check listed for it in
//! `tests/scenarios/<example>.yaml` decides as written there.

mod common;

use std::path::Path;

use common::Ask;
use serde::Deserialize;
use turnstile::engine::Snapshot;
use turnstile::sources::files;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    name: String,
    user: String,
    #[serde(default)]
    groups: Vec<String>,
    ou: Option<String>,
    method: String,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    body: Option<serde_json::Value>,
    expect: Expect,
    status: Option<u16>,
    rule: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

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
    let checks: Vec<Check> =
        serde_saphyr::from_str(&std::fs::read_to_string(root.join(format!("tests/scenarios/{example}.yaml"))).unwrap())
            .unwrap();
    assert!(checks.len() >= 8, "{example} has too few checks");
    // Each example alone, and all of them together as `turnstile serve --manifests examples`
    // loads them: the seeds must not leak into each other.
    for dir in [root.join("examples").join(example), root.join("examples")] {
        let snap = load(&dir);
        for c in &checks {
            let ask = Ask {
                user: Some(c.user.clone()),
                groups: c.groups.clone(),
                method: c.method.clone(),
                url: c.url.clone(),
                ou: c.ou.clone(),
                headers: c.headers.clone().into_iter().collect(),
                body: c.body.clone(),
            };
            let a = ask.answer(&snap);
            let ctx = format!("{} [{}]: {a:?}", c.name, dir.display());
            assert_eq!(a.allowed, c.expect == Expect::Allow, "{ctx}");
            if let Some(s) = c.status {
                assert_eq!(a.status, s, "{ctx}");
            }
            if let Some(r) = &c.rule {
                assert_eq!(a.rule.as_ref(), Some(r), "{ctx}");
            }
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

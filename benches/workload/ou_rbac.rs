//! The shared "ou-rbac" workload: OUs, permission sets of method regexes and feature-path
//! grants over raw paths no catalog describes, roles and user bindings, with requests and the
//! decision each must get. `benches/ou-rbac.sh` generates and converts it (fixed seed) into
//! `target/ou-rbac/<scale>/`: `manifests/all.yaml` and `requests.jsonl`, one `/v1/check` body
//! a line with its `expected` decision.
//!
//! Shared by `benches/ou_rbac.rs` and `tests/ou_rbac.rs` (which reads a committed sample).

use std::path::Path;

use serde::Deserialize;
use turnstile::engine::{Claims, Definitions, NoHeaders, Request, RuleRef, Side, Snapshot, Subject};

/// One line of `requests.jsonl`.
#[derive(Debug, Deserialize)]
pub struct Check {
    pub subject: CheckSubject,
    pub ou: String,
    pub method: String,
    pub path: String,
    pub expected: bool,
}

#[derive(Debug, Deserialize)]
pub struct CheckSubject {
    pub user: String,
    pub groups: Vec<String>,
}

impl Check {
    /// The request as `/v1/check` builds it from this body (no host, no headers).
    pub fn request(&self, now: jiff::Timestamp) -> Request<'_> {
        Request {
            subject: Some(Subject { user: &self.subject.user, groups: &self.subject.groups }),
            claims: Claims::Subject { user_claim: "sub" },
            method: &self.method,
            host: "",
            path: &self.path,
            headers: &NoHeaders,
            body: None,
            ou: Some(&self.ou),
            now,
        }
    }
}

/// Unpacks the sample committed in `tests/data/ou-rbac-S` (scale S's manifests and every fifth
/// of its requests) into `into`, laid out as `benches/ou-rbac.sh` writes a scale; needs neither
/// python3 nor the generator.
pub fn unpack_sample(into: &Path) {
    use std::io::Read;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ou-rbac-S");
    std::fs::create_dir_all(into.join("manifests")).expect("a writable folder");
    for (packed, unpacked) in [("all.yaml.gz", "manifests/all.yaml"), ("requests.jsonl.gz", "requests.jsonl")] {
        let mut text = String::new();
        let file = std::fs::File::open(data.join(packed)).expect("the sample is committed");
        flate2::read::GzDecoder::new(file).read_to_string(&mut text).expect("the sample is gzipped text");
        std::fs::write(into.join(unpacked), text).expect("a writable folder");
    }
}

/// The definitions and requests of a generated folder.
pub fn load(dir: &Path) -> (Definitions, Vec<Check>) {
    let loaded = turnstile::sources::files::load(&dir.join("manifests")).expect("the manifests are readable");
    assert!(loaded.problems.is_empty(), "{}", loaded.problems[0]);
    let text = std::fs::read_to_string(dir.join("requests.jsonl")).expect("requests.jsonl is readable");
    let checks = text.lines().map(|l| serde_json::from_str(l).expect("a /v1/check body")).collect();
    (loaded.definitions(), checks)
}

/// How the decisions compare with the expected ones.
#[derive(Debug, Default)]
pub struct Comparison {
    /// HEAD requests decided by a rule on GET alone, which the workload's reference does not
    /// read as covering HEAD; DESIGN §2 does ("a rule on GET, allow or deny, covers it").
    pub head_by_get_rule: usize,
    /// A line for each other request whose decision is not the expected one.
    pub wrong: Vec<String>,
}

/// Decides every request and compares it with its expected decision.
pub fn compare(snap: &Snapshot, defs: &Definitions, checks: &[Check], now: jiff::Timestamp) -> Comparison {
    let mut out = Comparison::default();
    for (line, c) in checks.iter().enumerate() {
        let d = snap.decide(&c.request(now));
        if d.allowed() == c.expected {
            continue;
        }
        if c.method == "HEAD" && d.rule.is_some_and(|r| methods_of(defs, r) == Some("GET")) {
            out.head_by_get_rule += 1;
            continue;
        }
        let (l, m, p, u, ou) = (line + 1, &c.method, &c.path, &c.subject.user, &c.ou);
        out.wrong.push(format!("line {l}: {m} {p} as {u} in {ou}: {}", d.reason()));
    }
    out
}

/// The `methods` of the rule a decision names.
fn methods_of<'d>(defs: &'d Definitions, rule: RuleRef<'_>) -> Option<&'d str> {
    let set = defs.permission_sets.iter().find(|s| s.meta.name == rule.set)?;
    let rules = match rule.side {
        Side::Allow => &set.allow,
        Side::Deny => &set.deny,
        Side::Operations => return None,
    };
    rules.get(rule.index as usize)?.methods.as_deref()
}

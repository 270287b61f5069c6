//! The seed scenarios of `tests/scenarios/<example>.yaml`: requests and what each must decide,
//! run against file mode (`tests/scenarios.rs`) and cluster mode (`tests/cluster.rs`).
#![allow(dead_code)]

use std::path::Path;

use serde::Deserialize;

use super::Ask;

/// The three seed examples.
pub const SEEDS: [&str; 3] = ["clumio", "duplocloud", "chistadata"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub ou: Option<String>,
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Option<serde_json::Value>,
    pub expect: Expect,
    pub status: Option<u16>,
    pub rule: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allow,
    Deny,
}

/// The checks listed for `example`.
pub fn checks(example: &str) -> Vec<Check> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/scenarios/{example}.yaml"));
    let checks: Vec<Check> = serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(checks.len() >= 8, "{example} has too few checks");
    checks
}

impl Check {
    pub fn ask(&self) -> Ask {
        Ask {
            user: Some(self.user.clone()),
            groups: self.groups.clone(),
            method: self.method.clone(),
            url: self.url.clone(),
            ou: self.ou.clone(),
            headers: self.headers.clone().into_iter().collect(),
            body: self.body.clone(),
        }
    }

    /// The `/v1/check` request body asking the same.
    pub fn request(&self) -> serde_json::Value {
        let (host, path) = turnstile::engine::split_url(&self.url);
        serde_json::json!({
            "subject": {"user": self.user, "groups": self.groups},
            "method": self.method,
            "host": host,
            "path": path,
            "headers": self.headers,
            "body": self.body,
            "ou": self.ou,
        })
    }

    /// Fails the test unless `(allowed, status, rule)` is what this check expects.
    pub fn assert(&self, allowed: bool, status: u16, rule: Option<&str>, context: &str) {
        self.assert_status(status, context);
        assert_eq!(allowed, self.expect == Expect::Allow, "{} [{context}]", self.name);
        if let Some(r) = &self.rule {
            assert_eq!(rule, Some(r.as_str()), "{} [{context}]", self.name);
        }
    }

    /// Fails the test unless `status` (200 when allowed) is what this check expects, for the
    /// proxy endpoints, whose answers do not name the deciding rule.
    pub fn assert_status(&self, status: u16, context: &str) {
        assert_eq!(status == 200, self.expect == Expect::Allow, "{} [{context}]", self.name);
        if let Some(s) = self.status {
            assert_eq!(status, s, "{} [{context}]", self.name);
        }
    }
}

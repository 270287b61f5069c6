//! Answers for user interfaces: which catalog operations a subject may call (Clumio's
//! HATEOAS links) and the effective-permissions tree (ChistaData's feature hierarchy).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::Serialize;
use smallvec::SmallVec;

use super::decision::{Decision, NoTrace, Outcome};
use super::index::Snapshot;
use super::model::GLOBAL;
use super::request::{Claims, NoHeaders, Request, Subject};
use super::rules::{PathPattern, Rule};

/// One catalog operation as a UI sees it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AllowedOperation {
    pub catalog: String,
    pub operation: String,
    pub method: String,
    /// The operation's path with the given parameters; absent when one is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    pub allowed: bool,
    pub reason: String,
}

/// A node of the effective-permissions tree. A child named `*` stands for any id not listed
/// beside it; a listed id has the union of its own grants and the wildcard's.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FeatureNode {
    /// Requests at this node are allowed (by path grants alone).
    pub allowed: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub children: BTreeMap<String, FeatureNode>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EffectivePermissions {
    pub user: String,
    pub ou: String,
    /// True when the tree alone decides every path: no rule also depends on method,
    /// resource type or operation.
    pub complete: bool,
    /// Rules left out of the tree because they look at more than the path.
    pub conditional: Vec<String>,
    pub tree: FeatureNode,
}

/// Why a UI question could not be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("organizational unit `{0}` is unknown or not ready")]
    UnknownOu(String),
    /// An object that applies here is not Ready, so nothing is granted here.
    #[error("{0}")]
    Broken(String),
}

impl Snapshot {
    /// Every catalog operation with whether the subject may call it in `ou` (default
    /// `global`), its link filled from `params`.
    pub fn allowed_operations(
        &self,
        subject: Subject<'_>,
        claims: Claims<'_>,
        ou: Option<&str>,
        params: &HashMap<String, String>,
        now: Timestamp,
    ) -> Vec<AllowedOperation> {
        self.router
            .routes()
            .iter()
            .map(|route| {
                let mut out = AllowedOperation {
                    catalog: route.catalog.to_string(),
                    operation: route.operation.to_string(),
                    method: route.method.to_string(),
                    href: None,
                    allowed: false,
                    reason: String::new(),
                };
                let href = match fill_template(&route.template, params) {
                    Ok(h) => h,
                    Err(missing) => {
                        out.reason = format!("parameter `{missing}` was not given");
                        return out;
                    }
                };
                let host = route.hosts.as_ref().and_then(|h| h.first()).map_or("", |h| &**h);
                let req = Request {
                    subject: Some(subject),
                    claims,
                    method: &route.method,
                    host,
                    path: &href,
                    headers: &NoHeaders,
                    body: None,
                    ou,
                    now,
                };
                let d = self.decide(&req);
                out.allowed = d.allowed();
                out.reason = d.reason();
                out.href = Some(href.clone());
                out
            })
            .collect()
    }

    /// The feature tree the subject may reach in `ou` (default `global`).
    pub fn effective_permissions(
        &self,
        subject: Subject<'_>,
        ou: Option<&str>,
        now: Timestamp,
    ) -> Result<EffectivePermissions, ViewError> {
        let ou_name = ou.unwrap_or(GLOBAL);
        let id = self.ous.get(ou_name).ok_or_else(|| ViewError::UnknownOu(ou_name.to_owned()))?;
        let mut roles = SmallVec::new();
        let sets = self.collect_sets(subject, id, now, &mut roles, &mut NoTrace).map_err(|why| {
            let d = Decision {
                outcome: Outcome::Denied(why),
                subject: Some(subject),
                ou: Some(ou_name),
                context_ou: Some(ou_name),
                roles: SmallVec::new(),
                operation: "",
                resource_type: "",
                rule: None,
            };
            ViewError::Broken(d.reason())
        })?;
        let root = PathPattern::parse("/").expect("`/` is a valid grant");
        let mut grants: Vec<&PathPattern> = Vec::new();
        let mut denies: Vec<&PathPattern> = Vec::new();
        let mut conditional = Vec::new();
        for &sid in &sets {
            let set = &self.sets[sid as usize];
            if set.operations.is_some() {
                conditional.push(format!("PermissionSet/{}/operations", set.name));
            }
            for (side, rules, out) in [("allow", &set.allow.rules, &mut grants), ("deny", &set.deny.rules, &mut denies)]
            {
                for (i, rule) in rules.iter().enumerate() {
                    if !rule.is_path_only() {
                        conditional.push(format!("PermissionSet/{}/{side}/{i}", set.name));
                    } else {
                        out.extend(patterns(rule, &root));
                    }
                }
            }
        }
        let mut tree = Shape::default();
        for p in grants.iter().chain(&denies) {
            tree.insert(p.segments());
        }
        tree.spread_wildcards();
        let mut path = Vec::new();
        let tree = tree.evaluate(&mut path, &grants, &denies);
        Ok(EffectivePermissions {
            user: subject.user.to_owned(),
            ou: ou_name.to_owned(),
            complete: conditional.is_empty(),
            conditional,
            tree,
        })
    }
}

fn patterns<'r>(rule: &'r Rule, root: &'r PathPattern) -> impl Iterator<Item = &'r PathPattern> {
    let all: &'r [PathPattern] = if rule.paths.is_empty() { std::slice::from_ref(root) } else { &rule.paths };
    all.iter()
}

/// Fills `{name}` segments of a template, percent-encoding the values.
fn fill_template(template: &str, params: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    for seg in template.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let v = params.get(name).filter(|v| !v.is_empty()).ok_or_else(|| name.to_owned())?;
                encode_segment(v, &mut out);
            }
            None => out.push_str(seg),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn encode_segment(v: &str, out: &mut String) {
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The tree's shape before it is evaluated.
#[derive(Default)]
struct Shape {
    children: BTreeMap<String, Shape>,
}

impl Shape {
    fn insert<'s>(&mut self, mut segments: impl Iterator<Item = &'s str>) {
        if let Some(seg) = segments.next() {
            self.children.entry(seg.to_owned()).or_default().insert(segments);
        }
    }

    /// Gives each listed id everything its `*` sibling has.
    fn spread_wildcards(&mut self) {
        if let Some(wild) = self.children.get("*").map(Shape::clone_shape) {
            for (name, child) in self.children.iter_mut() {
                if name != "*" {
                    child.merge(&wild);
                }
            }
        }
        for child in self.children.values_mut() {
            child.spread_wildcards();
        }
    }

    fn clone_shape(&self) -> Shape {
        Shape { children: self.children.iter().map(|(k, v)| (k.clone(), v.clone_shape())).collect() }
    }

    fn merge(&mut self, other: &Shape) {
        for (k, v) in &other.children {
            self.children.entry(k.clone()).or_default().merge(v);
        }
    }

    fn evaluate(&self, path: &mut Vec<String>, grants: &[&PathPattern], denies: &[&PathPattern]) -> FeatureNode {
        // A `*` node stands for an id no pattern names: only `*` pattern segments reach it.
        let covers = |p: &&PathPattern| {
            p.len() <= path.len() && p.parts().zip(path.iter()).all(|(ps, s)| ps.is_none_or(|ps| ps == s))
        };
        let allowed = grants.iter().any(covers) && !denies.iter().any(covers);
        let mut children = BTreeMap::new();
        for (name, child) in &self.children {
            path.push(name.clone());
            children.insert(name.clone(), child.evaluate(path, grants, denies));
            path.pop();
        }
        FeatureNode { allowed, children }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_encode() {
        let params: HashMap<String, String> = [("ws".to_owned(), "a b/c".to_owned())].into();
        assert_eq!(fill_template("/api/workspaces/{ws}/x", &params).unwrap(), "/api/workspaces/a%20b%2Fc/x");
        assert_eq!(fill_template("/api/{missing}", &params).unwrap_err(), "missing");
    }
}

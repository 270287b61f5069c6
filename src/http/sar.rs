//! kube-apiserver's webhook authorizer (DESIGN §4): a SubjectAccessReview is mapped to a
//! resolved request and decided by the engine from its OU step on, with no catalog.
//!
//! ```text
//! resource attributes     resourceType k8s/<resource>[/<subresource>], apiName = verb,
//!                         method from the verb, access path /namespaces/<ns>/<resource>/<name>
//!                         (or /cluster/<resource>/<name>), OU of the resource `namespace/<ns>`
//! non-resource attributes access path = the path, apiName = verb, method = the verb
//! ```
//!
//! Answers: allowed when an allow rule matched; `denied` when a deny rule (or a broken object
//! standing in for one) matched; otherwise no opinion, so that the next authorizer (RBAC)
//! decides, unless `hard_deny` is set. An internal error, or no index yet, is an
//! `evaluationError`, never an allow. Reviews of the cluster's own components are always left
//! to RBAC ([`exempt`]), so that no Turnstile object can lock the cluster.

use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus};

use crate::engine::{Decision, Denial, Outcome, Resolved, Snapshot, Subject};

/// A review's request, as the engine reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub user: String,
    pub groups: Vec<String>,
    pub method: String,
    pub resource_type: String,
    pub verb: String,
    pub access_path: String,
    /// `namespace/<ns>`: the resource whose OU the request is in.
    pub resource: Option<String>,
}

/// The HTTP method a Kubernetes verb stands for; any other verb (`bind`, `escalate`, `use`,
/// `impersonate`, `approve`, …) is uppercased and reaches the rules as a method outside the
/// usual nine, which only rules without `methods` (or naming it) match.
pub fn method_of(verb: &str) -> String {
    match verb {
        "get" | "list" | "watch" => "GET".into(),
        "create" => "POST".into(),
        "update" => "PUT".into(),
        "patch" => "PATCH".into(),
        "delete" | "deletecollection" => "DELETE".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// One path segment as the engine's path splitter reads it back: `%`, `/`, `?` and `#`
/// escaped (an escaped `/` is refused there, which denies).
fn segment(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F").replace('?', "%3F").replace('#', "%23")
}

/// Maps a review's spec; `Err` says why it cannot be decided.
pub fn map(spec: &SubjectAccessReviewSpec) -> Result<Mapped, String> {
    let user = spec.user.clone().unwrap_or_default();
    let groups = spec.groups.clone().unwrap_or_default();
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(r), _) => {
            // Kubernetes verbs are lowercase; `Create` must not escape a rule on POST or `create`.
            let verb = nonempty(&r.verb).ok_or("the review has no verb")?.to_ascii_lowercase();
            let resource = nonempty(&r.resource).ok_or("the review has no resource")?;
            let namespace = nonempty(&r.namespace);
            let name = nonempty(&r.name);
            let subresource = nonempty(&r.subresource);
            let resource_type = match &subresource {
                Some(sub) => format!("k8s/{resource}/{sub}"),
                None => format!("k8s/{resource}"),
            };
            let mut path = match &namespace {
                Some(ns) => format!("/namespaces/{}/{}", segment(ns), segment(&resource)),
                None => format!("/cluster/{}", segment(&resource)),
            };
            for part in [&name, &subresource].into_iter().flatten() {
                path.push('/');
                path.push_str(&segment(part));
            }
            // A namespace is in the OU that lists it, whether the request is inside it or on it.
            let owner = match (&namespace, resource.as_str(), &name) {
                (Some(ns), _, _) => Some(format!("namespace/{ns}")),
                (None, "namespaces", Some(ns)) => Some(format!("namespace/{ns}")),
                _ => None,
            };
            Ok(Mapped {
                user,
                groups,
                method: method_of(&verb),
                resource_type,
                verb,
                access_path: path,
                resource: owner,
            })
        }
        (None, Some(n)) => {
            let verb = nonempty(&n.verb).ok_or("the review has no verb")?.to_ascii_lowercase();
            let path = nonempty(&n.path).ok_or("the review has no path")?;
            if !path.starts_with('/') {
                return Err(format!("the review's path `{path}` does not start with `/`"));
            }
            Ok(Mapped {
                user,
                groups,
                method: verb.to_ascii_uppercase(),
                resource_type: String::new(),
                verb,
                access_path: path,
                resource: None,
            })
        }
        (None, None) => Err("the review has neither resource nor non-resource attributes".into()),
    }
}

/// The cluster's own identities, always left to RBAC: the `system:masters` and `system:nodes`
/// groups, `system:` users other than service accounts and `system:anonymous` (the control
/// plane's components), and the service accounts of `kube-system`.
pub fn exempt(user: &str, groups: &[String]) -> bool {
    let control_plane = user.starts_with("system:")
        && !user.starts_with("system:serviceaccount:")
        && user != crate::engine::ANONYMOUS_USER;
    control_plane
        || user.starts_with("system:serviceaccount:kube-system:")
        || groups.iter().any(|g| g == "system:masters" || g == "system:nodes")
}

/// Decides a mapped review.
pub fn decide<'a>(snapshot: &'a Snapshot, m: &'a Mapped) -> Decision<'a> {
    snapshot.decide_resolved(&Resolved {
        subject: Some(Subject { user: &m.user, groups: &m.groups }),
        method: &m.method,
        resource_type: &m.resource_type,
        api_name: &m.verb,
        access_path: &m.access_path,
        resource: m.resource.as_deref(),
        ou: None,
        now: jiff::Timestamp::now(),
    })
}

/// The review's status for a decision.
pub fn status(d: &Decision<'_>, hard_deny: bool) -> SubjectAccessReviewStatus {
    let reason = Some(d.reason());
    match &d.outcome {
        Outcome::Allowed => SubjectAccessReviewStatus { allowed: true, reason, ..Default::default() },
        // Nothing allows it: no opinion, so that RBAC decides (or a deny, when asked for).
        Outcome::Denied(Denial::NoAllow) | Outcome::Unauthenticated => SubjectAccessReviewStatus {
            allowed: false,
            denied: hard_deny.then_some(true),
            reason,
            ..Default::default()
        },
        // A deny rule, or a broken object or unknown OU standing in for one.
        Outcome::Denied(_) => {
            SubjectAccessReviewStatus { allowed: false, denied: Some(true), reason, ..Default::default() }
        }
    }
}

/// A review that cannot be decided: an evaluation error, never an allow.
pub fn error(why: String) -> SubjectAccessReviewStatus {
    SubjectAccessReviewStatus { allowed: false, evaluation_error: Some(why), ..Default::default() }
}

/// A review with no opinion, for an exempt identity.
pub fn left_to_rbac() -> SubjectAccessReviewStatus {
    SubjectAccessReviewStatus {
        allowed: false,
        reason: Some("a Kubernetes system identity: left to the next authorizer".into()),
        ..Default::default()
    }
}

/// The review sent back: the request's, with its status.
pub fn answer(mut review: SubjectAccessReview, status: SubjectAccessReviewStatus) -> SubjectAccessReview {
    review.status = Some(status);
    review
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes};

    use super::*;

    fn resource(verb: &str, ns: &str, resource: &str, sub: &str, name: &str) -> SubjectAccessReviewSpec {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        SubjectAccessReviewSpec {
            user: Some("alice".into()),
            groups: Some(vec!["dev".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: s(verb),
                namespace: s(ns),
                resource: s(resource),
                subresource: s(sub),
                name: s(name),
                group: Some("batch".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_verb_has_its_method() {
        for (verb, method) in [
            ("get", "GET"),
            ("list", "GET"),
            ("watch", "GET"),
            ("create", "POST"),
            ("update", "PUT"),
            ("patch", "PATCH"),
            ("delete", "DELETE"),
            ("deletecollection", "DELETE"),
            ("bind", "BIND"),
            ("escalate", "ESCALATE"),
            ("impersonate", "IMPERSONATE"),
            ("use", "USE"),
            ("*", "*"),
            ("Create", "POST"),
            ("DELETE", "DELETE"),
        ] {
            let m = map(&resource(verb, "prod01", "jobs", "", "")).unwrap();
            assert_eq!((m.method.as_str(), m.verb.as_str()), (method, verb.to_ascii_lowercase().as_str()));
        }
    }

    #[test]
    fn namespaced_resources_subresources_and_names() {
        let m = map(&resource("get", "prod01", "jobs", "", "nightly")).unwrap();
        assert_eq!(m.resource_type, "k8s/jobs");
        assert_eq!(m.access_path, "/namespaces/prod01/jobs/nightly");
        assert_eq!(m.resource.as_deref(), Some("namespace/prod01"));
        assert_eq!((m.user.as_str(), m.groups.as_slice()), ("alice", &["dev".to_owned()][..]));

        let m = map(&resource("list", "prod01", "jobs", "", "")).unwrap();
        assert_eq!(m.access_path, "/namespaces/prod01/jobs");

        let m = map(&resource("get", "prod01", "pods", "log", "web-1")).unwrap();
        assert_eq!(m.resource_type, "k8s/pods/log");
        assert_eq!(m.access_path, "/namespaces/prod01/pods/web-1/log");
    }

    #[test]
    fn cluster_scoped_resources_and_namespaces_themselves() {
        let m = map(&resource("list", "", "nodes", "", "")).unwrap();
        assert_eq!((m.access_path.as_str(), m.resource.as_deref()), ("/cluster/nodes", None));
        let m = map(&resource("delete", "", "namespaces", "", "prod01")).unwrap();
        assert_eq!(m.access_path, "/cluster/namespaces/prod01");
        assert_eq!(m.resource.as_deref(), Some("namespace/prod01"), "a namespace is in its own OU");
    }

    #[test]
    fn names_cannot_add_segments() {
        let m = map(&resource("get", "prod01", "secrets", "", "a/../../x?y#z%2F")).unwrap();
        assert_eq!(m.access_path, "/namespaces/prod01/secrets/a%2F..%2F..%2Fx%3Fy%23z%252F");
    }

    #[test]
    fn non_resource_urls() {
        let spec = SubjectAccessReviewSpec {
            user: Some("alice".into()),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some("/healthz/etcd".into()),
                verb: Some("get".into()),
            }),
            ..Default::default()
        };
        let m = map(&spec).unwrap();
        assert_eq!((m.method.as_str(), m.verb.as_str(), m.access_path.as_str()), ("GET", "get", "/healthz/etcd"));
        assert_eq!((m.resource_type.as_str(), m.resource.as_deref()), ("", None));
    }

    #[test]
    fn incomplete_reviews_are_errors() {
        assert!(map(&SubjectAccessReviewSpec::default()).is_err());
        assert!(map(&resource("", "ns", "jobs", "", "")).is_err());
        assert!(map(&resource("get", "ns", "", "", "")).is_err());
    }

    #[test]
    fn system_identities_are_left_to_rbac() {
        let none: Vec<String> = vec![];
        assert!(exempt("system:kube-controller-manager", &none));
        assert!(exempt("system:serviceaccount:kube-system:replicaset-controller", &none));
        assert!(exempt("system:node:worker-1", &["system:nodes".into()]));
        assert!(exempt("admin", &["system:masters".into()]));
        assert!(!exempt("system:serviceaccount:tools:ci", &none));
        assert!(!exempt("system:anonymous", &["system:unauthenticated".into()]));
        assert!(!exempt("alice", &["system:authenticated".into()]));
    }
}

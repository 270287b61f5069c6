//! The decision of DESIGN §3: authenticate, resolve the operation, resolve the OU, collect
//! permission sets, then deny, allow, default.
//!
//! [`Snapshot::decide`] is the hot path: lookups and matches on the snapshot, borrowing from
//! it and from the request. [`Snapshot::explain`] runs the same code with a tracer that
//! records every binding, set and rule it looked at.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use smallvec::SmallVec;

use super::catalog::{Extractor, Piece, Route, Routed, Source, normalize_host};
use super::grants::{PathKeys, Tag};
use super::index::{Grant, PermissionSet, Scope, SetId, Snapshot};
use super::model::GLOBAL;
use super::ou::{OuId, Owner};
use super::request::{
    Claims, OU_HEADER, Request, Segments, Subject, query_param, scalar_text, split_path, upper_method,
};
use super::rules::{Attributes, Mismatch, RuleList, method_bit};

/// Which part of a permission set decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Allow,
    Deny,
    /// The `operations` shorthand.
    Operations,
}

/// The deciding rule: `PermissionSet/<name>/deny/<index>`, `/allow/<index>` or `/operations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRef<'a> {
    pub set: &'a str,
    pub side: Side,
    pub index: u32,
}

impl fmt::Display for RuleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.side {
            Side::Allow => write!(f, "PermissionSet/{}/allow/{}", self.set, self.index),
            Side::Deny => write!(f, "PermissionSet/{}/deny/{}", self.set, self.index),
            Side::Operations => write!(f, "PermissionSet/{}/operations", self.set),
        }
    }
}

/// What the decision came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Allowed,
    /// No valid identity: 401.
    Unauthenticated,
    /// 403, with why.
    Denied(Denial<'a>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial<'a> {
    /// A deny rule matched (the decision's `rule`).
    Rule,
    /// No allow rule matched.
    NoAllow,
    BadPath(&'static str),
    /// The host is not a valid URI authority: 400.
    BadHost,
    /// The request is inside a catalog that is not Ready.
    BrokenCatalog(&'a str),
    /// The request is inside a catalog whose `unmatched` is `Deny`, and no catalog routes it.
    Unmatched(&'a str),
    /// A binding of the subject that applies here is not Ready: (binding, why).
    BrokenBinding(&'a str, &'a str),
    /// A system-wide set whose scope covers the OU is not Ready.
    BrokenSystemWideSet(&'a str),
    /// The resource is listed by no OU, but differs from a listed id only in case or trailing
    /// characters: (requested, listed).
    NearMissResource(Cow<'a, str>, &'a str),
    MissingInput(&'a Extractor),
    UnknownOu(Cow<'a, str>),
    /// The resource is listed by an OU that is not in the index.
    ResourceInUnknownOu(Cow<'a, str>),
    /// The resource is listed by two or more OUs.
    ContestedResource(Cow<'a, str>),
    ResourceOutsideContext {
        resource: Cow<'a, str>,
        resource_ou: &'a str,
        context: &'a str,
    },
}

/// The answer, borrowing from the snapshot and the request.
#[derive(Clone, Debug)]
pub struct Decision<'a> {
    pub outcome: Outcome<'a>,
    pub subject: Option<Subject<'a>>,
    /// The effective OU once known, else the context OU once known.
    pub ou: Option<&'a str>,
    /// The context OU (the request's `X-Turnstile-OU` or `ou`, else `global`) once known.
    pub context_ou: Option<&'a str>,
    pub roles: SmallVec<[&'a str; 2]>,
    /// Empty when no catalog routes the request.
    pub operation: &'a str,
    /// The operation's resource type; empty when no catalog routes the request.
    pub resource_type: &'a str,
    pub rule: Option<RuleRef<'a>>,
}

impl<'a> Decision<'a> {
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    pub fn status(&self) -> u16 {
        match self.outcome {
            Outcome::Allowed => 200,
            Outcome::Unauthenticated => 401,
            Outcome::Denied(Denial::BadHost) => 400,
            Outcome::Denied(_) => 403,
        }
    }

    pub fn user(&self) -> Option<&'a str> {
        self.subject.map(|s| s.user)
    }

    /// The subject's groups followed by the groups every authenticated subject (and every
    /// service account) has, as in Kubernetes.
    pub fn groups(&self) -> Vec<Cow<'a, str>> {
        let Some(s) = self.subject else {
            return Vec::new();
        };
        let mut out: Vec<Cow<'a, str>> = s.groups.iter().map(|g| Cow::Borrowed(g.as_str())).collect();
        for g in implied_groups(s) {
            if !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    /// A sentence for people and for `X-Auth-Reason`.
    pub fn reason(&self) -> String {
        let op = if self.operation.is_empty() { "the request".to_owned() } else { format!("`{}`", self.operation) };
        match &self.outcome {
            Outcome::Allowed => match &self.rule {
                Some(r) => format!("allowed by {r}"),
                None => "allowed".to_owned(),
            },
            Outcome::Unauthenticated => "no valid identity".to_owned(),
            Outcome::Denied(d) => match d {
                Denial::Rule => match &self.rule {
                    Some(r) => format!("denied by {r}"),
                    None => "denied".to_owned(),
                },
                Denial::NoAllow => {
                    format!("no permission set allows {op} in organizational unit `{}`", self.ou.unwrap_or(GLOBAL))
                }
                Denial::BadPath(why) => (*why).to_owned(),
                Denial::BadHost => "the host is not a valid host name".to_owned(),
                Denial::BrokenCatalog(c) => {
                    format!("api catalog `{c}` covers this request but is not ready")
                }
                Denial::Unmatched(c) => {
                    format!("api catalog `{c}` covers this host and path but routes no operation for this request")
                }
                Denial::BrokenBinding(b, why) => {
                    format!("user binding `{b}` applies here but is not ready ({why}); it denies until it is fixed")
                }
                Denial::BrokenSystemWideSet(set) => {
                    format!("system-wide permission set `{set}` is not ready; it denies in its scope until it is fixed")
                }
                Denial::NearMissResource(r, listed) => format!(
                    "resource `{r}` is listed by no organizational unit, but `{listed}` is; ids are compared exactly"
                ),
                Denial::MissingInput(e) => {
                    format!("extractor `{e}` has no usable value in the request")
                }
                Denial::UnknownOu(o) => {
                    format!("organizational unit `{o}` is unknown or not ready")
                }
                Denial::ResourceInUnknownOu(r) => {
                    format!("resource `{r}` belongs to an organizational unit that is not ready")
                }
                Denial::ContestedResource(r) => {
                    format!("resource `{r}` is listed by more than one organizational unit and belongs to none")
                }
                Denial::ResourceOutsideContext { resource, resource_ou, context } => format!(
                    "resource `{resource}` is in organizational unit `{resource_ou}`, outside the context `{context}`"
                ),
            },
        }
    }

    /// The `/v1/check` answer (DESIGN §4).
    pub fn answer(&self) -> Answer {
        Answer {
            allowed: self.allowed(),
            status: self.status(),
            reason: self.reason(),
            user: self.user().map(str::to_owned),
            groups: self.groups().into_iter().map(Cow::into_owned).collect(),
            ou: self.ou.map(str::to_owned),
            roles: self.roles.iter().map(|r| (*r).to_owned()).collect(),
            operation: self.operation.to_owned(),
            rule: self.rule.map(|r| r.to_string()),
            trace: None,
        }
    }
}

/// The owned, serializable form of a decision.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Answer {
    pub allowed: bool,
    pub status: u16,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ou: Option<String>,
    pub roles: Vec<String>,
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
}

/// The user of a request without identity in anonymous mode, as in Kubernetes.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The one group of that user.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// Anonymous mode's subject: it is not authenticated, and no system-wide set applies to it.
pub(crate) fn is_anonymous(s: Subject<'_>) -> bool {
    s.user == ANONYMOUS_USER || s.groups.iter().any(|g| g == UNAUTHENTICATED_GROUP)
}

fn implied_groups(s: Subject<'_>) -> impl Iterator<Item = Cow<'static, str>> {
    let sa_namespace =
        s.user.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split_once(':')).map(|(ns, _)| ns);
    let authenticated = (!is_anonymous(s)).then_some(Cow::Borrowed("system:authenticated"));
    authenticated.into_iter().chain(
        sa_namespace.into_iter().flat_map(|ns| {
            [Cow::Borrowed("system:serviceaccounts"), Cow::Owned(format!("system:serviceaccounts:{ns}"))]
        }),
    )
}

/// The full account of an explained decision.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<TraceRoute>,
    pub access_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_ou: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_ou: Option<String>,
    pub bindings: Vec<TraceBinding>,
    pub permission_sets: Vec<TraceSet>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceRoute {
    pub catalog: String,
    pub operation: String,
    pub resource_type: String,
    pub template: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TraceBinding {
    pub name: String,
    pub applies: bool,
    pub why: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceSet {
    pub name: String,
    pub in_scope: bool,
    pub rules: Vec<TraceRule>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TraceRule {
    pub rule: String,
    pub matched: bool,
    /// The first field that did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<&'static str>,
}

/// Observes a decision. The no-op tracer compiles away.
pub(crate) trait Tracer {
    const ENABLED: bool;
    fn trace(&mut self) -> Option<&mut Trace>;
}

pub(crate) struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;
    #[inline(always)]
    fn trace(&mut self) -> Option<&mut Trace> {
        None
    }
}

impl Tracer for Trace {
    const ENABLED: bool = true;
    fn trace(&mut self) -> Option<&mut Trace> {
        Some(self)
    }
}

/// Reads extractor inputs from a request.
struct Inputs<'a, 'r> {
    req: &'r Request<'a>,
    route: &'a Route,
    path: &'r [Cow<'a, str>],
    query: &'a str,
}

impl<'a> Inputs<'a, '_> {
    /// An extractor's value; absent, empty, not a string or number, or holding `/` is missing.
    fn value(&self, e: &Extractor) -> Option<Cow<'a, str>> {
        let v = match e.source {
            Source::Claim => match self.req.claims {
                Claims::Token(claims) => claims.get(&*e.arg).and_then(scalar_text),
                Claims::Subject { user_claim } => {
                    self.req.subject.filter(|_| user_claim == &*e.arg).map(|s| Cow::Borrowed(s.user))
                }
            },
            Source::Path => self.route.param(&e.arg).map(|pos| self.path[pos].clone()),
            Source::Query => query_param(self.query, &e.arg),
            Source::Header => self.req.headers.get(&e.arg).map(Cow::Borrowed),
            Source::Body => self.req.body.and_then(|b| b.get(&*e.arg)).and_then(scalar_text),
        };
        v.filter(|v| !v.is_empty() && !v.contains('/'))
    }

    fn fill(&self, pieces: &'a [Piece]) -> Result<Segments<'a>, &'a Extractor> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(l) => Ok(Cow::Borrowed(&**l)),
                Piece::Extract(e) => self.value(e).ok_or(e),
            })
            .collect()
    }
}

/// Step 1: a decision under way and its subject; without one (no user, or a blank one, is no
/// identity) the decision is already the 401.
fn begin<'a>(subject: Option<Subject<'a>>, operation: &'a str) -> (Decision<'a>, Option<Subject<'a>>) {
    let mut d = Decision {
        outcome: Outcome::Allowed,
        subject,
        ou: None,
        context_ou: None,
        roles: SmallVec::new(),
        operation,
        resource_type: "",
        rule: None,
    };
    let subject = subject.filter(|s| !s.user.trim().is_empty());
    if subject.is_none() {
        d.subject = None;
        d.outcome = Outcome::Unauthenticated;
    }
    (d, subject)
}

/// What the rules see of the operation: its resource type, and both as the domain's ids when
/// a catalog route gave them (`None`: match the strings).
struct Operation<'a> {
    resource_type: &'a str,
    resource_type_id: Option<u32>,
    op: Option<u32>,
}

/// A request whose operation is known, before its OU and rules are.
struct Pending<'a, 'p> {
    subject: Subject<'a>,
    /// Uppercased.
    method: &'p str,
    access_path: &'p [Cow<'a, str>],
    resource: Option<Cow<'a, str>>,
    context_name: Cow<'a, str>,
    now: jiff::Timestamp,
}

/// A request whose operation its caller resolved without a catalog: kube-apiserver's
/// SubjectAccessReview names the resource type, verb and namespace itself. It is decided from
/// step 3 of DESIGN §3 on, by the same code as [`Request`]s.
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    /// `None`: no valid identity (401).
    pub subject: Option<Subject<'a>>,
    /// Any case; uppercased before rules see it.
    pub method: &'a str,
    /// `k8s/pods`; empty for none.
    pub resource_type: &'a str,
    /// The operation ID the rules' `apiName` and `operations` see (a verb, for a review).
    pub api_name: &'a str,
    /// `/namespaces/ns/pods/name`: split and checked as a request path is.
    pub access_path: &'a str,
    /// The resource whose OU the request is in (`namespace/ns`), if any.
    pub resource: Option<&'a str>,
    /// The context OU; `None` is `global`.
    pub ou: Option<&'a str>,
    pub now: jiff::Timestamp,
}

impl Snapshot {
    /// Decides a request whose operation is already resolved.
    pub fn decide_resolved<'a>(&'a self, r: &Resolved<'a>) -> Decision<'a> {
        self.run_resolved(r, &mut NoTrace)
    }

    /// Decides a resolved request and records why.
    pub fn explain_resolved<'a>(&'a self, r: &Resolved<'a>) -> (Decision<'a>, Trace) {
        let mut trace = Trace::default();
        let decision = self.run_resolved(r, &mut trace);
        (decision, trace)
    }

    fn run_resolved<'a, T: Tracer>(&'a self, r: &Resolved<'a>, tracer: &mut T) -> Decision<'a> {
        let (mut d, subject) = begin(r.subject, r.api_name);
        d.resource_type = r.resource_type;
        let Some(subject) = subject else { return d };
        let (access_path, _) = match split_path(r.access_path) {
            Ok(p) => p,
            Err(e) => {
                d.outcome = Outcome::Denied(Denial::BadPath(e.message()));
                return d;
            }
        };
        let method = upper_method(r.method);
        if let Some(t) = tracer.trace() {
            t.access_path = format!("/{}", access_path.join("/"));
            t.resource = r.resource.map(str::to_owned);
        }
        let operation = Operation { resource_type: r.resource_type, resource_type_id: None, op: None };
        let pending = Pending {
            subject,
            method: &method,
            access_path: &access_path,
            resource: r.resource.map(Cow::Borrowed),
            context_name: Cow::Borrowed(r.ou.unwrap_or(GLOBAL)),
            now: r.now,
        };
        self.finish(d, operation, pending, tracer)
    }

    /// Decides a request.
    pub fn decide<'a>(&'a self, req: &Request<'a>) -> Decision<'a> {
        self.run(req, &mut NoTrace)
    }

    /// Decides a request and records why.
    pub fn explain<'a>(&'a self, req: &Request<'a>) -> (Decision<'a>, Trace) {
        let mut trace = Trace::default();
        let decision = self.run(req, &mut trace);
        (decision, trace)
    }

    fn run<'a, T: Tracer>(&'a self, req: &Request<'a>, tracer: &mut T) -> Decision<'a> {
        let deny = |mut d: Decision<'a>, why: Denial<'a>| {
            d.outcome = Outcome::Denied(why);
            d
        };
        // 1. authenticate
        let (mut d, subject) = begin(req.subject, "");
        let Some(subject) = subject else { return d };

        // 2. resolve the operation
        let method = upper_method(req.method);
        let Ok(host) = normalize_host(req.host) else {
            return deny(d, Denial::BadHost);
        };
        let (path, query) = match split_path(req.path) {
            Ok(p) => p,
            Err(e) => return deny(d, Denial::BadPath(e.message())),
        };
        let route = match self.router.route(&method, &host, &path) {
            Routed::Route(r) => Some(r),
            Routed::Broken(name) => return deny(d, Denial::BrokenCatalog(name)),
            Routed::Unmatched(name) => return deny(d, Denial::Unmatched(name)),
            Routed::None => None,
        };
        let filled;
        let mut access_path: &[Cow<'a, str>] = &path;
        let mut resource: Option<Cow<'a, str>> = None;
        if let Some(route) = route {
            d.operation = &route.operation;
            d.resource_type = &route.resource_type;
            let inputs = Inputs { req, route, path: &path, query };
            if let Some(pieces) = &route.access_path {
                match inputs.fill(pieces) {
                    Ok(segs) => filled = segs,
                    Err(e) => return deny(d, Denial::MissingInput(e)),
                }
                access_path = &filled;
            }
            if let Some(pieces) = &route.resource {
                match inputs.fill(pieces) {
                    Ok(segs) if segs.len() == 1 => resource = segs.into_iter().next(),
                    Ok(segs) => resource = Some(Cow::Owned(segs.join("/"))),
                    Err(e) => return deny(d, Denial::MissingInput(e)),
                }
            }
        }
        if let Some(t) = tracer.trace() {
            t.route = route.map(|r| TraceRoute {
                catalog: r.catalog.to_string(),
                operation: r.operation.to_string(),
                resource_type: r.resource_type.to_string(),
                template: r.template.to_string(),
            });
            t.access_path = format!("/{}", access_path.join("/"));
            t.resource = resource.as_ref().map(|r| r.to_string());
        }

        let context_name: Cow<'a, str> = match req.ou.or_else(|| req.headers.get(OU_HEADER)) {
            Some(ou) => Cow::Borrowed(ou),
            None => query_param(query, "ou").unwrap_or(Cow::Borrowed(GLOBAL)),
        };
        let operation = Operation {
            resource_type: route.map_or("", |r| &r.resource_type),
            resource_type_id: Some(route.map_or(0, |r| r.resource_type_id)),
            op: Some(route.map_or(0, |r| r.op_id)),
        };
        let pending = Pending { subject, method: &method, access_path, resource, context_name, now: req.now };
        self.finish(d, operation, pending, tracer)
    }

    /// Steps 3 to 5, once the operation is known: resolve the OU, collect the sets, match.
    fn finish<'a, T: Tracer>(
        &'a self,
        mut d: Decision<'a>,
        operation: Operation<'a>,
        pending: Pending<'a, '_>,
        tracer: &mut T,
    ) -> Decision<'a> {
        let deny = |mut d: Decision<'a>, why: Denial<'a>| {
            d.outcome = Outcome::Denied(why);
            d
        };
        let Pending { subject, method, access_path, resource, context_name, now } = pending;

        // 3. resolve the OU
        let Some(context) = self.ous.get(&context_name) else {
            return deny(d, Denial::UnknownOu(context_name));
        };
        d.ou = Some(self.ous.name(context));
        d.context_ou = d.ou;
        let effective = match &resource {
            None => context,
            Some(r) => {
                let owner = match self.ous.owner(r) {
                    None => match self.ous.near_miss(r) {
                        Some(listed) => return deny(d, Denial::NearMissResource(resource.unwrap(), listed)),
                        None => OuId::GLOBAL,
                    },
                    Some(Owner::Ou(id)) => id,
                    Some(Owner::Unknown) => {
                        return deny(d, Denial::ResourceInUnknownOu(resource.unwrap()));
                    }
                    Some(Owner::Contested) => {
                        return deny(d, Denial::ContestedResource(resource.unwrap()));
                    }
                };
                if !self.ous.covers(context, owner) {
                    let why = Denial::ResourceOutsideContext {
                        resource: resource.unwrap(),
                        resource_ou: self.ous.name(owner),
                        context: self.ous.name(context),
                    };
                    return deny(d, why);
                }
                owner
            }
        };
        d.ou = Some(self.ous.name(effective));
        if let Some(t) = tracer.trace() {
            t.context_ou = Some(self.ous.name(context).to_owned());
            t.effective_ou = d.ou.map(str::to_owned);
        }

        // The grant index is looked up before the sets are known: fetching what it found
        // overlaps with reading the subject's bindings.
        let found = (!self.by_path.is_empty()).then(|| self.by_path.lookup(&PathKeys::of(access_path)));

        // 4. collect permission sets
        let sets = match self.collect_sets(subject, effective, now, &mut d.roles, tracer) {
            Ok(sets) => sets,
            Err(why) => return deny(d, why),
        };

        // 5. deny, then allow, then default
        let attrs = Attributes {
            resource_type: operation.resource_type,
            api_name: d.operation,
            method,
            access_path,
            resource_type_id: operation.resource_type_id,
            op: operation.op,
            method_bit: method_bit(method),
        };
        // Of what the look-up found, the tags of the request's sets whose rules admit its
        // method, sorted by set: each set's share serves its deny and its allow rules.
        let mut on_path: SmallVec<[Tag; 32]> = SmallVec::new();
        if let Some(found) = &found {
            found.select(&sets, attrs.method_bit, &mut on_path);
            on_path.sort_unstable();
            on_path.dedup();
        }
        // The sets to look at, with their tags: those the index found grants of, and those
        // with rules it does not hold; with a tracer, every set.
        let visits = || {
            let mut rest = &on_path[..];
            sets.iter().filter_map(move |&id| {
                let (mine, after) = rest.split_at(rest.iter().take_while(|t| t.owner() == id).count());
                rest = after;
                let look = T::ENABLED || !mine.is_empty() || self.set_heads[id as usize].unindexed;
                look.then(|| (&self.sets[id as usize], mine))
            })
        };
        let mut deciding: Option<(RuleRef<'a>, bool)> = None;
        for (set, on_path) in visits() {
            if let Some(i) = evaluate(set, &set.deny, Side::Deny, &attrs, on_path, tracer) {
                if deciding.is_none() {
                    deciding = Some((RuleRef { set: &set.name, side: Side::Deny, index: i }, false));
                }
                if !T::ENABLED {
                    break;
                }
            }
        }
        // A deny decides: the allow side is only read for the trace.
        let denied = deciding.is_some() && !T::ENABLED;
        for (set, on_path) in visits().take_while(|_| !denied) {
            let by_operation = set.operations.as_ref().is_some_and(|ops| ops.contains(d.operation));
            if let Some(t) = tracer.trace()
                && set.operations.is_some()
            {
                let rule = RuleRef { set: &set.name, side: Side::Operations, index: 0 }.to_string();
                let mismatch = (!by_operation).then_some("operations");
                t.set(&set.name).rules.push(TraceRule { rule, matched: by_operation, mismatch });
            }
            let found = if by_operation && !T::ENABLED {
                Some(RuleRef { set: &set.name, side: Side::Operations, index: 0 })
            } else {
                let rule = evaluate(set, &set.allow, Side::Allow, &attrs, on_path, tracer).map(|i| RuleRef {
                    set: &set.name,
                    side: Side::Allow,
                    index: i,
                });
                if by_operation { Some(RuleRef { set: &set.name, side: Side::Operations, index: 0 }) } else { rule }
            };
            if let Some(r) = found {
                if deciding.is_none() {
                    deciding = Some((r, true));
                }
                if !T::ENABLED {
                    break;
                }
            }
        }
        match deciding {
            Some((rule, allowed)) => {
                d.rule = Some(rule);
                if allowed { d } else { deny(d, Denial::Rule) }
            }
            None => deny(d, Denial::NoAllow),
        }
    }

    /// Every system-wide set (for a subject that is not anonymous), plus the sets of the
    /// subject's active bindings that name the effective OU or an ancestor; then only those
    /// whose scope covers the OU. Sorted by name. A system-wide set or an applying binding
    /// that is not Ready denies.
    pub(crate) fn collect_sets<'a, T: Tracer>(
        &'a self,
        subject: Subject<'_>,
        ou: OuId,
        now: jiff::Timestamp,
        roles: &mut SmallVec<[&'a str; 2]>,
        tracer: &mut T,
    ) -> Result<SmallVec<[SetId; 16]>, Denial<'a>> {
        if let Some(broken) = self.broken_system_wide.iter().find(|b| self.in_scope(&b.scope, ou)) {
            return Err(Denial::BrokenSystemWideSet(&broken.name));
        }
        // (binding, names the OU or an ancestor); with a tracer, every binding of the subject.
        let mut bindings: SmallVec<[(u32, bool); 8]> = SmallVec::new();
        let mut add = |grants: &[Grant]| {
            for g in grants {
                let covers = self.ous.covers(g.ou, ou);
                if covers || T::ENABLED {
                    bindings.push((g.binding, covers));
                }
            }
        };
        if let Some(grants) = self.by_user.get(subject.user) {
            add(grants);
        }
        if !self.by_group.is_empty() {
            for g in subject.groups {
                if let Some(grants) = self.by_group.get(g.as_str()) {
                    add(grants);
                }
            }
            for g in implied_groups(subject) {
                if let Some(grants) = self.by_group.get(&*g) {
                    add(grants);
                }
            }
        }
        // covering grants sort after the others of the same binding, so `dedup` keeps them
        bindings.sort_unstable_by_key(|(id, covers)| (*id, !covers));
        bindings.dedup_by_key(|(id, _)| *id);

        let mut role_ids: SmallVec<[u32; 4]> = SmallVec::new();
        let mut sets: SmallVec<[SetId; 16]> = SmallVec::new();
        if !is_anonymous(subject) {
            sets.extend_from_slice(&self.system_wide);
        }
        let mut broken = None;
        for &(id, covers) in &bindings {
            let b = &self.bindings[id as usize];
            let active = b.expires_at.is_none_or(|t| now < t);
            let applies = active && covers;
            if applies && let Some(why) = &b.broken {
                broken.get_or_insert(Denial::BrokenBinding(&b.name, why));
            }
            if let Some(t) = tracer.trace() {
                let why = if !active {
                    "expired".to_owned()
                } else if applies && let Some(why) = &b.broken {
                    format!("not ready ({why}): denies")
                } else if applies {
                    format!("names `{}` or an ancestor", self.ous.name(ou))
                } else {
                    format!("names no organizational unit at or above `{}`", self.ous.name(ou))
                };
                t.bindings.push(TraceBinding { name: b.name.to_string(), applies, why });
            }
            if applies {
                sets.extend_from_slice(&b.sets);
                role_ids.extend(b.role);
            }
        }
        role_ids.sort_unstable();
        role_ids.dedup();
        roles.extend(role_ids.iter().map(|r| &*self.roles[*r as usize].name));
        roles.sort_unstable();
        sets.sort_unstable();
        sets.dedup();
        if let Some(why) = broken {
            return Err(why);
        }
        sets.retain(|id| {
            let in_scope = self.in_scope(&self.set_heads[*id as usize].scope, ou);
            if let Some(t) = tracer.trace() {
                let name = self.sets[*id as usize].name.to_string();
                t.permission_sets.push(TraceSet { name, in_scope, rules: Vec::new() });
            }
            in_scope
        });
        Ok(sets)
    }

    fn in_scope(&self, scope: &Scope, ou: OuId) -> bool {
        match scope {
            Scope::All => true,
            Scope::Within(ous) => ous.iter().any(|s| self.ous.covers(*s, ou)),
        }
    }
}

impl Trace {
    fn set(&mut self, name: &str) -> &mut TraceSet {
        let pos = self.permission_sets.iter().position(|s| s.name == name).expect("traced sets are listed first");
        &mut self.permission_sets[pos]
    }
}

/// The first rule of one side that matches; with a tracer, every rule is checked and recorded.
fn evaluate<S: AsRef<str>, T: Tracer>(
    set: &PermissionSet,
    rules: &RuleList,
    side: Side,
    attrs: &Attributes<'_, S>,
    on_path: &[Tag],
    tracer: &mut T,
) -> Option<u32> {
    // Both paths decide each rule with `Rule::check`; the trace only looks at every rule.
    let Some(t) = tracer.trace() else {
        return rules.first_match(attrs, on_path);
    };
    let mut first = None;
    let traced = t.set(&set.name);
    for (i, rule) in rules.rules.iter().enumerate() {
        let result = rule.check(attrs);
        let index = i as u32;
        if result.is_ok() && first.is_none() {
            first = Some(index);
        }
        traced.rules.push(TraceRule {
            rule: RuleRef { set: &set.name, side, index }.to_string(),
            matched: result.is_ok(),
            mismatch: result.err().map(Mismatch::field),
        });
    }
    first
}

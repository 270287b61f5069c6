//! Compiled permission-set rules.
//!
//! A rule has up to four fields; each is a full, anchored, case-sensitive regex (or, for
//! `paths`, a list of feature-path grants). A rule matches when every field it sets matches.
//! Rules of one side (allow or deny) are bucketed by literal `apiName` at build time, so a
//! decision looks at the rules that can apply to its operation plus the few with a pattern.

use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use smallvec::SmallVec;

use super::HashMap;
use super::model::RuleDef;
use super::report::{Problem, Reason};

/// Compiled-size limit for one pattern (the regex crate's default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles each distinct pattern once per build.
#[derive(Default)]
pub(crate) struct RegexCache {
    compiled: HashMap<String, Arc<Regex>>,
}

impl RegexCache {
    pub(crate) fn matcher(&mut self, pattern: &str) -> Result<Matcher, String> {
        if regex::escape(pattern) == pattern {
            return Ok(Matcher::Literal(pattern.into()));
        }
        if let Some(re) = self.compiled.get(pattern) {
            return Ok(Matcher::Regex(re.clone()));
        }
        let re = RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("invalid regex `{pattern}`: {}", first_line(&e.to_string())))?;
        let re = Arc::new(re);
        self.compiled.insert(pattern.to_owned(), re.clone());
        Ok(Matcher::Regex(re))
    }
}

fn first_line(s: &str) -> String {
    // regex errors carry a multi-line caret diagram; the last line says what is wrong.
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_owned()
}

/// One field of a rule.
#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    /// A pattern without metacharacters: compared as a string.
    Literal(Box<str>),
    Regex(Arc<Regex>),
}

impl Matcher {
    #[inline]
    pub(crate) fn is_match(&self, value: &str) -> bool {
        match self {
            Matcher::Literal(l) => **l == *value,
            Matcher::Regex(re) => re.is_match(value),
        }
    }
}

/// A feature-path grant: `/`-separated segments, `*` matching exactly one segment. A grant
/// covers the node it names and everything below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    /// `None` is `*`.
    pub(crate) segments: Box<[Option<Box<str>>]>,
}

impl PathPattern {
    pub(crate) fn parse(raw: &str) -> Result<PathPattern, String> {
        if !raw.starts_with('/') {
            return Err(format!("path grant `{raw}` must start with `/`"));
        }
        let segments = raw.split('/').filter(|s| !s.is_empty()).map(|s| (s != "*").then(|| s.into())).collect();
        Ok(PathPattern { segments })
    }

    /// Does this grant cover the access path (given as its segments)?
    #[inline]
    pub(crate) fn covers<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.segments.len() <= path.len()
            && self.segments.iter().zip(path).all(|(p, s)| p.as_deref().is_none_or(|p| p == s.as_ref()))
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|s| s.as_deref().unwrap_or("*"))
    }
}

/// The attributes of a request that rules look at.
pub(crate) struct Attributes<'a, S> {
    pub resource_type: &'a str,
    pub api_name: &'a str,
    pub method: &'a str,
    pub access_path: &'a [S],
    /// The same values as domain ids, for the precomputed tables.
    pub resource_type_id: u32,
    pub op: u32,
    pub method_bit: u16,
}

/// Why a rule did not match: the first field that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    ResourceType,
    ApiName,
    Methods,
    Paths,
}

impl Mismatch {
    pub fn field(self) -> &'static str {
        match self {
            Mismatch::ResourceType => "resourceType",
            Mismatch::ApiName => "apiName",
            Mismatch::Methods => "methods",
            Mismatch::Paths => "paths",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub resource_type: Option<Matcher>,
    pub api_name: Option<Matcher>,
    pub methods: Option<Matcher>,
    pub paths: Option<Box<[PathPattern]>>,
    /// Standard methods the `methods` regex admits (all when absent).
    methods_mask: u16,
    /// Domain resource types the `resourceType` regex matches (any when absent).
    resource_type_ids: Option<Arc<[u32]>>,
}

impl Rule {
    pub(crate) fn compile(def: &RuleDef, cache: &mut RegexCache) -> Result<Rule, Problem> {
        let mut field = |p: &Option<String>| {
            p.as_deref().map(|p| cache.matcher(p)).transpose().map_err(|e| Problem::new(Reason::InvalidRegex, e))
        };
        let resource_type = field(&def.resource_type)?;
        let api_name = field(&def.api_name)?;
        let methods = field(&def.methods)?;
        let spec = |m: String| Problem::new(Reason::InvalidSpec, m);
        let paths = match &def.paths {
            Some(ps) if ps.is_empty() => {
                return Err(spec("`paths` is empty: leave it out to mean any path".into()));
            }
            Some(ps) => Some(ps.iter().map(|p| PathPattern::parse(p)).collect::<Result<Box<[_]>, _>>().map_err(spec)?),
            None => None,
        };
        Ok(Rule { resource_type, api_name, methods, paths, methods_mask: u16::MAX, resource_type_ids: None })
    }

    /// Checks every field but `apiName` (matched by the operation index) from the
    /// precomputed tables: the hot path.
    #[inline]
    fn check_indexed<S: AsRef<str>>(&self, a: &Attributes<'_, S>) -> bool {
        let method_ok = match (a.method_bit, &self.methods) {
            (0, Some(m)) => m.is_match(a.method),
            (bit, _) => self.methods_mask & bit != 0,
        };
        method_ok
            && self.resource_type_ids.as_ref().is_none_or(|ids| ids.binary_search(&a.resource_type_id).is_ok())
            && self.paths.as_ref().is_none_or(|ps| ps.iter().any(|p| p.covers(a.access_path)))
    }

    /// Checks every field by its pattern, saying which one failed: the explain path.
    pub(crate) fn check<S: AsRef<str>>(&self, a: &Attributes<'_, S>) -> Result<(), Mismatch> {
        let ok = |m: &Option<Matcher>, v: &str| m.as_ref().is_none_or(|m| m.is_match(v));
        if !ok(&self.api_name, a.api_name) {
            return Err(Mismatch::ApiName);
        }
        if !ok(&self.methods, a.method) {
            return Err(Mismatch::Methods);
        }
        if !ok(&self.resource_type, a.resource_type) {
            return Err(Mismatch::ResourceType);
        }
        if let Some(paths) = &self.paths
            && !paths.iter().any(|p| p.covers(a.access_path))
        {
            return Err(Mismatch::Paths);
        }
        Ok(())
    }

    /// True when the rule looks at nothing but `paths`.
    pub(crate) fn is_path_only(&self) -> bool {
        self.resource_type.is_none() && self.api_name.is_none() && self.methods.is_none()
    }
}

/// The methods rules are precomputed for; any other method is matched by its regex.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];

/// Bit of a standard method, 0 for any other.
#[inline]
pub(crate) fn method_bit(method: &str) -> u16 {
    METHODS.iter().position(|m| *m == method).map_or(0, |i| 1 << i)
}

/// Every value a rule's `apiName` and `resourceType` can be asked about: the operation IDs
/// and resource types of the Ready catalogs, plus the empty value of uncatalogued requests
/// (id 0). Rules are matched against it once, when the index is built.
#[derive(Clone, Debug, Default)]
pub(crate) struct Domain {
    ops: Vec<Box<str>>,
    op_ids: HashMap<Box<str>, u32>,
    resource_types: Vec<Box<str>>,
    resource_type_ids: HashMap<Box<str>, u32>,
}

impl Domain {
    pub(crate) fn new() -> Domain {
        let mut d = Domain::default();
        d.op("");
        d.resource_type("");
        d
    }

    fn intern(values: &mut Vec<Box<str>>, ids: &mut HashMap<Box<str>, u32>, v: &str) -> u32 {
        if let Some(id) = ids.get(v) {
            return *id;
        }
        let id = values.len() as u32;
        values.push(v.into());
        ids.insert(v.into(), id);
        id
    }

    pub(crate) fn op(&mut self, v: &str) -> u32 {
        Self::intern(&mut self.ops, &mut self.op_ids, v)
    }

    pub(crate) fn resource_type(&mut self, v: &str) -> u32 {
        Self::intern(&mut self.resource_types, &mut self.resource_type_ids, v)
    }
}

/// Compiles rules against a domain, evaluating each distinct pattern once.
pub(crate) struct RuleCompiler<'d> {
    regexes: RegexCache,
    domain: &'d Domain,
    api_names: HashMap<String, Arc<[u32]>>,
    resource_types: HashMap<String, Arc<[u32]>>,
}

impl<'d> RuleCompiler<'d> {
    pub(crate) fn new(domain: &'d Domain) -> Self {
        RuleCompiler {
            regexes: RegexCache::default(),
            domain,
            api_names: HashMap::default(),
            resource_types: HashMap::default(),
        }
    }

    /// Ids of the domain values a pattern matches, sorted.
    fn matching(
        cache: &mut HashMap<String, Arc<[u32]>>,
        pattern: &str,
        matcher: &Matcher,
        values: &[Box<str>],
    ) -> Arc<[u32]> {
        if let Some(ids) = cache.get(pattern) {
            return ids.clone();
        }
        let ids: Arc<[u32]> = (0..values.len() as u32).filter(|i| matcher.is_match(&values[*i as usize])).collect();
        cache.insert(pattern.to_owned(), ids.clone());
        ids
    }

    /// Compiles one side of a set.
    pub(crate) fn side(&mut self, defs: &[RuleDef]) -> Result<RuleList, (usize, Problem)> {
        let mut rules = Vec::with_capacity(defs.len());
        let mut by_op: HashMap<u32, SmallVec<[u32; 2]>> = HashMap::default();
        let mut any_op = Vec::new();
        for (i, def) in defs.iter().enumerate() {
            let mut rule = Rule::compile(def, &mut self.regexes).map_err(|p| (i, p))?;
            let index = i as u32;
            match (&rule.api_name, &def.api_name) {
                (Some(m), Some(p)) => {
                    for op in Self::matching(&mut self.api_names, p, m, &self.domain.ops).iter() {
                        by_op.entry(*op).or_default().push(index);
                    }
                }
                _ => any_op.push(index),
            }
            if let (Some(m), Some(p)) = (&rule.resource_type, &def.resource_type) {
                rule.resource_type_ids =
                    Some(Self::matching(&mut self.resource_types, p, m, &self.domain.resource_types));
            }
            if let Some(m) = &rule.methods {
                rule.methods_mask =
                    METHODS.iter().enumerate().filter(|(_, v)| m.is_match(v)).fold(0, |acc, (b, _)| acc | 1 << b);
            }
            rules.push(rule);
        }
        Ok(RuleList { rules: rules.into(), by_op, any_op: any_op.into() })
    }
}

/// The rules of one side of a permission set, indexed by the operations they can match.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleList {
    pub rules: Box<[Rule]>,
    /// Domain operation id → rules whose `apiName` matches it, in order.
    by_op: HashMap<u32, SmallVec<[u32; 2]>>,
    /// Rules without `apiName`, in order.
    any_op: Box<[u32]>,
}

impl RuleList {
    /// Index of the first rule that matches, from the precomputed tables.
    #[inline]
    pub(crate) fn first_match<S: AsRef<str>>(&self, a: &Attributes<'_, S>) -> Option<u32> {
        let bucket: &[u32] = match self.by_op.is_empty() {
            true => &[],
            false => self.by_op.get(&a.op).map_or(&[], |b| b.as_slice()),
        };
        let (mut x, mut y) = (bucket.iter().peekable(), self.any_op.iter().peekable());
        loop {
            let i = match (x.peek(), y.peek()) {
                (Some(&&p), Some(&&q)) if p < q => x.next(),
                (Some(_), Some(_)) | (None, Some(_)) => y.next(),
                (Some(_), None) => x.next(),
                (None, None) => return None,
            };
            let i = *i.expect("peeked");
            if self.rules[i as usize].check_indexed(a) {
                return Some(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_anchored_and_case_sensitive() {
        let mut c = RegexCache::default();
        let m = c.matcher("aws/.*").unwrap();
        assert!(m.is_match("aws/s3"));
        assert!(!m.is_match("x-aws/s3"));
        let m = c.matcher("GET|HEAD").unwrap();
        assert!(m.is_match("HEAD"));
        assert!(!m.is_match("get"));
        assert!(!m.is_match("GETX"));
    }

    #[test]
    fn empty_pattern_matches_only_empty() {
        let m = RegexCache::default().matcher("").unwrap();
        assert!(m.is_match(""));
        assert!(!m.is_match("x"));
    }

    #[test]
    fn identical_patterns_share_one_regex() {
        let mut c = RegexCache::default();
        let (Matcher::Regex(a), Matcher::Regex(b)) = (c.matcher("a.*").unwrap(), c.matcher("a.*").unwrap()) else {
            panic!("expected regexes")
        };
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn invalid_and_oversized_regexes_are_errors() {
        let mut c = RegexCache::default();
        assert!(c.matcher("(").unwrap_err().contains("invalid regex `(`"));
        assert!(c.matcher("(a{1000}){1000}").is_err());
    }

    #[test]
    fn path_grants_cover_their_subtree_and_star_is_one_segment() {
        let p = PathPattern::parse("/workspaces/*/clusters").unwrap();
        assert!(p.covers(&["workspaces", "id-1", "clusters"]));
        assert!(p.covers(&["workspaces", "id-1", "clusters", "id-10", "query"]));
        assert!(!p.covers(&["workspaces", "id-1"]));
        assert!(!p.covers(&["workspaces", "id-1", "backups"]));
        let root = PathPattern::parse("/").unwrap();
        assert!(root.covers::<&str>(&[]));
        assert!(PathPattern::parse("workspaces").is_err());
    }

    #[test]
    fn first_match_agrees_with_checking_rules_in_order() {
        let mut domain = Domain::new();
        for op in ["GetSecret", "ListJobs", "ListBuckets"] {
            domain.op(op);
        }
        for rt in ["k8s/secret", "k8s/job", "aws/s3"] {
            domain.resource_type(rt);
        }
        let rule = |api: Option<&str>, rt: Option<&str>, m: Option<&str>| RuleDef {
            api_name: api.map(Into::into),
            resource_type: rt.map(Into::into),
            methods: m.map(Into::into),
            paths: None,
        };
        let defs = [
            rule(Some("Get.*"), None, Some("POST")),
            rule(Some("GetSecret"), None, None),
            rule(None, Some("k8s/.*"), Some("GET|PROPFIND")),
            rule(Some("List.*"), Some("aws/s3"), None),
        ];
        let list = RuleCompiler::new(&domain).side(&defs).unwrap();
        for (rt, api, method, expected) in [
            ("k8s/secret", "GetSecret", "GET", Some(1)),
            ("k8s/secret", "GetSecret", "POST", Some(0)),
            ("k8s/job", "ListJobs", "GET", Some(2)),
            ("k8s/job", "ListJobs", "PROPFIND", Some(2)),
            ("k8s/job", "ListJobs", "DELETE", None),
            ("aws/s3", "ListBuckets", "DELETE", Some(3)),
            ("", "", "GET", None),
        ] {
            let a = Attributes {
                resource_type: rt,
                api_name: api,
                method,
                access_path: &[] as &[&str],
                resource_type_id: domain.resource_type(rt),
                op: domain.op(api),
                method_bit: method_bit(method),
            };
            assert_eq!(list.first_match(&a), expected, "{api} {method}");
            let slow = list.rules.iter().position(|r| r.check(&a).is_ok()).map(|i| i as u32);
            assert_eq!(slow, expected, "{api} {method}: explain path");
        }
    }
}

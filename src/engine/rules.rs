//! Compiled permission-set rules.
//!
//! A rule has up to four fields; each is a full, anchored, case-sensitive regex (or, for
//! `paths`, a list of feature-path grants). A rule matches when every field it sets matches.
//! Rules of one side (allow or deny) are bucketed by literal `apiName` at build time, so a
//! decision looks at the rules that can apply to its operation plus the few with a pattern.

use std::collections::HashMap;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use smallvec::SmallVec;

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
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
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
        let segments = raw
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| (s != "*").then(|| s.into()))
            .collect();
        Ok(PathPattern { segments })
    }

    /// Does this grant cover the access path (given as its segments)?
    #[inline]
    pub(crate) fn covers<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.segments.len() <= path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(p, s)| p.as_deref().is_none_or(|p| p == s.as_ref()))
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
}

impl Rule {
    pub(crate) fn compile(def: &RuleDef, cache: &mut RegexCache) -> Result<Rule, Problem> {
        let mut field = |p: &Option<String>| {
            p.as_deref()
                .map(|p| cache.matcher(p))
                .transpose()
                .map_err(|e| Problem::new(Reason::InvalidRegex, e))
        };
        let resource_type = field(&def.resource_type)?;
        let api_name = field(&def.api_name)?;
        let methods = field(&def.methods)?;
        let spec = |m: String| Problem::new(Reason::InvalidSpec, m);
        let paths = match &def.paths {
            Some(ps) if ps.is_empty() => {
                return Err(spec(
                    "`paths` is empty: leave it out to mean any path".into(),
                ));
            }
            Some(ps) => Some(
                ps.iter()
                    .map(|p| PathPattern::parse(p))
                    .collect::<Result<Box<[_]>, _>>()
                    .map_err(spec)?,
            ),
            None => None,
        };
        Ok(Rule {
            resource_type,
            api_name,
            methods,
            paths,
        })
    }

    /// Checks every field but `apiName` (already matched by the bucket).
    #[inline]
    fn check_rest<S: AsRef<str>>(&self, a: &Attributes<'_, S>) -> Result<(), Mismatch> {
        let ok = |m: &Option<Matcher>, v: &str| m.as_ref().is_none_or(|m| m.is_match(v));
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

    #[inline]
    pub(crate) fn check<S: AsRef<str>>(&self, a: &Attributes<'_, S>) -> Result<(), Mismatch> {
        if let Some(m) = &self.api_name
            && !m.is_match(a.api_name)
        {
            return Err(Mismatch::ApiName);
        }
        self.check_rest(a)
    }

    /// True when the rule looks at nothing but `paths`.
    pub(crate) fn is_path_only(&self) -> bool {
        self.resource_type.is_none() && self.api_name.is_none() && self.methods.is_none()
    }
}

/// The rules of one side of a permission set, bucketed by literal `apiName`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleList {
    pub rules: Box<[Rule]>,
    by_api_name: HashMap<Box<str>, SmallVec<[u32; 2]>>,
    /// Rules whose `apiName` is absent or a pattern, in order.
    scan: Box<[u32]>,
}

impl RuleList {
    pub(crate) fn new(rules: Vec<Rule>) -> RuleList {
        let mut by_api_name: HashMap<Box<str>, SmallVec<[u32; 2]>> = HashMap::new();
        let mut scan = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let i = i as u32;
            match &rule.api_name {
                Some(Matcher::Literal(l)) => by_api_name.entry(l.clone()).or_default().push(i),
                _ => scan.push(i),
            }
        }
        RuleList {
            rules: rules.into(),
            by_api_name,
            scan: scan.into(),
        }
    }

    /// Index of the first rule that matches.
    #[inline]
    pub(crate) fn first_match<S: AsRef<str>>(&self, a: &Attributes<'_, S>) -> Option<u32> {
        let mut found = None;
        if !self.by_api_name.is_empty()
            && let Some(bucket) = self.by_api_name.get(a.api_name)
        {
            found = bucket
                .iter()
                .copied()
                .find(|&i| self.rules[i as usize].check_rest(a).is_ok());
        }
        for &i in self.scan.iter() {
            if found.is_some_and(|f| i > f) {
                break;
            }
            if self.rules[i as usize].check(a).is_ok() {
                return Some(i);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(
        rt: &'a str,
        api: &'a str,
        m: &'a str,
        path: &'a [&'a str],
    ) -> Attributes<'a, &'a str> {
        Attributes {
            resource_type: rt,
            api_name: api,
            method: m,
            access_path: path,
        }
    }

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
        let (Matcher::Regex(a), Matcher::Regex(b)) =
            (c.matcher("a.*").unwrap(), c.matcher("a.*").unwrap())
        else {
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
    fn first_match_respects_rule_order_across_buckets() {
        let mut c = RegexCache::default();
        let defs = [
            RuleDef {
                api_name: Some("Get.*".into()),
                methods: Some("POST".into()),
                ..Default::default()
            },
            RuleDef {
                api_name: Some("GetSecret".into()),
                ..Default::default()
            },
            RuleDef {
                resource_type: Some("k8s/.*".into()),
                ..Default::default()
            },
        ];
        let list = RuleList::new(
            defs.iter()
                .map(|d| Rule::compile(d, &mut c).unwrap())
                .collect(),
        );
        assert_eq!(
            list.first_match(&attrs("k8s/secret", "GetSecret", "GET", &[])),
            Some(1)
        );
        assert_eq!(
            list.first_match(&attrs("k8s/secret", "GetSecret", "POST", &[])),
            Some(0)
        );
        assert_eq!(
            list.first_match(&attrs("k8s/job", "ListJobs", "GET", &[])),
            Some(2)
        );
        assert_eq!(
            list.first_match(&attrs("aws/s3", "ListBuckets", "GET", &[])),
            None
        );
    }
}

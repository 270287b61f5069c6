//! Compiled permission-set rules.
//!
//! A rule has up to four fields; `resourceType` and `apiName` are full, anchored,
//! case-sensitive regexes, `methods` a full, anchored, case-insensitive one, and `paths` a list
//! of feature-path grants. A rule matches when every field it sets matches; a field left out
//! matches every value, whatever the method.
//!
//! [`Rule::check`] is the one matcher: the decision and its `explain` trace both call it. What
//! makes it fast is decided when the index is built: each regex is evaluated once against the
//! finite set of operation IDs and resource types the catalogs define and against the nine
//! usual methods, so a request on known values is answered from sorted id lists and a bit
//! mask; only a value outside those sets (a method such as `PROPFIND`) is given to the regex.
//! A side's rules without `paths` are bucketed by the operations their `apiName` matches, and
//! a set's rules with `paths` are found through the set's grant index ([`super::grants`]), so
//! a decision looks only at the rules that can apply, however many rules the index holds; the
//! index skips rules, it never decides one.

use std::sync::Arc;

use compact_str::CompactString;
use regex::{Regex, RegexBuilder};
use smallvec::SmallVec;

use super::HashMap;
use super::grants::Tag;
use super::index::SetId;
use super::model::RuleDef;
use super::report::{Problem, Reason};

/// Compiled-size limit for one pattern (the regex crate's default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How a pattern compares letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Case {
    Sensitive,
    /// For `methods`.
    Insensitive,
}

/// Compiles each distinct pattern once per build.
#[derive(Default)]
pub(crate) struct RegexCache {
    compiled: HashMap<(String, Case), Arc<Regex>>,
}

impl RegexCache {
    pub(crate) fn matcher(&mut self, pattern: &str, case: Case) -> Result<Matcher, String> {
        let invalid = |e: &dyn std::fmt::Display| format!("invalid regex `{pattern}`: {}", last_line(&e.to_string()));
        if regex::escape(pattern) == pattern {
            return Ok(match case {
                Case::Sensitive => Matcher::Literal(pattern.into()),
                Case::Insensitive => Matcher::LiteralNoCase(pattern.to_ascii_uppercase().into()),
            });
        }
        let key = (pattern.to_owned(), case);
        if let Some(re) = self.compiled.get(&key) {
            return Ok(Matcher::Regex(re.clone()));
        }
        // The pattern must parse on its own before it is anchored: `GetUser)|(ListUsers` would
        // otherwise close the anchoring group and match `GetUserSecrets`.
        regex_syntax::Parser::new().parse(pattern).map_err(|e| invalid(&e))?;
        let re = RegexBuilder::new(&format!("^(?:{pattern})$"))
            .case_insensitive(case == Case::Insensitive)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| invalid(&e))?;
        let re = Arc::new(re);
        self.compiled.insert(key, re.clone());
        Ok(Matcher::Regex(re))
    }
}

fn last_line(s: &str) -> String {
    // regex errors carry a multi-line caret diagram; the last line says what is wrong.
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_owned()
}

/// A pattern, compiled.
#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    /// A pattern without metacharacters: compared as a string.
    Literal(Box<str>),
    /// The same, ignoring ASCII case; kept uppercased.
    LiteralNoCase(Box<str>),
    Regex(Arc<Regex>),
}

impl Matcher {
    #[inline]
    pub(crate) fn is_match(&self, value: &str) -> bool {
        match self {
            Matcher::Literal(l) => **l == *value,
            Matcher::LiteralNoCase(l) => l.eq_ignore_ascii_case(value),
            Matcher::Regex(re) => re.is_match(value),
        }
    }
}

/// A feature-path grant: `/`-separated segments, `*` matching exactly one segment. A grant
/// covers the node it names and everything below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    /// The segments joined by `/`, inline up to 24 bytes: read with the rule when it is
    /// checked. A `*` segment is the wildcard (a literal segment is never `*`).
    text: CompactString,
    /// The number of segments.
    len: usize,
}

impl PathPattern {
    pub(crate) fn parse(raw: &str) -> Result<PathPattern, String> {
        if !raw.starts_with('/') {
            return Err(format!("path grant `{raw}` must start with `/`"));
        }
        let segments: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
        Ok(PathPattern { text: CompactString::from(segments.join("/")), len: segments.len() })
    }

    /// The number of segments.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Each segment: `None` for `*`, else the literal.
    pub(crate) fn parts(&self) -> impl Iterator<Item = Option<&str>> {
        self.text.split('/').filter(|s| !s.is_empty()).map(|s| (s != "*").then_some(s))
    }

    /// Does this grant cover the access path (given as its segments)?
    #[inline]
    pub(crate) fn covers<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.len <= path.len() && self.parts().zip(path).all(|(p, s)| p.is_none_or(|p| p == s.as_ref()))
    }

    /// The same, comparing each segment as a lenient backend reads it ([`loosely_equal`]):
    /// how deny rules match, so that `/Admin` or `/admin;x=1` cannot slip past a deny on
    /// `/admin`.
    #[inline]
    pub(crate) fn covers_loosely<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.len <= path.len() && self.parts().zip(path).all(|(p, s)| p.is_none_or(|p| loosely_equal(p, s.as_ref())))
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.parts().map(|s| s.unwrap_or("*"))
    }
}

/// Is the path segment `seg` the literal `lit` as a lenient backend reads it: ignoring ASCII
/// case, a `;param` suffix (Tomcat, Jetty) and surrounding spaces? Used wherever reading a
/// variant as the same segment can only take access away.
#[inline]
pub(crate) fn loosely_equal(lit: &str, seg: &str) -> bool {
    lit == seg || bare_segment(seg).eq_ignore_ascii_case(lit)
}

/// A path segment without its `;param` suffix and surrounding spaces.
#[inline]
pub(crate) fn bare_segment(seg: &str) -> &str {
    let head = seg.bytes().position(|b| b == b';').map_or(seg, |i| &seg[..i]);
    match (head.as_bytes().first(), head.as_bytes().last()) {
        // `trim` would find nothing to take: both ends are printable ASCII.
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => head,
        _ => head.trim(),
    }
}

/// The attributes of a request that rules look at.
pub(crate) struct Attributes<'a, S> {
    pub resource_type: &'a str,
    pub api_name: &'a str,
    /// Uppercased.
    pub method: &'a str,
    pub access_path: &'a [S],
    /// The same values as domain ids, when the domain has them.
    pub resource_type_id: Option<u32>,
    pub op: Option<u32>,
    /// 0 for a method outside the nine usual ones.
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

/// `resourceType` or `apiName`: the pattern, and the domain values it matches.
#[derive(Clone, Debug)]
pub(crate) struct DomainField {
    matcher: Matcher,
    /// Sorted ids of the domain values the pattern matches.
    ids: Arc<[u32]>,
}

impl DomainField {
    #[inline]
    fn matches(&self, id: Option<u32>, value: &str) -> bool {
        match id {
            Some(id) => self.ids.binary_search(&id).is_ok(),
            None => self.matcher.is_match(value),
        }
    }
}

/// `methods`: the pattern, and the usual methods it admits.
#[derive(Clone, Debug)]
pub(crate) struct MethodField {
    matcher: Matcher,
    /// Bits of [`METHODS`]; HEAD's is set when the pattern admits HEAD or GET.
    mask: u16,
}

impl MethodField {
    fn new(matcher: Matcher) -> MethodField {
        let mut mask = 0;
        for (bit, m) in METHODS.iter().enumerate() {
            if matcher.is_match(m) {
                mask |= 1 << bit;
            }
        }
        // A HEAD request is a GET without its body: a rule on GET covers it.
        if mask & method_bit("GET") != 0 {
            mask |= method_bit("HEAD");
        }
        MethodField { matcher, mask }
    }

    #[inline]
    fn matches(&self, bit: u16, method: &str) -> bool {
        match bit {
            0 => self.matcher.is_match(method),
            bit => self.mask & bit != 0,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// Boxed: most rules leave it out, and a rule of 128 bytes is two cache lines.
    pub(crate) resource_type: Option<Box<DomainField>>,
    pub(crate) api_name: Option<DomainField>,
    pub(crate) methods: Option<MethodField>,
    /// Empty when the rule has no `paths` (an empty `paths` is refused), so any path; one
    /// grant, as there most often is, is kept inline.
    pub(crate) paths: SmallVec<[PathPattern; 1]>,
    /// Deny rules compare `paths` loosely, allow rules exactly: a variant of a path can only
    /// lose access.
    loose_paths: bool,
}

impl Rule {
    /// The one matcher: does the rule match, and if not, which field failed first.
    #[inline]
    pub(crate) fn check<S: AsRef<str>>(&self, a: &Attributes<'_, S>) -> Result<(), Mismatch> {
        if let Some(f) = &self.api_name
            && !f.matches(a.op, a.api_name)
        {
            return Err(Mismatch::ApiName);
        }
        if let Some(f) = &self.methods
            && !f.matches(a.method_bit, a.method)
        {
            return Err(Mismatch::Methods);
        }
        if let Some(f) = &self.resource_type
            && !f.matches(a.resource_type_id, a.resource_type)
        {
            return Err(Mismatch::ResourceType);
        }
        if !self.paths.is_empty()
            && !self
                .paths
                .iter()
                .any(|p| if self.loose_paths { p.covers_loosely(a.access_path) } else { p.covers(a.access_path) })
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

/// Bit of a usual method (uppercased), 0 for any other.
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

/// Which side of a set rules are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SideKind {
    Allow,
    Deny,
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

    /// A domain field: the pattern and the ids of the domain values it matches, sorted.
    fn domain_field(
        regexes: &mut RegexCache,
        cache: &mut HashMap<String, Arc<[u32]>>,
        pattern: &str,
        values: &[Box<str>],
    ) -> Result<DomainField, String> {
        let matcher = regexes.matcher(pattern, Case::Sensitive)?;
        let ids = match cache.get(pattern) {
            Some(ids) => ids.clone(),
            None => {
                let ids: Arc<[u32]> =
                    (0..values.len() as u32).filter(|i| matcher.is_match(&values[*i as usize])).collect();
                cache.insert(pattern.to_owned(), ids.clone());
                ids
            }
        };
        Ok(DomainField { matcher, ids })
    }

    fn rule(&mut self, def: &RuleDef, side: SideKind) -> Result<Rule, Problem> {
        let regex = |e: String| Problem::new(Reason::InvalidRegex, e);
        let domain = self.domain;
        let resource_type = def
            .resource_type
            .as_deref()
            .map(|p| {
                Self::domain_field(&mut self.regexes, &mut self.resource_types, p, &domain.resource_types).map(Box::new)
            })
            .transpose()
            .map_err(regex)?;
        let api_name = def
            .api_name
            .as_deref()
            .map(|p| Self::domain_field(&mut self.regexes, &mut self.api_names, p, &domain.ops))
            .transpose()
            .map_err(regex)?;
        let methods = def
            .methods
            .as_deref()
            .map(|p| self.regexes.matcher(p, Case::Insensitive).map(MethodField::new))
            .transpose()
            .map_err(regex)?;
        let spec = |m: String| Problem::new(Reason::InvalidSpec, m);
        let paths = match &def.paths {
            Some(ps) if ps.is_empty() => {
                return Err(spec("`paths` is empty: leave it out to mean any path".into()));
            }
            Some(ps) => ps.iter().map(|p| PathPattern::parse(p)).collect::<Result<SmallVec<_>, _>>().map_err(spec)?,
            None => SmallVec::new(),
        };
        Ok(Rule { resource_type, api_name, methods, paths, loose_paths: side == SideKind::Deny })
    }

    /// Compiles one side of a set.
    pub(crate) fn side(&mut self, defs: &[RuleDef], side: SideKind) -> Result<RuleList, (usize, Problem)> {
        let rules = defs
            .iter()
            .enumerate()
            .map(|(i, def)| self.rule(def, side).map_err(|p| (i, p)))
            .collect::<Result<Box<[Rule]>, _>>()?;
        Ok(RuleList::new(rules, side))
    }
}

/// The rules of one side of a permission set, indexed by the operations they can match.
///
/// A rule with `paths` is found through the snapshot's grant index ([`grants`]); one without is
/// found by the operations its `apiName` matches, or is a candidate for every request when it
/// has no `apiName`. The index only skips rules that cannot match: every candidate is decided
/// by [`Rule::check`], and the first in rule order wins.
#[derive(Clone, Debug)]
pub(crate) struct RuleList {
    pub rules: Box<[Rule]>,
    side: SideKind,
    /// The rules without `paths`; `None` when every rule has `paths`, so that a set found
    /// through the grant index is read no further than its rules.
    unindexed: Option<Box<Unindexed>>,
}

/// A side's rules without `paths`, by the operations they can match.
#[derive(Clone, Debug)]
struct Unindexed {
    /// Domain operation id → rules whose `apiName` matches it, in order.
    by_op: HashMap<u32, SmallVec<[u32; 2]>>,
    /// Rules without `apiName`, in order.
    any_op: Box<[u32]>,
    /// Rules with `apiName`, in order: candidates when the operation is not a domain value.
    named: Box<[u32]>,
}

impl RuleList {
    fn new(rules: Box<[Rule]>, side: SideKind) -> RuleList {
        let mut by_op: HashMap<u32, SmallVec<[u32; 2]>> = HashMap::default();
        let (mut any_op, mut named) = (Vec::new(), Vec::new());
        for (i, rule) in rules.iter().enumerate() {
            let index = i as u32;
            match (rule.paths.is_empty(), &rule.api_name) {
                (false, _) => {}
                (true, Some(f)) => {
                    for op in f.ids.iter() {
                        by_op.entry(*op).or_default().push(index);
                    }
                    named.push(index);
                }
                (true, None) => any_op.push(index),
            }
        }
        let unindexed = (!any_op.is_empty() || !named.is_empty())
            .then(|| Box::new(Unindexed { by_op, any_op: any_op.into(), named: named.into() }));
        RuleList { rules, side, unindexed }
    }

    /// Has rules the grant index does not hold (rules without `paths`)?
    pub(crate) fn has_unindexed(&self) -> bool {
        self.unindexed.is_some()
    }

    /// Index of the first rule that matches. `on_path` holds, ascending, the tags the grant
    /// index found for the access path among this set's, of either side.
    #[inline]
    pub(crate) fn first_match<S: AsRef<str>>(&self, a: &Attributes<'_, S>, on_path: &[Tag]) -> Option<u32> {
        if self.rules.is_empty() {
            return None;
        }
        let check = |i: &u32| self.rules[*i as usize].check(a).is_ok();
        // A side's entries ascend with its rules' indexes.
        let by_path = on_path.iter().filter_map(|t| GrantEntry(t.entry()).index_on(self.side)).find(check);
        // Rules without paths are in no grant index: the first of them that matches wins if
        // it comes before `by_path`.
        let Some(unindexed) = &self.unindexed else {
            return by_path;
        };
        let by_operation: &[u32] = match a.op {
            None => &unindexed.named,
            Some(_) if unindexed.by_op.is_empty() => &[],
            Some(op) => unindexed.by_op.get(&op).map_or(&[], |b| b.as_slice()),
        };
        let before = by_path.unwrap_or(u32::MAX);
        merged(by_operation, &unindexed.any_op).take_while(|&i| i < before).find(check).or(by_path)
    }

    /// The grants of the rules, as entries of a grant index with the usual methods their
    /// rule admits (all of them when it has no `methods`).
    fn grants(&self) -> impl Iterator<Item = (&PathPattern, u32, u16)> {
        self.rules.iter().zip(0..).flat_map(move |(rule, index)| {
            let methods = rule.methods.as_ref().map_or(u16::MAX, |m| m.mask);
            rule.paths.iter().map(move |p| (p, GrantEntry::new(self.side, index).0, methods))
        })
    }
}

/// The values of two ascending lists as one ascending sequence.
fn merged<'l>(a: &'l [u32], b: &'l [u32]) -> impl Iterator<Item = u32> + 'l {
    let (mut a, mut b) = (a.iter().copied().peekable(), b.iter().copied().peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x <= y => a.next(),
        (_, Some(_)) => b.next(),
        _ => a.next(),
    })
}

/// A rule of either side of a set, as the set's grant index holds it: its index and its side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct GrantEntry(u32);

impl GrantEntry {
    fn new(side: SideKind, index: u32) -> GrantEntry {
        GrantEntry(index << 1 | u32::from(side == SideKind::Deny))
    }

    /// The rule's index, when it is on `side`.
    fn index_on(self, side: SideKind) -> Option<u32> {
        ((self.0 & 1 == 1) == (side == SideKind::Deny)).then_some(self.0 >> 1)
    }
}

/// The grants of both sides of a set, tagged as the grant index holds them: a decision looks
/// the index up once and hands each set's tags to [`RuleList::first_match`] of each side.
pub(crate) fn grants<'r>(
    set: SetId,
    allow: &'r RuleList,
    deny: &'r RuleList,
) -> impl Iterator<Item = (&'r PathPattern, Tag)> {
    allow.grants().chain(deny.grants()).map(move |(pattern, entry, methods)| (pattern, Tag::new(set, entry, methods)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str) -> Matcher {
        RegexCache::default().matcher(pattern, Case::Sensitive).unwrap()
    }

    #[test]
    fn regexes_are_anchored_and_case_sensitive() {
        let re = m("aws/.*");
        assert!(re.is_match("aws/s3"));
        assert!(!re.is_match("x-aws/s3"));
        let re = m("GET|HEAD");
        assert!(re.is_match("HEAD"));
        assert!(!re.is_match("get"));
        assert!(!re.is_match("GETX"));
    }

    #[test]
    fn a_pattern_cannot_close_its_anchors() {
        let mut c = RegexCache::default();
        for escape in ["GetUser)|(ListUsers", "a)|(.*", "x)|.*|(y"] {
            let e = c.matcher(escape, Case::Sensitive).unwrap_err();
            assert!(e.starts_with(&format!("invalid regex `{escape}`")), "{e}");
        }
        assert!(!m("GetUser|ListUsers").is_match("GetUserSecrets"));
    }

    #[test]
    fn method_patterns_ignore_case_and_get_covers_head() {
        let mut c = RegexCache::default();
        for pattern in ["get", "GET", "g[e]t", "Get|post"] {
            let f = MethodField::new(c.matcher(pattern, Case::Insensitive).unwrap());
            assert!(f.matches(method_bit("GET"), "GET"), "{pattern}");
            assert!(f.matches(method_bit("HEAD"), "HEAD"), "{pattern}: HEAD is a GET without its body");
            assert!(!f.matches(method_bit("DELETE"), "DELETE"), "{pattern}");
        }
        let f = MethodField::new(c.matcher("propfind|PURGE", Case::Insensitive).unwrap());
        assert!(f.matches(0, "PROPFIND") && f.matches(0, "PURGE") && !f.matches(0, "MKCOL"));
        let head_only = MethodField::new(c.matcher("HEAD", Case::Insensitive).unwrap());
        assert!(!head_only.matches(method_bit("GET"), "GET"));
    }

    #[test]
    fn empty_pattern_matches_only_empty() {
        let re = m("");
        assert!(re.is_match(""));
        assert!(!re.is_match("x"));
    }

    #[test]
    fn identical_patterns_share_one_regex() {
        let mut c = RegexCache::default();
        let (Matcher::Regex(a), Matcher::Regex(b)) =
            (c.matcher("a.*", Case::Sensitive).unwrap(), c.matcher("a.*", Case::Sensitive).unwrap())
        else {
            panic!("expected regexes")
        };
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn invalid_and_oversized_regexes_are_errors() {
        let mut c = RegexCache::default();
        assert!(c.matcher("(", Case::Sensitive).unwrap_err().contains("invalid regex `(`"));
        assert!(c.matcher("(a{1000}){1000}", Case::Sensitive).is_err());
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
    fn deny_paths_also_cover_the_variants_a_lenient_backend_reads_as_the_same() {
        let p = PathPattern::parse("/admin/*/keys").unwrap();
        for variant in
            [["admin", "x", "keys"], ["Admin", "x", "KEYS"], ["admin;a=1", "x", "keys;b"], ["admin ", "x", " keys"]]
        {
            assert!(p.covers_loosely(&variant), "{variant:?}");
        }
        assert!(!p.covers(&["Admin", "x", "keys"]));
        assert!(!p.covers_loosely(&["admins", "x", "keys"]));
        assert!(!p.covers_loosely(&["x;admin", "x", "keys"]));
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
            rule(None, Some("aws/s3"), None),
        ];
        let list = RuleCompiler::new(&domain).side(&defs, SideKind::Allow).unwrap();
        for (rt, api, method, expected) in [
            ("k8s/secret", "GetSecret", "GET", Some(1)),
            ("k8s/secret", "GetSecret", "POST", Some(0)),
            ("k8s/secret", "GetSecret", "PROPFIND", Some(1)),
            ("k8s/job", "ListJobs", "GET", Some(2)),
            ("k8s/job", "ListJobs", "HEAD", Some(2)),
            ("k8s/job", "ListJobs", "PROPFIND", Some(2)),
            ("k8s/job", "ListJobs", "DELETE", None),
            ("aws/s3", "ListBuckets", "DELETE", Some(3)),
            ("aws/s3", "ListBuckets", "PURGE", Some(3)),
            ("aws/s3", "", "PURGE", Some(4)),
            ("", "", "GET", None),
        ] {
            let mut d = domain.clone();
            let known = Attributes {
                resource_type: rt,
                api_name: api,
                method,
                access_path: &[] as &[&str],
                resource_type_id: Some(d.resource_type(rt)),
                op: Some(d.op(api)),
                method_bit: method_bit(method),
            };
            assert_eq!(list.first_match(&known, &[]), expected, "{api} {method}");
            let slow = list.rules.iter().position(|r| r.check(&known).is_ok()).map(|i| i as u32);
            assert_eq!(slow, expected, "{api} {method}: every rule in order");
            let unknown = Attributes { resource_type_id: None, op: None, ..known };
            assert_eq!(list.first_match(&unknown, &[]), expected, "{api} {method}: values outside the domain");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_bare_segment_is_the_segment_before_its_param_trimmed(seg in "[a; \t\u{a0}\u{85}\u{1}é]{0,8}") {
            proptest::prop_assert_eq!(bare_segment(&seg), seg.split(';').next().unwrap_or(&seg).trim());
        }
    }

    mod indexed_against_scan {
        //! The index only skips rules: on any rules and request, the first match it finds on
        //! each side is the first rule in order that [`Rule::check`] accepts. Rules mix deny
        //! and allow sides, regexes that are no literal prefix, grants in several cases and
        //! with `;param`s and spaces, and methods outside the usual nine.
        use super::*;
        use crate::engine::grants::{GrantIndex, PathKeys};
        use proptest::prelude::*;

        const OPS: &[&str] = &["", "GetSecret", "ListJobs"];
        const TYPES: &[&str] = &["", "k8s/job", "aws/s3"];
        const API_NAMES: &[&str] = &["Get.*", "ListJobs", ".*", "", "List(Jobs|Pods)"];
        const RESOURCE_TYPES: &[&str] = &["k8s/.*", "aws/s3", ""];
        const METHODS: &[&str] =
            &["GET", "get", "GET|HEAD", "POST|PUT", "DELETE", ".*", "P.*", "PROPFIND|purge", "HEAD", "(GET)", "[GP]ET"];
        /// Grant segments: literals in several cases, with a `;param` and spaces, and `*`.
        const GRANT_SEGMENTS: &[&str] = &["api", "API", "v1", "*", "svc1", "Svc1", "a;b", " x", "x"];
        const PATH_SEGMENTS: &[&str] =
            &["api", "API", "Api;x=1", "v1", "V1 ", " svc1", "svc1", "svc2", "x", "X", "a;b", "a", "a;c", "%"];
        const REQUEST_METHODS: &[&str] =
            &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "PROPFIND", "PURGE", "MKCOL"];

        fn grant() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(GRANT_SEGMENTS), 0..4).prop_map(|s| format!("/{}", s.join("/")))
        }

        fn rule_def() -> impl Strategy<Value = RuleDef> {
            (
                prop::option::weighted(0.3, prop::sample::select(API_NAMES)),
                prop::option::weighted(0.2, prop::sample::select(RESOURCE_TYPES)),
                prop::option::weighted(0.5, prop::sample::select(METHODS)),
                prop::option::weighted(0.8, prop::collection::vec(grant(), 1..3)),
            )
                .prop_map(|(api, rt, methods, paths)| RuleDef {
                    api_name: api.map(Into::into),
                    resource_type: rt.map(Into::into),
                    methods: methods.map(Into::into),
                    paths,
                })
        }

        proptest! {
            #[test]
            fn first_match_is_the_first_rule_that_checks(
                allow in prop::collection::vec(rule_def(), 0..10),
                deny in prop::collection::vec(rule_def(), 0..4),
                path in prop::collection::vec(prop::sample::select(PATH_SEGMENTS), 0..5),
                method in prop::sample::select(REQUEST_METHODS),
                op in 0..OPS.len(),
                rt in 0..TYPES.len(),
                known in any::<bool>(),
            ) {
                let mut domain = Domain::new();
                OPS.iter().for_each(|o| { domain.op(o); });
                TYPES.iter().for_each(|t| { domain.resource_type(t); });
                let mut compiler = RuleCompiler::new(&domain);
                let allow = compiler.side(&allow, SideKind::Allow).unwrap();
                let deny = compiler.side(&deny, SideKind::Deny).unwrap();
                // The set is one of several in the index, the others holding the same rules.
                let index = GrantIndex::build((0..3).flat_map(|set| grants(set, &allow, &deny)));
                let mut on_path: SmallVec<[Tag; 16]> = SmallVec::new();
                index.candidates(&PathKeys::of(&path), &[1], method_bit(method), &mut on_path);
                on_path.sort_unstable();
                on_path.dedup();
                let a = Attributes {
                    resource_type: TYPES[rt],
                    api_name: OPS[op],
                    method,
                    access_path: &path,
                    resource_type_id: known.then_some(rt as u32),
                    op: known.then_some(op as u32),
                    method_bit: method_bit(method),
                };
                for list in [&allow, &deny] {
                    let scan = list.rules.iter().position(|r| r.check(&a).is_ok()).map(|i| i as u32);
                    prop_assert_eq!(list.first_match(&a, &on_path), scan);
                }
            }
        }
    }
}

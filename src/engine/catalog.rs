//! API catalogs: from a raw request to an operation, a resource type and an access path.
//!
//! Every operation of every Ready catalog becomes a route in one segment trie (catalog
//! prefix + path template). A request walks the trie once; among the routes that fit its
//! method and host, the one with the most literal segments wins, then a catalog that names
//! the host, then the catalog name, then the operation's position.

use std::fmt;

use super::HashMap;
use super::model::{ApiCatalogDef, Unmatched};
use super::report::{Problem, Reason};
use super::rules::{Domain, loosely_equal};

/// The five parameter extractors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `u(claim)`: a claim of the token.
    Claim,
    /// `p(name)`: a path parameter of the operation's template.
    Path,
    /// `q(name)`: a query parameter.
    Query,
    /// `h(name)`: a request header.
    Header,
    /// `j(field)`: a top-level field of the JSON body.
    Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extractor {
    pub source: Source,
    pub arg: Box<str>,
}

impl fmt::Display for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.source {
            Source::Claim => 'u',
            Source::Path => 'p',
            Source::Query => 'q',
            Source::Header => 'h',
            Source::Body => 'j',
        };
        write!(f, "{c}({})", self.arg)
    }
}

/// One segment of an access path or resource template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(Box<str>),
    Extract(Extractor),
}

/// Parses `/workspaces/p(ws)/clusters` or `namespace/p(ns)`: every segment is a literal or
/// exactly one extractor.
pub(crate) fn parse_pieces(raw: &str) -> Result<Box<[Piece]>, String> {
    raw.split('/').filter(|s| !s.is_empty()).map(parse_piece).collect()
}

fn parse_piece(seg: &str) -> Result<Piece, String> {
    if !seg.contains(['(', ')']) {
        return Ok(Piece::Literal(seg.into()));
    }
    let bad = || format!("segment `{seg}` must be a literal or exactly one of u() p() q() h() j()");
    let mut chars = seg.chars();
    let source = match chars.next() {
        Some('u') => Source::Claim,
        Some('p') => Source::Path,
        Some('q') => Source::Query,
        Some('h') => Source::Header,
        Some('j') => Source::Body,
        _ => return Err(bad()),
    };
    let arg = chars.as_str().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
    if arg.is_empty() || arg.contains(['(', ')']) {
        return Err(bad());
    }
    Ok(Piece::Extract(Extractor { source, arg: arg.into() }))
}

/// One segment of a route template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TemplateSeg {
    Literal(Box<str>),
    Param(Box<str>),
}

fn parse_template(raw: &str) -> Result<Vec<TemplateSeg>, String> {
    let mut out = Vec::new();
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if name.is_empty() || name.contains(['{', '}']) {
                return Err(format!("bad parameter `{seg}` in template `{raw}`"));
            }
            if out.iter().any(|s| matches!(s, TemplateSeg::Param(p) if **p == *name)) {
                return Err(format!("parameter `{name}` appears twice in template `{raw}`"));
            }
            out.push(TemplateSeg::Param(name.into()));
        } else if seg.contains(['{', '}']) {
            return Err(format!("segment `{seg}` of template `{raw}` must be a literal or a whole `{{name}}`"));
        } else {
            out.push(TemplateSeg::Literal(seg.into()));
        }
    }
    Ok(out)
}

/// A compiled catalog operation.
#[derive(Clone, Debug)]
pub struct Route {
    pub catalog: Box<str>,
    pub operation: Box<str>,
    pub resource_type: Box<str>,
    pub method: Box<str>,
    /// Prefix + template, for links.
    pub template: Box<str>,
    /// `(segment position, parameter name)`.
    pub(crate) params: Box<[(usize, Box<str>)]>,
    pub(crate) access_path: Option<Box<[Piece]>>,
    pub(crate) resource: Option<Box<[Piece]>>,
    /// `None`: any host.
    pub(crate) hosts: Option<Box<[Box<str>]>>,
    literal_count: u32,
    /// Domain ids of `operation` and `resource_type`, for the precomputed rule tables.
    pub(crate) op_id: u32,
    pub(crate) resource_type_id: u32,
}

impl Route {
    fn host_matches(&self, host: &str) -> bool {
        self.hosts.as_ref().is_none_or(|hs| hs.iter().any(|h| **h == *host))
    }

    pub(crate) fn param(&self, name: &str) -> Option<usize> {
        self.params.iter().find(|(_, n)| **n == *name).map(|(pos, _)| *pos)
    }
}

#[derive(Clone, Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    routes: Vec<u32>,
}

/// The hosts and path prefix a catalog covers. A request inside it that no Ready catalog
/// routes is denied when the catalog is not Ready, or when its `unmatched` is `Deny`.
#[derive(Clone, Debug)]
struct Territory {
    name: Box<str>,
    broken: bool,
    /// `None`: any host.
    hosts: Option<Box<[Box<str>]>>,
    /// `None` is a `{param}` segment.
    prefix: Box<[Option<Box<str>>]>,
}

impl Territory {
    fn new(def: &ApiCatalogDef, broken: bool) -> Territory {
        let hosts = match &def.hosts {
            // A broken catalog whose hosts cannot be read fails closed for any host.
            Some(hs) if !hs.is_empty() => hs.iter().map(|h| normalize_host(h).ok().map(Into::into)).collect(),
            _ => None,
        };
        let prefix = def
            .path_prefix
            .as_deref()
            .map(|p| {
                p.split('/').filter(|s| !s.is_empty()).map(|s| (!s.contains(['{', '}'])).then(|| s.into())).collect()
            })
            .unwrap_or_default();
        Territory { name: def.meta.name.as_str().into(), broken, hosts, prefix }
    }

    /// Is the request inside? The prefix is compared leniently (ASCII case, a `;param`
    /// suffix, surrounding spaces), as a lenient backend would read it: a variant of the prefix
    /// is still inside, and is denied rather than decided as an uncatalogued request.
    fn contains<S: AsRef<str>>(&self, host: &str, path: &[S]) -> bool {
        let host_ok = self.hosts.as_ref().is_none_or(|hs| hs.iter().any(|h| **h == *host));
        host_ok
            && self.prefix.len() <= path.len()
            && self.prefix.iter().zip(path).all(|(p, s)| p.as_deref().is_none_or(|p| loosely_equal(p, s.as_ref())))
    }
}

/// Why a catalog is not Ready.
pub(crate) type CatalogError = Problem;

#[derive(Clone, Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    root: Node,
    /// Broken catalogs first, then those whose `unmatched` is `Deny`.
    territories: Vec<Territory>,
}

/// What routing found.
pub(crate) enum Routed<'r> {
    Route(&'r Route),
    /// Inside a catalog that is not Ready.
    Broken(&'r str),
    /// Inside a catalog whose `unmatched` is `Deny`, and no catalog routes it.
    Unmatched(&'r str),
    None,
}

/// Why a host is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InvalidHost;

/// Host as compared: lowercased, without the port and one trailing dot. A host that is not
/// a valid URI authority (`a:80:80`, spaces, an empty label) is an error. The empty host (none
/// was given) stays empty: it matches only catalogs for any host.
pub(crate) fn normalize_host(host: &str) -> Result<std::borrow::Cow<'_, str>, InvalidHost> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // IP literal: `[v6]` or `[v6]:port`
        let (inside, after) = rest.split_once(']').ok_or(InvalidHost)?;
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b":.".contains(&b)) {
            return Err(InvalidHost);
        }
        valid_port(after)?;
        &host[..inside.len() + 2]
    } else {
        let (name, port) = host.find(':').map_or((host, ""), |i| host.split_at(i));
        valid_port(port)?;
        let name = name.strip_suffix('.').unwrap_or(name);
        let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b);
        if !name.bytes().all(reg_name) || (!name.is_empty() && name.split('.').any(str::is_empty)) {
            return Err(InvalidHost);
        }
        name
    };
    Ok(match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => std::borrow::Cow::Owned(name.to_ascii_lowercase()),
        false => std::borrow::Cow::Borrowed(name),
    })
}

/// `""`, `":"` or `":digits"`.
fn valid_port(rest: &str) -> Result<(), InvalidHost> {
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok(()),
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(InvalidHost),
    }
}

impl Router {
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Adds every route's operation and resource type to the domain and remembers their ids.
    pub(crate) fn intern(&mut self, domain: &mut Domain) {
        for r in &mut self.routes {
            r.op_id = domain.op(&r.operation);
            r.resource_type_id = domain.resource_type(&r.resource_type);
        }
    }

    /// Adds every operation of a catalog, or records it as broken. Catalogs are added in
    /// name order, so route ids order ties by catalog name, then operation position.
    pub(crate) fn add(&mut self, def: &ApiCatalogDef) -> Result<(), CatalogError> {
        match compile(def) {
            Ok(routes) => {
                for (segs, route) in routes {
                    let id = self.routes.len() as u32;
                    let mut node = &mut self.root;
                    for seg in segs {
                        node = match seg {
                            TemplateSeg::Literal(l) => node.literal.entry(l).or_default(),
                            TemplateSeg::Param(_) => node.param.get_or_insert_with(Default::default),
                        };
                    }
                    node.routes.push(id);
                    self.routes.push(route);
                }
                if def.unmatched == Unmatched::Deny {
                    self.territories.push(Territory::new(def, false));
                }
                Ok(())
            }
            Err(e) => {
                self.add_broken(def);
                Err(e)
            }
        }
    }

    /// Records a catalog that is not Ready: requests in its hosts and prefix are denied.
    pub(crate) fn add_broken(&mut self, def: &ApiCatalogDef) {
        let at = self.territories.iter().take_while(|t| t.broken).count();
        self.territories.insert(at, Territory::new(def, true));
    }

    /// Finds the route for a request (method uppercased, host normalized, path decoded).
    pub(crate) fn route<S: AsRef<str>>(&self, method: &str, host: &str, path: &[S]) -> Routed<'_> {
        let mut best = None;
        self.walk(&self.root, path, method, host, &mut best);
        if best.is_none() && method == "HEAD" {
            self.walk(&self.root, path, "GET", host, &mut best);
        }
        if let Some((_, id)) = best {
            return Routed::Route(&self.routes[id as usize]);
        }
        match self.territories.iter().find(|t| t.contains(host, path)) {
            Some(t) if t.broken => Routed::Broken(&t.name),
            Some(t) => Routed::Unmatched(&t.name),
            None => Routed::None,
        }
    }

    fn walk<S: AsRef<str>>(
        &self,
        node: &Node,
        rest: &[S],
        method: &str,
        host: &str,
        best: &mut Option<((u32, bool), u32)>,
    ) {
        let Some((first, rest)) = rest.split_first() else {
            for &id in &node.routes {
                let r = &self.routes[id as usize];
                if *r.method != *method || !r.host_matches(host) {
                    continue;
                }
                let key = (r.literal_count, r.hosts.is_some());
                // Higher key wins; on equal keys the lower id (catalog name, position) wins,
                // whichever the walk reached first.
                if best.is_none_or(|(k, i)| key > k || (key == k && id < i)) {
                    *best = Some((key, id));
                }
            }
            return;
        };
        if let Some(child) = node.literal.get(first.as_ref()) {
            self.walk(child, rest, method, host, best);
        }
        if let Some(child) = &node.param {
            self.walk(child, rest, method, host, best);
        }
    }
}

fn compile(def: &ApiCatalogDef) -> Result<Vec<(Vec<TemplateSeg>, Route)>, CatalogError> {
    let err = |m: String| Problem::new(Reason::InvalidTemplate, m);
    let spec = |m: &str| Problem::new(Reason::InvalidSpec, m);
    if def.operations.is_empty() {
        return Err(spec("`operations` is empty"));
    }
    let hosts = match &def.hosts {
        Some(hs) if hs.is_empty() => {
            return Err(spec("`hosts` is empty: leave it out to mean any host"));
        }
        Some(hs) => Some(
            hs.iter()
                .map(|h| match normalize_host(h) {
                    Ok(h) if !h.is_empty() => Ok(h.into()),
                    _ => Err(spec(&format!("host `{h}` is not a valid host name"))),
                })
                .collect::<Result<Box<[Box<str>]>, _>>()?,
        ),
        None => None,
    };
    let prefix = parse_template(def.path_prefix.as_deref().unwrap_or("")).map_err(err)?;
    let mut out = Vec::with_capacity(def.operations.len());
    for op in &def.operations {
        let ctx = |m: String| Problem::new(Reason::InvalidTemplate, format!("operation `{}`: {m}", op.id));
        if op.id.is_empty() {
            return Err(spec("an operation has an empty `id`"));
        }
        let mut segs = prefix.clone();
        segs.extend(parse_template(&op.path).map_err(ctx)?);
        let mut params = Vec::new();
        for (pos, seg) in segs.iter().enumerate() {
            if let TemplateSeg::Param(name) = seg {
                if params.iter().any(|(_, n)| n == name) {
                    return Err(ctx(format!("parameter `{name}` appears in both prefix and path")));
                }
                params.push((pos, name.clone()));
            }
        }
        let check = |pieces: &[Piece]| -> Result<(), CatalogError> {
            for piece in pieces {
                if let Piece::Extract(Extractor { source: Source::Path, arg }) = piece
                    && !params.iter().any(|(_, n)| n == arg)
                {
                    return Err(ctx(format!("`p({arg})` is not a parameter of `{}`", op.path)));
                }
            }
            Ok(())
        };
        let access_path = op.access_path.as_deref().map(parse_pieces).transpose().map_err(ctx)?;
        let resource = op.resource.as_deref().map(parse_pieces).transpose().map_err(ctx)?;
        if let Some(r) = &resource
            && r.is_empty()
        {
            return Err(ctx("`resource` is empty".into()));
        }
        access_path.as_deref().map(check).transpose()?;
        resource.as_deref().map(check).transpose()?;
        let method = op.method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(spec(&format!("operation `{}`: method `{}` is not an HTTP method", op.id, op.method)));
        }
        let literal_count = segs.iter().filter(|s| matches!(s, TemplateSeg::Literal(_))).count() as u32;
        let template: String = segs
            .iter()
            .map(|s| match s {
                TemplateSeg::Literal(l) => format!("/{l}"),
                TemplateSeg::Param(p) => format!("/{{{p}}}"),
            })
            .collect();
        let route = Route {
            catalog: def.meta.name.as_str().into(),
            operation: op.id.as_str().into(),
            resource_type: op.resource_type.as_deref().unwrap_or("").into(),
            method: method.into(),
            template: if template.is_empty() { "/".into() } else { template.into() },
            params: params.into(),
            access_path,
            resource,
            hosts: hosts.clone(),
            literal_count,
            op_id: 0,
            resource_type_id: 0,
        };
        out.push((segs, route));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::{Meta, OperationDef};

    fn op(id: &str, method: &str, path: &str) -> OperationDef {
        OperationDef { id: id.into(), method: method.into(), path: path.into(), ..Default::default() }
    }

    fn cat(name: &str, hosts: Option<&[&str]>, prefix: Option<&str>, ops: Vec<OperationDef>) -> ApiCatalogDef {
        ApiCatalogDef {
            meta: Meta::named(name),
            hosts: hosts.map(|h| h.iter().map(|s| s.to_string()).collect()),
            path_prefix: prefix.map(Into::into),
            unmatched: Default::default(),
            operations: ops,
        }
    }

    fn routed(r: &Router, method: &str, host: &str, path: &str) -> Option<String> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match r.route(method, host, &segs) {
            Routed::Route(route) => Some(format!("{}/{}", route.catalog, route.operation)),
            Routed::Broken(name) => Some(format!("broken:{name}")),
            Routed::Unmatched(name) => Some(format!("unmatched:{name}")),
            Routed::None => None,
        }
    }

    fn lenient(mut def: ApiCatalogDef) -> ApiCatalogDef {
        def.unmatched = Unmatched::Uncatalogued;
        def
    }

    #[test]
    fn extractor_pieces_parse_whole_segments_only() {
        assert_eq!(
            &*parse_pieces("/workspaces/p(ws)/q").unwrap(),
            &[
                Piece::Literal("workspaces".into()),
                Piece::Extract(Extractor { source: Source::Path, arg: "ws".into() }),
                Piece::Literal("q".into())
            ]
        );
        for bad in ["/ws-p(ws)", "/p(id", "/x(id)", "/p()", "/p(a)b", "/(a)"] {
            assert!(parse_pieces(bad).is_err(), "{bad} must not parse");
        }
    }

    #[test]
    fn most_literal_segments_win_then_host_then_name() {
        let mut r = Router::default();
        r.add(&lenient(cat(
            "a-any",
            None,
            Some("/api"),
            vec![op("ByParam", "GET", "/items/{id}"), op("Dup", "GET", "/items/new")],
        )))
        .ok()
        .unwrap();
        r.add(&lenient(cat(
            "b-host",
            Some(&["API.example.com:443"]),
            Some("/api"),
            vec![op("Literal", "GET", "/items/new")],
        )))
        .ok()
        .unwrap();
        r.add(&lenient(cat("c-any", None, None, vec![op("Other", "GET", "/api/items/new")]))).ok().unwrap();
        assert_eq!(routed(&r, "GET", "api.example.com", "/api/items/new").as_deref(), Some("b-host/Literal"));
        assert_eq!(routed(&r, "GET", "other.example.com", "/api/items/new").as_deref(), Some("a-any/Dup"));
        assert_eq!(routed(&r, "GET", "other.example.com", "/api/items/7").as_deref(), Some("a-any/ByParam"));
        assert_eq!(routed(&r, "POST", "other.example.com", "/api/items/7"), None);
        assert_eq!(routed(&r, "HEAD", "other.example.com", "/api/items/7").as_deref(), Some("a-any/ByParam"));
    }

    #[test]
    fn ties_go_to_the_catalog_name_then_the_position_whatever_the_walk_meets_first() {
        let mut r = Router::default();
        let ops = vec![op("Wide", "GET", "/r/{a}/{b}/leaf"), op("Fixed", "GET", "/r/fixed/{c}/{d}")];
        r.add(&cat("one", None, None, ops)).ok().unwrap();
        assert_eq!(routed(&r, "GET", "h", "/r/fixed/y/leaf").as_deref(), Some("one/Wide"));
        // the build adds catalogs in name order
        let mut r = Router::default();
        r.add(&cat("a", None, None, vec![op("InA", "GET", "/r/{a}/{b}/leaf")])).ok().unwrap();
        r.add(&cat("b", None, None, vec![op("InB", "GET", "/r/fixed/{c}/{d}")])).ok().unwrap();
        assert_eq!(routed(&r, "GET", "h", "/r/fixed/y/leaf").as_deref(), Some("a/InA"));
    }

    #[test]
    fn unmatched_requests_inside_a_catalog_are_denied_unless_it_says_otherwise() {
        let mut r = Router::default();
        let ops = vec![op("Get", "GET", "/a/{id}"), op("List", "GET", "/a")];
        r.add(&cat("strict", Some(&["api.example.com"]), Some("/api"), ops.clone())).ok().unwrap();
        r.add(&lenient(cat("loose", Some(&["other.example.com"]), Some("/api"), ops))).ok().unwrap();
        assert_eq!(routed(&r, "GET", "api.example.com", "/api/a/1").as_deref(), Some("strict/Get"));
        for (method, path) in [
            ("DELETE", "/api/a/1"),
            ("PROPFIND", "/api/a/1"),
            ("GET", "/api/a/1/extra"),
            ("GET", "/api/A/1"),
            ("GET", "/api/a;x=1/1"),
            ("GET", "/api/a.json"),
            ("GET", "/API/a/1"),
            ("GET", "/api;x=1/a/1"),
            ("GET", "/api /a/1"),
        ] {
            assert_eq!(
                routed(&r, method, "api.example.com", path).as_deref(),
                Some("unmatched:strict"),
                "{method} {path}"
            );
        }
        assert_eq!(routed(&r, "DELETE", "other.example.com", "/api/a/1"), None);
        assert_eq!(routed(&r, "GET", "api.example.com", "/elsewhere"), None);
    }

    #[test]
    fn broken_catalogs_fail_closed_inside_their_scope() {
        let mut r = Router::default();
        let mut bad = cat("bad", Some(&["api.example.com"]), Some("/v2"), vec![op("X", "GET", "/x/{id}")]);
        bad.operations[0].access_path = Some("/p(nope)".into());
        assert!(r.add(&bad).is_err());
        assert_eq!(routed(&r, "GET", "api.example.com", "/v2/x/1").as_deref(), Some("broken:bad"));
        assert_eq!(routed(&r, "GET", "other.example.com", "/v2/x/1"), None);
        assert_eq!(routed(&r, "GET", "api.example.com", "/v3/x/1"), None);
        let mut r = Router::default();
        assert!(r.add(&cat("empty-hosts", Some(&[]), None, vec![op("X", "GET", "/x")])).is_err());
        assert_eq!(routed(&r, "GET", "anything", "/y").as_deref(), Some("broken:empty-hosts"));
    }

    #[test]
    fn templates_reject_malformed_parameters() {
        for path in ["/a/{", "/a/x{id}", "/a/{id}/{id}", "/a/{}"] {
            assert!(compile(&cat("c", None, None, vec![op("X", "GET", path)])).is_err(), "{path}");
        }
    }

    #[test]
    fn hosts_are_lowercased_without_port_and_one_trailing_dot() {
        for (raw, host) in [
            ("API.Example.com:8443", "api.example.com"),
            ("api.example.com.", "api.example.com"),
            ("api.example.com.:80", "api.example.com"),
            ("api.example.com:", "api.example.com"),
            ("[::1]:80", "[::1]"),
            ("api", "api"),
            ("", ""),
        ] {
            assert_eq!(normalize_host(raw).as_deref(), Ok(host), "{raw}");
        }
    }

    #[test]
    fn hosts_that_are_not_an_authority_are_refused() {
        for raw in
            ["a:80:80", "a b", "api.example.com..", ".api", "a..b", "a:x", "[::1", "[zz]", "::1", "a/b", "u@h", "h\\x"]
        {
            assert_eq!(normalize_host(raw), Err(InvalidHost), "{raw}");
        }
    }
}

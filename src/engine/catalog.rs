//! API catalogs: from a raw request to an operation, a resource type and an access path.
//!
//! Every operation of every Ready catalog becomes a route in one segment trie (catalog
//! prefix + path template). A request walks the trie once; among the routes that fit its
//! method and host, the one with the most literal segments wins, then a catalog that names
//! the host, then the catalog name, then the operation's position.

use std::fmt;

use super::HashMap;
use super::model::ApiCatalogDef;
use super::report::{Problem, Reason};
use super::rules::Domain;

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

/// Where a catalog that is not Ready would have applied: requests there are denied.
#[derive(Clone, Debug)]
struct BrokenCatalog {
    name: Box<str>,
    /// `None`: any host.
    hosts: Option<Box<[Box<str>]>>,
    /// `None` is a `{param}` segment.
    prefix: Box<[Option<Box<str>>]>,
}

/// Why a catalog is not Ready.
pub(crate) type CatalogError = Problem;

#[derive(Clone, Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    root: Node,
    broken: Vec<BrokenCatalog>,
}

/// What routing found.
pub(crate) enum Routed<'r> {
    Route(&'r Route),
    /// Inside a catalog that is not Ready.
    Broken(&'r str),
    None,
}

/// Host as compared: lowercased, without the port.
pub(crate) fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = match host.rsplit_once(':') {
        // a port follows the last `:` unless that colon is inside a bare IPv6 address
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && (h.ends_with(']') || !h.contains(':')) => h,
        _ => host,
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
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
                Ok(())
            }
            Err(e) => {
                let hosts = match &def.hosts {
                    Some(hs) if !hs.is_empty() => Some(hs.iter().map(|h| normalize_host(h).into()).collect()),
                    _ => None,
                };
                let prefix = def
                    .path_prefix
                    .as_deref()
                    .map(|p| {
                        p.split('/')
                            .filter(|s| !s.is_empty())
                            .map(|s| (!s.contains(['{', '}'])).then(|| s.into()))
                            .collect()
                    })
                    .unwrap_or_default();
                self.broken.push(BrokenCatalog { name: def.meta.name.as_str().into(), hosts, prefix });
                Err(e)
            }
        }
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
        for b in &self.broken {
            let host_ok = b.hosts.as_ref().is_none_or(|hs| hs.iter().any(|h| **h == *host));
            let prefix_ok = b.prefix.len() <= path.len()
                && b.prefix.iter().zip(path).all(|(p, s)| p.as_deref().is_none_or(|p| p == s.as_ref()));
            if host_ok && prefix_ok {
                return Routed::Broken(&b.name);
            }
        }
        Routed::None
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
                // Higher key wins; on equal keys the lower id (catalog name, position) stays.
                if best.is_none_or(|(k, _)| key > k) {
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
        Some(hs) => Some(hs.iter().map(|h| normalize_host(h).into()).collect::<Box<[Box<str>]>>()),
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
            Routed::None => None,
        }
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
        r.add(&cat(
            "a-any",
            None,
            Some("/api"),
            vec![op("ByParam", "GET", "/items/{id}"), op("Dup", "GET", "/items/new")],
        ))
        .ok()
        .unwrap();
        r.add(&cat("b-host", Some(&["API.example.com:443"]), Some("/api"), vec![op("Literal", "GET", "/items/new")]))
            .ok()
            .unwrap();
        r.add(&cat("c-any", None, None, vec![op("Other", "GET", "/api/items/new")])).ok().unwrap();
        assert_eq!(routed(&r, "GET", "api.example.com", "/api/items/new").as_deref(), Some("b-host/Literal"));
        assert_eq!(routed(&r, "GET", "other.example.com", "/api/items/new").as_deref(), Some("a-any/Dup"));
        assert_eq!(routed(&r, "GET", "other.example.com", "/api/items/7").as_deref(), Some("a-any/ByParam"));
        assert_eq!(routed(&r, "POST", "other.example.com", "/api/items/7"), None);
        assert_eq!(routed(&r, "HEAD", "other.example.com", "/api/items/7").as_deref(), Some("a-any/ByParam"));
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
    fn hosts_are_lowercased_without_port() {
        assert_eq!(normalize_host("API.Example.com:8443"), "api.example.com");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("api"), "api");
    }
}

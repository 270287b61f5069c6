//! The input of a decision and its normalization.

use std::borrow::Cow;

use jiff::Timestamp;
use serde_json::{Map, Value};
use smallvec::SmallVec;

/// Who is asking. Groups are as given; the implied Kubernetes groups are added by the engine.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
}

/// Where `u(claim)` reads from.
#[derive(Clone, Copy, Debug)]
pub enum Claims<'a> {
    /// A verified token's claims.
    Token(&'a Map<String, Value>),
    /// A subject given without a token: the user is the only claim with a usable value, under
    /// this name (default `sub`).
    Subject { user_claim: &'a str },
}

/// Header lookup, case-insensitive. The HTTP layer implements it over its header map.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

fn find<'h, K: AsRef<str>, V: AsRef<str>>(pairs: &'h [(K, V)], name: &str) -> Option<&'h str> {
    pairs.iter().find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref())
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        find(self, name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        find(self, name)
    }
}

/// A request without headers.
pub struct NoHeaders;

impl Headers for NoHeaders {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

/// A request to decide on.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// `None`: no valid identity (401).
    pub subject: Option<Subject<'a>>,
    pub claims: Claims<'a>,
    pub method: &'a str,
    pub host: &'a str,
    /// Path with optional `?query`.
    pub path: &'a str,
    pub headers: &'a dyn Headers,
    pub body: Option<&'a Value>,
    /// The explicit OU context (`/v1/check` field `ou`); the header and query parameter are
    /// read from `headers` and `path`.
    pub ou: Option<&'a str>,
    pub now: Timestamp,
}

/// Header that carries the OU context.
pub const OU_HEADER: &str = "x-turnstile-ou";

/// Why a path is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    DotSegment,
    BadEscape,
    EncodedSlash,
}

impl PathError {
    pub(crate) fn message(&self) -> &'static str {
        match self {
            PathError::DotSegment => "path has a `.` or `..` segment (or `..;`)",
            PathError::BadEscape => "path has a malformed percent-escape",
            PathError::EncodedSlash => "path has an encoded `/`",
        }
    }
}

pub(crate) type Segments<'a> = SmallVec<[Cow<'a, str>; 8]>;

/// Splits `path?query` into decoded segments and the raw query.
pub(crate) fn split_path(raw: &str) -> Result<(Segments<'_>, &str), PathError> {
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let mut segments = Segments::new();
    // One pass over the bytes: a `/` (or the end) ends a segment, a `%` marks it for decoding.
    let (mut start, mut escaped) = (0, false);
    for (i, b) in path.bytes().chain(std::iter::once(b'/')).enumerate() {
        match b {
            b'/' => {
                if i > start {
                    segments.push(segment(&path[start..i], escaped)?);
                }
                (start, escaped) = (i + 1, false);
            }
            b'%' => escaped = true,
            _ => {}
        }
    }
    Ok((segments, query))
}

/// One segment of a path, decoded if it has a `%`.
fn segment(raw: &str, escaped: bool) -> Result<Cow<'_, str>, PathError> {
    let seg = if escaped { percent_decode(raw)? } else { Cow::Borrowed(raw) };
    // `..;x` is `..` to a server that strips path parameters (Tomcat, Jetty).
    if seg.starts_with('.') {
        let bare = seg.split(';').next().unwrap_or(&seg);
        if bare == "." || bare == ".." {
            return Err(PathError::DotSegment);
        }
    }
    Ok(seg)
}

/// Strict percent-decoding: a bad escape, a decoded `/` or invalid UTF-8 is an error.
fn percent_decode(seg: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(hi), Some(lo)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
            else {
                return Err(PathError::BadEscape);
            };
            let b = (hi * 16 + lo) as u8;
            if b == b'/' {
                return Err(PathError::EncodedSlash);
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| PathError::BadEscape)
}

/// First value of a query parameter, form-decoded.
pub(crate) fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    if query.is_empty() {
        return None;
    }
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Text of a JSON value an extractor can use: a string or a number.
pub(crate) fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// Uppercases a method without allocating when it already is.
pub(crate) fn upper_method(m: &str) -> Cow<'_, str> {
    if m.bytes().any(|b| b.is_ascii_lowercase()) { Cow::Owned(m.to_ascii_uppercase()) } else { Cow::Borrowed(m) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_decode() {
        let (segs, q) = split_path("/api//v1/a%20b/?x=1").unwrap();
        assert_eq!(segs.as_slice(), &["api", "v1", "a b"]);
        assert_eq!(q, "x=1");
        assert_eq!(split_path("/a/../b").unwrap_err(), PathError::DotSegment);
        assert_eq!(split_path("/a/%2e%2E/b").unwrap_err(), PathError::DotSegment);
        assert_eq!(split_path("/a/..;/b").unwrap_err(), PathError::DotSegment);
        assert_eq!(split_path("/a/.;x=1/b").unwrap_err(), PathError::DotSegment);
        assert_eq!(split_path("/a/%2e%2e%3bjsessionid=1/b").unwrap_err(), PathError::DotSegment);
        assert_eq!(split_path("/a/..x/b").unwrap().0.as_slice(), &["a", "..x", "b"]);
        assert_eq!(split_path("/a/%2Fb").unwrap_err(), PathError::EncodedSlash);
        assert_eq!(split_path("/a/%zz").unwrap_err(), PathError::BadEscape);
        assert_eq!(split_path("/a/%4").unwrap_err(), PathError::BadEscape);
        assert_eq!(split_path("/a/%ff").unwrap_err(), PathError::BadEscape);
        assert!(split_path("/").unwrap().0.is_empty());
    }

    /// The plain reading the one-pass splitter must agree with: split on `/`, decode each
    /// segment, refuse dot segments.
    fn split_plainly(raw: &str) -> Result<Vec<String>, PathError> {
        let path = raw.split_once('?').map_or(raw, |(p, _)| p);
        let path = path.split_once('#').map_or(path, |(p, _)| p);
        let mut out = Vec::new();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            let seg = if seg.contains('%') { percent_decode(seg)?.into_owned() } else { seg.to_owned() };
            let bare = seg.split(';').next().unwrap_or(&seg);
            if bare == "." || bare == ".." {
                return Err(PathError::DotSegment);
            }
            out.push(seg);
        }
        Ok(out)
    }

    proptest::proptest! {
        #[test]
        fn the_one_pass_split_is_the_plain_one(raw in "[/a.;%2eEfF ?#é]{0,16}") {
            let fast = split_path(&raw).map(|(segs, _)| segs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            proptest::prop_assert_eq!(fast, split_plainly(&raw));
        }
    }

    #[test]
    fn first_query_value_wins() {
        assert_eq!(query_param("ou=a&ou=b", "ou").as_deref(), Some("a"));
        assert_eq!(query_param("x=a+b%21", "x").as_deref(), Some("a b!"));
        assert_eq!(query_param("", "x"), None);
    }

    #[test]
    fn headers_are_case_insensitive() {
        let h = [("X-Turnstile-OU", "accounting")];
        assert_eq!(h.get(OU_HEADER), Some("accounting"));
    }
}

/// Splits a full URL (`https://host:port/path?query`) into its host and path-with-query; a
/// bare path has no host. Dot segments are left as they are, for the decision to refuse.
pub fn split_url(url: &str) -> (&str, &str) {
    let Some((_, rest)) = url.split_once("://") else {
        return ("", if url.is_empty() { "/" } else { url });
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = &rest[end..];
    (host, if path.is_empty() { "/" } else { path })
}

#[cfg(test)]
mod url_tests {
    use super::split_url;

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(split_url("https://api.example.com:8443/a/b?x=1"), ("api.example.com:8443", "/a/b?x=1"));
        assert_eq!(split_url("http://u:p@h"), ("h", "/"));
        assert_eq!(split_url("http://h?x"), ("h", "?x"));
        assert_eq!(split_url("/a/../b"), ("", "/a/../b"));
    }
}

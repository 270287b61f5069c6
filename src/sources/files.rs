//! File mode: every `*.yaml` / `*.yml` file (any case) under a folder (recursively, in path
//! order; regular files only, each at most 32 MiB),
//! multi-document. Documents of other API groups are skipped with a note, unless they look
//! like ours (`looks_like_ours`); a document that cannot be used is reported with its file,
//! position and object, and left out. A field its
//! kind does not define does not stop the document: it is kept, with its path, beside the
//! object, and the conversion makes the object `InvalidSpec`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::convert::AnyResource;
use super::crd::{GROUP, VERSION};
use crate::engine::{Definitions, Kind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is part of the message, and deliberately not a `source`: an error chain
    // printed whole (`{:#}`) would repeat it.
    #[error("cannot read `{}`: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a document was found: file and 1-based position in it (0: the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            // The file as a whole.
            0 => write!(f, "{}", self.file.display()),
            n => write!(f, "{} (document {n})", self.file.display()),
        }
    }
}

/// A document that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadProblem {
    pub origin: Origin,
    /// `Kind/name` when the document got that far.
    pub object: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(o) => write!(f, "{}: {o}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// An object read from a document.
#[derive(Clone, Debug)]
pub struct LoadedResource {
    pub origin: Origin,
    pub resource: AnyResource,
    /// Paths of the fields the document sets that its kind does not define, such as
    /// `spec.allow[0].denny`: the object is converted as usual and is `InvalidSpec`.
    pub unknown_fields: Vec<String>,
}

/// Everything read from a folder.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub resources: Vec<LoadedResource>,
    /// Where each object came from, by kind and name.
    pub origins: BTreeMap<(Kind, String), Vec<Origin>>,
    /// Documents that could not be used. Any one makes the whole folder unusable: `serve`
    /// keeps its previous index and `check` decides nothing.
    pub problems: Vec<LoadProblem>,
    /// Documents skipped because they are not Turnstile resources.
    pub notes: Vec<String>,
    pub files: usize,
}

impl Loaded {
    pub fn definitions(&self) -> Definitions {
        let mut defs = Definitions::default();
        for r in &self.resources {
            r.resource.add_to(&r.unknown_fields, &mut defs);
        }
        defs
    }
}

/// Largest manifest file read; a larger one is a load problem.
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// Largest total of manifest files read from one folder.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;

/// Loads every manifest under `dir` (or the single file `dir`). Only regular files are read
/// (a symlink counts as what it points to): a FIFO, a device or a socket named `*.yaml`, or a
/// file over [`MAX_FILE_BYTES`] (or past [`MAX_TOTAL_BYTES`] in all), is a load problem that
/// names the file, never a hang or an unbounded read.
pub fn load(dir: &Path) -> Result<Loaded> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut loaded = Loaded { files: files.len(), ..Default::default() };
    let mut total = 0u64;
    for file in files {
        match read_capped(&file, MAX_TOTAL_BYTES.saturating_sub(total)) {
            Ok(text) => {
                total += text.len() as u64;
                load_str(&file, &text, &mut loaded);
            }
            Err(Unreadable::Io(error)) => return Err(Error::Io { path: file, error }),
            Err(Unreadable::Refused(why)) => {
                loaded.problems.push(LoadProblem { origin: Origin { file, document: 0 }, object: None, message: why })
            }
        }
    }
    Ok(loaded)
}

enum Unreadable {
    Io(std::io::Error),
    /// Not read, and why.
    Refused(String),
}

/// A regular file's text, refused when it is not a regular file or holds more than
/// [`MAX_FILE_BYTES`] (or `budget`, what is left of [`MAX_TOTAL_BYTES`]).
fn read_capped(path: &Path, budget: u64) -> std::result::Result<String, Unreadable> {
    use std::io::Read;
    // Checked before opening: opening a FIFO blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(Unreadable::Io)?;
    if !meta.is_file() {
        return Err(Unreadable::Refused("not a regular file (a FIFO, device or socket?); it was not read".into()));
    }
    let cap = MAX_FILE_BYTES.min(budget);
    let file = std::fs::File::open(path).map_err(Unreadable::Io)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(Unreadable::Io)?;
    if bytes.len() as u64 > cap {
        let why = match cap < MAX_FILE_BYTES {
            true => format!(
                "the folder's manifests hold more than {} MiB in all; this file was not read",
                MAX_TOTAL_BYTES >> 20
            ),
            false => format!("larger than {} MiB; it was not read", MAX_FILE_BYTES >> 20),
        };
        return Err(Unreadable::Refused(why));
    }
    String::from_utf8(bytes).map_err(|_| Unreadable::Refused("not UTF-8 text".into()))
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |error| Error::Io { path: path.to_owned(), error };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let p = entry.path();
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        // Not followed when a symlink: a link to a parent folder would loop.
        if entry.file_type().map_err(io)?.is_dir() {
            collect(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Limits on one document, against YAML bombs: serde-saphyr's `Budget` caps the parser events
/// (`max_events`), nodes (`max_nodes`), nesting (`max_depth`), anchors and aliases
/// (`max_anchors`, `max_aliases`) and scalar text (`max_total_scalar_bytes`) before anything is
/// built, and its `AliasLimits` cap how many events aliases may replay
/// (`max_total_replayed_events`, the "billion laughs" expansion) and how deeply they nest. A
/// real manifest is far below every one of them; a document over any of them is a load problem.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 1_000_000,
            max_nodes: 500_000,
            max_depth: 64,
            max_anchors: 1_000,
            max_aliases: 10_000,
            max_total_scalar_bytes: 16 << 20,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
        // YAML 1.2 booleans only: `name: no` or `resources: [on]` stay the strings they read as
        // (YAML 1.1 would make them `false` and `true`, and the document a type error).
        strict_booleans: true,
        with_snippet: false,
    }
}

/// Parses one file's documents into `loaded`, one by one.
pub fn load_str(file: &Path, text: &str, loaded: &mut Loaded) {
    let origin = |document| Origin { file: file.to_owned(), document };
    let syntax_error = each_document(text, |document, slice, line_offset| {
        let origin = origin(document);
        match serde_saphyr::from_str_with_options::<serde_json::Value>(slice, options()) {
            Ok(value) => load_value(origin, value, loaded),
            Err(e) => {
                // Lines are counted from the top of the file, not of the document.
                let message = e.render_with_options(serde_saphyr::render_options! {
                    formatter: &serde_saphyr::UserMessageFormatter,
                    snippets: serde_saphyr::SnippetMode::Off,
                    line_offset: line_offset,
                });
                loaded.problems.push(LoadProblem {
                    origin,
                    object: None,
                    message: format!("not valid YAML: {message}"),
                });
            }
        }
    });
    if let Some((document, message)) = syntax_error {
        // The parser cannot resynchronize after a syntax error.
        loaded.problems.push(LoadProblem {
            origin: origin(document),
            object: None,
            message: format!("not valid YAML: {message}"),
        });
    }
}

/// Calls `f(position, text, lines before it)` for each document of a YAML stream, empty ones
/// included, so that positions are the ones a reader counts. A syntax error ends the stream:
/// it is returned with the position of the document it is in.
///
/// The stream is only scanned here (aliases are not expanded, so this is linear in the
/// input); each document is then parsed on its own, under [`options`]'s budget.
fn each_document(text: &str, mut f: impl FnMut(usize, &str, u64)) -> Option<(usize, String)> {
    use serde_saphyr::granit_parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let (mut position, mut start) = (0, None);
    while let Some(event) = parser.next_event() {
        match event {
            Ok((Event::DocumentStart(..), span)) => {
                position += 1;
                let at = span.start.byte_offset().unwrap_or(span.start.index());
                // An implicit document starts at its first token: take its indentation too.
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let at = if text[line_start..at].trim().is_empty() { line_start } else { at };
                start = Some((at, span.start.line().saturating_sub(1)));
            }
            Ok((Event::DocumentEnd, span)) => {
                if let Some((at, lines_before)) = start.take() {
                    let end = span.end.byte_offset().unwrap_or(span.end.index());
                    f(position, &text[at..end.max(at)], lines_before as u64);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let position = if start.is_some() { position } else { position + 1 };
                let (line, column) = (e.marker().line(), e.marker().col() + 1);
                return Some((position, format!("{} at line {line}, column {column}", e.info())));
            }
        }
    }
    None
}

pub fn load_value(origin: Origin, mut value: serde_json::Value, loaded: &mut Loaded) {
    if value.is_null() {
        return;
    }
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (api_version, kind) = (field("apiVersion").to_owned(), field("kind").to_owned());
    let name = value.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).map(str::to_owned);
    let object = (!kind.is_empty()).then(|| format!("{kind}/{}", name.as_deref().unwrap_or("?")));
    let problem = |message: String| LoadProblem { origin: origin.clone(), object: object.clone(), message };
    // `v1` is the core group's; a version-less `turnstile.dev` is checked as a group.
    let (group, version) = api_version.split_once('/').unwrap_or((&api_version, ""));
    if group != GROUP {
        match looks_like_ours(&api_version, group, &kind, value.get("spec").is_some()) {
            Some(why) => loaded.problems.push(problem(why)),
            None => {
                let what = if kind.is_empty() {
                    "a document without `kind`".to_owned()
                } else {
                    format!("`{api_version}` `{kind}`")
                };
                loaded.notes.push(format!("{origin}: skipped {what}: not a {GROUP} resource"));
            }
        }
        return;
    }
    if version != VERSION {
        loaded.problems.push(problem(format!("version `{api_version}` is not served; use `{GROUP}/{VERSION}`")));
        return;
    }
    let Some(kind_id) = Kind::parse(&kind) else {
        let why = if kind.is_empty() { "`kind` is missing".to_owned() } else { format!("unknown kind `{kind}`") };
        loaded.problems.push(problem(why));
        return;
    };
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        loaded.problems.push(problem("`metadata.name` is missing".to_owned()));
        return;
    };
    if let Some(map) = value.as_object_mut() {
        // An object with nothing to say (an OU with no parent) may leave `spec` out.
        map.entry("spec").or_insert_with(|| serde_json::Value::Object(Default::default()));
        // Checked above; the typed objects have no field for them.
        map.remove("apiVersion");
        map.remove("kind");
    }
    let mut unknown_fields = Vec::new();
    let parsed = match kind_id {
        Kind::OrganizationalUnit => parse(value, &mut unknown_fields).map(AnyResource::OrganizationalUnit),
        Kind::PermissionSet => parse(value, &mut unknown_fields).map(AnyResource::PermissionSet),
        Kind::Role => parse(value, &mut unknown_fields).map(AnyResource::Role),
        Kind::UserBinding => parse(value, &mut unknown_fields).map(AnyResource::UserBinding),
        Kind::ApiCatalog => parse(value, &mut unknown_fields).map(AnyResource::ApiCatalog),
    };
    match parsed {
        Ok(resource) => {
            loaded.origins.entry((kind_id, name)).or_default().push(origin.clone());
            loaded.resources.push(LoadedResource { origin, resource, unknown_fields });
        }
        Err(e) => {
            let mut message = format!("does not match the schema: {e}");
            if let Some(unknown) = super::convert::unknown(&unknown_fields) {
                message = format!("{message}; {unknown}");
            }
            loaded.problems.push(problem(message));
        }
    }
}

/// Why a document of another API group is not skipped: it looks like a Turnstile resource
/// that would silently vanish (a misspelt `turnstile.dev.io` on a system-wide deny set), so it
/// is refused. Foreign manifests (an Ingress, a Traefik Middleware, Kubernetes' own RBAC
/// `Role`) are skipped.
fn looks_like_ours(api_version: &str, group: &str, kind: &str, has_spec: bool) -> Option<String> {
    let expected = format!("`{GROUP}/{VERSION}`");
    if api_version.is_empty() || kind.is_empty() {
        let missing = if api_version.is_empty() { "apiVersion" } else { "kind" };
        return has_spec
            .then(|| format!("a document with `spec` has no `{missing}`; a Turnstile resource needs {expected}"));
    }
    let lowercase = group.to_ascii_lowercase();
    // Damerau-Levenshtein: a swap of two letters is one edit. Lengths that differ by more than
    // the limit cannot be within it, and are not compared.
    let near = |limit: usize| {
        lowercase.len().abs_diff(GROUP.len()) <= limit && strsim::damerau_levenshtein(&lowercase, GROUP) <= limit
    };
    if lowercase.contains("turnstile") || near(3) {
        return Some(format!("apiVersion `{api_version}` is not {expected}"));
    }
    let ours = Kind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(kind))?;
    // Kubernetes' own RBAC Role sits beside our resources in many a folder.
    if ours == Kind::Role && group == "rbac.authorization.k8s.io" {
        return None;
    }
    Some(format!("kind `{kind}` is a Turnstile kind, but apiVersion `{api_version}` is not {expected}"))
}

/// Reads an object as its kind defines it. A field the kind does not define is not refused
/// here but collected into `unknown_fields` with its path: the object is then converted as
/// usual and reported `InvalidSpec`, like any other object that is not sound. A value of the
/// wrong type is an error naming its path (`spec.permissionSets: invalid type: ...`).
fn parse<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    unknown_fields: &mut Vec<String>,
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    let mut note = |path: serde_ignored::Path<'_>| unknown_fields.push(field_path(&path));
    serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut note))
}

/// `spec.allow[0].denny`, as the API server's strict field validation names a field.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_parsed_skipped_or_reported() {
        let text = r#"
apiVersion: turnstile.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: accounting}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
---
apiVersion: turnstile.dev/v1alpha1
kind: Role
metadata: {name: bad}
spec: {permissionSets: 3}
---
apiVersion: turnstile.dev/v1alpha1
kind: Gadget
metadata: {name: g}
---
apiVersion: turnstile.dev/v1beta9
kind: Role
metadata: {name: r}
---
"#;
        let mut loaded = Loaded::default();
        load_str(Path::new("x.yaml"), text, &mut loaded);
        assert_eq!(loaded.resources.len(), 1);
        assert_eq!(loaded.notes.len(), 1);
        assert!(loaded.notes[0].contains("`v1` `ConfigMap`"));
        let msgs: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].starts_with("x.yaml (document 3): Role/bad: does not match the schema"), "{}", msgs[0]);
        assert!(msgs[1].contains("unknown kind `Gadget`"));
        assert!(msgs[2].contains("is not served"));
    }

    #[test]
    fn a_document_that_looks_like_ours_is_refused_and_a_foreign_one_skipped() {
        let doc = |api_version: &str, kind: &str| {
            format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: n}}\nspec: {{systemWide: true}}\n---\n")
        };
        let refused = [
            doc("turnstile.dev.io/v1alpha1", "PermissionSet"),
            doc("Turnstile.dev/v1alpha1", "PermissionSet"),
            doc("turnstile.dev", "PermissionSet"),
            doc("turnstyle.dev/v1alpha1", "PermissionSet"),
            doc("tunrstile.dve/v1alpha1", "Gadget"),
            doc("example.com/v1", "permissionset"),
            doc("v1", "UserBinding"),
            doc("turnstile.example.com/v1", "ApiCatalog"),
            "kind: PermissionSet\nmetadata: {name: n}\nspec: {}\n---\n".to_owned(),
            "apiVersion: turnstile.dev/v1alpha1\nmetadata: {name: n}\nspec: {}\n---\n".to_owned(),
        ];
        let skipped = [
            doc("rbac.authorization.k8s.io/v1", "Role"),
            doc("networking.k8s.io/v1", "Ingress"),
            doc("traefik.io/v1alpha1", "Middleware"),
            doc("v1", "ConfigMap"),
            "static_resources: {listeners: []}\n---\n".to_owned(),
        ];
        let mut loaded = Loaded::default();
        load_str(Path::new("x.yaml"), &[refused.concat(), skipped.concat()].concat(), &mut loaded);
        assert!(loaded.resources.is_empty());
        let msgs: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), refused.len(), "{msgs:#?}");
        for (i, m) in msgs.iter().enumerate() {
            assert!(m.starts_with(&format!("x.yaml (document {}): ", i + 1)), "{m}");
            assert!(i == 9 || m.contains("`turnstile.dev/v1alpha1`"), "{m}");
        }
        assert!(
            msgs[0]
                .ends_with("PermissionSet/n: apiVersion `turnstile.dev.io/v1alpha1` is not `turnstile.dev/v1alpha1`"),
            "{}",
            msgs[0]
        );
        assert!(msgs[5].contains("kind `permissionset` is a Turnstile kind, but apiVersion `example.com/v1` is not"));
        assert!(msgs[8].ends_with(
            "a document with `spec` has no `apiVersion`; a Turnstile resource needs `turnstile.dev/v1alpha1`"
        ));
        assert!(msgs[9].ends_with("x.yaml (document 10): `kind` is missing"), "{}", msgs[9]);
        assert_eq!(loaded.notes.len(), skipped.len(), "{:#?}", loaded.notes);
        assert!(loaded.notes[0].contains("skipped `rbac.authorization.k8s.io/v1` `Role`"), "{}", loaded.notes[0]);
    }

    #[test]
    fn a_catalog_denies_what_it_does_not_route_unless_it_says_uncatalogued() {
        let catalog = |name: &str, unmatched: &str| {
            format!(
                "apiVersion: turnstile.dev/v1alpha1\nkind: ApiCatalog\nmetadata: {{name: {name}}}\n\
                 spec:\n  pathPrefix: /api\n{unmatched}  operations: [{{id: A, method: GET, path: /a}}]\n---\n"
            )
        };
        let text = [
            catalog("default", ""),
            catalog("deny", "  unmatched: Deny\n"),
            catalog("open", "  unmatched: Uncatalogued\n"),
            catalog("typo", "  unmatched: Allow\n"),
        ]
        .concat();
        let mut loaded = Loaded::default();
        load_str(Path::new("x.yaml"), &text, &mut loaded);
        let defs = loaded.definitions();
        let unmatched: Vec<(&str, crate::engine::Unmatched)> =
            defs.api_catalogs.iter().map(|c| (c.meta.name.as_str(), c.unmatched)).collect();
        use crate::engine::Unmatched::{Deny, Uncatalogued};
        assert_eq!(unmatched, [("default", Deny), ("deny", Deny), ("open", Uncatalogued)]);
        let msg = loaded.problems[0].to_string();
        assert!(
            msg.contains("ApiCatalog/typo: does not match the schema: spec.unmatched: unknown variant `Allow`"),
            "{msg}"
        );
    }

    #[test]
    fn yes_no_on_and_off_are_strings() {
        let text = "apiVersion: turnstile.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {name: no}\n\
                    spec: {resources: [y, n, yes, on, off]}\n";
        let mut loaded = Loaded::default();
        load_str(Path::new("x.yaml"), text, &mut loaded);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let ou = &loaded.definitions().organizational_units[0];
        assert_eq!(ou.meta.name, "no");
        assert_eq!(ou.resources, ["y", "n", "yes", "on", "off"]);
    }

    #[test]
    fn a_field_its_kind_does_not_define_is_kept_with_its_path_and_makes_the_object_invalid() {
        let text = r#"
apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {name: p, labels: {team: a}, lables: {team: b}}
sepc: {}
spec:
  allow:
    - apiName: "Get.*"
    - apiName: "List.*"
      denny: x
  deny: [{methdos: GET}]
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: b}
spec: {subjects: [{kind: User, name: a}], organizationalUnits: [global], expiresat: "2020-01-01T00:00:00Z"}
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: c}
sepc: {subjects: [{kind: User, name: a}], organizationalUnits: [global]}
---
apiVersion: turnstile.dev/v1alpha1
kind: Role
metadata: {name: fine}
spec: {permissionSets: []}
"#;
        let mut loaded = Loaded::default();
        load_str(Path::new("x.yaml"), text, &mut loaded);
        let mut unknown: Vec<Vec<String>> = loaded.resources.iter().map(|r| r.unknown_fields.clone()).collect();
        unknown[0].sort();
        assert_eq!(
            unknown,
            [
                vec!["metadata.lables", "sepc", "spec.allow[1].denny", "spec.deny[0].methdos"],
                vec!["spec.expiresat"],
                vec![],
            ]
        );
        // Without its `spec`, the third object does not parse at all: a load problem that
        // still names the misspelt field.
        let msgs: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            msgs,
            ["x.yaml (document 3): UserBinding/c: does not match the schema: spec: missing field `subjects`; \
              unknown field `sepc`"]
        );

        let defs = loaded.definitions();
        let invalid = defs.user_bindings[0].meta.invalid.as_deref();
        assert_eq!(invalid, Some("unknown field `spec.expiresat`"));
        assert_eq!(defs.roles[0].meta.invalid, None);
        let (_, report) = crate::engine::Snapshot::build(&defs, jiff::Timestamp::now());
        let errors: Vec<String> = report.errors().map(|(k, n, p)| format!("{k}/{n}: {p}")).collect();
        assert!(errors.iter().any(|e| e.starts_with("PermissionSet/p: InvalidSpec: unknown fields `")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("`spec.allow[1].denny`")), "{errors:?}");
        assert!(
            errors.contains(&"UserBinding/b: InvalidSpec: unknown field `spec.expiresat`".to_owned()),
            "{errors:?}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_load_problem_naming_its_path() {
        let text = "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: p}\n\
                    spec: {allow: [{methods: GET}, {paths: 3}]}\n";
        let mut loaded = Loaded::default();
        load_str(Path::new("x.yaml"), text, &mut loaded);
        assert!(loaded.resources.is_empty());
        let msg = loaded.problems[0].to_string();
        assert!(msg.contains("does not match the schema: spec.allow[1].paths: invalid type: integer `3`"), "{msg}");
    }

    #[test]
    fn positions_count_empty_documents_and_lines_count_from_the_top_of_the_file() {
        let text = "---\n# nothing yet\n---\napiVersion: turnstile.dev/v1alpha1\nkind: Role\nmetadata: {name: r}\n\
                    ---\n---\n  apiVersion: turnstile.dev/v1alpha1\n  kind: Role\n  metadata: {name: s}\n\
                    ---\nkind: Role\nkind: Role\n";
        let mut loaded = Loaded::default();
        load_str(Path::new("x.yaml"), text, &mut loaded);
        let at: Vec<usize> = loaded.resources.iter().map(|r| r.origin.document).collect();
        assert_eq!(at, [2, 4]);
        let msgs: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].starts_with("x.yaml (document 5): not valid YAML: duplicate mapping key"), "{}", msgs[0]);
        assert!(msgs[0].contains("line 14"), "{}", msgs[0]);
    }

    #[test]
    fn an_alias_bomb_is_refused_by_the_budget() {
        let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        text.push_str("---\napiVersion: turnstile.dev/v1alpha1\nkind: Role\nmetadata: {name: after}\n");
        let mut loaded = Loaded::default();
        let started = std::time::Instant::now();
        load_str(Path::new("bomb.yaml"), &text, &mut loaded);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        let msg = loaded.problems[0].to_string();
        assert!(msg.starts_with("bomb.yaml (document 1): not valid YAML:"), "{msg}");
        assert!(msg.contains("too large or too complex: total_replayed_events"), "{msg}");
        // the next document is still read
        assert_eq!(loaded.resources.len(), 1);
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_file() {
        let mut loaded = Loaded::default();
        load_str(Path::new("bad.yaml"), "kind: [unclosed", &mut loaded);
        assert_eq!(loaded.problems.len(), 1);
        assert!(loaded.problems[0].to_string().starts_with("bad.yaml (document 1): not valid YAML"));

        // The documents before the error are read; nothing after it is.
        let mut loaded = Loaded::default();
        let text = "apiVersion: turnstile.dev/v1alpha1\nkind: Role\nmetadata: {name: r}\n---\nkind: [unclosed\n\
                    ---\napiVersion: turnstile.dev/v1alpha1\nkind: Role\nmetadata: {name: s}\n";
        load_str(Path::new("bad.yaml"), text, &mut loaded);
        assert_eq!(loaded.resources.len(), 1);
        let msg = loaded.problems[0].to_string();
        assert!(msg.starts_with("bad.yaml (document 2): not valid YAML:"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");
    }
}

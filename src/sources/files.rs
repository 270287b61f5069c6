//! File mode: every `*.yaml` / `*.yml` file under a folder (recursively, in path order),
//! multi-document. Documents of other API groups are skipped with a note; a document that
//! does not parse is reported with its file, position and object, and left out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::convert::AnyResource;
use super::crd::{ApiCatalog, GROUP, OrganizationalUnit, PermissionSet, Role, UserBinding, VERSION};
use crate::engine::{Definitions, Kind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a document was found: file and 1-based position in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
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

/// Everything read from a folder.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub resources: Vec<(Origin, AnyResource)>,
    /// Where each object came from, by kind and name.
    pub origins: BTreeMap<(Kind, String), Vec<Origin>>,
    pub problems: Vec<LoadProblem>,
    /// Documents skipped because they are not Turnstile resources.
    pub notes: Vec<String>,
    pub files: usize,
}

impl Loaded {
    pub fn definitions(&self) -> Definitions {
        let mut defs = Definitions::default();
        for (_, r) in &self.resources {
            r.add_to(&mut defs);
        }
        defs
    }
}

/// Loads every manifest under `dir` (or the single file `dir`).
pub fn load(dir: &Path) -> Result<Loaded> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut loaded = Loaded { files: files.len(), ..Default::default() };
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Io { path: file.clone(), source })?;
        load_str(&file, &text, &mut loaded);
    }
    Ok(loaded)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
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
        if entry.file_type().map_err(io)?.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses one file's documents into `loaded`.
pub fn load_str(file: &Path, text: &str, loaded: &mut Loaded) {
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin { file: file.to_owned(), document: i + 1 };
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                loaded.problems.push(LoadProblem { origin, object: None, message: format!("not valid YAML: {e}") });
                // The parser cannot resynchronize after a syntax error.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let (api_version, kind) = (field("apiVersion").to_owned(), field("kind").to_owned());
        let name = value.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).map(str::to_owned);
        let Some((group, version)) = api_version.split_once('/').filter(|(g, _)| *g == GROUP) else {
            let what = if kind.is_empty() {
                "a document without `kind`".to_owned()
            } else {
                format!("`{api_version}` `{kind}`")
            };
            loaded.notes.push(format!("{origin}: skipped {what}: not a {GROUP} resource"));
            continue;
        };
        let object = Some(format!("{kind}/{}", name.as_deref().unwrap_or("?")));
        let problem = |message: String| LoadProblem { origin: origin.clone(), object: object.clone(), message };
        if version != VERSION {
            loaded
                .problems
                .push(problem(format!("version `{group}/{version}` is not served; use `{GROUP}/{VERSION}`")));
            continue;
        }
        let Some(kind_id) = Kind::parse(&kind) else {
            loaded.problems.push(problem(format!("unknown kind `{kind}`")));
            continue;
        };
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            loaded.problems.push(problem("`metadata.name` is missing".to_owned()));
            continue;
        };
        let mut value = value;
        if let Some(map) = value.as_mapping_mut() {
            // An object with nothing to say (an OU with no parent) may leave `spec` out.
            map.entry("spec".into()).or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        }
        match parse(kind_id, value) {
            Ok(resource) => {
                loaded.origins.entry((kind_id, name)).or_default().push(origin.clone());
                loaded.resources.push((origin, resource));
            }
            Err(e) => loaded.problems.push(problem(format!("does not match the schema: {e}"))),
        }
    }
}

fn parse(kind: Kind, value: serde_yaml::Value) -> Result<AnyResource, serde_yaml::Error> {
    Ok(match kind {
        Kind::OrganizationalUnit => {
            AnyResource::OrganizationalUnit(serde_yaml::from_value::<OrganizationalUnit>(value)?)
        }
        Kind::PermissionSet => AnyResource::PermissionSet(serde_yaml::from_value::<PermissionSet>(value)?),
        Kind::Role => AnyResource::Role(serde_yaml::from_value::<Role>(value)?),
        Kind::UserBinding => AnyResource::UserBinding(serde_yaml::from_value::<UserBinding>(value)?),
        Kind::ApiCatalog => AnyResource::ApiCatalog(serde_yaml::from_value::<ApiCatalog>(value)?),
    })
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
    fn a_syntax_error_is_reported_with_its_file() {
        let mut loaded = Loaded::default();
        load_str(Path::new("bad.yaml"), "kind: [unclosed", &mut loaded);
        assert_eq!(loaded.problems.len(), 1);
        assert!(loaded.problems[0].to_string().starts_with("bad.yaml (document 1): not valid YAML"));
    }
}

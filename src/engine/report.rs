//! What the index build found wrong with each object.
//!
//! The same report feeds the `validate` command, the file-mode log and, in a cluster, each
//! object's `status.conditions`: what is reported is exactly what is enforced.

use std::collections::BTreeMap;
use std::fmt;

/// The five kinds, in the order their objects are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    OrganizationalUnit,
    PermissionSet,
    Role,
    UserBinding,
    ApiCatalog,
}

impl Kind {
    pub const ALL: [Kind; 5] =
        [Kind::OrganizationalUnit, Kind::PermissionSet, Kind::Role, Kind::UserBinding, Kind::ApiCatalog];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrganizationalUnit => "OrganizationalUnit",
            Kind::PermissionSet => "PermissionSet",
            Kind::Role => "Role",
            Kind::UserBinding => "UserBinding",
            Kind::ApiCatalog => "ApiCatalog",
        }
    }

    pub fn parse(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Condition reasons (DESIGN §2, §3.1). Errors make an object `Ready=False`; warnings leave it
/// Ready and are reported as conditions of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    // errors
    ParentNotFound,
    Cycle,
    InvalidParent,
    InvalidRegex,
    InvalidSpec,
    PermissionSetNotFound,
    RoleNotFound,
    OrganizationalUnitNotFound,
    Expired,
    InvalidTemplate,
    DuplicateName,
    // warnings
    ResourceConflict,
    RoleConflict,
    ScopeNotFound,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ParentNotFound => "ParentNotFound",
            Reason::Cycle => "Cycle",
            Reason::InvalidParent => "InvalidParent",
            Reason::InvalidRegex => "InvalidRegex",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::PermissionSetNotFound => "PermissionSetNotFound",
            Reason::RoleNotFound => "RoleNotFound",
            Reason::OrganizationalUnitNotFound => "OrganizationalUnitNotFound",
            Reason::Expired => "Expired",
            Reason::InvalidTemplate => "InvalidTemplate",
            Reason::DuplicateName => "DuplicateName",
            Reason::ResourceConflict => "ResourceConflict",
            Reason::RoleConflict => "RoleConflict",
            Reason::ScopeNotFound => "ScopeNotFound",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding: a reason and a human message (lowercase, user input in backticks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Problem { reason, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// The status of one object after a build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectStatus {
    /// `None` when the object is Ready (and indexed).
    pub error: Option<Problem>,
    pub warnings: Vec<Problem>,
    /// For organizational units in the tree: `global/accounting/payroll` and its depth.
    pub path: Option<(String, u32)>,
}

impl ObjectStatus {
    pub fn is_ready(&self) -> bool {
        self.error.is_none()
    }
}

/// Status of every object, by kind and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub objects: BTreeMap<(Kind, String), ObjectStatus>,
}

impl Report {
    pub fn get(&self, kind: Kind, name: &str) -> Option<&ObjectStatus> {
        self.objects.get(&(kind, name.to_owned()))
    }

    pub(crate) fn entry(&mut self, kind: Kind, name: &str) -> &mut ObjectStatus {
        self.objects.entry((kind, name.to_owned())).or_default()
    }

    pub(crate) fn fail(&mut self, kind: Kind, name: &str, problem: Problem) {
        let status = self.entry(kind, name);
        if status.error.is_none() {
            status.error = Some(problem);
        }
    }

    pub(crate) fn warn(&mut self, kind: Kind, name: &str, problem: Problem) {
        self.entry(kind, name).warnings.push(problem);
    }

    /// Objects that are not Ready.
    pub fn errors(&self) -> impl Iterator<Item = (Kind, &str, &Problem)> {
        self.objects.iter().filter_map(|((k, n), s)| s.error.as_ref().map(|p| (*k, n.as_str(), p)))
    }

    /// Warnings on any object.
    pub fn warnings(&self) -> impl Iterator<Item = (Kind, &str, &Problem)> {
        self.objects.iter().flat_map(|((k, n), s)| s.warnings.iter().map(move |p| (*k, n.as_str(), p)))
    }

    pub fn is_clean(&self) -> bool {
        self.errors().next().is_none()
    }
}

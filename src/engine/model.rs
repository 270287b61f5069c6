//! Plain definitions of the five kinds, as the engine reads them.
//!
//! The sources layer (custom resources, the file loader) converts what it reads into these
//! types; [`crate::engine::Index::build`] validates them, reports a status per object and
//! compiles the ones that are sound into a [`crate::engine::Snapshot`].

/// The implicit root of the OU tree.
pub const GLOBAL: &str = "global";

/// Every definition the index is built from.
#[derive(Clone, Debug, Default)]
pub struct Definitions {
    pub organizational_units: Vec<OrganizationalUnitDef>,
    pub permission_sets: Vec<PermissionSetDef>,
    pub roles: Vec<RoleDef>,
    pub user_bindings: Vec<UserBindingDef>,
    pub api_catalogs: Vec<ApiCatalogDef>,
}

/// Identity of an object, and what its source could not read faithfully.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    /// `metadata.generation`, for the status's `observedGeneration`.
    pub generation: Option<i64>,
    /// Why the source could not take the object as written (a field the kind does not
    /// define, say). The object is then `InvalidSpec`: not Ready, and left out of the index
    /// with every consequence a broken object has.
    pub invalid: Option<String>,
}

impl Meta {
    pub fn named(name: impl Into<String>) -> Self {
        Meta { name: name.into(), ..Default::default() }
    }
}

#[derive(Clone, Debug, Default)]
pub struct OrganizationalUnitDef {
    pub meta: Meta,
    pub parent: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub resources: Vec<String>,
}

/// One allow or deny rule: every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleDef {
    pub resource_type: Option<String>,
    pub api_name: Option<String>,
    pub methods: Option<String>,
    pub paths: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct PermissionSetDef {
    pub meta: Meta,
    pub description: Option<String>,
    pub operations: Option<Vec<String>>,
    pub allow: Vec<RuleDef>,
    pub deny: Vec<RuleDef>,
    /// OUs where the set applies; `None` or an empty list: everywhere.
    pub scope: Option<Vec<String>>,
    pub system_wide: bool,
}

#[derive(Clone, Debug, Default)]
pub struct RoleDef {
    pub meta: Meta,
    pub description: Option<String>,
    pub permission_sets: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    User,
    Group,
    ServiceAccount,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectDef {
    pub kind: SubjectKind,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct UserBindingDef {
    pub meta: Meta,
    pub subjects: Vec<SubjectDef>,
    pub role: Option<String>,
    pub organizational_units: Vec<String>,
    pub permission_sets: Vec<String>,
    /// RFC 3339 time after which the binding grants nothing.
    pub expires_at: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct OperationDef {
    pub id: String,
    pub method: String,
    pub path: String,
    pub resource_type: Option<String>,
    pub access_path: Option<String>,
    pub resource: Option<String>,
}

/// What a catalog does with a request inside its `hosts` and `pathPrefix` that no Ready
/// catalog routes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unmatched {
    /// 403, naming the catalog: a path variant must not fall through to a broad allow.
    #[default]
    Deny,
    /// Decide it as an uncatalogued request (no operation, no resource type).
    Uncatalogued,
}

#[derive(Clone, Debug, Default)]
pub struct ApiCatalogDef {
    pub meta: Meta,
    pub hosts: Option<Vec<String>>,
    pub path_prefix: Option<String>,
    pub unmatched: Unmatched,
    pub operations: Vec<OperationDef>,
}

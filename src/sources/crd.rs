//! The five custom resources of `turnstile.dev/v1alpha1`, all cluster-scoped.
//!
//! Field doc comments become the schema descriptions of the generated CRDs (`turnstile crds`,
//! committed under `crds/`).

// kube's `printcolumn(...)` repeats the same keys once per column.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Turnstile resource.
pub const GROUP: &str = "turnstile.dev";
/// Version of every Turnstile resource.
pub const VERSION: &str = "v1alpha1";

/// A standard Kubernetes condition (`metav1.Condition`): `type` is `Ready`, or the reason of a
/// warning (`ResourceConflict`, `RoleConflict`, `ScopeNotFound`).
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Status shared by permission sets, roles, bindings and catalogs.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and one condition per warning reason (`ResourceConflict`, `RoleConflict`,
    /// `ScopeNotFound`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Status of an organizational unit.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationalUnitStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and one condition per warning reason (`ResourceConflict`, `RoleConflict`,
    /// `ScopeNotFound`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Path from the root, e.g. `global/accounting/payroll`; absent when not in the tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Depth below `global` (which is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
}

/// An organizational unit: a node of the tree under the implicit root `global`. Access granted
/// on an OU covers all of its descendants.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "turnstile.dev",
    version = "v1alpha1",
    kind = "OrganizationalUnit",
    shortname = "ou",
    status = "OrganizationalUnitStatus",
    doc = "An organizational unit in the tree under `global`.",
    printcolumn(name = "Parent", type_ = "string", json_path = ".spec.parent"),
    printcolumn(name = "Path", type_ = "string", json_path = ".status.path"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationalUnitSpec {
    /// Name of the parent OU; absent means the root `global`. The object named `global` may
    /// not have a parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Name shown to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What the OU is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Ids of the resources grouped here (e.g. `aws-account-1`, `namespace/payroll`). A
    /// resource belongs to at most one OU; a resource in no OU belongs to `global`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// One allow or deny rule. Every field that is set must match; a rule with no field set
/// matches every request.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Regex (full, anchored match) over the operation's resource type, e.g. `aws/.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Regex over the operation ID, e.g. `GetSecretData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_name: Option<String>,
    /// Regex over the uppercased HTTP method, e.g. `GET|HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<String>,
    /// Feature-path grants: `/`-separated segments, `*` matches one segment, and a grant
    /// covers everything below the node it names. Leave out to mean any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

/// Where a permission set applies.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSetScope {
    /// OUs (with their descendants) where the set applies; absent or empty: everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_units: Option<Vec<String>>,
}

/// A permission set: allow and deny rules. Deny overrides allow; no allow means deny.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "turnstile.dev",
    version = "v1alpha1",
    kind = "PermissionSet",
    shortname = "pset",
    status = "ResourceStatus",
    doc = "A set of allow and deny rules.",
    printcolumn(name = "SystemWide", type_ = "boolean", json_path = ".spec.systemWide"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSetSpec {
    /// What the set is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Shorthand: allow these operation IDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<String>>,
    /// Rules that allow a request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<PolicyRule>,
    /// Rules that deny a request, whatever else allows it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<PolicyRule>,
    /// Where the set applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<PermissionSetScope>,
    /// True: the set applies to every authenticated subject, with no binding needed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_wide: bool,
}

/// A role: a named group of permission sets.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "turnstile.dev",
    version = "v1alpha1",
    kind = "Role",
    status = "ResourceStatus",
    doc = "A named group of permission sets.",
    printcolumn(name = "Description", type_ = "string", json_path = ".spec.description"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Names of the permission sets the role grants. A missing one makes the role grant
    /// nothing until it is fixed.
    #[serde(default)]
    pub permission_sets: Vec<String>,
}

/// Kind of a binding subject.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum SubjectKind {
    /// A user name (the token's user claim).
    #[default]
    User,
    /// A group (the token's groups claim, e.g. SSO groups).
    Group,
    /// A Kubernetes service account: `system:serviceaccount:<namespace>:<name>`.
    ServiceAccount,
}

/// Who a binding applies to.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BindingSubject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// User, group or service-account name.
    pub name: String,
    /// Namespace of a `ServiceAccount` subject (required for that kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A user binding: subjects get a role and direct permission sets on some OUs.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "turnstile.dev",
    version = "v1alpha1",
    kind = "UserBinding",
    shortname = "ub",
    status = "ResourceStatus",
    doc = "Gives subjects a role and permission sets on organizational units.",
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role"),
    printcolumn(name = "OUs", type_ = "string", json_path = ".spec.organizationalUnits"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".spec.expiresAt"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct UserBindingSpec {
    /// Users, groups and service accounts the binding applies to.
    pub subjects: Vec<BindingSubject>,
    /// The role granted (at most one per binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// OUs where the binding applies, with their descendants; at least one.
    pub organizational_units: Vec<String>,
    /// Permission sets assigned directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_sets: Vec<String>,
    /// RFC 3339 time after which the binding grants nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// One operation of a protected API.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiOperation {
    /// Operation ID, matched by rules' `apiName` and by `operations`.
    pub id: String,
    /// HTTP method.
    pub method: String,
    /// Path template below `pathPrefix`; `{name}` is one segment.
    pub path: String,
    /// Resource type, matched by rules' `resourceType`, e.g. `db/cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Access path for `paths` grants, with extractors `u(claim)`, `p(param)`, `q(param)`,
    /// `h(header)`, `j(field)` each filling a whole segment; default: the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_path: Option<String>,
    /// Id of the resource the operation acts on, used to find its OU, e.g. `p(account)` or
    /// `namespace/p(ns)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// An API catalog: the operations of one protected API.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "turnstile.dev",
    version = "v1alpha1",
    kind = "ApiCatalog",
    shortname = "apicat",
    status = "ResourceStatus",
    doc = "The operations of one protected API.",
    printcolumn(name = "Hosts", type_ = "string", json_path = ".spec.hosts"),
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.pathPrefix"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ApiCatalogSpec {
    /// Host values this catalog covers (compared lowercased, without port); absent: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Path prefix of every operation, e.g. `/api/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// What to do with a request inside this catalog's hosts and pathPrefix that no Ready
    /// catalog routes: `Deny` (default) answers 403 naming the catalog, so a path variant such
    /// as `/a;x=1`, `/A` or `/a.json` cannot fall through to a broad allow; `Uncatalogued`
    /// decides it as a request no catalog describes.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// The operations.
    pub operations: Vec<ApiOperation>,
}

/// What a catalog does with a request inside its hosts and pathPrefix that no Ready catalog
/// routes.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Unmatched {
    /// 403, naming the catalog.
    #[default]
    Deny,
    /// Decided as a request no catalog describes (no operation, no resource type).
    Uncatalogued,
}

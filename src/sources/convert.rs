//! The one conversion from custom resources to engine definitions, and from the engine's
//! report back to status conditions. `validate`, the file loader and the controller all go
//! through here, so what is reported is what is enforced.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;

use super::crd::{
    ApiCatalog, Condition, OrganizationalUnit, OrganizationalUnitStatus, PermissionSet, ResourceStatus, Role,
    SubjectKind as CrdSubjectKind, Unmatched as CrdUnmatched, UserBinding,
};
use crate::engine::{
    ApiCatalogDef, Definitions, Kind, Meta, ObjectStatus, OperationDef, OrganizationalUnitDef, PermissionSetDef,
    RoleDef, RuleDef, SubjectDef, SubjectKind, Unmatched, UserBindingDef,
};

/// `unknown_fields`: paths of the fields the object sets that its kind does not define. Any
/// makes the object `InvalidSpec` (DESIGN §3.1): a misspelt `methdos` must never read as "any
/// method". An API server prunes such fields before a controller sees the object; a file keeps
/// them.
fn meta(m: &ObjectMeta, unknown_fields: &[String]) -> Meta {
    Meta { name: m.name.clone().unwrap_or_default(), generation: m.generation, invalid: unknown(unknown_fields) }
}

/// `unknown field `spec.allow[0].denny``, naming every one.
pub fn unknown(fields: &[String]) -> Option<String> {
    let quoted = || fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
    match fields {
        [] => None,
        [_] => Some(format!("unknown field {}", quoted())),
        _ => Some(format!("unknown fields {}", quoted())),
    }
}

fn organizational_unit(o: &OrganizationalUnit, meta: Meta) -> OrganizationalUnitDef {
    OrganizationalUnitDef {
        meta,
        parent: o.spec.parent.clone(),
        display_name: o.spec.display_name.clone(),
        description: o.spec.description.clone(),
        resources: o.spec.resources.clone(),
    }
}

fn permission_set(p: &PermissionSet, meta: Meta) -> PermissionSetDef {
    let rules = |rs: &[super::crd::PolicyRule]| {
        rs.iter()
            .map(|r| RuleDef {
                resource_type: r.resource_type.clone(),
                api_name: r.api_name.clone(),
                methods: r.methods.clone(),
                paths: r.paths.clone(),
            })
            .collect()
    };
    PermissionSetDef {
        meta,
        description: p.spec.description.clone(),
        operations: p.spec.operations.clone(),
        allow: rules(&p.spec.allow),
        deny: rules(&p.spec.deny),
        scope: p.spec.scope.as_ref().and_then(|s| s.organizational_units.clone()),
        system_wide: p.spec.system_wide,
    }
}

fn role(r: &Role, meta: Meta) -> RoleDef {
    RoleDef { meta, description: r.spec.description.clone(), permission_sets: r.spec.permission_sets.clone() }
}

fn user_binding(b: &UserBinding, meta: Meta) -> UserBindingDef {
    UserBindingDef {
        meta,
        subjects: b
            .spec
            .subjects
            .iter()
            .map(|s| SubjectDef {
                kind: match s.kind {
                    CrdSubjectKind::User => SubjectKind::User,
                    CrdSubjectKind::Group => SubjectKind::Group,
                    CrdSubjectKind::ServiceAccount => SubjectKind::ServiceAccount,
                },
                name: s.name.clone(),
                namespace: s.namespace.clone(),
            })
            .collect(),
        role: b.spec.role.clone(),
        organizational_units: b.spec.organizational_units.clone(),
        permission_sets: b.spec.permission_sets.clone(),
        expires_at: b.spec.expires_at.clone(),
    }
}

fn api_catalog(c: &ApiCatalog, meta: Meta) -> ApiCatalogDef {
    ApiCatalogDef {
        meta,
        hosts: c.spec.hosts.clone(),
        path_prefix: c.spec.path_prefix.clone(),
        unmatched: match c.spec.unmatched {
            CrdUnmatched::Deny => Unmatched::Deny,
            CrdUnmatched::Uncatalogued => Unmatched::Uncatalogued,
        },
        operations: c
            .spec
            .operations
            .iter()
            .map(|o| OperationDef {
                id: o.id.clone(),
                method: o.method.clone(),
                path: o.path.clone(),
                resource_type: o.resource_type.clone(),
                access_path: o.access_path.clone(),
                resource: o.resource.clone(),
            })
            .collect(),
    }
}

/// Any of the five resources.
#[derive(Clone, Debug)]
pub enum AnyResource {
    OrganizationalUnit(OrganizationalUnit),
    PermissionSet(PermissionSet),
    Role(Role),
    UserBinding(UserBinding),
    ApiCatalog(ApiCatalog),
}

macro_rules! from {
    ($($kind:ident),*) => {$(
        impl From<$kind> for AnyResource {
            fn from(r: $kind) -> AnyResource {
                AnyResource::$kind(r)
            }
        }
    )*};
}

from!(OrganizationalUnit, PermissionSet, Role, UserBinding, ApiCatalog);

/// Applies `$body` to the object inside any variant, bound to `$r`.
macro_rules! each {
    ($any:expr, $r:ident => $body:expr) => {
        match $any {
            AnyResource::OrganizationalUnit($r) => $body,
            AnyResource::PermissionSet($r) => $body,
            AnyResource::Role($r) => $body,
            AnyResource::UserBinding($r) => $body,
            AnyResource::ApiCatalog($r) => $body,
        }
    };
}

impl AnyResource {
    pub fn kind(&self) -> Kind {
        match self {
            AnyResource::OrganizationalUnit(_) => Kind::OrganizationalUnit,
            AnyResource::PermissionSet(_) => Kind::PermissionSet,
            AnyResource::Role(_) => Kind::Role,
            AnyResource::UserBinding(_) => Kind::UserBinding,
            AnyResource::ApiCatalog(_) => Kind::ApiCatalog,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        each!(self, r => &r.metadata)
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each!(self, r => &mut r.metadata)
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// Whether the engine would read `self` and `other` alike: same name, generation and spec.
    /// Status, labels, annotations and `managedFields` are not read.
    pub fn same_for_engine(&self, other: &AnyResource) -> bool {
        let (a, b) = (self.metadata(), other.metadata());
        let same_meta = a.name == b.name && a.generation == b.generation;
        same_meta
            && match (self, other) {
                (AnyResource::OrganizationalUnit(a), AnyResource::OrganizationalUnit(b)) => a.spec == b.spec,
                (AnyResource::PermissionSet(a), AnyResource::PermissionSet(b)) => a.spec == b.spec,
                (AnyResource::Role(a), AnyResource::Role(b)) => a.spec == b.spec,
                (AnyResource::UserBinding(a), AnyResource::UserBinding(b)) => a.spec == b.spec,
                (AnyResource::ApiCatalog(a), AnyResource::ApiCatalog(b)) => a.spec == b.spec,
                _ => false,
            }
    }

    /// The `Ready` and warning conditions the object carries now.
    pub fn conditions(&self) -> &[Condition] {
        each!(self, r => r.status.as_ref().map_or(&[][..], |s| &s.conditions))
    }

    /// The status `status` calls for, as JSON for a status patch, or `None` when the object
    /// already carries exactly that (conditions keep their `lastTransitionTime` unless their
    /// status flips, so an unchanged object compares equal).
    pub fn status_update(&self, status: &ObjectStatus, now: jiff::Timestamp) -> Option<serde_json::Value> {
        let generation = self.metadata().generation;
        let previous = self.conditions();
        fn changed<T: PartialEq + serde::Serialize>(current: Option<&T>, desired: T) -> Option<serde_json::Value> {
            (current != Some(&desired)).then(|| serde_json::to_value(desired).expect("a status serializes"))
        }
        match self {
            AnyResource::OrganizationalUnit(r) => {
                changed(r.status.as_ref(), ou_status(status, previous, generation, now))
            }
            AnyResource::PermissionSet(r) => {
                changed(r.status.as_ref(), resource_status(status, previous, generation, now))
            }
            AnyResource::Role(r) => changed(r.status.as_ref(), resource_status(status, previous, generation, now)),
            AnyResource::UserBinding(r) => {
                changed(r.status.as_ref(), resource_status(status, previous, generation, now))
            }
            AnyResource::ApiCatalog(r) => {
                changed(r.status.as_ref(), resource_status(status, previous, generation, now))
            }
        }
    }

    /// Adds the resource's engine definition. `unknown_fields` are the paths of the fields the
    /// object sets that its kind does not define (`spec.allow[0].denny`); any makes it
    /// `InvalidSpec`.
    pub fn add_to(&self, unknown_fields: &[String], defs: &mut Definitions) {
        match self {
            AnyResource::OrganizationalUnit(r) => {
                defs.organizational_units.push(organizational_unit(r, meta(&r.metadata, unknown_fields)))
            }
            AnyResource::PermissionSet(r) => {
                defs.permission_sets.push(permission_set(r, meta(&r.metadata, unknown_fields)))
            }
            AnyResource::Role(r) => defs.roles.push(role(r, meta(&r.metadata, unknown_fields))),
            AnyResource::UserBinding(r) => defs.user_bindings.push(user_binding(r, meta(&r.metadata, unknown_fields))),
            AnyResource::ApiCatalog(r) => defs.api_catalogs.push(api_catalog(r, meta(&r.metadata, unknown_fields))),
        }
    }
}

/// Conditions for an object's status: `Ready`, then one per warning reason. `previous` are the
/// object's current conditions: a condition whose `status` is unchanged keeps its
/// `lastTransitionTime` (a new reason or message does not move it); a new condition, or one
/// whose status flipped, gets `now`.
pub fn conditions(
    status: &ObjectStatus,
    previous: &[Condition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    let cond = |type_: &str, ok: bool, reason: &str, message: &str| Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: Time(now),
        observed_generation: generation,
    };
    let mut out = vec![match &status.error {
        None => cond("Ready", true, "Indexed", "indexed and enforced"),
        Some(p) => cond("Ready", false, p.reason.as_str(), &p.message),
    }];
    for w in &status.warnings {
        match out.iter_mut().find(|c| c.type_ == w.reason.as_str()) {
            Some(c) => {
                c.message.push_str("; ");
                c.message.push_str(&w.message);
            }
            None => out.push(cond(w.reason.as_str(), true, w.reason.as_str(), &w.message)),
        }
    }
    for c in &mut out {
        if let Some(before) = previous.iter().find(|p| p.type_ == c.type_ && p.status == c.status) {
            c.last_transition_time = before.last_transition_time.clone();
        }
    }
    out
}

/// Status of a permission set, role, binding or catalog; `previous` as for [`conditions`].
pub fn resource_status(
    status: &ObjectStatus,
    previous: &[Condition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> ResourceStatus {
    ResourceStatus { observed_generation: generation, conditions: conditions(status, previous, generation, now) }
}

/// Status of an organizational unit, with its path and depth when it is in the tree;
/// `previous` as for [`conditions`].
pub fn ou_status(
    status: &ObjectStatus,
    previous: &[Condition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> OrganizationalUnitStatus {
    OrganizationalUnitStatus {
        observed_generation: generation,
        conditions: conditions(status, previous, generation, now),
        path: status.path.as_ref().map(|(p, _)| p.clone()),
        depth: status.path.as_ref().map(|(_, d)| *d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Problem, Reason};

    fn at(t: &str) -> jiff::Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn unknown_fields_make_the_definition_invalid_and_are_all_named() {
        let role = AnyResource::Role(Role::new("r", Default::default()));
        let mut defs = Definitions::default();
        role.add_to(&[], &mut defs);
        role.add_to(&["spec.descripton".to_owned()], &mut defs);
        role.add_to(&["metadata.lables".to_owned(), "spec.permissionSet".to_owned()], &mut defs);
        let invalid: Vec<Option<&str>> = defs.roles.iter().map(|r| r.meta.invalid.as_deref()).collect();
        assert_eq!(
            invalid,
            [
                None,
                Some("unknown field `spec.descripton`"),
                Some("unknown fields `metadata.lables`, `spec.permissionSet`")
            ]
        );
        assert!(defs.roles.iter().all(|r| r.meta.name == "r"));
    }

    #[test]
    fn status_conditions_carry_ready_and_one_condition_per_warning_reason() {
        let ready = ObjectStatus {
            error: None,
            warnings: vec![
                Problem::new(Reason::ResourceConflict, "resource `a` is also listed by `x`, which keeps it"),
                Problem::new(Reason::ResourceConflict, "resource `b` is also listed by `y`, which keeps it"),
            ],
            path: Some(("global/accounting".into(), 1)),
        };
        let s = ou_status(&ready, &[], Some(3), at("2026-01-01T00:00:00Z"));
        assert_eq!(s.path.as_deref(), Some("global/accounting"));
        assert_eq!(s.depth, Some(1));
        assert_eq!(s.conditions.len(), 2);
        assert_eq!((s.conditions[0].type_.as_str(), s.conditions[0].status.as_str()), ("Ready", "True"));
        assert_eq!(s.conditions[0].observed_generation, Some(3));
        assert_eq!(s.conditions[1].type_, "ResourceConflict");
        assert!(s.conditions[1].message.contains("`a`") && s.conditions[1].message.contains("`b`"));

        let broken = ObjectStatus {
            error: Some(Problem::new(Reason::InvalidRegex, "allow[0]: invalid regex `(`")),
            ..Default::default()
        };
        let s = resource_status(&broken, &[], None, at("2026-01-01T00:00:00Z"));
        let c = &s.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidRegex"));
        assert_eq!(c.message, "allow[0]: invalid regex `(`");
    }

    #[test]
    fn last_transition_time_moves_only_when_a_condition_appears_or_its_status_flips() {
        let (t1, t2, t3) = (at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z"));
        let broken = |message: &str| ObjectStatus {
            error: Some(Problem::new(Reason::PermissionSetNotFound, message)),
            ..Default::default()
        };
        let first = resource_status(&broken("permission set `a` is missing or not ready"), &[], Some(1), t1);
        assert_eq!(first.conditions[0].last_transition_time, Time(t1));

        // Still not Ready, for another reason: the time it became not Ready stands.
        let second = ObjectStatus {
            error: Some(Problem::new(Reason::InvalidSpec, "unknown field `spec.permissionSet`")),
            warnings: vec![Problem::new(Reason::ScopeNotFound, "scope OU `x` is missing or not ready")],
            ..Default::default()
        };
        let second = resource_status(&second, &first.conditions, Some(2), t2);
        let ready = &second.conditions[0];
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
        assert_eq!(ready.message, "unknown field `spec.permissionSet`");
        assert_eq!(ready.last_transition_time, Time(t1));
        assert_eq!(ready.observed_generation, Some(2));
        // A new warning condition starts now.
        assert_eq!(second.conditions[1].type_, "ScopeNotFound");
        assert_eq!(second.conditions[1].last_transition_time, Time(t2));

        // Ready again: the status flipped, so the time moves; the warning is gone.
        let third = resource_status(&ObjectStatus::default(), &second.conditions, Some(3), t3);
        assert_eq!(third.conditions.len(), 1);
        assert_eq!((third.conditions[0].status.as_str(), third.conditions[0].reason.as_str()), ("True", "Indexed"));
        assert_eq!(third.conditions[0].last_transition_time, Time(t3));
        assert_eq!(third.observed_generation, Some(3));
    }
}

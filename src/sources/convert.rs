//! The one conversion from custom resources to engine definitions, and from the engine's
//! report back to status conditions. `validate`, the file loader and the controller all go
//! through here, so what is reported is what is enforced.

use kube::api::ObjectMeta;

use super::crd::{
    ApiCatalog, Condition, OrganizationalUnit, OrganizationalUnitStatus, PermissionSet, ResourceStatus, Role,
    SubjectKind as CrdSubjectKind, Unmatched as CrdUnmatched, UserBinding,
};
use crate::engine::{
    ApiCatalogDef, Definitions, Meta, ObjectStatus, OperationDef, OrganizationalUnitDef, PermissionSetDef, RoleDef,
    RuleDef, SubjectDef, SubjectKind, Unmatched, UserBindingDef,
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

impl AnyResource {
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

/// Conditions for an object's status: `Ready`, then one per warning reason.
pub fn conditions(status: &ObjectStatus, generation: Option<i64>, now: &str) -> Vec<Condition> {
    let cond = |type_: &str, ok: bool, reason: &str, message: &str| Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: Some(now.to_owned()),
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
    out
}

/// Status of a permission set, role, binding or catalog.
pub fn resource_status(status: &ObjectStatus, generation: Option<i64>, now: &str) -> ResourceStatus {
    ResourceStatus { observed_generation: generation, conditions: conditions(status, generation, now) }
}

/// Status of an organizational unit, with its path and depth when it is in the tree.
pub fn ou_status(status: &ObjectStatus, generation: Option<i64>, now: &str) -> OrganizationalUnitStatus {
    OrganizationalUnitStatus {
        observed_generation: generation,
        conditions: conditions(status, generation, now),
        path: status.path.as_ref().map(|(p, _)| p.clone()),
        depth: status.path.as_ref().map(|(_, d)| *d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Problem, Reason};

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
        let s = ou_status(&ready, Some(3), "2026-01-01T00:00:00Z");
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
        let s = resource_status(&broken, None, "2026-01-01T00:00:00Z");
        let c = &s.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidRegex"));
        assert_eq!(c.message, "allow[0]: invalid regex `(`");
    }
}

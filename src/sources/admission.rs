//! What the validating admission webhook says about one object (`kubectl apply` feedback).
//!
//! An object that is wrong on its own is refused, with the reason and message that
//! `validate` and its status condition would give: it is read by the folder loader's strict
//! reader, converted by the one conversion, and built by the engine beside empty stand-ins for
//! everything it names, so that only its own faults remain (a regex that does not compile, a
//! template that does not parse, an empty list, an unknown field, a ServiceAccount subject
//! without a namespace). What depends on other objects is only warned about, since GitOps
//! tools apply in any order: a reference to an object that is missing or not Ready, a parent
//! that would close a cycle, a resource another OU lists, a role conflict, a binding already
//! expired; and about allow rules that a deny rule of the same set always beats.

use crate::engine::{
    Definitions, GLOBAL, Kind, OrganizationalUnitDef, PermissionSetDef, Reason, Report, RoleDef, Snapshot,
};
use crate::sources::files::{Loaded, Origin, load_value};

/// The serving world a new object is compared with.
#[derive(Clone, Copy)]
pub struct World<'a> {
    pub snapshot: &'a Snapshot,
    pub report: &'a Report,
}

/// `Ok(warnings)` admits the object; `Err(why)` refuses it.
pub fn check(
    object: &serde_json::Value,
    world: Option<World<'_>>,
    now: jiff::Timestamp,
) -> Result<Vec<String>, String> {
    let mut loaded = Loaded::default();
    load_value(Origin { file: "admission".into(), document: 1 }, object.clone(), &mut loaded);
    if let Some(p) = loaded.problems.first() {
        return Err(p.message.clone());
    }
    let Some(r) = loaded.resources.first() else {
        return Err("not a turnstile.dev/v1alpha1 resource".to_owned());
    };
    let (kind, name) = (r.resource.kind(), r.resource.name().to_owned());
    let mut alone = Definitions::default();
    r.resource.add_to(&r.unknown_fields, &mut alone);
    let references = references(&alone);
    let mut defs = alone.clone();
    stand_ins(&references, &mut defs);
    let (_, report) = Snapshot::build(&defs, now);
    let mut warnings = Vec::new();
    if let Some(status) = report.get(kind, &name) {
        match &status.error {
            Some(p) if p.reason == Reason::Expired => warnings.push(p.message.clone()),
            Some(p) => return Err(format!("{}: {}", p.reason, p.message)),
            None => {}
        }
    }
    warnings.extend(shadowed(&alone));
    if let Some(world) = world {
        warnings.extend(dependencies(kind, &name, &alone, &references, world));
    }
    Ok(warnings)
}

/// Allow rules of a set that a deny rule of the same set always beats: the deny sets no field
/// the allow rule leaves out, and each field it sets the allow rule sets to the same pattern,
/// so whatever the allow rule matches, the deny rule matches too. (Patterns are compared as
/// written; a deny that is broader only by its regex is not found.)
fn shadowed(defs: &Definitions) -> Vec<String> {
    let mut warnings = Vec::new();
    for set in &defs.permission_sets {
        for (j, deny) in set.deny.iter().enumerate() {
            let covers = |allow: &crate::engine::RuleDef| {
                (deny.resource_type.is_none() || deny.resource_type == allow.resource_type)
                    && (deny.api_name.is_none() || deny.api_name == allow.api_name)
                    && (deny.methods.is_none() || deny.methods == allow.methods)
                    && (deny.paths.is_none() || deny.paths == allow.paths)
            };
            for (i, allow) in set.allow.iter().enumerate() {
                if covers(allow) {
                    warnings
                        .push(format!("allow[{i}] can never allow: deny[{j}] of the same set matches all it matches"));
                }
            }
            let everything = deny.resource_type.is_none() && deny.api_name.is_none() && deny.methods.is_none();
            if everything && deny.paths.is_none() && set.operations.is_some() {
                warnings.push(format!("`operations` can never allow: deny[{j}] of the same set matches every request"));
            }
        }
    }
    warnings
}

/// The objects a definition names, by kind.
fn references(defs: &Definitions) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    let mut ou = |n: &String| {
        if n != GLOBAL {
            out.push((Kind::OrganizationalUnit, n.clone()))
        }
    };
    for o in &defs.organizational_units {
        o.parent.iter().for_each(&mut ou);
    }
    for s in &defs.permission_sets {
        s.scope.iter().flatten().for_each(&mut ou);
    }
    for b in &defs.user_bindings {
        b.organizational_units.iter().for_each(&mut ou);
    }
    for r in &defs.roles {
        out.extend(r.permission_sets.iter().map(|s| (Kind::PermissionSet, s.clone())));
    }
    for b in &defs.user_bindings {
        out.extend(b.permission_sets.iter().map(|s| (Kind::PermissionSet, s.clone())));
        out.extend(b.role.iter().map(|r| (Kind::Role, r.clone())));
    }
    out.sort();
    out.dedup();
    out
}

/// Empty, valid objects for every reference that the definitions do not hold themselves.
fn stand_ins(references: &[(Kind, String)], defs: &mut Definitions) {
    use crate::engine::Meta;
    let own = |kind: Kind, name: &str, defs: &Definitions| match kind {
        Kind::OrganizationalUnit => defs.organizational_units.iter().any(|d| d.meta.name == name),
        Kind::PermissionSet => defs.permission_sets.iter().any(|d| d.meta.name == name),
        Kind::Role => defs.roles.iter().any(|d| d.meta.name == name),
        _ => true,
    };
    for (kind, name) in references {
        if own(*kind, name, defs) {
            continue;
        }
        let meta = Meta::named(name.clone());
        match kind {
            Kind::OrganizationalUnit => {
                defs.organizational_units.push(OrganizationalUnitDef { meta, ..Default::default() })
            }
            Kind::PermissionSet => defs.permission_sets.push(PermissionSetDef { meta, ..Default::default() }),
            Kind::Role => defs.roles.push(RoleDef { meta, ..Default::default() }),
            _ => {}
        }
    }
}

/// Warnings about what the object depends on in the serving world.
fn dependencies(
    kind: Kind,
    name: &str,
    alone: &Definitions,
    references: &[(Kind, String)],
    world: World<'_>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (k, n) in references {
        match world.report.get(*k, n) {
            None => warnings.push(format!("{k} `{n}` does not exist (yet): until it does, this {kind} is not Ready")),
            Some(s) if !s.is_ready() => {
                warnings.push(format!("{k} `{n}` is not Ready: until it is, this {kind} is not Ready"))
            }
            Some(_) => {}
        }
    }
    for b in &alone.user_bindings {
        let Some(role) = &b.role else { continue };
        for s in b.subjects.iter().filter(|s| s.kind == crate::engine::SubjectKind::User) {
            for (other, other_role) in world.snapshot.role_conflicts(&s.name, role, &b.organizational_units, name) {
                warnings.push(format!(
                    "user `{}` also gets role `{other_role}` from binding `{other}` on overlapping organizational units \
                     (RoleConflict)",
                    s.name
                ));
            }
        }
    }
    for ou in &alone.organizational_units {
        // The parent's path from the root: naming this OU in it closes a cycle.
        let parent_path = ou.parent.as_ref().and_then(|p| world.report.get(Kind::OrganizationalUnit, p)?.path.clone());
        if let Some((path, _)) = parent_path
            && path.split('/').any(|segment| segment == name)
        {
            warnings.push(format!("parent `{path}` is below `{name}`: this would make a cycle (Cycle)"));
        }
        for resource in &ou.resources {
            if let Some(owner) = world.snapshot.resource_owner(resource).filter(|o| *o != name) {
                warnings.push(format!(
                    "resource `{resource}` is already listed by organizational unit `{owner}`: while both list it, it \
                     belongs to neither (ResourceConflict)"
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sources::files;

    fn now() -> jiff::Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn object(kind: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "turnstile.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn faults_of_the_object_itself_are_refused_with_their_reason() {
        let refused = |kind, spec| check(&object(kind, "x", spec), None, now()).unwrap_err();
        let why = refused("PermissionSet", json!({"allow": [{"apiName": "GetUser)|(ListUsers"}]}));
        assert!(why.starts_with("InvalidRegex: allow[0]"), "{why}");
        let why = refused("PermissionSet", json!({"deny": [{"paths": []}]}));
        assert!(why.starts_with("InvalidSpec"), "{why}");
        let why = refused("PermissionSet", json!({"allow": [{"methdos": "GET"}]}));
        assert!(why.contains("unknown field `spec.allow[0].methdos`"), "{why}");
        let why = refused(
            "UserBinding",
            json!({"subjects": [{"kind": "ServiceAccount", "name": "ci"}], "organizationalUnits": ["a"]}),
        );
        assert!(why.starts_with("InvalidSpec"), "{why}");
        let why = refused(
            "ApiCatalog",
            json!({"operations": [{"id": "A", "method": "GET", "path": "/a/{id", "resourceType": "t"}]}),
        );
        assert!(why.starts_with("InvalidTemplate"), "{why}");
        let why = refused("Role", json!({"permissionSets": "not-a-list"}));
        assert!(why.contains("does not match the schema"), "{why}");
    }

    #[test]
    fn references_are_checked_against_the_world_and_only_warned_about() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clumio");
        let (snapshot, report) = Snapshot::build(&files::load(&dir).unwrap().definitions(), now());
        let world = Some(World { snapshot: &snapshot, report: &report });

        let binding = object(
            "UserBinding",
            "new",
            json!({"subjects": [{"kind": "User", "name": "u"}], "role": "not-yet", "organizationalUnits": ["accounting"]}),
        );
        assert_eq!(check(&binding, None, now()), Ok(vec![]), "alone, a reference is no fault");
        let warnings = check(&binding, world, now()).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("Role `not-yet` does not exist"), "{warnings:?}");

        let ok = object("Role", "r", json!({"permissionSets": ["backup-full"]}));
        assert_eq!(check(&ok, world, now()), Ok(vec![]));

        // `accounting` is above `payroll`: making it payroll's child closes a cycle.
        let cycle = object("OrganizationalUnit", "accounting", json!({"parent": "payroll"}));
        let warnings = check(&cycle, world, now()).unwrap();
        assert!(warnings.iter().any(|w| w.contains("cycle")), "{warnings:?}");
        let taken = object("OrganizationalUnit", "newcomer", json!({"resources": ["aws-account-1"]}));
        let warnings = check(&taken, world, now()).unwrap();
        assert!(warnings.iter().any(|w| w.contains("`aws-account-1` is already listed by")), "{warnings:?}");

        // alice is backup-admin on accounting (bindings.yaml); read-only on payroll overlaps it.
        let conflict = object(
            "UserBinding",
            "alice-payroll",
            json!({"subjects": [{"kind": "User", "name": "alice@example.com"}], "role": "read-only",
                   "organizationalUnits": ["payroll"]}),
        );
        let warnings = check(&conflict, world, now()).unwrap();
        assert!(warnings.iter().any(|w| w.contains("also gets role `backup-admin`")), "{warnings:?}");

        let expired = object(
            "UserBinding",
            "old",
            json!({"subjects": [{"kind": "User", "name": "u"}], "organizationalUnits": ["accounting"],
                   "expiresAt": "2020-01-01T00:00:00Z"}),
        );
        let warnings = check(&expired, world, now()).unwrap();
        assert!(warnings.iter().any(|w| w.contains("expired")), "{warnings:?}");
    }

    #[test]
    fn allow_rules_a_deny_of_the_same_set_always_beats_are_warned_about() {
        let set = object(
            "PermissionSet",
            "s",
            json!({"operations": ["A"],
                   "allow": [{"resourceType": "k8s/job", "methods": "GET"}, {"resourceType": "k8s/pod"}],
                   "deny": [{"resourceType": "k8s/job"}]}),
        );
        let warnings = check(&set, None, now()).unwrap();
        assert_eq!(warnings, ["allow[0] can never allow: deny[0] of the same set matches all it matches"]);
        let everything = object("PermissionSet", "s", json!({"operations": ["A"], "deny": [{}]}));
        let warnings = check(&everything, None, now()).unwrap();
        assert!(warnings[0].starts_with("`operations` can never allow"), "{warnings:?}");
    }

    #[test]
    fn foreign_objects_are_refused() {
        let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"}});
        assert!(check(&ingress, None, now()).is_err());
    }
}

//! The objects the watchers have seen, by kind and name: what the engine reads, kept up to
//! date by `apply` / `delete` / `reset` per kind, each saying whether the engine's input
//! changed (linkerd2's index works this way).

use std::collections::BTreeMap;

use crate::engine::{Definitions, Kind};
use crate::sources::convert::AnyResource;

#[derive(Debug, Default)]
pub struct Store {
    objects: [BTreeMap<String, AnyResource>; Kind::ALL.len()],
    /// Kinds listed at least once: until all are, the store is not a whole picture.
    listed: [bool; Kind::ALL.len()],
}

impl Store {
    /// Adds or replaces an object. Returns whether the engine's input changed: an update of
    /// status, labels or `managedFields` alone does not change it (but is kept, for the status
    /// writer to compare against).
    pub fn apply(&mut self, object: AnyResource) -> bool {
        let (name, object) = prepare(object);
        let objects = &mut self.objects[object.kind() as usize];
        let changed = differs(objects.get(&name), &object);
        objects.insert(name, object);
        changed
    }

    /// Removes an object; returns whether it was there.
    pub fn delete(&mut self, kind: Kind, name: &str) -> bool {
        self.objects[kind as usize].remove(name).is_some()
    }

    /// Replaces every object of `kind` with a fresh list (a watch's first list, or a relist
    /// after the watch was lost). Returns whether the engine's input changed.
    pub fn reset(&mut self, kind: Kind, objects: Vec<AnyResource>) -> bool {
        let before = std::mem::take(&mut self.objects[kind as usize]);
        let first_list = !std::mem::replace(&mut self.listed[kind as usize], true);
        let fresh = &mut self.objects[kind as usize];
        let mut changed = first_list;
        for object in objects {
            let (name, object) = prepare(object);
            changed |= differs(before.get(&name), &object);
            fresh.insert(name, object);
        }
        changed || before.keys().any(|name| !fresh.contains_key(name))
    }

    /// Whether every kind has been listed once.
    pub fn is_listed(&self) -> bool {
        self.listed.iter().all(|&l| l)
    }

    /// The engine's definitions of every object. The API server has pruned the fields a kind
    /// does not define, so no object is marked as read unfaithfully.
    pub fn definitions(&self) -> Definitions {
        let mut defs = Definitions::default();
        for object in self.objects() {
            object.add_to(&[], &mut defs);
        }
        defs
    }

    pub fn objects(&self) -> impl Iterator<Item = &AnyResource> {
        self.objects.iter().flat_map(|m| m.values())
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<&AnyResource> {
        self.objects[kind as usize].get(name)
    }

    pub fn len(&self) -> usize {
        self.objects.iter().map(|m| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The object's name, and the object without its `managedFields` (large, and never read).
fn prepare(mut object: AnyResource) -> (String, AnyResource) {
    object.metadata_mut().managed_fields = None;
    (object.name().to_owned(), object)
}

/// Whether the engine reads `object` differently from `before`, which it replaces.
fn differs(before: Option<&AnyResource>, object: &AnyResource) -> bool {
    before.is_none_or(|before| !before.same_for_engine(object))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;
    use crate::sources::crd::{self, PermissionSet, PermissionSetSpec, Role, RoleSpec};

    fn pset(name: &str, generation: i64, ops: &[&str]) -> PermissionSet {
        let spec =
            PermissionSetSpec { operations: Some(ops.iter().map(|s| s.to_string()).collect()), ..Default::default() };
        let mut p = PermissionSet::new(name, spec);
        p.metadata.generation = Some(generation);
        p
    }

    fn mk_pset(name: &str, generation: i64, ops: &[&str]) -> AnyResource {
        AnyResource::PermissionSet(pset(name, generation, ops))
    }

    fn mk_role(name: &str) -> AnyResource {
        AnyResource::Role(Role::new(name, RoleSpec::default()))
    }

    fn list_all(store: &mut Store) {
        for kind in Kind::ALL {
            store.reset(kind, vec![]);
        }
    }

    #[test]
    fn listed_only_when_every_kind_was_listed() {
        let mut store = Store::default();
        for kind in &Kind::ALL[..4] {
            assert!(store.reset(*kind, vec![]), "a first list is a change");
        }
        assert!(!store.is_listed());
        store.reset(Kind::ApiCatalog, vec![]);
        assert!(store.is_listed());
    }

    #[test]
    fn only_what_the_engine_reads_is_a_change() {
        let mut store = Store::default();
        list_all(&mut store);
        assert!(store.apply(mk_pset("p", 1, &["A"])));
        assert!(!store.apply(mk_pset("p", 1, &["A"])), "the same object again");

        let mut p = pset("p", 1, &["A"]);
        p.metadata.labels = Some([("team".to_owned(), "x".to_owned())].into());
        p.metadata.resource_version = Some("42".into());
        p.status = Some(crd::ResourceStatus { observed_generation: Some(1), conditions: vec![] });
        assert!(!store.apply(AnyResource::PermissionSet(p)), "labels, version and status are not read");
        assert!(store.get(Kind::PermissionSet, "p").unwrap().conditions().is_empty());
        assert_eq!(store.get(Kind::PermissionSet, "p").unwrap().metadata().resource_version.as_deref(), Some("42"));

        assert!(store.apply(mk_pset("p", 2, &["B"])), "a new spec");
        assert!(store.delete(Kind::PermissionSet, "p"));
        assert!(!store.delete(Kind::PermissionSet, "p"));
    }

    #[test]
    fn managed_fields_are_dropped() {
        let mut store = Store::default();
        let mut p = pset("p", 1, &["A"]);
        p.metadata.managed_fields =
            Some(vec![ManagedFieldsEntry { manager: Some("kubectl".into()), ..Default::default() }]);
        store.apply(AnyResource::PermissionSet(p));
        assert!(store.get(Kind::PermissionSet, "p").unwrap().metadata().managed_fields.is_none());
    }

    #[test]
    fn a_relist_replaces_the_kind_and_reports_removals() {
        let mut store = Store::default();
        list_all(&mut store);
        store.apply(mk_role("a"));
        store.apply(mk_role("b"));
        store.apply(mk_pset("p", 1, &["A"]));
        assert!(!store.reset(Kind::Role, vec![mk_role("a"), mk_role("b")]), "the same list");
        assert!(store.reset(Kind::Role, vec![mk_role("a")]), "`b` was deleted while the watch was away");
        assert!(store.get(Kind::Role, "b").is_none());
        assert!(store.get(Kind::PermissionSet, "p").is_some(), "other kinds are untouched");
        let defs = store.definitions();
        assert_eq!((defs.roles.len(), defs.permission_sets.len()), (1, 1));
    }
}

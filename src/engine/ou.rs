//! The organizational-unit tree.
//!
//! ```text
//! global ─┬─ accounting ── payroll
//!         └─ r-and-d
//! ```
//! Only OUs whose whole chain of parents reaches `global` are in the tree. Ancestry is closed
//! when the tree is built: each OU keeps its ancestors from the root down, so "is `a` at or
//! above `b`" is one comparison.

use compact_str::CompactString;

use super::model::{GLOBAL, OrganizationalUnitDef};
use super::report::{Kind, Problem, Reason, Report};
use super::{HashMap, HashSet};

/// Index of an OU in the tree; the root is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OuId(pub(crate) u32);

impl OuId {
    pub const GLOBAL: OuId = OuId(0);
}

/// Who a resource id belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Ou(OuId),
    /// Listed by an OU that is not in the tree: requests on it are denied.
    Unknown,
    /// Listed by two or more Ready OUs: it belongs to none of them, and requests on it are
    /// denied.
    Contested,
}

#[derive(Clone, Debug)]
pub struct OuTree {
    names: Box<[Box<str>]>,
    /// Each OU's parent; the root's is the root.
    parents: Box<[OuId]>,
    /// Each OU's subtree as a range of positions in a depth-first walk from the root: `upper`
    /// covers `ou` when the range of `upper` holds the start of the range of `ou`. Two reads of
    /// one small array per binding, however deep the tree.
    spans: Box<[(u32, u32)]>,
    /// Names of up to 24 bytes are kept in the table itself, so a lookup reads no more.
    by_name: HashMap<CompactString, OuId>,
    resources: HashMap<Box<str>, Owner>,
    /// Every listed resource id by its folded form (see [`fold`]), to recognize a request on
    /// an id that differs from a listed one only in case or trailing dots and spaces.
    folded: HashMap<Box<str>, Box<str>>,
}

impl OuTree {
    pub fn get(&self, name: &str) -> Option<OuId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: OuId) -> &str {
        &self.names[id.0 as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn depth(&self, id: OuId) -> usize {
        self.ancestors(id).len() - 1
    }

    /// Root first, `id` last.
    pub fn ancestors(&self, id: OuId) -> Vec<OuId> {
        let mut chain = vec![id];
        let mut at = id;
        while at != OuId::GLOBAL {
            at = self.parents[at.0 as usize];
            chain.push(at);
        }
        chain.reverse();
        chain
    }

    /// Is `upper` the OU `ou` itself or one of its ancestors?
    #[inline]
    pub fn covers(&self, upper: OuId, ou: OuId) -> bool {
        let (first, end) = self.spans[upper.0 as usize];
        (first..end).contains(&self.spans[ou.0 as usize].0)
    }

    /// `global/accounting/payroll`
    pub fn path(&self, id: OuId) -> String {
        let names: Vec<&str> = self.ancestors(id).iter().map(|a| self.name(*a)).collect();
        names.join("/")
    }

    pub(crate) fn owner(&self, resource: &str) -> Option<Owner> {
        self.resources.get(resource).copied()
    }

    /// The listed id that `resource`, listed by no OU, differs from only in case or in
    /// trailing dots and spaces (`PROD01`, `prod01.` for `prod01`).
    pub(crate) fn near_miss(&self, resource: &str) -> Option<&str> {
        self.folded.get(fold(resource).as_ref()).map(|r| &**r)
    }

    /// Builds the tree, reporting each OU's status. `broken` are OUs already found not Ready
    /// (a duplicate name, an unreadable field): they are not in the tree, and the resources
    /// they list are in an unknown OU.
    pub(crate) fn build(
        defs: &[&OrganizationalUnitDef],
        broken: &[&OrganizationalUnitDef],
        report: &mut Report,
    ) -> OuTree {
        let by_name: HashMap<&str, &OrganizationalUnitDef> = defs.iter().map(|d| (d.meta.name.as_str(), *d)).collect();
        fn parent_of(d: &OrganizationalUnitDef) -> &str {
            d.parent.as_deref().unwrap_or(GLOBAL)
        }

        // depth of every OU whose chain reaches the root; `None` once found bad.
        let mut depth: HashMap<&str, Option<u32>> = HashMap::default();
        depth.insert(GLOBAL, Some(0));
        if let Some(root) = by_name.get(GLOBAL)
            && let Some(p) = &root.parent
        {
            report.fail(
                Kind::OrganizationalUnit,
                GLOBAL,
                Problem::new(Reason::InvalidParent, format!("`global` is the root and cannot have a parent (`{p}`)")),
            );
        }
        let mut names: Vec<&str> = by_name.keys().copied().filter(|n| *n != GLOBAL).collect();
        names.sort_unstable();
        for start in &names {
            // Walk up until a known OU, a missing parent or a repeat.
            let mut chain: Vec<&str> = Vec::new();
            let mut at = *start;
            let outcome = loop {
                if let Some(known) = depth.get(at) {
                    break known.ok_or(None);
                }
                if let Some(pos) = chain.iter().position(|c| *c == at) {
                    break Err(Some(pos));
                }
                chain.push(at);
                let parent = parent_of(by_name[at]);
                if !by_name.contains_key(parent) && parent != GLOBAL {
                    let last = chain.pop().expect("chain holds `at`");
                    report.fail(
                        Kind::OrganizationalUnit,
                        last,
                        Problem::new(Reason::ParentNotFound, format!("parent `{parent}` does not exist")),
                    );
                    depth.insert(last, None);
                    break Err(None);
                }
                at = parent;
            };
            match outcome {
                Ok(base) => {
                    for (i, name) in chain.iter().rev().enumerate() {
                        depth.insert(name, Some(base + 1 + i as u32));
                    }
                }
                Err(cycle_start) => {
                    let cycle = cycle_start.map_or(&[][..], |pos| &chain[pos..]);
                    for name in cycle {
                        let members = cycle.join(" → ");
                        report.fail(
                            Kind::OrganizationalUnit,
                            name,
                            Problem::new(Reason::Cycle, format!("parents form a cycle: {members} → {}", cycle[0])),
                        );
                        depth.insert(name, None);
                    }
                    let above = cycle_start.unwrap_or(chain.len());
                    for name in &chain[..above] {
                        let parent = parent_of(by_name[name]);
                        report.fail(
                            Kind::OrganizationalUnit,
                            name,
                            Problem::new(Reason::ParentNotFound, format!("parent `{parent}` is not ready")),
                        );
                        depth.insert(name, None);
                    }
                }
            }
        }

        // Ids: root first, then by depth and name, so parents precede children.
        let mut ready: Vec<(u32, &str)> = names.iter().filter_map(|n| depth[n].map(|d| (d, *n))).collect();
        ready.sort_unstable();
        let mut tree = OuTree {
            names: Vec::with_capacity(ready.len() + 1).into(),
            parents: Vec::new().into(),
            spans: Vec::new().into(),
            by_name: HashMap::with_capacity_and_hasher(ready.len() + 1, Default::default()),
            resources: HashMap::default(),
            folded: HashMap::default(),
        };
        let mut names_out: Vec<Box<str>> = vec![GLOBAL.into()];
        let mut parents = vec![OuId::GLOBAL];
        tree.by_name.insert(GLOBAL.into(), OuId::GLOBAL);
        for (_, name) in &ready {
            let id = OuId(names_out.len() as u32);
            parents.push(tree.by_name[parent_of(by_name[name])]);
            names_out.push((*name).into());
            tree.by_name.insert((*name).into(), id);
        }
        tree.names = names_out.into();
        tree.spans = subtree_spans(&parents).into();
        tree.parents = parents.into();

        for id in 0..tree.names.len() {
            let id = OuId(id as u32);
            if id == OuId::GLOBAL && !by_name.contains_key(GLOBAL) {
                continue;
            }
            let status = report.entry(Kind::OrganizationalUnit, tree.name(id));
            status.path = Some((tree.path(id), tree.depth(id) as u32));
        }
        tree.resources = assign_resources(defs, broken, &tree, report);
        for def in defs.iter().chain(broken) {
            for resource in &def.resources {
                let first = tree.folded.entry(fold(resource).into()).or_insert_with(|| resource.as_str().into());
                if **first != **resource {
                    // Ids are compared exactly; two that differ only in case or trailing dots
                    // are almost always one resource written two ways.
                    let msg = format!(
                        "resource `{resource}` differs from the listed `{first}` only in case or trailing characters; \
                         ids are compared exactly"
                    );
                    report.warn(Kind::OrganizationalUnit, &def.meta.name, Problem::new(Reason::ResourceConflict, msg));
                }
            }
        }
        tree
    }
}

/// Each OU's subtree as the range of positions a depth-first walk from the root gives it
/// and its descendants. `parents[0]` is the root.
fn subtree_spans(parents: &[OuId]) -> Vec<(u32, u32)> {
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); parents.len()];
    for (id, parent) in parents.iter().enumerate().skip(1) {
        children[parent.0 as usize].push(id as u32);
    }
    let mut spans = vec![(0, 0); parents.len()];
    let mut next = 0;
    // (OU, whether its children were pushed): an OU's span ends once its subtree is walked.
    let mut stack = vec![(0u32, false)];
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            spans[id as usize].1 = next;
            continue;
        }
        spans[id as usize].0 = next;
        next += 1;
        stack.push((id, true));
        stack.extend(children[id as usize].iter().map(|&c| (c, false)));
    }
    spans
}

/// A resource id as compared for near misses: ASCII-lowercased, without surrounding spaces
/// and trailing dots.
fn fold(resource: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = resource.trim().trim_end_matches(['.', ' ', '\t']);
    match trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        true => std::borrow::Cow::Owned(trimmed.to_ascii_lowercase()),
        false => std::borrow::Cow::Borrowed(trimmed),
    }
}

/// A resource listed by exactly one Ready OU belongs to it. Listed by two or more, it belongs
/// to none of them (an order such as age or name would let a new OU take a resource, and its
/// access, from another); listed by any OU outside the tree, it belongs to no known OU at all.
fn assign_resources<'d>(
    defs: &[&'d OrganizationalUnitDef],
    broken_defs: &[&'d OrganizationalUnitDef],
    tree: &OuTree,
    report: &mut Report,
) -> HashMap<Box<str>, Owner> {
    let mut listed: HashMap<&str, Vec<&str>> = HashMap::default();
    let mut broken: HashSet<&str> = broken_defs.iter().flat_map(|d| &d.resources).map(String::as_str).collect();
    for def in defs {
        let ready = tree.get(&def.meta.name).is_some()
            && report.get(Kind::OrganizationalUnit, &def.meta.name).is_none_or(|s| s.is_ready());
        for resource in &def.resources {
            if !ready {
                broken.insert(resource);
                continue;
            }
            let ous = listed.entry(resource).or_default();
            if !ous.contains(&def.meta.name.as_str()) {
                ous.push(&def.meta.name);
            }
        }
    }
    let mut owners: HashMap<Box<str>, Owner> = HashMap::default();
    for resource in &broken {
        owners.insert((*resource).into(), Owner::Unknown);
    }
    let mut listed: Vec<(&str, Vec<&str>)> = listed.into_iter().collect();
    listed.sort_unstable();
    for (resource, ous) in listed {
        if ous.len() > 1 {
            for ou in &ous {
                let others: Vec<String> = ous.iter().filter(|o| *o != ou).map(|o| format!("`{o}`")).collect();
                let msg = format!(
                    "resource `{resource}` is also listed by {}; it belongs to none of them until one list drops it",
                    others.join(", ")
                );
                report.warn(Kind::OrganizationalUnit, ou, Problem::new(Reason::ResourceConflict, msg));
            }
        }
        if broken.contains(resource) {
            continue;
        }
        let owner = match ous.as_slice() {
            [one] => Owner::Ou(tree.get(one).expect("a ready OU is in the tree")),
            _ => Owner::Contested,
        };
        owners.insert(resource.into(), owner);
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Meta;

    fn ou(name: &str, parent: Option<&str>, resources: &[&str]) -> OrganizationalUnitDef {
        OrganizationalUnitDef {
            meta: Meta::named(name),
            parent: parent.map(Into::into),
            resources: resources.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    proptest::proptest! {
        /// On any tree, an OU covers exactly itself and its descendants: the subtree spans
        /// agree with the chains of parents.
        #[test]
        fn covers_is_being_an_ancestor(parents in proptest::collection::vec(proptest::num::u32::ANY, 0..40)) {
            // OU `n{i}` hangs under an earlier one, or under the root
            let defs: Vec<OrganizationalUnitDef> = parents
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let parent = (p % (i as u32 + 1)).checked_sub(1).map(|p| format!("n{p}"));
                    ou(&format!("n{i}"), parent.as_deref(), &[])
                })
                .collect();
            let refs: Vec<&OrganizationalUnitDef> = defs.iter().collect();
            let tree = OuTree::build(&refs, &[], &mut Report::default());
            proptest::prop_assert_eq!(tree.len(), defs.len() + 1);
            for upper in (0..tree.len() as u32).map(OuId) {
                for below in (0..tree.len() as u32).map(OuId) {
                    let ancestor = tree.ancestors(below).contains(&upper);
                    proptest::prop_assert_eq!(tree.covers(upper, below), ancestor, "{} over {}", tree.path(upper), tree.path(below));
                }
            }
        }
    }

    fn build(defs: &[OrganizationalUnitDef]) -> (OuTree, Report) {
        let mut report = Report::default();
        let refs: Vec<&OrganizationalUnitDef> = defs.iter().collect();
        (OuTree::build(&refs, &[], &mut report), report)
    }

    fn reason(r: &Report, name: &str) -> Option<Reason> {
        r.get(Kind::OrganizationalUnit, name).and_then(|s| s.error.as_ref().map(|e| e.reason))
    }

    #[test]
    fn ancestry_is_closed() {
        let (t, r) =
            build(&[ou("payroll", Some("accounting"), &[]), ou("accounting", None, &[]), ou("r-and-d", None, &[])]);
        assert!(r.is_clean());
        let (g, a, p, d) =
            (OuId::GLOBAL, t.get("accounting").unwrap(), t.get("payroll").unwrap(), t.get("r-and-d").unwrap());
        assert!(t.covers(g, p) && t.covers(a, p) && t.covers(p, p));
        assert!(!t.covers(p, a) && !t.covers(d, p) && !t.covers(a, g));
        assert_eq!(t.path(p), "global/accounting/payroll");
        assert_eq!(
            r.get(Kind::OrganizationalUnit, "payroll").unwrap().path,
            Some(("global/accounting/payroll".into(), 2))
        );
    }

    #[test]
    fn missing_parent_and_cycles_drop_the_subtree() {
        let (t, r) = build(&[
            ou("orphan", Some("nowhere"), &[]),
            ou("under-orphan", Some("orphan"), &[]),
            ou("a", Some("b"), &[]),
            ou("b", Some("a"), &[]),
            ou("below-cycle", Some("a"), &[]),
            ou("fine", None, &[]),
        ]);
        assert_eq!(reason(&r, "orphan"), Some(Reason::ParentNotFound));
        assert_eq!(reason(&r, "under-orphan"), Some(Reason::ParentNotFound));
        assert_eq!(reason(&r, "a"), Some(Reason::Cycle));
        assert_eq!(reason(&r, "b"), Some(Reason::Cycle));
        assert_eq!(reason(&r, "below-cycle"), Some(Reason::ParentNotFound));
        assert_eq!(reason(&r, "fine"), None);
        for bad in ["orphan", "under-orphan", "a", "b", "below-cycle"] {
            assert!(t.get(bad).is_none(), "{bad} must not be in the tree");
        }
        let (_, r) = build(&[ou("self", Some("self"), &[])]);
        assert_eq!(reason(&r, "self"), Some(Reason::Cycle));
    }

    #[test]
    fn global_with_a_parent_is_invalid_but_the_root_stays() {
        let (t, r) = build(&[ou("global", Some("x"), &[]), ou("a", None, &[])]);
        assert_eq!(reason(&r, "global"), Some(Reason::InvalidParent));
        assert!(t.get("a").is_some());
        assert_eq!(t.get("global"), Some(OuId::GLOBAL));
    }

    #[test]
    fn contested_resources_belong_to_no_ou_and_unknown_owners_fail_closed() {
        let (t, r) = build(&[
            ou("b", None, &["shared", "x", "mine"]),
            ou("a", None, &["shared"]),
            ou("bad", Some("missing"), &["x"]),
        ]);
        assert_eq!(t.owner("shared"), Some(Owner::Contested));
        assert_eq!(t.owner("mine"), Some(Owner::Ou(t.get("b").unwrap())));
        for name in ["a", "b"] {
            let status = r.get(Kind::OrganizationalUnit, name).unwrap();
            assert_eq!(status.warnings[0].reason, Reason::ResourceConflict, "{name}");
            assert!(status.is_ready(), "{name}");
        }
        assert_eq!(t.owner("x"), Some(Owner::Unknown));
        assert_eq!(t.owner("elsewhere"), None);
    }

    #[test]
    fn near_miss_ids_are_recognized_and_listed_ones_reported() {
        let (t, r) = build(&[ou("a", None, &["prod01"]), ou("b", None, &["PROD01."])]);
        assert_eq!(t.near_miss("Prod01"), Some("prod01"));
        assert_eq!(t.near_miss(" prod01.. "), Some("prod01"));
        assert_eq!(t.near_miss("prod02"), None);
        let warnings = &r.get(Kind::OrganizationalUnit, "b").unwrap().warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message.contains("`PROD01.` differs from the listed `prod01`"), "{}", warnings[0].message);
    }
}

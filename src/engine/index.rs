//! Building the immutable snapshot a decision reads.
//!
//! ```text
//! Definitions ──build──▶ Snapshot (OU tree, compiled sets, roles, bindings by subject, routes)
//!             └────────▶ Report   (one status per object)
//! ```
//! Objects are validated in dependency order (OUs, sets, roles, bindings, catalogs); an object
//! that references anything not Ready is itself not Ready and contributes nothing.

use std::sync::Arc;

use compact_str::CompactString;
use jiff::Timestamp;
use smallvec::SmallVec;

use super::catalog::Router;
use super::grants::GrantIndex;
use super::model::{Definitions, Meta, PermissionSetDef, RoleDef, SubjectKind, UserBindingDef};
use super::ou::{OuId, OuTree};
use super::report::{Kind, Problem, Reason, Report};
use super::rules::{Domain, RuleCompiler, RuleList, SideKind, grants};
use super::{HashMap, HashSet};

pub(crate) type SetId = u32;
pub(crate) type RoleId = u32;
pub(crate) type BindingId = u32;

/// Where a permission set applies.
#[derive(Clone, Debug)]
pub(crate) enum Scope {
    All,
    /// These OUs and their descendants (possibly none, when every entry was dropped).
    Within(Box<[OuId]>),
}

/// A Ready permission set, in 88 bytes: what a decision reads of a set it visits is at most
/// two cache lines; the rules without `paths` and `operations` are behind pointers.
#[derive(Clone, Debug)]
pub(crate) struct PermissionSet {
    pub allow: RuleList,
    pub deny: RuleList,
    pub name: Box<str>,
    pub operations: Option<Box<HashSet<Box<str>>>>,
}

/// What a decision reads of each set it collects before it looks at the set's rules. Kept in
/// an array apart from the sets, so that collecting fifteen sets reads one small array, and a
/// set none of whose rules can apply to the request is never read.
#[derive(Clone, Debug)]
pub(crate) struct SetHead {
    pub scope: Scope,
    /// The set has `operations`, or rules without `paths`: the grant index cannot tell when
    /// they apply, so the set is looked at on every request it is collected for.
    pub unindexed: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Role {
    pub name: Box<str>,
}

#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub name: Box<str>,
    pub role: Option<RoleId>,
    pub ous: Box<[OuId]>,
    /// The role's sets and the direct sets, sorted, without repeats; shared by the bindings
    /// that name the same sets.
    pub sets: Arc<[SetId]>,
    pub expires_at: Option<Timestamp>,
    /// Why the binding is not Ready: it then grants nothing and denies its subjects wherever
    /// it applies.
    pub broken: Option<Box<str>>,
}

/// A system-wide permission set that is not Ready: it might have been a deny set, so every
/// request in the scope it would have had is denied.
#[derive(Clone, Debug)]
pub(crate) struct BrokenSet {
    pub name: Box<str>,
    pub scope: Scope,
}

/// The immutable index a decision reads. Cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub(crate) ous: OuTree,
    /// Ready sets, sorted by name: a set's id is its rank.
    pub(crate) sets: Box<[PermissionSet]>,
    /// What decisions read of each set first, by the same ids.
    pub(crate) set_heads: Box<[SetHead]>,
    /// The feature-path grants of every set's rules, tagged with their set.
    pub(crate) by_path: GrantIndex,
    pub(crate) system_wide: Box<[SetId]>,
    pub(crate) broken_system_wide: Box<[BrokenSet]>,
    pub(crate) roles: Box<[Role]>,
    /// Every binding that is not expired, Ready or not: one that is not Ready denies.
    pub(crate) bindings: Box<[Binding]>,
    pub(crate) by_user: SubjectIndex,
    pub(crate) by_group: SubjectIndex,
    pub(crate) router: Router,
}

impl Snapshot {
    /// The bindings other than `except` that give `user` a role other than `role` on an OU
    /// overlapping one of `ous`, as `(binding, role)`: the RoleConflict a binding with that
    /// user, role and OUs would have (DESIGN §2).
    pub fn role_conflicts(&self, user: &str, role: &str, ous: &[String], except: &str) -> Vec<(&str, &str)> {
        let ids: Vec<OuId> = ous.iter().filter_map(|o| self.ous.get(o)).collect();
        let mut out: Vec<(&str, &str)> = Vec::new();
        for grant in self.by_user.get(user).into_iter().flatten() {
            let binding = &self.bindings[grant.binding as usize];
            let Some(other) = binding.role.map(|r| &*self.roles[r as usize].name) else { continue };
            let overlaps = ids.iter().any(|&id| self.ous.covers(id, grant.ou) || self.ous.covers(grant.ou, id));
            if other != role && &*binding.name != except && binding.broken.is_none() && overlaps {
                out.push((&binding.name, other));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The Ready OU a resource id belongs to, if one lists it alone.
    pub fn resource_owner(&self, resource: &str) -> Option<&str> {
        match self.ous.owner(resource)? {
            super::ou::Owner::Ou(id) => Some(self.ous.name(id)),
            _ => None,
        }
    }
}

impl Snapshot {
    /// Validates every definition and compiles the sound ones. `now` decides which bindings
    /// are reported `Expired`; decisions check expiry again at their own time.
    ///
    /// An object that is not Ready contributes nothing it could grant, and keeps everything
    /// it could deny: a broken binding denies its subjects where it applies, a broken
    /// system-wide set denies in its scope, a broken catalog denies in its hosts and prefix,
    /// a broken OU's resources are in an unknown OU.
    pub fn build(defs: &Definitions, now: Timestamp) -> (Snapshot, Report) {
        let mut report = Report::default();
        let ou_defs = by_name(&defs.organizational_units, |d| &d.meta, Kind::OrganizationalUnit, &mut report);
        let ous = OuTree::build(&ou_defs.ready, &ou_defs.broken(), &mut report);

        // Catalogs first: their operations and resource types are the domain rules are
        // precomputed against.
        let mut router = Router::default();
        let catalogs = by_name(&defs.api_catalogs, |d| &d.meta, Kind::ApiCatalog, &mut report);
        for &def in &catalogs.ready {
            if let Err(p) = router.add(def) {
                report.fail(Kind::ApiCatalog, &def.meta.name, p);
            }
        }
        for def in catalogs.broken() {
            router.add_broken(def);
        }

        let mut domain = Domain::new();
        router.intern(&mut domain);
        let mut compiler = RuleCompiler::new(&domain);
        let mut sets = Vec::new();
        let mut broken_system_wide = Vec::new();
        let set_defs = by_name(&defs.permission_sets, |d| &d.meta, Kind::PermissionSet, &mut report);
        for &def in &set_defs.ready {
            let scope = scope_of(def, &ous, Some(&mut report));
            match compile_set(def, &mut compiler) {
                Ok(set) => {
                    let unindexed = set.operations.is_some() || set.allow.has_unindexed() || set.deny.has_unindexed();
                    sets.push((set, SetHead { scope, unindexed }, def.system_wide))
                }
                Err(p) => {
                    report.fail(Kind::PermissionSet, &def.meta.name, p);
                    if def.system_wide {
                        broken_system_wide.push(BrokenSet { name: def.meta.name.as_str().into(), scope });
                    }
                }
            }
        }
        for def in set_defs.broken().into_iter().filter(|d| d.system_wide) {
            broken_system_wide
                .push(BrokenSet { name: def.meta.name.as_str().into(), scope: scope_of(def, &ous, None) });
        }
        let set_ids: HashMap<&str, SetId> =
            sets.iter().enumerate().map(|(i, (s, _, _))| (&*s.name, i as SetId)).collect();
        let system_wide = sets.iter().enumerate().filter(|(_, (_, _, sw))| *sw).map(|(i, _)| i as SetId).collect();

        let mut roles = Vec::new();
        let mut role_sets: Vec<Vec<SetId>> = Vec::new();
        for def in by_name(&defs.roles, |d| &d.meta, Kind::Role, &mut report).ready {
            match resolve_sets(def, &set_ids) {
                Ok(ids) => {
                    roles.push(Role { name: def.meta.name.as_str().into() });
                    role_sets.push(ids);
                }
                Err(p) => report.fail(Kind::Role, &def.meta.name, p),
            }
        }
        let role_ids: HashMap<&str, RoleId> = roles.iter().enumerate().map(|(i, r)| (&*r.name, i as RoleId)).collect();

        let mut bindings = Vec::new();
        let mut subjects_of: Vec<&UserBindingDef> = Vec::new();
        let binding_defs = by_name(&defs.user_bindings, |d| &d.meta, Kind::UserBinding, &mut report);
        let refs = Refs { ous: &ous, sets: &set_ids, roles: &role_ids, role_sets: &role_sets };
        let mut set_lists = SetLists::default();
        let all = binding_defs.ready.into_iter().map(|d| (d, None));
        for (def, known) in all.chain(binding_defs.broken.into_iter().map(|(d, p)| (d, Some(p)))) {
            let (binding, problem) = compile_binding(def, &refs, &mut set_lists, known);
            if let Some(p) = problem {
                report.fail(Kind::UserBinding, &def.meta.name, p);
            }
            if binding.expires_at.is_some_and(|t| t <= now) {
                let at = binding.expires_at.expect("checked");
                report.fail(
                    Kind::UserBinding,
                    &def.meta.name,
                    Problem::new(Reason::Expired, format!("expired at {at}")),
                );
                continue;
            }
            bindings.push(binding);
            subjects_of.push(def);
        }
        report_role_conflicts(&bindings, &subjects_of, &roles, &ous, &mut report);
        let (by_user, by_group) = index_subjects(&subjects_of, &bindings);

        let (sets, set_heads): (Vec<PermissionSet>, Vec<SetHead>) = sets.into_iter().map(|(s, h, _)| (s, h)).unzip();
        let by_path = GrantIndex::build(sets.iter().zip(0..).flat_map(|(s, id)| grants(id, &s.allow, &s.deny)));
        let snapshot = Snapshot {
            ous,
            sets: sets.into(),
            set_heads: set_heads.into(),
            by_path,
            system_wide,
            broken_system_wide: broken_system_wide.into(),
            roles: roles.into(),
            bindings: bindings.into(),
            by_user,
            by_group,
            router,
        };
        (snapshot, report)
    }

    pub fn organizational_units(&self) -> &OuTree {
        &self.ous
    }

    pub fn router(&self) -> &super::catalog::Router {
        &self.router
    }

    /// Counts of indexed objects: OUs (with the root), sets, rules, roles, bindings, routes.
    pub fn stats(&self) -> Stats {
        Stats {
            organizational_units: self.ous.len(),
            permission_sets: self.sets.len(),
            rules: self.sets.iter().map(|s| s.allow.rules.len() + s.deny.rules.len()).sum(),
            roles: self.roles.len(),
            user_bindings: self.bindings.iter().filter(|b| b.broken.is_none()).count(),
            routes: self.router.routes().len(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub organizational_units: usize,
    pub permission_sets: usize,
    pub rules: usize,
    pub roles: usize,
    pub user_bindings: usize,
    pub routes: usize,
}

/// Objects of one kind, sorted by name: those that may be compiled, and those that are not
/// Ready before anything else is looked at (a name used twice, a field the source could not
/// read), which are reported here.
struct ByName<'d, T> {
    ready: Vec<&'d T>,
    broken: Vec<(&'d T, Problem)>,
}

impl<T> ByName<'_, T> {
    fn broken(&self) -> Vec<&T> {
        self.broken.iter().map(|(d, _)| *d).collect()
    }
}

fn by_name<'d, T>(items: &'d [T], meta: fn(&T) -> &Meta, kind: Kind, report: &mut Report) -> ByName<'d, T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| meta(a).name.cmp(&meta(b).name));
    let mut out = ByName { ready: Vec::with_capacity(sorted.len()), broken: Vec::new() };
    let mut i = 0;
    while i < sorted.len() {
        let name = &meta(sorted[i]).name;
        let run = sorted[i..].iter().take_while(|d| meta(d).name == *name).count();
        report.entry(kind, name);
        if run > 1 {
            let p = Problem::new(Reason::DuplicateName, format!("{run} objects of kind {kind} are named `{name}`"));
            report.fail(kind, name, p.clone());
            out.broken.extend(sorted[i..i + run].iter().map(|d| (*d, p.clone())));
        } else if let Some(why) = &meta(sorted[i]).invalid {
            let p = Problem::new(Reason::InvalidSpec, why.clone());
            report.fail(kind, name, p.clone());
            out.broken.push((sorted[i], p));
        } else {
            out.ready.push(sorted[i]);
        }
        i += run;
    }
    out
}

/// Where a set applies. Entries naming an OU that is missing or not Ready are dropped (and
/// reported when `report` is given); a scope whose entries were all dropped applies nowhere.
fn scope_of(def: &PermissionSetDef, ous: &OuTree, mut report: Option<&mut Report>) -> Scope {
    let list = match &def.scope {
        None => return Scope::All,
        Some(list) if list.is_empty() => return Scope::All,
        Some(list) => list,
    };
    let mut kept = Vec::new();
    for ou in list {
        match ous.get(ou) {
            Some(id) => kept.push(id),
            None => {
                if let Some(report) = report.as_deref_mut() {
                    let msg =
                        format!("scope names organizational unit `{ou}`, which is missing or not ready; it is ignored");
                    report.warn(Kind::PermissionSet, &def.meta.name, Problem::new(Reason::ScopeNotFound, msg));
                }
            }
        }
    }
    Scope::Within(kept.into())
}

fn compile_set(def: &PermissionSetDef, compiler: &mut RuleCompiler<'_>) -> Result<PermissionSet, Problem> {
    let operations = match &def.operations {
        Some(ops) if ops.is_empty() => {
            return Err(Problem::new(Reason::InvalidSpec, "`operations` is empty: leave it out to allow no operation"));
        }
        Some(ops) => Some(Box::new(ops.iter().map(|o| o.as_str().into()).collect())),
        None => None,
    };
    let mut side = |rules: &[super::model::RuleDef], what: &str, kind| {
        compiler.side(rules, kind).map_err(|(i, p)| Problem::new(p.reason, format!("{what}[{i}]: {}", p.message)))
    };
    let allow = side(&def.allow, "allow", SideKind::Allow)?;
    let deny = side(&def.deny, "deny", SideKind::Deny)?;
    Ok(PermissionSet { name: def.meta.name.as_str().into(), operations, allow, deny })
}

fn resolve_sets(def: &RoleDef, set_ids: &HashMap<&str, SetId>) -> Result<Vec<SetId>, Problem> {
    def.permission_sets
        .iter()
        .map(|s| {
            set_ids
                .get(s.as_str())
                .copied()
                .ok_or_else(|| not_found(Reason::PermissionSetNotFound, "permission set", s))
        })
        .collect()
}

fn not_found(reason: Reason, what: &str, name: &str) -> Problem {
    Problem::new(reason, format!("{what} `{name}` is missing or not ready"))
}

struct Refs<'a> {
    ous: &'a OuTree,
    sets: &'a HashMap<&'a str, SetId>,
    roles: &'a HashMap<&'a str, RoleId>,
    role_sets: &'a [Vec<SetId>],
}

/// One copy of each distinct list of sets bindings name. Most bindings name a role's sets, so
/// the lists are few, and the decisions that read them find them in the CPU's cache.
#[derive(Default)]
struct SetLists(HashMap<Vec<SetId>, Arc<[SetId]>>);

impl SetLists {
    fn intern(&mut self, sets: Vec<SetId>) -> Arc<[SetId]> {
        if let Some(list) = self.0.get(&sets) {
            return list.clone();
        }
        let list: Arc<[SetId]> = sets.as_slice().into();
        self.0.insert(sets, list.clone());
        list
    }
}

/// A binding as the index keeps it, and why it is not Ready. `known` is a problem found
/// before (a duplicate name, a field the source could not read). A binding that is not Ready
/// keeps its subjects and the OUs it names that are in the tree, so that it denies there; it
/// grants nothing.
fn compile_binding(
    def: &UserBindingDef,
    refs: &Refs<'_>,
    lists: &mut SetLists,
    known: Option<Problem>,
) -> (Binding, Option<Problem>) {
    let mut problem = known;
    let mut fail = |p: Problem| {
        problem.get_or_insert(p);
    };
    let spec = |m: String| Problem::new(Reason::InvalidSpec, m);
    if def.subjects.is_empty() {
        fail(spec("`subjects` is empty".into()));
    }
    if let Some(s) = def.subjects.iter().find(|s| s.kind == SubjectKind::ServiceAccount && s.namespace.is_none()) {
        fail(spec(format!("service account subject `{}` has no `namespace`", s.name)));
    }
    if def.organizational_units.is_empty() {
        fail(spec("`organizationalUnits` is empty: name at least one (`global` for everywhere)".into()));
    }
    let expires_at = match def.expires_at.as_deref().map(|t| (t, t.parse::<Timestamp>())) {
        Some((_, Ok(t))) => Some(t),
        Some((t, Err(e))) => {
            fail(spec(format!("`expiresAt` `{t}` is not an RFC 3339 time: {e}")));
            None
        }
        None => None,
    };
    let mut sets = Vec::new();
    let role = def.role.as_deref().and_then(|r| match refs.roles.get(r) {
        Some(&id) => {
            sets.extend_from_slice(&refs.role_sets[id as usize]);
            Some(id)
        }
        None => {
            fail(not_found(Reason::RoleNotFound, "role", r));
            None
        }
    });
    let mut ous = Vec::with_capacity(def.organizational_units.len());
    for o in &def.organizational_units {
        match refs.ous.get(o) {
            Some(id) => ous.push(id),
            None => fail(not_found(Reason::OrganizationalUnitNotFound, "organizational unit", o)),
        }
    }
    for s in &def.permission_sets {
        match refs.sets.get(s.as_str()) {
            Some(&id) => sets.push(id),
            None => fail(not_found(Reason::PermissionSetNotFound, "permission set", s)),
        }
    }
    sets.sort_unstable();
    sets.dedup();
    let name: Box<str> = def.meta.name.as_str().into();
    let binding = match &problem {
        None => Binding { name, role, ous: ous.into(), sets: lists.intern(sets), expires_at, broken: None },
        Some(p) => Binding {
            name,
            role: None,
            ous: ous.into(),
            sets: lists.intern(Vec::new()),
            expires_at,
            broken: Some(p.message.as_str().into()),
        },
    };
    (binding, problem)
}

/// The user name a subject matches, or `None` for a group.
fn user_key(kind: SubjectKind, name: &str, namespace: Option<&str>) -> Option<String> {
    match kind {
        SubjectKind::User => Some(name.to_owned()),
        SubjectKind::ServiceAccount => Some(format!("system:serviceaccount:{}:{name}", namespace.unwrap_or_default())),
        SubjectKind::Group => None,
    }
}

/// What a subject is given: a binding on one OU. A subject's grants are stored together, so
/// a decision checks OU coverage without touching bindings that do not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub ou: OuId,
    pub binding: BindingId,
}

/// Names and grants stored inline: a name of up to 24 bytes is compared where the lookup finds
/// it, and most subjects have one or two grants, so a lookup reads one table slot and nothing
/// it points to.
type SubjectIndex = HashMap<CompactString, SmallVec<[Grant; 2]>>;

fn index_subjects(defs: &[&UserBindingDef], bindings: &[Binding]) -> (SubjectIndex, SubjectIndex) {
    let mut users: HashMap<Box<str>, Vec<Grant>> = HashMap::default();
    let mut groups: HashMap<Box<str>, Vec<Grant>> = HashMap::default();
    for (id, def) in defs.iter().enumerate() {
        for s in &def.subjects {
            if s.kind == SubjectKind::ServiceAccount && s.namespace.is_none() {
                // an invalid subject matches nobody (the binding is not Ready for it)
                continue;
            }
            let (map, key) = match user_key(s.kind, &s.name, s.namespace.as_deref()) {
                Some(user) => (&mut users, user),
                None => (&mut groups, s.name.clone()),
            };
            let grants = map.entry(key.into()).or_default();
            for &ou in bindings[id].ous.iter() {
                let grant = Grant { ou, binding: id as BindingId };
                if !grants.contains(&grant) {
                    grants.push(grant);
                }
            }
        }
    }
    let freeze = |m: HashMap<Box<str>, Vec<Grant>>| {
        m.into_iter().map(|(k, v)| (CompactString::from(&*k), SmallVec::from_vec(v))).collect()
    };
    (freeze(users), freeze(groups))
}

/// A user given two different roles on overlapping OUs by two bindings: a warning on both.
fn report_role_conflicts(
    bindings: &[Binding],
    defs: &[&UserBindingDef],
    roles: &[Role],
    ous: &OuTree,
    report: &mut Report,
) {
    let mut by_user: HashMap<&str, Vec<usize>> = HashMap::default();
    for (i, def) in defs.iter().enumerate() {
        if bindings[i].role.is_none() {
            continue;
        }
        for s in def.subjects.iter().filter(|s| s.kind == SubjectKind::User) {
            by_user.entry(&s.name).or_default().push(i);
        }
    }
    let mut users: Vec<_> = by_user.into_iter().collect();
    users.sort_unstable();
    for (user, ids) in users {
        for (n, &a) in ids.iter().enumerate() {
            for &b in &ids[n + 1..] {
                let (ba, bb) = (&bindings[a], &bindings[b]);
                let overlap = ba.ous.iter().any(|x| bb.ous.iter().any(|y| ous.covers(*x, *y) || ous.covers(*y, *x)));
                if ba.role == bb.role || !overlap {
                    continue;
                }
                for (this, other) in [(ba, bb), (bb, ba)] {
                    let msg = format!(
                        "user `{user}` also gets role `{}` from binding `{}` on overlapping organizational units",
                        roles[other.role.unwrap_or_default() as usize].name,
                        other.name
                    );
                    report.warn(Kind::UserBinding, &this.name, Problem::new(Reason::RoleConflict, msg));
                }
            }
        }
    }
}

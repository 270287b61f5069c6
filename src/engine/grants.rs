//! Which rules have a feature-path grant that can cover an access path.
//!
//! ```text
//!   grants   /api/v1/svc3 (set 2, rule 0)   literal: key(api/v1/svc3) → [2:0, 5:3]   lengths [0, 3]
//!            /api/v1/svc3 (set 5, rule 3)            key()            → [2:7]
//!            /            (set 2, rule 7)
//!            /api/*/jobs  (set 4, rule 1)   wild:    root ─api─▶ · ─*─▶ · ─jobs─▶ [4:1]
//! ```
//! One index holds the grants of every set. A grant covers the node it names and its whole
//! subtree, so a grant of `k` segments covers a path when it matches the path's first `k`
//! segments. Grants without `*` are kept in a hash map by the key of their segments: a request
//! computes the key of each of its prefixes once and costs one probe per distinct grant
//! length, however many sets it collected. Grants with a `*` are kept in a segment trie the
//! request walks once, following its segment's edge and the `*` edge. Each key or node holds
//! its grants' [`Tag`]s sorted, so the grants of the request's own sets are found by binary
//! search among those of every other set.
//!
//! This is a filter, never a decision: it may return a rule that does not match, and
//! [`super::rules::Rule::check`] decides each one. It must never leave out a rule that could
//! match. Segments are keyed by a hash of what a lenient backend reads (no `;param`, no
//! surrounding spaces, ASCII case folded): the exact comparison of allow rules and the lenient
//! one of deny rules ([`super::rules::loosely_equal`]) both imply equal keys. A hash collision
//! only adds a candidate.

use smallvec::{Array, SmallVec};

use super::HashMap;
use super::rules::{PathPattern, bare_segment};

/// The key of one segment: FNV-1a over the ASCII-lowercased bytes of its bare form.
fn segment_key(segment: &str) -> u64 {
    let bare = bare_segment(segment);
    bare.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3))
}

/// The key of a prefix: its previous prefix's key combined with its last segment's.
fn extend_prefix(prefix: u64, segment: u64) -> u64 {
    (prefix.rotate_left(23) ^ segment).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The key of the empty prefix (the grant `/`).
const ROOT: u64 = 0x243f_6a88_85a3_08d3;

/// An access path as grant indexes look it up: computed once per request.
#[derive(Clone, Debug, Default)]
pub(crate) struct PathKeys {
    segments: SmallVec<[u64; 8]>,
    /// `prefixes[k]`: the key of the first `k` segments.
    prefixes: SmallVec<[u64; 9]>,
}

impl PathKeys {
    pub(crate) fn of<S: AsRef<str>>(path: &[S]) -> PathKeys {
        let segments: SmallVec<[u64; 8]> = path.iter().map(|s| segment_key(s.as_ref())).collect();
        let mut prefixes = SmallVec::with_capacity(segments.len() + 1);
        prefixes.push(ROOT);
        for &s in &segments {
            prefixes.push(extend_prefix(*prefixes.last().expect("starts with the root"), s));
        }
        PathKeys { segments, prefixes }
    }
}

/// A grant as an index holds it: its owner (a permission set), an entry the owner chose, and
/// the usual methods its rule admits. Tags sort by owner first, so one owner's tags are
/// adjacent in a sorted list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Tag {
    owner: u32,
    entry: u32,
    /// Bits of [`super::rules::method_bit`]: a request on a usual method outside them cannot
    /// match the rule, so the rule is not a candidate. A method outside the usual ones (bit 0)
    /// is a candidate for every rule.
    methods: u16,
}

impl Tag {
    pub(crate) fn new(owner: u32, entry: u32, methods: u16) -> Tag {
        Tag { owner, entry, methods }
    }

    pub(crate) fn owner(self) -> u32 {
        self.owner
    }

    pub(crate) fn entry(self) -> u32 {
        self.entry
    }

    fn admits(self, method_bit: u16) -> bool {
        method_bit == 0 || self.methods & method_bit != 0
    }
}

/// Appends to `out` the tags of `list` (ascending) whose owner is in `owners` (ascending) and
/// whose rule admits the method: one pass over a short list, a binary search per owner in a
/// long one, so a grant many sets share costs a request only its own sets.
fn select<A: Array<Item = Tag>>(list: &[Tag], owners: &[u32], method_bit: u16, out: &mut SmallVec<A>) {
    let wanted = |t: &&Tag| t.admits(method_bit);
    if list.len() <= 8 * owners.len() {
        let mut o = 0;
        for t in list {
            while o < owners.len() && owners[o] < t.owner {
                o += 1;
            }
            if o == owners.len() {
                return;
            }
            if owners[o] == t.owner && wanted(&t) {
                out.push(*t);
            }
        }
        return;
    }
    let mut rest = list;
    for &owner in owners {
        rest = &rest[rest.partition_point(|t| t.owner < owner)..];
        let mine = rest.partition_point(|t| t.owner == owner);
        out.extend(rest[..mine].iter().filter(wanted).copied());
        rest = &rest[mine..];
        if rest.is_empty() {
            return;
        }
    }
}

/// The grants of many owners' rules.
#[derive(Clone, Debug, Default)]
pub(crate) struct GrantIndex {
    /// Grants without `*`, by the key of their segments; tags ascending.
    literal: HashMap<u64, Box<[Tag]>>,
    /// The distinct lengths of those grants, ascending.
    lengths: Box<[usize]>,
    /// Grants with a `*`.
    wild: WildTrie,
}

impl GrantIndex {
    /// The index of `(grant, tag)` pairs.
    pub(crate) fn build<'p>(grants: impl IntoIterator<Item = (&'p PathPattern, Tag)>) -> GrantIndex {
        let mut literal: HashMap<u64, Vec<Tag>> = HashMap::default();
        let mut lengths = Vec::new();
        let mut wild = Vec::new();
        for (pattern, tag) in grants {
            if pattern.parts().any(|p| p.is_none()) {
                wild.push((pattern, tag));
                continue;
            }
            let key = pattern.parts().flatten().fold(ROOT, |k, s| extend_prefix(k, segment_key(s)));
            literal.entry(key).or_default().push(tag);
            lengths.push(pattern.len());
        }
        lengths.sort_unstable();
        lengths.dedup();
        let literal = literal.into_iter().map(|(key, tags)| (key, sorted(tags))).collect();
        GrantIndex { literal, lengths: lengths.into(), wild: WildTrie::build(wild) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.wild.nodes.is_empty()
    }

    /// The lists of tags, of every owner, of the grants that may cover the path. A decision
    /// looks them up before it knows the request's sets, so that fetching them from memory
    /// overlaps with reading the subject's bindings.
    pub(crate) fn lookup(&self, path: &PathKeys) -> Found<'_> {
        let mut lists = SmallVec::new();
        for &len in self.lengths.iter().take_while(|&&len| len < path.prefixes.len()) {
            if let Some(tags) = self.literal.get(&path.prefixes[len]) {
                lists.push(&tags[..]);
            }
        }
        self.wild.lookup(&path.segments, &mut lists);
        Found { lists }
    }

    /// Appends to `out` the tags of the grants that may cover the path, belong to one of
    /// `owners` (ascending) and admit the method (its [`super::rules::method_bit`]), in no
    /// particular order, possibly more than once.
    #[cfg(test)]
    pub(crate) fn candidates<A: Array<Item = Tag>>(
        &self,
        path: &PathKeys,
        owners: &[u32],
        method_bit: u16,
        out: &mut SmallVec<A>,
    ) {
        self.lookup(path).select(owners, method_bit, out);
    }
}

/// What [`GrantIndex::lookup`] found for a path: lists of tags, each ascending.
pub(crate) struct Found<'i> {
    lists: SmallVec<[&'i [Tag]; 4]>,
}

impl Found<'_> {
    /// Appends to `out` the tags found that belong to one of `owners` (ascending) and admit
    /// the method (its [`super::rules::method_bit`]), in no particular order, possibly more
    /// than once.
    pub(crate) fn select<A: Array<Item = Tag>>(&self, owners: &[u32], method_bit: u16, out: &mut SmallVec<A>) {
        for list in &self.lists {
            select(list, owners, method_bit, out);
        }
    }
}

/// The tags ascending, without repeats.
fn sorted(mut tags: Vec<Tag>) -> Box<[Tag]> {
    tags.sort_unstable();
    tags.dedup();
    tags.into()
}

/// One node, its edges and tags as ranges of the trie's flat arrays.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    edges: (u32, u32),
    /// The `*` child; 0 (the root, nobody's child) when there is none.
    star: u32,
    tags: (u32, u32),
}

/// A segment trie, flattened: nodes, their edges sorted by key, and the tags of the grants
/// that end at each node, ascending. Node 0 is the root.
#[derive(Clone, Debug, Default)]
struct WildTrie {
    nodes: Box<[Node]>,
    edge_keys: Box<[u64]>,
    edge_nodes: Box<[u32]>,
    tags: Box<[Tag]>,
}

/// A trie node under construction.
#[derive(Default)]
struct Growing {
    children: Vec<(u64, usize)>,
    star: Option<usize>,
    tags: Vec<Tag>,
}

impl WildTrie {
    fn build(grants: Vec<(&PathPattern, Tag)>) -> WildTrie {
        if grants.is_empty() {
            return WildTrie::default();
        }
        let mut nodes = vec![Growing::default()];
        for (pattern, tag) in grants {
            let mut at = 0;
            for part in pattern.parts() {
                let existing = match part {
                    None => nodes[at].star,
                    Some(literal) => {
                        let key = segment_key(literal);
                        nodes[at].children.iter().find(|(k, _)| *k == key).map(|&(_, next)| next)
                    }
                };
                at = existing.unwrap_or_else(|| {
                    nodes.push(Growing::default());
                    let next = nodes.len() - 1;
                    match part {
                        None => nodes[at].star = Some(next),
                        Some(literal) => nodes[at].children.push((segment_key(literal), next)),
                    }
                    next
                });
            }
            nodes[at].tags.push(tag);
        }
        let mut trie = WildTrie::default();
        let (mut out_nodes, mut keys, mut children, mut tags) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for mut node in nodes {
            node.children.sort_unstable();
            let first_edge = keys.len() as u32;
            keys.extend(node.children.iter().map(|&(key, _)| key));
            children.extend(node.children.iter().map(|&(_, child)| child as u32));
            let first_tag = tags.len() as u32;
            tags.extend_from_slice(&sorted(node.tags));
            out_nodes.push(Node {
                edges: (first_edge, keys.len() as u32),
                star: node.star.map_or(0, |s| s as u32),
                tags: (first_tag, tags.len() as u32),
            });
        }
        trie.nodes = out_nodes.into();
        trie.edge_keys = keys.into();
        trie.edge_nodes = children.into();
        trie.tags = tags.into();
        trie
    }

    /// Pushes the tags of each node the path reaches onto `lists`.
    fn lookup<'t>(&'t self, path: &[u64], lists: &mut SmallVec<[&'t [Tag]; 4]>) {
        if self.nodes.is_empty() {
            return;
        }
        let mut found = |node: Node| {
            if node.tags.1 > node.tags.0 {
                lists.push(&self.tags[node.tags.0 as usize..node.tags.1 as usize]);
            }
        };
        let mut active: SmallVec<[u32; 4]> = SmallVec::from_slice(&[0]);
        let mut next: SmallVec<[u32; 4]> = SmallVec::new();
        for &key in path {
            for &at in &active {
                let node = self.nodes[at as usize];
                found(node);
                let (first, end) = (node.edges.0 as usize, node.edges.1 as usize);
                if let Ok(i) = self.edge_keys[first..end].binary_search(&key) {
                    next.push(self.edge_nodes[first + i]);
                }
                if node.star != 0 {
                    next.push(node.star);
                }
            }
            std::mem::swap(&mut active, &mut next);
            next.clear();
            if active.is_empty() {
                return;
            }
        }
        for &at in &active {
            found(self.nodes[at as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index of grants that all belong to owner 7.
    fn index(grants: &[&str]) -> GrantIndex {
        let patterns: Vec<PathPattern> = grants.iter().map(|g| PathPattern::parse(g).unwrap()).collect();
        GrantIndex::build(patterns.iter().zip(0..).map(|(p, i)| (p, Tag::new(7, i, u16::MAX))))
    }

    fn found_for(index: &GrantIndex, path: &[&str], owners: &[u32]) -> Vec<Tag> {
        let mut out: SmallVec<[Tag; 8]> = SmallVec::new();
        index.candidates(&PathKeys::of(path), owners, 0, &mut out);
        out.sort_unstable();
        out.dedup();
        out.into_vec()
    }

    /// The entries owner 7 has on the path.
    fn found(index: &GrantIndex, path: &[&str]) -> Vec<u32> {
        found_for(index, path, &[7]).into_iter().map(Tag::entry).collect()
    }

    #[test]
    fn a_grant_is_found_on_its_node_and_below_it() {
        let t = index(&["/api/v1/svc3", "/api/*/jobs", "/", "/api/v2", "/*"]);
        assert_eq!(found(&t, &["api", "v1", "svc3"]), [0, 2, 4]);
        assert_eq!(found(&t, &["api", "v1", "svc3", "item", "sub"]), [0, 2, 4]);
        assert_eq!(found(&t, &["api", "v1"]), [2, 4], "a grant deeper than the path does not cover it");
        assert_eq!(found(&t, &["api", "v2", "jobs"]), [1, 2, 3, 4]);
        assert_eq!(found(&t, &["other"]), [2, 4]);
        assert_eq!(found(&t, &[]), [2]);
    }

    #[test]
    fn variants_a_lenient_backend_reads_as_the_segment_are_candidates() {
        let t = index(&["/admin/*/keys", "/admin/x/keys"]);
        for variant in [["Admin", "x", "KEYS"], ["admin;a=1", "x", "keys;b"], ["admin ", "x", " keys"]] {
            assert_eq!(found(&t, &variant), [0, 1], "{variant:?}");
        }
        assert!(found(&t, &["admins", "x", "keys"]).is_empty());
    }

    #[test]
    fn only_the_owners_asked_for_are_found() {
        let patterns: Vec<PathPattern> =
            ["/api", "/api/*", "/"].iter().map(|g| PathPattern::parse(g).unwrap()).collect();
        // every grant held by owners 1 to 5, entry 10 × owner + the grant's position
        let index = GrantIndex::build(
            (1..=5).flat_map(|o| patterns.iter().zip(0..).map(move |(p, i)| (p, Tag::new(o, 10 * o + i, u16::MAX)))),
        );
        let owners = |tags: Vec<Tag>| tags.iter().map(|t| (t.owner(), t.entry())).collect::<Vec<_>>();
        assert_eq!(
            owners(found_for(&index, &["api", "x"], &[2, 4])),
            [(2, 20), (2, 21), (2, 22), (4, 40), (4, 41), (4, 42)]
        );
        assert_eq!(owners(found_for(&index, &["api"], &[0, 5, 9])), [(5, 50), (5, 52)]);
        assert!(found_for(&index, &["api"], &[0, 6]).is_empty());
        assert!(found_for(&index, &["api"], &[]).is_empty());
    }

    #[test]
    fn owners_and_methods_select_alike_from_short_and_long_lists() {
        use crate::engine::rules::method_bit;
        let (get, post) = (method_bit("GET"), method_bit("POST"));
        let pattern = PathPattern::parse("/api").unwrap();
        // 100 owners hold `/api`; an even owner's rule admits GET alone, an odd one's any method
        let methods = |o: u32| if o.is_multiple_of(2) { get } else { u16::MAX };
        let index = GrantIndex::build((0..100).map(|o| (&pattern, Tag::new(o, o, methods(o)))));
        // three owners among 100 tags are found by binary search, all 100 by one pass
        for owners in [vec![3, 50, 98, 99], (0..100).collect(), vec![]] {
            for method in [0, get, post] {
                let mut out: SmallVec<[Tag; 8]> = SmallVec::new();
                index.candidates(&PathKeys::of(&["api", "x"]), &owners, method, &mut out);
                let found: Vec<u32> = out.iter().map(|t| t.owner()).collect();
                let expected: Vec<u32> =
                    owners.iter().copied().filter(|&o| method == 0 || methods(o) & method != 0).collect();
                assert_eq!(found, expected, "owners {owners:?}, method bit {method}");
            }
        }
    }

    #[test]
    fn an_index_of_no_grants_finds_nothing() {
        assert!(found(&index(&[]), &["a"]).is_empty());
        assert!(found(&index(&[]), &[]).is_empty());
    }
}

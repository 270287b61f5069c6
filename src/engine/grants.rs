//! Which rules of a permission set have a feature-path grant that can cover an access path.
//!
//! ```text
//!   grants   /api/v1/svc3 (rule 0)   literal: key(api/v1/svc3) → [0]     lengths [0, 3]
//!            /            (rule 7)            key()            → [7]
//!            /api/*/jobs  (rule 4)   wild:    root ─api─▶ · ─*─▶ · ─jobs─▶ [4]
//! ```
//! A grant covers the node it names and its whole subtree, so a grant of `k` segments covers
//! a path when it matches the path's first `k` segments. Grants without `*` are kept in a hash
//! map by the key of their segments: a request computes the key of each of its prefixes once,
//! and a set costs one probe per distinct grant length. Grants with a `*` are kept in a
//! segment trie the request walks once, following its segment's edge and the `*` edge.
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

/// The grants of a set's rules, each tagged with a `u32` its owner chose.
#[derive(Clone, Debug, Default)]
pub(crate) struct GrantIndex {
    /// Grants without `*`, by the key of their segments.
    literal: HashMap<u64, SmallVec<[u32; 2]>>,
    /// The distinct lengths of those grants, ascending.
    lengths: Box<[usize]>,
    /// Grants with a `*`.
    wild: WildTrie,
}

impl GrantIndex {
    /// The index of `(grant, tag)` pairs.
    pub(crate) fn build<'p>(grants: impl IntoIterator<Item = (&'p PathPattern, u32)>) -> GrantIndex {
        let mut literal: HashMap<u64, SmallVec<[u32; 2]>> = HashMap::default();
        let mut lengths = Vec::new();
        let mut wild = Vec::new();
        for (pattern, tag) in grants {
            if pattern.parts().any(|p| p.is_none()) {
                wild.push((pattern, tag));
                continue;
            }
            let key = pattern.parts().flatten().fold(ROOT, |k, s| extend_prefix(k, segment_key(s)));
            let tags = literal.entry(key).or_default();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
            lengths.push(pattern.len());
        }
        lengths.sort_unstable();
        lengths.dedup();
        literal.shrink_to_fit();
        GrantIndex { literal, lengths: lengths.into(), wild: WildTrie::build(wild) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.wild.nodes.is_empty()
    }

    /// Appends to `out` the tags of the grants that may cover the path, in no particular
    /// order, possibly more than once.
    pub(crate) fn candidates<A: Array<Item = u32>>(&self, path: &PathKeys, out: &mut SmallVec<A>) {
        for &len in self.lengths.iter().take_while(|&&len| len < path.prefixes.len()) {
            if let Some(tags) = self.literal.get(&path.prefixes[len]) {
                out.extend_from_slice(tags);
            }
        }
        self.wild.candidates(&path.segments, out);
    }
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
/// that end at each node. Node 0 is the root.
#[derive(Clone, Debug, Default)]
struct WildTrie {
    nodes: Box<[Node]>,
    edge_keys: Box<[u64]>,
    edge_nodes: Box<[u32]>,
    tags: Box<[u32]>,
}

/// A trie node under construction.
#[derive(Default)]
struct Growing {
    children: Vec<(u64, usize)>,
    star: Option<usize>,
    tags: Vec<u32>,
}

impl WildTrie {
    fn build(grants: Vec<(&PathPattern, u32)>) -> WildTrie {
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
            if !nodes[at].tags.contains(&tag) {
                nodes[at].tags.push(tag);
            }
        }
        let mut trie = WildTrie::default();
        let (mut out_nodes, mut keys, mut children, mut tags) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for mut node in nodes {
            node.children.sort_unstable();
            let first_edge = keys.len() as u32;
            keys.extend(node.children.iter().map(|&(key, _)| key));
            children.extend(node.children.iter().map(|&(_, child)| child as u32));
            let first_tag = tags.len() as u32;
            tags.extend_from_slice(&node.tags);
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

    fn candidates<A: Array<Item = u32>>(&self, path: &[u64], out: &mut SmallVec<A>) {
        if self.nodes.is_empty() {
            return;
        }
        let mut active: SmallVec<[u32; 4]> = SmallVec::from_slice(&[0]);
        let mut next: SmallVec<[u32; 4]> = SmallVec::new();
        for &key in path {
            for &at in &active {
                let node = self.nodes[at as usize];
                out.extend_from_slice(&self.tags[node.tags.0 as usize..node.tags.1 as usize]);
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
            let node = self.nodes[at as usize];
            out.extend_from_slice(&self.tags[node.tags.0 as usize..node.tags.1 as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(grants: &[&str]) -> GrantIndex {
        let patterns: Vec<PathPattern> = grants.iter().map(|g| PathPattern::parse(g).unwrap()).collect();
        GrantIndex::build(patterns.iter().zip(0..))
    }

    fn found(index: &GrantIndex, path: &[&str]) -> Vec<u32> {
        let mut out: SmallVec<[u32; 8]> = SmallVec::new();
        index.candidates(&PathKeys::of(path), &mut out);
        out.sort_unstable();
        out.dedup();
        out.into_vec()
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
    fn an_index_of_no_grants_finds_nothing() {
        assert!(found(&index(&[]), &["a"]).is_empty());
        assert!(found(&index(&[]), &[]).is_empty());
    }
}

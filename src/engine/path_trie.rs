//! A segment trie of feature-path grants: which rules of a list can cover an access path.
//!
//! ```text
//!   grants  /api/v1/svc3  (rule 0)     root ─api─▶ · ─v1─▶ · ─svc3─▶ [0]
//!           /api/*/jobs   (rule 4)                 └─ * ─▶ · ─jobs─▶ [4]
//!           /             (rule 7)     root holds [7]
//! ```
//! A request walks the trie once, segment by segment, following the edge of its segment and
//! the `*` edge; every node it reaches holds rules whose grant covers the path (a grant covers
//! its whole subtree). The walk is a filter, never a decision: it may return a rule that does
//! not match, and [`super::rules::Rule::check`] decides each one. It must never leave out a
//! rule that could match, so edges are keyed by a hash of the segment with ASCII case folded,
//! and a request segment is also looked up without its `;param` suffix and surrounding spaces:
//! the exact comparison of allow rules and the lenient one of deny rules
//! ([`super::rules::loosely_equal`]) both imply equal keys. A hash collision only adds a
//! candidate.

use smallvec::{Array, SmallVec};

use super::rules::{PathPattern, bare_segment};

/// A request path segment as the trie looks it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentKey {
    /// The segment's key.
    whole: u64,
    /// The key of the segment without `;param` and surrounding spaces, as a lenient backend
    /// reads it; equal to `whole` when that is the segment itself.
    bare: u64,
}

impl SegmentKey {
    pub(crate) fn of(segment: &str) -> SegmentKey {
        let whole = folded_hash(segment);
        let bare = bare_segment(segment);
        SegmentKey { whole, bare: if bare.len() == segment.len() { whole } else { folded_hash(bare) } }
    }

    /// The keys of every segment of a path.
    pub(crate) fn of_path<S: AsRef<str>>(path: &[S]) -> SmallVec<[SegmentKey; 8]> {
        path.iter().map(|s| SegmentKey::of(s.as_ref())).collect()
    }
}

/// 64-bit FNV-1a over the ASCII-lowercased bytes: segments are short, and equal keys are all
/// the trie needs (`eq_ignore_ascii_case` strings always have equal keys).
fn folded_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3))
}

/// One node, its edges and rules as ranges of the trie's flat arrays.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    edges: (u32, u32),
    /// The `*` child; 0 (the root, nobody's child) when there is none.
    star: u32,
    rules: (u32, u32),
}

/// The trie, flattened: nodes, their edges sorted by key, and the rule indexes each node's
/// grants belong to, sorted. Node 0 is the root (the grant `/`).
#[derive(Clone, Debug, Default)]
pub(crate) struct PathTrie {
    nodes: Box<[Node]>,
    edges: Box<[(u64, u32)]>,
    rules: Box<[u32]>,
}

/// A trie under construction.
#[derive(Default)]
struct Growing {
    children: Vec<(u64, usize)>,
    star: Option<usize>,
    rules: Vec<u32>,
}

impl PathTrie {
    /// The trie of `(grant, rule index)` pairs, given in rule order.
    pub(crate) fn build<'p>(grants: impl IntoIterator<Item = (&'p PathPattern, u32)>) -> PathTrie {
        let mut nodes = vec![Growing::default()];
        for (pattern, rule) in grants {
            let mut at = 0;
            for segment in pattern.parts() {
                at = match segment {
                    None => match nodes[at].star {
                        Some(next) => next,
                        None => {
                            nodes.push(Growing::default());
                            nodes[at].star = Some(nodes.len() - 1);
                            nodes.len() - 1
                        }
                    },
                    Some(literal) => {
                        let key = folded_hash(literal);
                        match nodes[at].children.iter().find(|(k, _)| *k == key) {
                            Some(&(_, next)) => next,
                            None => {
                                nodes.push(Growing::default());
                                let next = nodes.len() - 1;
                                nodes[at].children.push((key, next));
                                next
                            }
                        }
                    }
                };
            }
            if nodes[at].rules.last() != Some(&rule) {
                nodes[at].rules.push(rule);
            }
        }
        if nodes.len() == 1 && nodes[0].rules.is_empty() {
            return PathTrie::default();
        }
        Self::flatten(nodes)
    }

    fn flatten(mut grown: Vec<Growing>) -> PathTrie {
        let mut nodes = Vec::with_capacity(grown.len());
        let mut edges = Vec::new();
        let mut rules = Vec::new();
        for node in &mut grown {
            node.children.sort_unstable();
            let first_edge = edges.len() as u32;
            edges.extend(node.children.iter().map(|&(key, child)| (key, child as u32)));
            let first_rule = rules.len() as u32;
            rules.extend_from_slice(&node.rules);
            nodes.push(Node {
                edges: (first_edge, edges.len() as u32),
                star: node.star.map_or(0, |s| s as u32),
                rules: (first_rule, rules.len() as u32),
            });
        }
        PathTrie { nodes: nodes.into(), edges: edges.into(), rules: rules.into() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Appends to `out` the rules whose grants may cover the path, each at most once per
    /// grant, in no particular order.
    pub(crate) fn candidates<A: Array<Item = u32>>(&self, path: &[SegmentKey], out: &mut SmallVec<A>) {
        if self.is_empty() {
            return;
        }
        let mut active: SmallVec<[u32; 4]> = SmallVec::from_slice(&[0]);
        let mut next: SmallVec<[u32; 4]> = SmallVec::new();
        for key in path {
            for &at in &active {
                let node = self.nodes[at as usize];
                out.extend_from_slice(&self.rules[node.rules.0 as usize..node.rules.1 as usize]);
                let edges = &self.edges[node.edges.0 as usize..node.edges.1 as usize];
                let mut follow = |k: u64| {
                    if let Ok(i) = edges.binary_search_by_key(&k, |(k, _)| *k) {
                        next.push(edges[i].1);
                    }
                };
                follow(key.whole);
                if key.bare != key.whole {
                    follow(key.bare);
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
            out.extend_from_slice(&self.rules[node.rules.0 as usize..node.rules.1 as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(grants: &[&str]) -> PathTrie {
        let patterns: Vec<PathPattern> = grants.iter().map(|g| PathPattern::parse(g).unwrap()).collect();
        PathTrie::build(patterns.iter().enumerate().map(|(i, p)| (p, i as u32)))
    }

    fn found(t: &PathTrie, path: &[&str]) -> Vec<u32> {
        let mut out: SmallVec<[u32; 8]> = SmallVec::new();
        t.candidates(&SegmentKey::of_path(path), &mut out);
        out.sort_unstable();
        out.into_vec()
    }

    #[test]
    fn a_grant_is_found_on_its_node_and_below_it() {
        let t = trie(&["/api/v1/svc3", "/api/*/jobs", "/", "/api/v2"]);
        assert_eq!(found(&t, &["api", "v1", "svc3"]), [0, 2]);
        assert_eq!(found(&t, &["api", "v1", "svc3", "item", "sub"]), [0, 2]);
        assert_eq!(found(&t, &["api", "v1"]), [2], "a grant deeper than the path does not cover it");
        assert_eq!(found(&t, &["api", "v2", "jobs"]), [1, 2, 3]);
        assert_eq!(found(&t, &["other"]), [2]);
        assert_eq!(found(&t, &[]), [2]);
    }

    #[test]
    fn variants_a_lenient_backend_reads_as_the_segment_are_candidates() {
        let t = trie(&["/admin/*/keys"]);
        for variant in [["Admin", "x", "KEYS"], ["admin;a=1", "x", "keys;b"], ["admin ", "x", " keys"]] {
            assert_eq!(found(&t, &variant), [0], "{variant:?}");
        }
        assert!(found(&t, &["admins", "x", "keys"]).is_empty());
    }

    #[test]
    fn an_empty_list_has_an_empty_trie() {
        assert!(trie(&[]).is_empty());
        assert!(found(&trie(&[]), &["a"]).is_empty());
    }
}

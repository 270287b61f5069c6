//! The authorization engine: pure data and functions, no Kubernetes, HTTP or async.
//!
//! ```text
//!  model::Definitions ──Snapshot::build──▶ Snapshot ──decide(Request)──▶ Decision
//!                                     └──▶ Report (status of every object)
//! ```
//! - [`ou`]: the organizational-unit tree under `global`, with closed ancestry.
//! - [`rules`]: compiled allow/deny rules (anchored regexes, feature-path grants), indexed
//!   by the operations they name and, through `grants`, by the paths they grant.
//! - [`catalog`]: API catalogs compiled into one route trie, and the five extractors.
//! - [`index`]: the immutable snapshot and its build.
//! - [`decision`]: DESIGN §3, with its reason, deciding rule and optional trace.
//! - [`views`]: what UIs ask for: allowed operations and the effective-permissions tree.

/// Maps on the request path hash with foldhash: their keys come from configuration, and a
/// lookup costs a few nanoseconds instead of SipHash's tens.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub mod catalog;
pub mod decision;
mod grants;
pub mod index;
pub mod model;
pub mod ou;
pub mod report;
pub mod request;
pub mod rules;
pub mod views;

pub use decision::{
    ANONYMOUS_USER, Answer, Decision, Denial, Outcome, Resolved, RuleRef, Side, Trace, UNAUTHENTICATED_GROUP,
};
pub use index::{Snapshot, Stats};
pub use model::*;
pub use report::{Kind, ObjectStatus, Problem, Reason, Report};
pub use request::{Claims, Headers, NoHeaders, OU_HEADER, Request, Subject, split_url};
pub use views::{AllowedOperation, EffectivePermissions, FeatureNode, ViewError};

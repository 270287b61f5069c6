//! The UI answers on the seed examples: allowed operations (HATEOAS links) and the
//! effective-permissions tree with ChistaData's union of explicit and wildcard grants.

mod common;

use std::collections::HashMap;
use std::path::Path;

use turnstile::engine::*;
use turnstile::sources::files;

fn example(name: &str) -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    let (s, report) = Snapshot::build(&files::load(&dir).unwrap().definitions(), common::now());
    assert!(report.is_clean());
    s
}

fn node<'t>(tree: &'t FeatureNode, path: &str) -> &'t FeatureNode {
    path.split('/')
        .filter(|s| !s.is_empty())
        .fold(tree, |n, seg| n.children.get(seg).unwrap_or_else(|| panic!("no node `{seg}` on the way to `{path}`")))
}

#[test]
fn explicit_ids_get_the_union_of_their_own_and_wildcard_grants() {
    let s = example("chistadata");
    let p = s.effective_permissions(Subject { user: "carol@chistadata.io", groups: &[] }, None, common::now()).unwrap();
    assert!(p.complete, "{:?}", p.conditional);
    let t = &p.tree;
    assert!(!t.allowed);
    assert!(node(t, "/workspaces/*/clusters/*/query").allowed);
    assert!(!node(t, "/workspaces/*/clusters/*").allowed);
    // id-12/id-10 is listed for its backup grant, and also gets the wildcard's query
    assert!(node(t, "/workspaces/id-12/clusters/id-10/backup").allowed);
    assert!(node(t, "/workspaces/id-12/clusters/id-10/query").allowed);
    assert!(node(t, "/workspaces/id-12/clusters/*/query").allowed);
    assert!(!node(t, "/workspaces/id-12/clusters/*").children.contains_key("backup"), "backup is id-10's alone");
}

#[test]
fn deny_paths_subtract_from_subtree_grants() {
    let s = example("chistadata");
    let p = s.effective_permissions(Subject { user: "dave@chistadata.io", groups: &[] }, None, common::now()).unwrap();
    assert!(p.complete);
    assert!(node(&p.tree, "/workspaces/id-12").allowed);
    assert!(!node(&p.tree, "/workspaces/id-12/delete").allowed);
    assert!(!node(&p.tree, "/workspaces/*").allowed);
}

#[test]
fn rules_that_look_beyond_the_path_make_the_tree_incomplete() {
    let s = example("chistadata");
    let p = s
        .effective_permissions(
            Subject { user: "system:serviceaccount:monitoring:metadata-exporter", groups: &[] },
            None,
            common::now(),
        )
        .unwrap();
    assert!(!p.complete);
    assert_eq!(p.conditional, ["PermissionSet/metadata-all/allow/0"]);
    assert!(!node(&p.tree, "/").allowed, "a method-restricted grant is not shown as a grant");
    let err = s.effective_permissions(Subject { user: "x", groups: &[] }, Some("nowhere"), common::now()).unwrap_err();
    assert_eq!(err.to_string(), "organizational unit `nowhere` is unknown or not ready");
}

#[test]
fn allowed_operations_give_links_for_what_the_user_may_do() {
    let s = example("clumio");
    let params: HashMap<String, String> =
        [("id", "p 1"), ("account", "aws-account-1")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let ops = s.allowed_operations(
        Subject { user: "bob@example.com", groups: &[] },
        Claims::Subject { user_claim: "sub" },
        Some("accounting"),
        &params,
        common::now(),
    );
    let by_id: HashMap<&str, &AllowedOperation> = ops.iter().map(|o| (o.operation.as_str(), o)).collect();
    let read = by_id["ReadPolicyDefinition"];
    assert!(read.allowed, "{read:?}");
    assert_eq!(read.href.as_deref(), Some("/api/v1/policy-definitions/p%201"));
    assert_eq!(read.method, "GET");
    assert!(by_id["ListPolicyDefinitions"].allowed);
    assert!(!by_id["DeletePolicyDefinition"].allowed);
    assert!(!by_id["CreatePolicyDefinition"].allowed);
    let restore = by_id["RestoreAccountBackup"];
    assert!(!restore.allowed);
    assert_eq!(restore.href, None);
    assert!(restore.reason.contains("`backup`"), "{}", restore.reason);
}

//! File mode reloads on change: a new manifest changes decisions, a broken one keeps the last
//! good index serving and is reported in `/readyz` and `/metrics`.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use turnstile::http::AppState;
use turnstile::http::authn::{Authenticator, AuthnConfig};
use turnstile::publisher::Publisher;

async fn delete_allowed(addr: std::net::SocketAddr) -> u16 {
    let body = json!({"subject": {"user": "bob@example.com"}, "ou": "accounting", "method": "DELETE",
                      "host": "api.example.com", "path": "/api/v1/policy-definitions/p-1"});
    common::http(addr, "POST", "/v1/check", &[], &body.to_string()).await.status
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// The manifests of `examples/clumio`, file by file.
fn clumio() -> Vec<(std::ffi::OsString, String)> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clumio");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    files
}

fn write_clumio(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in clumio() {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// Serves `target` (a folder or a file), watched: (address, reloader to keep alive).
async fn serve_watched(target: &Path) -> (std::net::SocketAddr, turnstile::run::files::Reloader) {
    let state = AppState::new(Publisher::new(), Authenticator::new(AuthnConfig::default()).await);
    assert!(turnstile::run::files::reload(target, state.publisher(), false).is_ok());
    let reloader = turnstile::run::files::watch(target.to_owned(), state.publisher().clone(), false).unwrap();
    let addr = common::serve_all(state).await;
    (addr, reloader)
}

/// Serves a copy of `examples/clumio` from a temporary folder, watched: (folder, address,
/// reloader to keep alive).
async fn serve_clumio_copy() -> (tempfile::TempDir, std::net::SocketAddr, turnstile::run::files::Reloader) {
    let dir = tempfile::tempdir().unwrap();
    write_clumio(dir.path());
    let (addr, reloader) = serve_watched(dir.path()).await;
    (dir, addr, reloader)
}

const GRANT: &str = "apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: bob-policy-admin}
spec:
  subjects: [{kind: User, name: bob@example.com}]
  permissionSets: [policy-management-full]
  organizationalUnits: [accounting]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_picked_up_and_broken_files_keep_the_last_good_index() {
    let (dir, addr, _watcher) = serve_clumio_copy().await;

    assert_eq!(delete_allowed(addr).await, 403, "bob is read-only at first");
    std::fs::write(dir.path().join("grant.yaml"), GRANT).unwrap();
    eventually("the new binding taking effect", async || delete_allowed(addr).await == 200).await;

    // A broken file: the last good index (with the grant) keeps serving, and it is reported.
    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed").unwrap();
    eventually("the failed reload being reported", async || {
        common::http(addr, "GET", "/readyz", &[], "").await.body.contains("last reload failed")
    })
    .await;
    let ready = common::http(addr, "GET", "/readyz", &[], "").await;
    assert_eq!(ready.status, 200);
    assert!(ready.body.contains("broken.yaml (document 1): not valid YAML"), "{}", ready.body);
    assert_eq!(delete_allowed(addr).await, 200, "the last good index still serves");
    let metrics = common::http(addr, "GET", "/metrics", &[], "").await.body;
    assert!(metrics.contains("turnstile_reload_failures_total 1"), "{metrics}");
    // At least the first 403, then the 200 that ended the wait and the one after the broken file.
    assert!(counted(&metrics, r#"turnstile_decisions_total{endpoint="check",result="denied"}"#) >= 1, "{metrics}");
    assert!(counted(&metrics, r#"turnstile_decisions_total{endpoint="check",result="allowed"}"#) >= 2, "{metrics}");
    assert_eq!(counted(&metrics, r#"turnstile_decisions_total{endpoint="nginx",result="allowed"}"#), 0, "{metrics}");
    assert!(metrics.contains("turnstile_decision_duration_seconds_bucket"), "{metrics}");

    // Fixing the folder (here: removing the grant too) publishes again.
    std::fs::remove_file(dir.path().join("broken.yaml")).unwrap();
    std::fs::remove_file(dir.path().join("grant.yaml")).unwrap();
    eventually("the fixed folder being published", async || delete_allowed(addr).await == 403).await;
    let ready = common::http(addr, "GET", "/readyz", &[], "").await;
    assert!(!ready.body.contains("failed"), "{}", ready.body);
}

/// `--manifests FILE` saved by rename, as `sed -i` and most editors save: every save is applied,
/// including the second one, which restores the deny (a watch on the file alone ends at the
/// first rename).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_file_saved_by_rename_keeps_reloading() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<String> = clumio().into_iter().map(|(_, text)| text).collect();
    let all = all.join("\n---\n");
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, &all).unwrap();
    let (addr, _reloader) = serve_watched(&file).await;
    let save_by_rename = |text: &str| {
        let temporary = dir.path().join(".all.yaml.swp");
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, &file).unwrap();
    };
    assert_eq!(delete_allowed(addr).await, 403);
    save_by_rename(&format!("{all}\n---\n{GRANT}"));
    eventually("the first save taking effect", async || delete_allowed(addr).await == 200).await;
    save_by_rename(&all);
    eventually("the second save restoring the deny", async || delete_allowed(addr).await == 403).await;
}

/// A folder moved away and made again (as a volume is swapped) is read again, and so are later
/// changes inside the new folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_made_again_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    write_clumio(&manifests);
    let (addr, _reloader) = serve_watched(&manifests).await;
    assert_eq!(delete_allowed(addr).await, 403);

    let staging = dir.path().join("staging");
    write_clumio(&staging);
    std::fs::write(staging.join("grant.yaml"), GRANT).unwrap();
    std::fs::rename(&manifests, dir.path().join("old")).unwrap();
    std::fs::rename(&staging, &manifests).unwrap();
    eventually("the new folder being read", async || delete_allowed(addr).await == 200).await;

    std::fs::remove_file(manifests.join("grant.yaml")).unwrap();
    eventually("a change inside the new folder being read", async || delete_allowed(addr).await == 403).await;
}

/// A ConfigMap volume mounted as a file: `all.yaml` links to `..data/all.yaml`, and an update
/// swaps the `..data` link to a new folder. The swap is read; other files written beside the
/// watched one (a log, say) are not changes and reload nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_link_swap_is_read_and_other_files_beside_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    let all: Vec<String> = clumio().into_iter().map(|(_, text)| text).collect();
    let all = all.join("\n---\n");
    let version = |name: &str, text: &str| {
        std::fs::create_dir_all(volume.join(name)).unwrap();
        std::fs::write(volume.join(name).join("all.yaml"), text).unwrap();
    };
    version("..2026_12_01_first", &all);
    std::os::unix::fs::symlink("..2026_12_01_first", volume.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/all.yaml", volume.join("all.yaml")).unwrap();
    let (addr, _reloader) = serve_watched(&volume.join("all.yaml")).await;
    let generation =
        async || common::http(addr, "GET", "/readyz", &[], "").await.body.lines().next().unwrap().to_owned();
    let first = generation().await;

    for i in 0..5 {
        std::fs::write(volume.join("turnstile.log"), format!("line {i}\n")).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(generation().await, first, "a file beside the manifests reloaded them");

    assert_eq!(delete_allowed(addr).await, 403);
    version("..2026_12_01_second", &format!("{all}\n---\n{GRANT}"));
    std::os::unix::fs::symlink("..2026_12_01_second", volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(volume.join("..2026_12_01_first")).unwrap();
    eventually("the swapped volume being read", async || delete_allowed(addr).await == 200).await;
}

#[tokio::test]
async fn a_folder_that_does_not_load_leaves_the_server_unready() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed").unwrap();
    let state = AppState::new(Publisher::new(), Authenticator::new(AuthnConfig::default()).await);
    assert!(turnstile::run::files::reload(dir.path(), state.publisher(), false).is_err());
    let addr = common::serve_all(state).await;
    assert_eq!(common::http(addr, "GET", "/readyz", &[], "").await.status, 503);
    assert_eq!(delete_allowed(addr).await, 403);
}

/// A folder with no Turnstile object denies everything: published and named on /readyz, or,
/// with `--refuse-empty`, not published at all; an object arriving clears the warning.
#[tokio::test]
async fn an_empty_folder_is_reported_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(Publisher::new(), Authenticator::new(AuthnConfig::default()).await);
    assert_eq!(turnstile::run::files::reload(dir.path(), state.publisher(), true).map_err(|_| ()), Err(()));
    assert!(!state.publisher().is_ready(), "refused: nothing published");
    assert_eq!(turnstile::run::files::reload(dir.path(), state.publisher(), false), Ok(0));
    let publisher = state.publisher().clone();
    let addr = common::serve_all(state).await;
    let ready = common::http(addr, "GET", "/readyz", &[], "").await;
    assert_eq!(ready.status, 200);
    assert!(ready.body.contains("holds no Turnstile objects"), "{}", ready.body);
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clumio/ous.yaml"),
        dir.path().join("ous.yaml"),
    )
    .unwrap();
    assert_eq!(turnstile::run::files::reload(dir.path(), &publisher, false), Ok(3));
    let ready = common::http(addr, "GET", "/readyz", &[], "").await;
    assert!(!ready.body.contains("holds no Turnstile objects"), "{}", ready.body);
}

/// The value of one series in the metrics text.
fn counted(metrics: &str, series: &str) -> u64 {
    let line = metrics.lines().find_map(|l| l.strip_prefix(series)).unwrap_or_else(|| panic!("no {series}"));
    line.trim().parse().unwrap()
}

const BROKEN_DENY: &str = "apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {name: no-policy-reads}
spec:
  deny: [{apiName: \"ListPolicyDefinitions(\"}]
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: bob-no-reads}
spec:
  subjects: [{kind: User, name: bob@example.com}]
  permissionSets: [no-policy-reads]
  organizationalUnits: [accounting]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_breaks_a_deny_set_is_visible_and_denies() {
    let (dir, addr, _watcher) = serve_clumio_copy().await;
    let read = async || {
        let body = json!({"subject": {"user": "bob@example.com"}, "ou": "accounting", "method": "GET",
                          "host": "api.example.com", "path": "/api/v1/policy-definitions"});
        common::http(addr, "POST", "/v1/check", &[], &body.to_string()).await
    };
    assert_eq!(read().await.status, 200);
    let metrics = common::http(addr, "GET", "/metrics", &[], "").await.body;
    assert_eq!(counted(&metrics, r#"turnstile_objects{kind="PermissionSet",ready="false"}"#), 0, "{metrics}");

    std::fs::write(dir.path().join("deny.yaml"), BROKEN_DENY).unwrap();
    eventually("the broken deny set taking effect", async || read().await.status == 403).await;
    let denied = read().await;
    assert!(denied.json()["reason"].as_str().unwrap().contains("user binding `bob-no-reads`"), "{}", denied.body);
    let ready = common::http(addr, "GET", "/readyz", &[], "").await;
    assert_eq!(ready.status, 200, "the index serves: the broken set denies");
    assert!(ready.body.contains("2 objects are not ready"), "{}", ready.body);
    assert!(ready.body.contains("PermissionSet/no-policy-reads: InvalidRegex"), "{}", ready.body);
    assert!(ready.body.contains("UserBinding/bob-no-reads: PermissionSetNotFound"), "{}", ready.body);
    let metrics = common::http(addr, "GET", "/metrics", &[], "").await.body;
    assert_eq!(counted(&metrics, r#"turnstile_objects{kind="PermissionSet",ready="false"}"#), 1, "{metrics}");
    assert_eq!(counted(&metrics, r#"turnstile_objects{kind="UserBinding",ready="false"}"#), 1, "{metrics}");
    assert!(counted(&metrics, r#"turnstile_objects{kind="PermissionSet",ready="true"}"#) >= 4, "{metrics}");
}

//! `turnstile run` against a real kube-apiserver with etcd (tests/common/cluster.rs), driven
//! through `kubectl` as a user would.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{self, Cluster, Turnstile};
use common::scenarios;
use serde_json::{Value, json};
use turnstile::engine::Snapshot;
use turnstile::sources::files;

const SOON: Duration = Duration::from_secs(10);

fn examples(dir: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(dir).display().to_string()
}

/// Starts Turnstile and waits until it has listed every kind. Its Lease is its own: one held
/// by an earlier test's stopped process would hold off its status for the Lease's duration.
fn start(cluster: &Cluster, identity: &str) -> Turnstile {
    let t = Turnstile::start(cluster, identity, &["--lease-name", identity]);
    t.wait_for(SOON, "readiness", || t.is_ready());
    t
}

fn ask(user: &str, method: &str, url: &str) -> Value {
    let (host, path) = turnstile::engine::split_url(url);
    json!({"subject": {"user": user}, "method": method, "host": host, "path": path})
}

fn allowed(t: &Turnstile, request: &Value) -> bool {
    t.check(request)["allowed"].as_bool().expect("a decision")
}

/// `(status, reason)` of an object's `Ready` condition.
fn ready(cluster: &Cluster, kind: &str, name: &str) -> (String, String) {
    let at = |field| cluster.get(kind, name, &format!("{{.status.conditions[?(@.type==\"Ready\")].{field}}}"));
    (at("status"), at("reason"))
}

/// Every scenario of every seed decides in cluster mode as the table says, and exactly as
/// file mode decides on the same folder: each seed alone, then all three together.
#[test]
fn seeds_decide_as_in_file_mode() {
    let (cluster, _turn) = cluster::shared();
    let mut runs: Vec<(Vec<&str>, String)> = scenarios::SEEDS.iter().map(|s| (vec![*s], examples(s))).collect();
    runs.push((scenarios::SEEDS.to_vec(), examples("")));
    for (seeds, folder) in runs {
        cluster.kubectl(&["delete", "ou,pset,roles.turnstile.dev,ub,apicat", "--all", "--wait=true"]);
        for seed in &seeds {
            cluster.kubectl(&["apply", "-f", &examples(seed)]);
        }
        let t = start(cluster, "seeds");
        let loaded = files::load(Path::new(&folder)).unwrap();
        let (snapshot, report) = Snapshot::build(&loaded.definitions(), jiff::Timestamp::now());
        assert!(report.is_clean());
        let mut checked = 0;
        for seed in &seeds {
            for c in scenarios::checks(seed) {
                let cluster_answer = t.check(&c.request());
                let file_answer = c.ask().with_request(jiff::Timestamp::now(), |r| snapshot.decide(r).answer());
                let context = format!("{folder}: cluster {cluster_answer}, file {file_answer:?}");
                let file_answer = serde_json::to_value(&file_answer).unwrap();
                for field in ["allowed", "status", "reason", "rule", "ou", "roles", "operation"] {
                    assert_eq!(cluster_answer[field], file_answer[field], "{}: `{field}` [{context}]", c.name);
                }
                c.assert(
                    cluster_answer["allowed"].as_bool().unwrap(),
                    cluster_answer["status"].as_u64().unwrap() as u16,
                    cluster_answer["rule"].as_str(),
                    &context,
                );
                checked += 1;
            }
        }
        assert!(checked >= 8 * seeds.len());
    }
}

/// Edits, deletions and broken objects take effect without a restart; broken objects are
/// reported in `kubectl get` and leave everything else enforced; status is written once per
/// change.
#[test]
fn changes_take_effect_and_status_follows() {
    let (cluster, _turn) = cluster::shared();
    cluster.kubectl(&["apply", "-f", &examples("clumio")]);
    let t = start(cluster, "changes");
    let restore =
        ask("alice@example.com", "POST", "https://api.example.com/api/v1/accounts/aws-account-1/backups/bk-42/restore");
    let list = ask("alice@example.com", "GET", "https://api.example.com/api/v1/accounts/aws-account-1/backups");
    let admin = ask("admin@example.com", "DELETE", "https://api.example.com/api/v1/policy-definitions/p-1");
    assert!(allowed(&t, &restore) && allowed(&t, &list) && allowed(&t, &admin));

    // Status: every object Ready, written by the Lease holder.
    t.wait_for(SOON, "Ready status on the seed's objects", || {
        ready(cluster, "pset", "backup-full").0 == "True" && ready(cluster, "ou", "payroll").0 == "True"
    });
    assert_eq!(cluster.get("ou", "payroll", "{.status.path}"), "global/accounting/payroll");
    assert_eq!(cluster.get("ou", "payroll", "{.status.depth}"), "2");
    assert_eq!(cluster.get("pset", "backup-full", "{.status.observedGeneration}"), "1");

    // Editing a permission set changes the decision.
    cluster.patch("pset", "backup-full", r#"{"spec":{"operations":["ListAccountBackups","ReadAccountBackup"]}}"#);
    t.wait_for(SOON, "the edit to deny the restore", || !allowed(&t, &restore));
    assert!(allowed(&t, &list));
    t.wait_for(SOON, "observedGeneration 2", || {
        cluster.get("pset", "backup-full", "{.status.observedGeneration}") == "2"
    });

    // A change the engine does not read (a label) rebuilds nothing.
    let generation = || t.request("GET", "/readyz", "").1.lines().next().unwrap_or_default().to_owned();
    let before = generation();
    cluster.kubectl(&["label", "pset", "backup-full", "team=backup"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(generation(), before, "a label is not a change to the index");

    // Deleting a binding revokes its access.
    cluster.kubectl(&["delete", "ub", "accounting-backup-admins"]);
    t.wait_for(SOON, "the deletion to revoke access", || !allowed(&t, &list));

    // An invalid regex and an OU cycle: Ready=False with reason and message in `kubectl get`;
    // the objects are left out and everything else is enforced.
    cluster.apply_yaml(
        r#"
apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {name: broken-regex}
spec:
  allow: [{apiName: "GetUser)|(ListUsers"}]
---
apiVersion: turnstile.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: loop-a}
spec: {parent: loop-b}
---
apiVersion: turnstile.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: loop-b}
spec: {parent: loop-a}
"#,
    );
    t.wait_for(SOON, "Ready=False on the broken objects", || {
        ready(cluster, "pset", "broken-regex") == ("False".into(), "InvalidRegex".into())
            && ready(cluster, "ou", "loop-a") == ("False".into(), "Cycle".into())
    });
    let table = cluster.kubectl(&["get", "pset", "broken-regex"]);
    assert!(table.contains("False") && table.contains("InvalidRegex"), "printer columns: {table}");
    let table = cluster.kubectl(&["get", "ou", "loop-b"]);
    assert!(table.contains("False") && table.contains("Cycle"), "printer columns: {table}");
    let message = cluster.get("pset", "broken-regex", "{.status.conditions[?(@.type==\"Ready\")].message}");
    assert!(message.contains("GetUser)|(ListUsers"), "{message}");
    assert!(allowed(&t, &admin) && !allowed(&t, &list) && !allowed(&t, &restore));
    let events = cluster.kubectl(&["get", "events", "-n", "default", "--field-selector", "reason=InvalidRegex"]);
    assert!(events.contains("broken-regex"), "a Warning event on the transition: {events}\n{}", t.log_text());

    // lastTransitionTime moves once per transition: another invalid pattern keeps it.
    let transition =
        || cluster.get("pset", "broken-regex", "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}");
    let broken_at = transition();
    std::thread::sleep(Duration::from_millis(1100)); // condition times have one-second resolution
    cluster.patch("pset", "broken-regex", r#"{"spec":{"allow":[{"apiName":"("}]}}"#);
    t.wait_for(SOON, "observedGeneration 2", || {
        cluster.get("pset", "broken-regex", "{.status.observedGeneration}") == "2"
    });
    assert_eq!(transition(), broken_at);

    // Fixing the object makes it Ready again, at a new transition time.
    cluster.patch("pset", "broken-regex", r#"{"spec":{"allow":[{"apiName":"GetUser"}]}}"#);
    t.wait_for(SOON, "the fix to make it Ready", || {
        ready(cluster, "pset", "broken-regex") == ("True".into(), "Indexed".into())
    });
    assert_ne!(transition(), broken_at);

    // An object whose status is right is never patched again: rebuilds caused by other
    // objects leave its resourceVersion alone.
    let version = cluster.get("pset", "policy-management-full", "{.metadata.resourceVersion}");
    for i in 0..20 {
        cluster.patch("pset", "broken-regex", &format!(r#"{{"spec":{{"description":"edit {i}"}}}}"#));
    }
    t.wait_for(SOON, "the last edit's status", || {
        cluster.get("pset", "broken-regex", "{.status.observedGeneration}") == "23"
    });
    assert_eq!(cluster.get("pset", "policy-management-full", "{.metadata.resourceVersion}"), version);
    let managers = cluster.get("pset", "policy-management-full", "{.metadata.managedFields[*].manager}");
    assert!(managers.split(' ').any(|m| m == "turnstile"), "status written by field manager `turnstile`: {managers}");
}

/// Two replicas against one API server: both answer, only the Lease holder writes status, and
/// when the holder stops, the other takes over within the Lease's duration.
#[test]
fn the_lease_holder_alone_writes_status_and_hands_over() {
    let (cluster, _turn) = cluster::shared();
    cluster.kubectl(&["apply", "-f", &examples("clumio")]);
    let lease = ["--lease-name", "replicas"];
    let holder = || cluster.kubectl_output(&["get", "lease", "replicas", "-o", "jsonpath={.spec.holderIdentity}"]);
    let holder = || String::from_utf8_lossy(&holder().stdout).into_owned();
    let a = Turnstile::start(cluster, "replica-a", &lease);
    a.wait_for(SOON, "readiness", || a.is_ready());
    a.wait_for(SOON, "replica-a to hold the Lease", || holder() == "replica-a");
    let b = Turnstile::start(cluster, "replica-b", &lease);
    b.wait_for(SOON, "readiness", || b.is_ready());
    let admin = ask("admin@example.com", "DELETE", "https://api.example.com/api/v1/policy-definitions/p-1");
    let restore =
        ask("alice@example.com", "POST", "https://api.example.com/api/v1/accounts/aws-account-1/backups/bk-42/restore");
    assert!(allowed(&a, &admin) && allowed(&b, &admin) && allowed(&b, &restore));
    a.wait_for(SOON, "the holder's status", || ready(cluster, "pset", "backup-full").0 == "True");

    // The holder is suspended: it neither serves nor renews. The other replica serves the
    // change at once, and writes no status while the Lease is still held.
    a.signal("STOP");
    cluster.patch("pset", "backup-full", r#"{"spec":{"operations":["ReadAccountBackup"]}}"#);
    b.wait_for(SOON, "replica-b to serve the edit", || !allowed(&b, &restore));
    let observed = || cluster.get("pset", "backup-full", "{.status.observedGeneration}");
    assert_eq!(observed(), "1", "only the Lease holder writes status");
    assert_eq!(holder(), "replica-a");

    let within = Duration::from_secs(turnstile::sources::cluster::lease::DURATION_SECONDS + 5);
    let took = b.wait_for(within, "replica-b to take over and write the status", || observed() == "2");
    assert_eq!(holder(), "replica-b");
    eprintln!("handed over in {took:?}");
    a.signal("CONT");
}

/// With the API server stopped, decisions go on from the last snapshot; once it is back, a
/// change made after the restart arrives without restarting Turnstile.
#[test]
fn decisions_go_on_while_the_api_server_is_away() {
    let cluster = Cluster::start();
    cluster.kubectl(&["apply", "-f", &examples("clumio")]);
    let t = start(&cluster, "away");
    let list = ask("alice@example.com", "GET", "https://api.example.com/api/v1/accounts/aws-account-1/backups");
    assert!(allowed(&t, &list));

    cluster.stop_apiserver();
    t.wait_for(Duration::from_secs(30), "/readyz to name the lost watch", || {
        let (status, text) = t.request("GET", "/readyz", "");
        status == 200 && text.contains("watch ")
    });
    assert!(allowed(&t, &list), "the last snapshot keeps serving");
    assert!(!allowed(
        &t,
        &ask("mallory@example.com", "GET", "https://api.example.com/api/v1/accounts/aws-account-1/backups")
    ));

    cluster.start_apiserver();
    cluster.kubectl(&["delete", "ub", "accounting-backup-admins"]);
    t.wait_for(Duration::from_secs(60), "the change made after the restart", || !allowed(&t, &list));
    t.wait_for(SOON, "/readyz to clear the watch errors", || !t.request("GET", "/readyz", "").1.contains("watch "));
}

/// `/readyz` is 503, naming the failing watches, until every kind has been listed.
#[test]
fn not_ready_until_every_kind_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let port = cluster::free_port(); // nothing listens there
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    let t = Turnstile::spawn(&["run"], Some(&kubeconfig), dir.path(), "unlisted");
    t.wait_for(SOON, "/readyz to name the failing watches", || {
        let (status, text) = t.request("GET", "/readyz", "");
        status == 503 && text.contains("watch PermissionSet") && text.contains("watch UserBinding")
    });
    let answer = t.check(&ask("admin@example.com", "GET", "https://api.example.com/"));
    assert_eq!(answer["allowed"], false, "no index, no access: {answer}");
}

/// A binding stops granting at its `expiresAt`, with no watch event, and its status says
/// `Expired`.
#[test]
fn a_binding_expires_on_time() {
    let (cluster, _turn) = cluster::shared();
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(4);
    let expires = expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    cluster.apply_yaml(&format!(
        r#"
apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {{name: everything}}
spec:
  allow: [{{}}]
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {{name: temporary}}
spec:
  subjects: [{{kind: User, name: contractor}}]
  organizationalUnits: [global]
  permissionSets: [everything]
  expiresAt: "{expires}"
"#
    ));
    let t = start(cluster, "expiry");
    let request = ask("contractor", "GET", "https://api.example.com/anything");
    assert!(allowed(&t, &request), "before {expires}");
    t.wait_for(SOON, "the binding to expire", || !allowed(&t, &request));
    assert!(jiff::Timestamp::now() >= expires.parse::<jiff::Timestamp>().unwrap());
    t.wait_for(SOON, "status Expired", || ready(cluster, "ub", "temporary") == ("False".into(), "Expired".into()));
}

/// `--selector` limits the watches to the labelled objects: an unlabelled binding grants
/// nothing to that Turnstile.
#[test]
fn a_selector_limits_what_is_watched() {
    let (cluster, _turn) = cluster::shared();
    cluster.apply_yaml(
        r#"
apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {name: everything, labels: {shard: a}}
spec:
  allow: [{}]
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: in-shard, labels: {shard: a}}
spec:
  subjects: [{kind: User, name: alice}]
  organizationalUnits: [global]
  permissionSets: [everything]
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: outside}
spec:
  subjects: [{kind: User, name: bob}]
  organizationalUnits: [global]
  permissionSets: [everything]
"#,
    );
    let t = Turnstile::start(cluster, "selector", &["--lease-name", "selector", "--selector", "shard=a"]);
    t.wait_for(SOON, "readiness", || t.is_ready());
    assert!(allowed(&t, &ask("alice", "GET", "https://api.example.com/x")));
    assert!(!allowed(&t, &ask("bob", "GET", "https://api.example.com/x")));
    cluster.kubectl(&["label", "ub", "outside", "shard=a"]);
    t.wait_for(SOON, "the labelled binding to count", || allowed(&t, &ask("bob", "GET", "https://api.example.com/x")));
}

/// kube-apiserver with `--authorization-mode=Webhook,RBAC` asks Turnstile (over TLS) about
/// every request: the DuploCloud deny on jobs holds in prod01 for userA, another user is
/// allowed, a user Turnstile has no opinion about falls through to RBAC, and a system-wide
/// deny of everything locks out no system identity. With the admission webhook registered,
/// `kubectl apply` refuses an invalid regex with its reason and warns about a Role that is not
/// there yet.
#[test]
fn kube_apiserver_calls_turnstiles_webhooks() {
    let certs = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    let path = |name: &str| certs.path().join(name).display().to_string();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("tls.crt"), cert.pem()).unwrap();
    std::fs::write(path("tls.key"), key.serialize_pem()).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", cluster::free_port()).parse().unwrap();
    std::fs::write(
        path("webhook.kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: turnstile, cluster: {{server: 'https://{addr}/apis/authorization.k8s.io/v1/subjectaccessreviews', certificate-authority: '{}'}}}}]\n\
             users: [{{name: apiserver, user: {{}}}}]\n\
             contexts: [{{name: webhook, context: {{cluster: turnstile, user: apiserver}}}}]\ncurrent-context: webhook\n",
            path("ca.pem")
        ),
    )
    .unwrap();
    let flags = [
        "--authorization-mode=Webhook,RBAC".to_owned(),
        format!("--authorization-webhook-config-file={}", path("webhook.kubeconfig")),
        "--authorization-webhook-version=v1".to_owned(),
        "--authorization-webhook-cache-authorized-ttl=1s".to_owned(),
        "--authorization-webhook-cache-unauthorized-ttl=1s".to_owned(),
    ];
    let tokens = "usera-token,userA@duplocloud.com,10,\"duplocloud-users\"\n\
                  user1-token,user1@duplocloud.com,11\n\
                  carol-token,carol,12\n\
                  scheduler-token,system:kube-scheduler,13\n";
    let cluster = Cluster::start_with(&flags, tokens);
    cluster.kubectl(&["apply", "-f", &examples("duplocloud")]);
    for ns in ["prod01", "dev01"] {
        cluster.kubectl(&["create", "namespace", ns]);
    }
    let t = Turnstile::spawn_at(
        addr,
        &[
            "run",
            "--identity",
            "sar",
            "--lease-namespace",
            "default",
            "--tls-cert",
            &path("tls.crt"),
            "--tls-key",
            &path("tls.key"),
        ],
        Some(&cluster.kubeconfig),
        cluster.dir.path(),
        "sar",
    );
    // `yes`, or `no` (kubectl adds ` - <reason>` when the authorizer gave one).
    let can_i = |token: &str, verb: &str, resource: &str, ns: &str| {
        let out = cluster.kubectl_output(&["--token", token, "auth", "can-i", verb, resource, "-n", ns]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let can = |token: &str, verb: &str, resource: &str, ns: &str| {
        can_i(token, verb, resource, ns).split(' ').next().unwrap_or_default().to_owned()
    };
    let within = Duration::from_secs(30);
    t.wait_for(within, "Turnstile to answer the API server", || can("user1-token", "list", "jobs", "prod01") == "yes");

    // DuploCloud's deny on jobs, for userA in prod01 only.
    let denied = cluster.kubectl_output(&["--token", "usera-token", "get", "jobs", "-n", "prod01"]);
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success() && stderr.contains("forbidden"), "{stderr}");
    assert!(stderr.contains("deny-k8s-job"), "the API server passes Turnstile's reason on: {stderr}");
    assert_eq!(can_i("usera-token", "list", "jobs", "prod01"), "no - denied by PermissionSet/deny-k8s-job/deny/0");
    assert_eq!(can("usera-token", "list", "jobs", "dev01"), "yes", "the deny binding names prod01 only");
    assert_eq!(can("usera-token", "list", "pods", "prod01"), "yes", "the compatibility allow");
    assert!(cluster.kubectl_output(&["--token", "user1-token", "get", "jobs", "-n", "prod01"]).status.success());

    // Turnstile has no opinion about carol: RBAC decides.
    assert_eq!(can("carol-token", "list", "pods", "prod01"), "no");
    // (An explicit Role: the aggregated `view` gets its rules from kube-controller-manager.)
    cluster.kubectl(&["create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "prod01"]);
    cluster.kubectl(&["create", "rolebinding", "carol-reads", "--role=pod-reader", "--user=carol", "-n", "prod01"]);
    t.wait_for(within, "RBAC to let carol read pods in prod01", || {
        can("carol-token", "list", "pods", "prod01") == "yes"
    });

    // A system-wide deny of everything: Turnstile's users lose access, the cluster's own
    // identities do not.
    cluster.apply_yaml(
        "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: lockdown}\nspec:\n  systemWide: true\n  deny: [{}]\n",
    );
    // (`auth can-i` itself is a request, which the lockdown denies too: ask with `get`.)
    let get =
        |token: &str, resource: &str| cluster.kubectl_output(&["--token", token, "get", resource, "-n", "prod01"]);
    t.wait_for(within, "the lockdown", || !get("user1-token", "jobs").status.success());
    let carol = get("carol-token", "pods");
    let stderr = String::from_utf8_lossy(&carol.stderr);
    assert!(!carol.status.success() && stderr.contains("lockdown"), "a Turnstile deny beats RBAC: {stderr}");
    assert!(cluster.kubectl_output(&["get", "namespaces"]).status.success(), "system:masters is never locked out");
    let scheduler = cluster.kubectl_output(&["--token", "scheduler-token", "get", "pods", "-A"]);
    assert!(
        scheduler.status.success(),
        "system:kube-scheduler is left to RBAC: {}",
        String::from_utf8_lossy(&scheduler.stderr)
    );
    cluster.kubectl(&["delete", "pset", "lockdown"]);
    t.wait_for(within, "the lockdown to lift", || get("user1-token", "jobs").status.success());

    // The validating admission webhook, as examples/integrations/admission-webhook.yaml, but
    // reached by URL with the test's CA.
    use base64::Engine;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca.pem());
    let webhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "turnstile"},
        "webhooks": [{
            "name": "validate.turnstile.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 5,
            "rules": [{"apiGroups": ["turnstile.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["*"], "scope": "Cluster"}],
            "clientConfig": {"url": format!("https://{addr}/admission/validate"), "caBundle": ca_bundle}
        }]
    });
    cluster.apply_yaml(&webhook.to_string());
    let apply = |yaml: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(cluster.assets.join("kubectl"))
            .env("KUBECONFIG", &cluster.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: bad-regex}\n\
               spec:\n  allow: [{apiName: \"GetUser)|(ListUsers\"}]\n";
    // The webhook registration takes a moment to reach the API server's admission chain.
    t.wait_for(within, "the webhook to refuse an invalid regex", || !apply(bad).status.success());
    let refused = apply(bad);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("InvalidRegex") && stderr.contains("GetUser)|(ListUsers"), "{stderr}");
    assert!(cluster.kubectl_output(&["get", "pset", "bad-regex"]).status.code() != Some(0), "nothing was stored");

    let early = "apiVersion: turnstile.dev/v1alpha1\nkind: UserBinding\nmetadata: {name: early}\n\
                 spec:\n  subjects: [{kind: User, name: dana}]\n  role: applied-later\n  organizationalUnits: [prod01]\n";
    let admitted = apply(early);
    let stderr = String::from_utf8_lossy(&admitted.stderr);
    assert!(admitted.status.success(), "{stderr}");
    assert!(stderr.contains("Warning") && stderr.contains("Role `applied-later` does not exist"), "{stderr}");
}

/// A JSON value as a Lua table constructor, as Argo CD hands objects to health scripts.
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).unwrap(),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            let fields: Vec<String> = m.iter().map(|(k, v)| format!("[{}] = {}", lua(&json!(k)), lua(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// `(status, message)` of examples/argocd/health.lua on an object, run by Lua 5.1.
fn argocd_health(object: &Value) -> (String, String) {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/argocd/health.lua")).unwrap();
    let program = format!(
        "obj = {}\nlocal function health()\n{script}\nend\nlocal hs = health()\nio.write(hs.status, \"\\n\", tostring(hs.message))\n",
        lua(object)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("health.lua");
    std::fs::write(&file, program).unwrap();
    let out = std::process::Command::new("lua5.1").arg(&file).output().expect("lua5.1 (apt-get install lua5.1)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = String::from_utf8(out.stdout).unwrap();
    let (status, message) = out.split_once('\n').unwrap();
    (status.to_owned(), message.to_owned())
}

/// Argo CD's health for Turnstile resources, run by Lua 5.1 on objects read back from the API
/// server: Healthy once Ready for the current generation, Degraded with the reason when not
/// Ready, Progressing while the status is missing or stale. examples/argocd/argocd-cm.yaml
/// carries the same script for each of the five kinds.
#[test]
fn argocd_health_follows_the_status() {
    let (cluster, _turn) = cluster::shared();
    cluster.kubectl(&["apply", "-f", &examples("clumio")]);
    cluster.apply_yaml(
        "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: broken}\nspec:\n  allow: [{apiName: \"(\"}]\n",
    );
    let mut t = start(cluster, "argocd");
    let object = |kind: &str, name: &str| -> Value {
        serde_json::from_str(&cluster.kubectl(&["get", kind, name, "-o", "json"])).unwrap()
    };
    t.wait_for(SOON, "status on both sets", || {
        ready(cluster, "pset", "backup-full").0 == "True" && ready(cluster, "pset", "broken").0 == "False"
    });
    assert_eq!(argocd_health(&object("pset", "backup-full")).0, "Healthy");
    assert_eq!(argocd_health(&object("ou", "payroll")).0, "Healthy");
    let (status, message) = argocd_health(&object("pset", "broken"));
    assert_eq!(status, "Degraded");
    assert!(message.starts_with("InvalidRegex: "), "{message}");

    // With Turnstile stopped, an edit leaves the status one generation behind, and a new
    // object has none.
    t.kill();
    cluster.patch("pset", "backup-full", r#"{"spec":{"operations":["ReadAccountBackup"]}}"#);
    cluster.apply_yaml(
        "apiVersion: turnstile.dev/v1alpha1\nkind: Role\nmetadata: {name: fresh}\nspec: {permissionSets: []}\n",
    );
    let (status, message) = argocd_health(&object("pset", "backup-full"));
    assert_eq!((status.as_str(), message.as_str()), ("Progressing", "Waiting for Turnstile to index generation 2"));
    assert_eq!(argocd_health(&object("roles.turnstile.dev", "fresh")).0, "Progressing");

    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/argocd/health.lua")).unwrap();
    let cm: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/argocd/argocd-cm.yaml")).unwrap(),
    )
    .unwrap();
    for kind in ["OrganizationalUnit", "PermissionSet", "Role", "UserBinding", "ApiCatalog"] {
        let key = format!("resource.customizations.health.turnstile.dev_{kind}");
        assert_eq!(cm["data"][&key].as_str(), Some(script.as_str()), "{key} is health.lua");
    }
}

/// `scripts/helm.py` under the Python that has helm-sdkpy (`TURNSTILE_HELM_PYTHON`, else
/// `scripts/helm-venv.sh` makes one): its JSON output, or its error.
fn helm(args: &[&str]) -> Result<Value, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("TURNSTILE_HELM_PYTHON").unwrap_or_else(|_| {
        let out = std::process::Command::new("bash").arg(root.join("scripts/helm-venv.sh")).output().unwrap();
        assert!(out.status.success(), "scripts/helm-venv.sh: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    });
    let out = std::process::Command::new(python).arg(root.join("scripts/helm.py")).args(args).output().unwrap();
    match out.status.success() {
        true => Ok(serde_json::from_slice(&out.stdout).unwrap()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Real Helm lints the chart and installs it into the API server; every object it renders is
/// there afterwards, with what the values asked for. (No kubelet runs: pods do not start.)
#[test]
fn the_chart_lints_and_installs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chart = root.join("charts/turnstile");
    assert_eq!(
        std::fs::read_to_string(chart.join("crds/turnstile.yaml")).unwrap(),
        std::fs::read_to_string(root.join("crds/turnstile.yaml")).unwrap(),
        "the chart's CRDs are crds/turnstile.yaml"
    );
    let lint = helm(&["lint", chart.to_str().unwrap()]).unwrap();
    let messages = lint["Messages"].as_array().unwrap();
    assert!(messages.iter().all(|m| m["Severity"].as_u64() < Some(2)), "lint: {lint}");

    let (cluster, _turn) = cluster::shared();
    let kubeconfig = cluster.kubeconfig.to_str().unwrap();
    let values = json!({
        "replicaCount": 3, "logFormat": "text", "image": {"repository": "registry.example.com/turnstile", "tag": "t1"},
        "authn": {"issuers": [{"issuer": "https://sso.example.com", "audiences": ["api"], "discovery": true}]},
        "tls": {"secretName": "turnstile-tls"}, "leaseName": "chart-lease", "metrics": {"port": 9090},
        "service": {"appProtocol": "kubernetes.io/h2c"},
        "extraEnv": [{"name": "TURNSTILE_GRPC_PEER_IDENTITY", "value": "true"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    });
    let install = |release: &str, values: &Value| {
        helm(&["install", kubeconfig, "turnstile-system", release, chart.to_str().unwrap(), &values.to_string()])
    };
    // values.schema.json refuses a typo before anything is installed.
    let typo = install("typo", &json!({"replicas": 3})).unwrap_err();
    assert!(typo.contains("replicas"), "{typo}");
    let release = install("ts", &values).unwrap();
    let rendered = release["manifest"].as_str().or(release["Manifest"].as_str()).unwrap_or_default().to_owned();
    for (kind, namespaced) in [
        ("Deployment", true),
        ("Service", true),
        ("ServiceAccount", true),
        ("ConfigMap", true),
        ("PodDisruptionBudget", true),
        ("Role", true),
        ("RoleBinding", true),
        ("ClusterRole", false),
        ("ClusterRoleBinding", false),
    ] {
        assert!(rendered.contains(&format!("kind: {kind}\n")), "the chart renders a {kind}: {release}");
        let resource = match kind {
            "Role" => "roles.rbac.authorization.k8s.io".to_owned(),
            "RoleBinding" => "rolebindings.rbac.authorization.k8s.io".to_owned(),
            k => k.to_lowercase(),
        };
        let name = if kind.starts_with("Role") { "ts-lease" } else { "ts" };
        let mut get = vec!["get", resource.as_str(), name, "-o", "name"];
        if namespaced {
            get.extend(["-n", "turnstile-system"]);
        }
        cluster.kubectl(&get);
    }
    let deployment: Value =
        serde_json::from_str(&cluster.kubectl(&["get", "deployment", "ts", "-n", "turnstile-system", "-o", "json"]))
            .unwrap();
    let spec = &deployment["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(container["image"], "registry.example.com/turnstile:t1");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let env = |name: &str| {
        container["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone())
    };
    assert_eq!(env("TURNSTILE_LOG_FORMAT"), Some(json!("text")));
    assert_eq!(env("TURNSTILE_LEASE_NAME"), Some(json!("chart-lease")));
    assert_eq!(env("TURNSTILE_LEASE_NAMESPACE"), Some(json!("turnstile-system")));
    assert_eq!(env("TURNSTILE_TLS_CERT"), Some(json!("/etc/turnstile/tls/tls.crt")));
    assert_eq!(env("TURNSTILE_METRICS_LISTEN"), Some(json!("0.0.0.0:9090")));
    assert_eq!(env("TURNSTILE_GRPC_PEER_IDENTITY"), Some(json!("true")), "extraEnv");
    assert_eq!(container["ports"][1], json!({"name": "metrics", "containerPort": 9090, "protocol": "TCP"}));
    let service: Value =
        serde_json::from_str(&cluster.kubectl(&["get", "service", "ts", "-n", "turnstile-system", "-o", "json"]))
            .unwrap();
    assert_eq!(service["spec"]["ports"][0]["appProtocol"], "kubernetes.io/h2c");
    let metrics_port = &service["spec"]["ports"][1];
    assert_eq!((&metrics_port["name"], &metrics_port["port"]), (&json!("metrics"), &json!(9090)), "{service}");
    let config =
        cluster.kubectl(&["get", "configmap", "ts", "-n", "turnstile-system", "-o", "jsonpath={.data.config\\.yaml}"]);
    assert!(config.contains("issuer: https://sso.example.com"), "{config}");
    helm(&["uninstall", kubeconfig, "turnstile-system", "ts"]).unwrap();
    assert!(!cluster.kubectl_output(&["get", "deployment", "ts", "-n", "turnstile-system"]).status.success());
}

//! The `turnstile` binary as a user runs it.

use std::process::Command;

use serde_json::{Value, json};

fn turnstile(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn check_exits_0_on_allow_and_1_on_deny() {
    let base = ["check", "--manifests", "examples/clumio", "--user", "bob@example.com", "--ou", "accounting"];
    let (code, out, _) = turnstile(
        &[&base[..], &["--method", "GET", "--url", "https://api.example.com/api/v1/policy-definitions"]].concat(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("allowed (200): allowed by PermissionSet/policy-management-partial/operations"), "{out}");
    let (code, out, _) = turnstile(
        &[&base[..], &["--method", "DELETE", "--url", "https://api.example.com/api/v1/policy-definitions/p1"]].concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("denied (403): no permission set allows `DeletePolicyDefinition`"), "{out}");
}

#[test]
fn check_refuses_a_folder_that_serve_would_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let allow_all = "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: allow-all}\n\
                     spec: {systemWide: true, allow: [{}]}\n";
    std::fs::write(dir.path().join("allow.yaml"), allow_all).unwrap();
    let ask =
        ["check", "--manifests", dir.path().to_str().unwrap(), "--user", "u", "--method", "DELETE", "--url", "/x"];
    let (code, out, _) = turnstile(&ask);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("allowed (200)"), "{out}");

    // The deny set has a type error: serve would keep its previous index, so check decides nothing.
    std::fs::write(
        dir.path().join("deny.yaml"),
        "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: deny-delete}\n\
         spec: {systemWide: true, deny: {methods: DELETE}}\n",
    )
    .unwrap();
    let (code, out, err) = turnstile(&ask);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("deny.yaml (document 1): PermissionSet/deny-delete: does not match the schema: spec.deny:"),
        "{err}"
    );
    assert!(err.contains("`turnstile serve` would not load"), "{err}");
}

#[test]
fn check_prints_json_and_a_trace() {
    let (code, out, _) = turnstile(&[
        "check",
        "--manifests",
        "examples/duplocloud",
        "--user",
        "userA@duplocloud.com",
        "--method",
        "GET",
        "--url",
        "https://duplo.example.com/v3/subscriptions/prod01/k8s/job",
        "--output",
        "json",
        "--explain",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], 403);
    assert_eq!(v["rule"], "PermissionSet/deny-k8s-job/deny/0");
    assert_eq!(v["ou"], "prod01");
    assert_eq!(v["operation"], "ListJobs");
    assert!(v["trace"]["permissionSets"].as_array().unwrap().iter().any(|s| s["name"] == "deny-k8s-job"));
}

#[test]
fn validate_passes_the_examples_and_fails_a_broken_folder() {
    let (code, out, _) = turnstile(&["validate", "examples"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 errors, 0 warnings"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: broken}\nspec:\n  deny: [{apiName: \"(\"}]\n---\n\
         apiVersion: turnstile.dev/v1alpha1\nkind: Role\nmetadata: {name: r}\nspec: {permissionSets: [broken]}\n",
    )
    .unwrap();
    let (code, out, _) = turnstile(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("bad.yaml (document 1): PermissionSet/broken: InvalidRegex: deny[0]: invalid regex `(`"),
        "{out}"
    );
    assert!(
        out.contains(
            "bad.yaml (document 2): Role/r: PermissionSetNotFound: permission set `broken` is missing or not ready"
        ),
        "{out}"
    );
}

#[test]
fn validate_fails_on_a_misspelt_field_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sets.yaml"),
        "apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: ok}\nspec: {allow: [{}]}\n---\n\
         apiVersion: turnstile.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: typo}\n\
         spec:\n  systemWide: true\n  allow: [{}]\n  denny: [{apiName: Delete.*}]\n",
    )
    .unwrap();
    let (code, out, _) = turnstile(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("sets.yaml (document 2): PermissionSet/typo: InvalidSpec: unknown field `spec.denny`"),
        "{out}"
    );
    assert!(out.contains(" 1 errors, 0 warnings"), "{out}");
}

#[test]
fn validate_fails_on_a_misspelt_api_version_instead_of_skipping_the_document() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deny.yaml"),
        "apiVersion: turnstile.dev.io/v1alpha1\nkind: PermissionSet\nmetadata: {name: deny-jobs}\n\
         spec: {systemWide: true, deny: [{resourceType: k8s/job}]}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ingress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec: {rules: []}\n",
    )
    .unwrap();
    let (code, out, _) = turnstile(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "deny.yaml (document 1): PermissionSet/deny-jobs: apiVersion `turnstile.dev.io/v1alpha1` is not \
             `turnstile.dev/v1alpha1`"
        ),
        "{out}"
    );
    assert!(out.contains("ingress.yaml (document 1): skipped `networking.k8s.io/v1` `Ingress`"), "{out}");
}

#[test]
fn validate_reports_both_documents_of_a_duplicate_name() {
    let dir = tempfile::tempdir().unwrap();
    let ou = "apiVersion: turnstile.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {name: twice}\n";
    std::fs::write(dir.path().join("a.yaml"), ou).unwrap();
    std::fs::write(dir.path().join("b.yml"), ou).unwrap();
    let (code, out, _) = turnstile(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let line = out.lines().find(|l| l.contains("DuplicateName")).expect("a DuplicateName error");
    assert!(line.contains("a.yaml (document 1)") && line.contains("b.yml (document 1)"), "{line}");
}

#[test]
fn crds_prints_the_committed_crds() {
    let (code, out, _) = turnstile(&["crds"]);
    assert_eq!(code, 0);
    assert_eq!(out, std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/turnstile.yaml")).unwrap());
}

#[test]
fn every_command_has_help() {
    for cmd in ["check", "validate", "crds", "serve", "run", "healthcheck"] {
        let (code, out, _) = turnstile(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Usage: turnstile"), "{cmd}: {out}");
    }
}

/// A GET over a fresh connection with `headers` (each line ending in CRLF): the raw answer, or
/// `None` while nothing listens.
fn plain_get(addr: std::net::SocketAddr, path: &str, headers: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn serve_answers_logs_each_decision_and_stops_on_sigterm() {
    use std::io::Read;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["serve", "--manifests", "examples", "--listen", &addr, "--workers", "1"])
        .args(["--api-listen", "127.0.0.1:0"])
        .args(["--trusted-headers", "--log-format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let get = |path: &str, headers: &str| plain_get(addr, path, headers);
    let mut ready = None;
    for _ in 0..100 {
        ready = get("/readyz", "");
        if ready.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ready = ready.expect("the server answers within 5 s");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let ask = |method: &str| {
        let url = "X-Original-URL: https://api.example.com/api/v1/policy-definitions/p-1?ou=accounting\r\n";
        let id = format!("X-Request-ID: req-{method}\r\n");
        get(
            "/authz/nginx",
            &format!("X-Original-Method: {method}\r\n{url}X-Auth-Request-User: bob@example.com\r\n{id}"),
        )
        .unwrap()
    };
    assert!(ask("GET").starts_with("HTTP/1.1 200"));
    assert!(ask("DELETE").starts_with("HTTP/1.1 403"));

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(!log.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {log}");
    for line in log.lines() {
        assert!(line.starts_with(r#"{"ts":""#) && line.contains(r#","level":""#), "flat, `ts` first: {line}");
    }
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    for line in &lines {
        assert!(line["ts"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok(), "{line}");
        assert!(line["msg"].is_string() && line["target"].is_string() && line.get("fields").is_none(), "{line}");
    }
    let decisions: Vec<&Value> = lines.iter().filter(|v| v["target"] == "turnstile::decision").collect();
    assert_eq!(decisions.len(), 2, "{log}");
    let expected = [
        json!({"level": "info", "msg": "decision", "request_id": "req-GET", "endpoint": "nginx",
               "user": "bob@example.com", "groups": "system:authenticated", "method": "GET",
               "host": "api.example.com", "path": "/api/v1/policy-definitions/p-1?ou=accounting",
               "context_ou": "accounting", "ou": "accounting", "operation": "ReadPolicyDefinition",
               "resource_type": "clumio/policy-definition", "result": "allowed", "allowed": true, "status": 200,
               "rule": "PermissionSet/policy-management-partial/operations"}),
        json!({"request_id": "req-DELETE", "endpoint": "nginx", "user": "bob@example.com", "method": "DELETE",
               "context_ou": "accounting", "ou": "accounting", "operation": "DeletePolicyDefinition",
               "result": "denied", "allowed": false, "status": 403, "rule": ""}),
    ];
    for (logged, expected) in decisions.iter().zip(expected) {
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(&logged[field], value, "{field} in {logged}");
        }
        assert!(logged["took_us"].as_u64().is_some(), "{logged}");
        let id = logged["decision_id"].as_str().unwrap();
        assert!(id.len() == 36 && id.as_bytes()[14] == b'7', "a UUIDv7: {id}");
    }
    assert_ne!(decisions[0]["decision_id"], decisions[1]["decision_id"]);
}

#[tokio::test]
async fn serve_speaks_https_and_picks_up_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["serve", "--manifests", "examples", "--listen", &addr.to_string(), "--api-listen", &addr.to_string()])
        .args(["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/v1/check");
    let body = serde_json::json!({"subject": {"user": "bob@example.com"}, "ou": "accounting", "method": "GET",
                                  "host": "api.example.com", "path": "/api/v1/policy-definitions"});
    let answered = async |client: &reqwest::Client| {
        let mut last = None;
        for _ in 0..100 {
            match client.post(&url).json(&body).send().await {
                Ok(r) => {
                    assert_eq!(r.status(), 200);
                    assert_eq!(r.headers()["x-auth-user"], "bob@example.com");
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no HTTPS answer: {last:?}");
    };
    answered(&client).await;

    // A renewed certificate, written as a mounted Secret is (a new file renamed over the old),
    // is served to new connections without a restart.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    for (path, pem) in [(&key_path, renewed.signing_key.serialize_pem()), (&cert_path, renewed.cert.pem())] {
        let temporary = dir.path().join("incoming");
        std::fs::write(&temporary, pem).unwrap();
        std::fs::rename(&temporary, path).unwrap();
    }
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(renewed.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    answered(&client).await;
}

/// Every `serve` flag can come from a `TURNSTILE_*` variable, as container users expect;
/// `healthcheck` exits 0 while the server is ready and 1 when nothing answers; a shutdown
/// delay fails readiness before the listener closes; `--version` names the commit.
#[test]
fn flags_from_the_environment_healthcheck_and_version() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let healthcheck =
        || Command::new(env!("CARGO_BIN_EXE_turnstile")).args(["healthcheck", "--url", &url]).status().unwrap().code();
    assert_eq!(healthcheck(), Some(1), "nothing listens yet");
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .arg("serve")
        .env("TURNSTILE_MANIFESTS", "examples")
        .env("TURNSTILE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TURNSTILE_API_LISTEN", "127.0.0.1:0")
        .env("TURNSTILE_WORKERS", "1")
        .env("TURNSTILE_LOG_FORMAT", "json")
        .env("TURNSTILE_SHUTDOWN_DELAY", "2")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if healthcheck() == Some(0) {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let metrics = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["healthcheck", "--url", &format!("http://127.0.0.1:{port}/metrics")])
        .status()
        .unwrap();
    // SIGTERM with a shutdown delay: readiness fails at once while requests are still served.
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status_of = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_turnstile"))
            .args(["healthcheck", "--url", &format!("http://127.0.0.1:{port}{path}")])
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(status_of("/readyz"), Some(1), "not ready while shutting down");
    assert_eq!(status_of("/healthz"), Some(0), "still serving");
    let exited = child.wait().unwrap();
    assert!(exited.success(), "{exited}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(up, "serve configured from the environment answers: {log}");
    assert!(metrics.success());
    assert!(log.lines().any(|l| serde_json::from_str::<Value>(l).is_ok()), "TURNSTILE_LOG_FORMAT=json: {log}");

    let (code, out, _) = turnstile(&["--version"]);
    assert_eq!(code, 0);
    let commit = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().unwrap();
    let commit = String::from_utf8(commit.stdout).unwrap();
    assert!(out.contains(&format!("(commit {})", commit.trim())), "{out}");
}

/// `--metrics-listen` (here from `TURNSTILE_METRICS_LISTEN`) moves `/metrics` to a port of its
/// own: served there with health, answered 404 on the decision listener, and closed with the
/// others on SIGTERM.
#[test]
fn metrics_listen_serves_metrics_on_their_own_port() {
    use std::io::Read;
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (decisions, metrics) = (free(), free());
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["serve", "--manifests", "examples", "--workers", "1", "--api-listen", "127.0.0.1:0"])
        .args(["--listen", &decisions.to_string()])
        .env("TURNSTILE_METRICS_LISTEN", metrics.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let get = |addr, path: &str| plain_get(addr, path, "");
    let mut scraped = None;
    for _ in 0..100 {
        scraped = get(metrics, "/metrics").filter(|m| m.contains("turnstile_index_generation 1"));
        if scraped.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let on_decisions = get(decisions, "/metrics");
    let health = get(metrics, "/healthz");
    let nginx = get(metrics, "/authz/nginx");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let exited = child.wait().unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();

    let scraped = scraped.unwrap_or_else(|| panic!("the metrics listener answers within 5 s: {log}"));
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains("\nprocess_resident_memory_bytes "), "{scraped}");
    assert!(scraped.contains("\nturnstile_decisions_total{"), "{scraped}");
    assert!(on_decisions.unwrap().starts_with("HTTP/1.1 404"), "not on the decision listener");
    assert!(health.unwrap().starts_with("HTTP/1.1 200"));
    assert!(nginx.unwrap().starts_with("HTTP/1.1 404"), "no decisions on the metrics listener");
    assert!(log.contains(&format!("serving /metrics on http://{metrics}")), "{log}");
    assert!(exited.success(), "every listener stops on SIGTERM: {exited}\n{log}");
}

/// Only regular files are read, each within a size cap: a FIFO or a link to /dev/zero named
/// `*.yaml`, or an oversized file, is an error naming the file, never a hang or an unbounded
/// read; `.YAML` counts as `.yaml`.
#[test]
fn special_and_oversized_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clumio/roles.yaml"),
        d.join("ROLES.YAML"),
    )
    .unwrap();
    let validate = || {
        let out =
            Command::new("timeout").args(["20", env!("CARGO_BIN_EXE_turnstile"), "validate"]).arg(d).output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, out) = validate();
    assert!(out.contains("in 1 files"), "an uppercase extension is read: {out}");
    assert_eq!(code, Some(1), "the roles name sets this folder lacks: {out}");

    assert!(Command::new("mkfifo").arg(d.join("pipe.yaml")).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.yml")).unwrap();
    let big = std::fs::File::create(d.join("big.yaml")).unwrap();
    big.set_len(turnstile::sources::files::MAX_FILE_BYTES + 1).unwrap();
    let (code, out) = validate();
    assert_eq!(code, Some(1), "{out}");
    for (file, why) in
        [("pipe.yaml", "not a regular file"), ("zero.yml", "not a regular file"), ("big.yaml", "larger than 32 MiB")]
    {
        assert!(out.lines().any(|l| l.contains(file) && l.contains(why)), "{file}: {out}");
    }
}

/// `validate` takes its folder as the other commands do, too.
#[test]
fn validate_accepts_manifests_like_the_other_commands() {
    let (code, out, _) = turnstile(&["validate", "--manifests", "examples/clumio"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 errors"), "{out}");
    let (code, _, err) = turnstile(&["validate"]);
    assert_eq!(code, 2, "a folder is required: {err}");
    let (code, _, err) = turnstile(&["validate", "no-such-folder"]);
    assert_eq!(code, 2);
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause is said once: {err}");
}

/// A reader that stops early (`check … | head`) is not an error: the exit code still says
/// what `check` decided, and nothing is said about a broken pipe.
#[test]
fn a_closed_pipe_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["check", "--manifests", "examples", "--user", "bob@example.com", "--ou", "accounting"])
        .args(["--method", "DELETE", "--url", "https://api.example.com/api/v1/policy-definitions/p-1", "--explain"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "denied: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

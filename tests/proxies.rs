//! End to end through real proxies on 127.0.0.1: Debian's nginx configured as ingress-nginx
//! configures `auth-url`, and Caddy's `forward_auth`, each in front of an upstream that echoes
//! the headers it receives. Needs `nginx` and `caddy` on the PATH (`.ci/run` installs them).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use turnstile::engine::Snapshot;
use turnstile::http::AppState;
use turnstile::http::authn::Authenticator;
use turnstile::publisher::Publisher;
use turnstile::sources::files;

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_for(addr: SocketAddr, what: &str) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on {addr}");
}

fn require(binary: &str) {
    let found = Command::new("sh").args(["-c", &format!("command -v {binary}")]).output().unwrap().status.success();
    assert!(found, "`{binary}` is not installed: `apt-get install nginx caddy` (as .ci/run does)");
}

/// Turnstile on the examples, with an ES256 issuer whose JWKS is a file; returns its address
/// and a token maker.
async fn turnstile(dir: &Path) -> (SocketAddr, impl Fn(&str) -> String) {
    let issuer = common::Issuer::new(dir);
    let state = AppState::new(Publisher::new(), Authenticator::new(issuer.config.clone()).await);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (snap, report) = Snapshot::build(&files::load(&examples).unwrap().definitions(), jiff::Timestamp::now());
    state.publisher().publish(snap, &report);
    let addr = common::serve_all(state).await;
    (addr, move |user: &str| issuer.token(user))
}

/// An upstream that answers with the request headers it received, as JSON.
async fn echo_upstream() -> SocketAddr {
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let map: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned())))
            .collect();
        axum::Json(Value::Object(map))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// nginx as ingress-nginx configures `auth-url` and `auth-response-headers`.
fn nginx(dir: &Path, port: u16, authz: SocketAddr, upstream: SocketAddr) -> Running {
    let mut copy = String::new();
    for h in ["user", "groups", "ou", "role", "operation"] {
        copy.push_str(&format!(
            "      auth_request_set $auth_{h} $upstream_http_x_auth_{h};\n      proxy_set_header X-Auth-{h} $auth_{h};\n"
        ));
    }
    let server = format!(
        r#"  server {{
    listen 127.0.0.1:{port};
    location = /_external-auth {{
      internal;
      proxy_pass http://{authz}/authz/nginx;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Auth-Request-Redirect $request_uri;
    }}
    location / {{
      auth_request /_external-auth;
{copy}      proxy_pass http://{upstream};
    }}
  }}
"#
    );
    run_nginx(dir, &server)
}

/// nginx as NGINX Gateway Fabric configures it with the SnippetsFilter of
/// `examples/integrations/nginx-gateway-fabric.yaml`: its `http.server` snippet in the server
/// block of the route's host, its `http.server.location` snippet in the route's location, and
/// Turnstile's Service address replaced by the test's.
fn nginx_gateway_fabric(dir: &Path, port: u16, authz: SocketAddr, upstream: SocketAddr) -> Running {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/integrations/nginx-gateway-fabric.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap();
    let filter = docs.iter().find(|d| d["kind"] == "SnippetsFilter").expect("a SnippetsFilter");
    let snippet = |context: &str| {
        let snippets = filter["spec"]["snippets"].as_array().unwrap();
        let found = snippets.iter().find(|s| s["context"] == context).expect("the snippet");
        found["value"].as_str().unwrap().to_owned()
    };
    let (server, location) = (snippet("http.server"), snippet("http.server.location"));
    let service = "turnstile.turnstile-system.svc.cluster.local:8080";
    assert!(server.contains(service), "{server}");
    let server = server.replace(service, &authz.to_string());
    let servers = format!(
        r#"  server {{
    listen 127.0.0.1:{port};
    server_name api.example.com;
{server}
    location /api/ {{
{location}
      proxy_pass http://{upstream};
    }}
  }}
"#
    );
    run_nginx(dir, &servers)
}

/// Debian's nginx, one worker in the foreground, with these `server` blocks and its files in `dir`.
fn run_nginx(dir: &Path, servers: &str) -> Running {
    require("nginx");
    for d in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
{servers}}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .args(["-p", &d.to_string(), "-c", &path.display().to_string(), "-e", &format!("{d}/error.log")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

/// Caddy with `forward_auth` and `copy_headers`, as `examples/integrations/Caddyfile` has it.
fn caddy(dir: &Path, port: u16, authz: SocketAddr, upstream: SocketAddr) -> Running {
    require("caddy");
    let conf = format!(
        r#"{{
  admin off
  auto_https off
}}
http://:{port} {{
  bind 127.0.0.1
  route {{
    request_header -X-Auth-User
    request_header -X-Auth-Groups
    request_header -X-Auth-OU
    request_header -X-Auth-Role
    request_header -X-Auth-Operation
    forward_auth {authz} {{
      uri /authz/forward
      copy_headers X-Auth-User X-Auth-Groups X-Auth-OU X-Auth-Role X-Auth-Operation
    }}
    reverse_proxy {upstream}
  }}
}}
"#
    );
    let path = dir.join("Caddyfile");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config", &path.display().to_string()])
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

/// The same story through either proxy.
async fn through(proxy: SocketAddr, token: &dyn Fn(&str) -> String) {
    let bob = format!("Bearer {}", token("bob@example.com"));
    let get = |path: &'static str, auth: Option<String>, ou: &'static str| {
        let auth = auth.clone();
        async move {
            let mut h = vec![("Host", "api.example.com".to_owned()), ("X-Turnstile-OU", ou.to_owned())];
            // a client trying to pass as someone else
            h.push(("X-Auth-User", "mallory@example.com".to_owned()));
            if let Some(a) = auth {
                h.push(("Authorization", a));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            common::http(proxy, "GET", path, &h, "").await
        }
    };
    // allowed: the upstream sees the injected user, OU and role, not the client's header
    let r = get("/api/v1/policy-definitions", Some(bob.clone()), "accounting").await;
    assert_eq!(r.status, 200, "{}\n{}", r.head, r.body);
    let seen = r.json();
    assert_eq!(seen["x-auth-user"], "bob@example.com", "{seen}");
    assert_eq!(seen["x-auth-ou"], "accounting");
    assert_eq!(seen["x-auth-role"], "read-only");
    assert_eq!(seen["x-auth-operation"], "ListPolicyDefinitions");
    assert_eq!(seen["x-auth-groups"], "system:authenticated");
    // no token
    let r = get("/api/v1/policy-definitions", None, "accounting").await;
    assert_eq!(r.status, 401, "{}", r.head);
    // wrong OU
    let r = get("/api/v1/policy-definitions", Some(bob.clone()), "r-and-d").await;
    assert_eq!(r.status, 403, "{}", r.head);
    // an operation the read-only role does not have
    let r = common::http(
        proxy,
        "DELETE",
        "/api/v1/policy-definitions/p-1",
        &[("Host", "api.example.com"), ("X-Turnstile-OU", "accounting"), ("Authorization", &bob)],
        "",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.head);
}

/// The story through an nginx that `start` configures and runs.
async fn through_nginx(start: fn(&Path, u16, SocketAddr, SocketAddr) -> Running) {
    let dir = tempfile::tempdir().unwrap();
    let (authz, token) = turnstile(dir.path()).await;
    let upstream = echo_upstream().await;
    let port = free_port();
    let _nginx = start(dir.path(), port, authz, upstream);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(addr, "nginx").await;
    through(addr, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_auth_request() {
    through_nginx(nginx).await;
}

/// The SnippetsFilter for NGINX Gateway Fabric: nginx.conf's lines, as the gateway puts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_gateway_fabric_snippets() {
    through_nginx(nginx_gateway_fabric).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_caddy_forward_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (authz, token) = turnstile(dir.path()).await;
    let upstream = echo_upstream().await;
    let port = free_port();
    let _caddy = caddy(dir.path(), port, authz, upstream);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(addr, "caddy").await;
    through(addr, &token).await;
    // Caddy hands a denial's body to the client: it says why, and not who is in which group or
    // which role and rule decided.
    let bob = format!("Bearer {}", token("bob@example.com"));
    let headers = [("Host", "api.example.com"), ("X-Turnstile-OU", "accounting"), ("Authorization", bob.as_str())];
    let denied = common::http(addr, "DELETE", "/api/v1/policy-definitions/p-1", &headers, "").await;
    assert_eq!(denied.status, 403);
    let body = denied.json();
    let fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["allowed", "reason", "status"], "{body}");
    assert!(body["reason"].as_str().unwrap().contains("DeletePolicyDefinition"), "{body}");
}

/// nginx with three auth locations, one per port: the documented one (`X-Original-URL` built
/// from `$host`, the host nginx routed on), `X-Original-URI` with `X-Forwarded-Host $host`, and
/// `X-Original-URI` alone, as nginx's own `auth_request` documentation has it.
fn nginx_host_forms(dir: &Path, ports: [u16; 3], authz: SocketAddr, upstream: SocketAddr) -> Running {
    let forms = [
        "proxy_set_header X-Original-URL $scheme://$host$request_uri;",
        "proxy_set_header X-Original-URI $request_uri; proxy_set_header X-Forwarded-Host $host;",
        "proxy_set_header X-Original-URI $request_uri;",
    ];
    let servers: String = ports
        .iter()
        .zip(forms)
        .map(|(port, form)| {
            format!(
                r#"  server {{
    listen 127.0.0.1:{port};
    location = /_auth {{
      internal;
      proxy_pass http://{authz}/authz/nginx;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      {form}
    }}
    location / {{
      auth_request /_auth;
      proxy_pass http://{upstream};
    }}
  }}
"#
            )
        })
        .collect();
    run_nginx(dir, &servers)
}

/// Each way of writing the host reaches Turnstile as the host nginx routed on, or is refused:
/// a trailing dot, a port, letter case, a malformed port, and an absolute-form target beside a
/// different `Host`. Without a host, the request is denied and the reason names the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_decides_on_the_host_it_routed_on() {
    let dir = tempfile::tempdir().unwrap();
    let authz = common::host_scoped_turnstile(dir.path()).await;
    let upstream = echo_upstream().await;
    let ports = [free_port(), free_port(), free_port()];
    let _nginx = nginx_host_forms(dir.path(), ports, authz, upstream);
    let [url, uri_and_host, uri_only] = ports.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    for addr in [url, uri_and_host, uri_only] {
        wait_for(addr, "nginx").await;
    }
    let ask = async |addr: SocketAddr, method: &str, target: &str, host: &str| {
        common::http(addr, method, target, &[("Host", host), ("X-Auth-Request-User", "alice")], "").await.status
    };
    let policy = "/api/policies/p-1";
    for (addr, form) in [(url, "X-Original-URL"), (uri_and_host, "X-Original-URI with X-Forwarded-Host")] {
        // what the catalog decides, on its own host, and what the raw grant allows elsewhere
        assert_eq!(ask(addr, "GET", policy, "api.example.com").await, 200, "{form}");
        assert_eq!(ask(addr, "DELETE", policy, "api.example.com").await, 403, "{form}");
        assert_eq!(ask(addr, "DELETE", policy, "other.example.com").await, 200, "{form}: the grant elsewhere");
        for host in ["api.example.com.", "API.Example.COM", "api.example.com:80", "api.example.com.:8080"] {
            assert_eq!(ask(addr, "GET", policy, host).await, 200, "{form}, Host: {host}");
            assert_eq!(ask(addr, "DELETE", policy, host).await, 403, "{form}, Host: {host}");
        }
        let status = ask(addr, "DELETE", policy, "api.example.com:80:80").await;
        assert!(status >= 400, "{form}, Host: api.example.com:80:80 answered {status}");
        // nginx routes an absolute-form request on its target's host, whatever `Host` says
        let absolute = format!("http://api.example.com{policy}");
        assert_eq!(ask(addr, "DELETE", &absolute, "other.example.com").await, 403, "{form}, absolute form");
        assert_eq!(ask(addr, "GET", &absolute, "other.example.com").await, 200, "{form}, absolute form");
    }
    // `X-Original-URI` alone: Turnstile cannot learn the host, so it denies, even what the raw
    // grant would allow anywhere.
    assert_eq!(ask(uri_only, "GET", policy, "other.example.com").await, 403);
    let direct = common::http(
        authz,
        "GET",
        "/authz/nginx",
        &[("X-Original-Method", "GET"), ("X-Original-URI", policy), ("X-Auth-Request-User", "alice")],
        "",
    )
    .await;
    assert_eq!(direct.status, 403);
    assert!(direct.header("x-auth-reason").unwrap_or_default().contains("X-Forwarded-Host"), "{}", direct.head);
}

/// Envoy's HTTP `ext_authz` call over HTTP/2 carries the host as `:authority`: it is decided on
/// as over HTTP/1.1. A call with no host at all, or a forward-auth call without
/// `X-Forwarded-Host`, is denied with a reason naming what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_http2_decides_on_the_authority() {
    let dir = tempfile::tempdir().unwrap();
    let authz = common::host_scoped_turnstile(dir.path()).await;
    let tcp = tokio::net::TcpStream::connect(authz).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let ask = async |method: &str, authority: &str| {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("http://{authority}/authz/envoy/api/policies/p-1"))
            .header("x-auth-request-user", "alice")
            .body(())
            .unwrap();
        let (answer, _) = client.clone().ready().await.unwrap().send_request(request, true).unwrap();
        answer.await.unwrap().status().as_u16()
    };
    assert_eq!(ask("GET", "api.example.com").await, 200);
    assert_eq!(ask("DELETE", "api.example.com").await, 403);
    assert_eq!(ask("DELETE", "API.example.com.:443").await, 403);
    assert_eq!(ask("DELETE", "other.example.com").await, 200, "the raw grant, off the catalog's host");
    // the same over HTTP/1.1
    let h1 = async |host: &str| {
        let headers = [("Host", host), ("X-Auth-Request-User", "alice")];
        common::http(authz, "DELETE", "/authz/envoy/api/policies/p-1", &headers, "").await.status
    };
    assert_eq!(h1("api.example.com").await, 403);
    assert_eq!(h1("other.example.com").await, 200);
    // an absolute-form target naming one host beside a `Host` naming another: in doubt, denied,
    // even a request the raw grant would allow on either host
    let doubt = [("Host", "other.example.com"), ("X-Auth-Request-User", "alice")];
    let target = "http://api.example.com/authz/envoy/api/policies/p-1";
    let answer = common::http(authz, "GET", target, &doubt, "").await;
    assert_eq!(answer.status, 403);
    assert!(answer.header("x-auth-reason").unwrap_or_default().contains(":authority"), "{}", answer.head);
    // an `X-Original-URL` without a host is no better than `X-Original-URI` alone
    let relative =
        [("X-Original-Method", "GET"), ("X-Original-URL", "/api/policies/p-1"), ("X-Auth-Request-User", "alice")];
    let answer = common::http(authz, "GET", "/authz/nginx", &relative, "").await;
    assert_eq!(answer.status, 403);
    assert!(answer.header("x-auth-reason").unwrap_or_default().contains("X-Forwarded-Host"), "{}", answer.head);

    let forward = common::http(
        authz,
        "GET",
        "/authz/forward",
        &[("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/api/policies/p-1"), ("X-Auth-Request-User", "alice")],
        "",
    )
    .await;
    assert_eq!(forward.status, 403);
    assert!(forward.header("x-auth-reason").unwrap_or_default().contains("X-Forwarded-Host"), "{}", forward.head);
}

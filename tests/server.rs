//! Connections and signals: idle and half-open connections are closed on both protocols, a cap
//! on open connections makes room for newcomers, a flood of idle connections under a small
//! descriptor limit does not lock out a real request, idle keep-alives do not hold a shutdown,
//! and SIGHUP reloads instead of killing.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnstile::http::authn::{Authenticator, AuthnConfig};
use turnstile::http::{AppState, Authorizer, ServerOptions, Surface};
use turnstile::publisher::Publisher;

async fn start(options: ServerOptions) -> SocketAddr {
    let state = AppState::new(Publisher::new(), Authenticator::new(AuthnConfig::default()).await);
    common::serve_on_loopback(Authorizer::new(state, Surface::Both, None), options).await
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// An HTTP/2 HEADERS frame on `stream` for `GET /healthz` (HPACK: indexed `:method GET` and
/// `:scheme http`, literal `:path` and `:authority`), with END_HEADERS only when `complete`.
fn h2_get_healthz(stream: u8, complete: bool) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x01, 1, b'x']);
    let flags = if complete { 0x5 } else { 0x1 }; // END_STREAM, and END_HEADERS when complete
    let mut frame = vec![0, 0, block.len() as u8, 1, flags, 0, 0, 0, stream];
    frame.extend_from_slice(&block);
    frame
}

/// Whether the server closes `conn` within `within`: a read ends (EOF or reset) rather than
/// timing out. Whatever the server sent first (an HTTP/2 SETTINGS frame) is read past.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_open_connections_are_closed_on_both_protocols() {
    let idle = Duration::from_millis(400);
    // Connections that never sent a request run on the first-request clock, the others on the
    // idle clock.
    let options = ServerOptions { idle_timeout: idle, first_request_timeout: idle, ..ServerOptions::default() };
    let addr = start(options).await;

    let silent = TcpStream::connect(addr).await.unwrap();
    let mut preface_only = TcpStream::connect(addr).await.unwrap();
    preface_only.write_all(PREFACE).await.unwrap();
    preface_only.write_all(&SETTINGS).await.unwrap();
    let mut unfinished_headers = TcpStream::connect(addr).await.unwrap();
    unfinished_headers.write_all(PREFACE).await.unwrap();
    unfinished_headers.write_all(&SETTINGS).await.unwrap();
    unfinished_headers.write_all(&h2_get_healthz(1, false)).await.unwrap();
    // An HTTP/2 connection that made one request and then went quiet.
    let mut h2_after_request = TcpStream::connect(addr).await.unwrap();
    h2_after_request.write_all(PREFACE).await.unwrap();
    h2_after_request.write_all(&SETTINGS).await.unwrap();
    h2_after_request.write_all(&h2_get_healthz(1, true)).await.unwrap();
    // An HTTP/1.1 keep-alive connection after its answer.
    let mut keep_alive = TcpStream::connect(addr).await.unwrap();
    keep_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 256];
    let n = keep_alive.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));

    let started = Instant::now();
    for (name, mut conn) in [
        ("a connection that sends nothing", silent),
        ("an HTTP/2 connection after its preface", preface_only),
        ("an HTTP/2 stream with unfinished HEADERS", unfinished_headers),
        ("an HTTP/2 connection after a request", h2_after_request),
        ("an HTTP/1.1 keep-alive connection", keep_alive),
    ] {
        assert!(closed_within(&mut conn, Duration::from_secs(5)).await, "{name} is still open after 5 s");
    }
    assert!(started.elapsed() >= idle - Duration::from_millis(100), "closed before the idle timeout");
}

/// At the cap the longest-idle connections are closed for newcomers: the health check and a
/// decision are answered at once, and no more than the cap stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_idle_connections_make_room_for_newcomers() {
    let cap = 8;
    let addr = start(ServerOptions { max_connections: cap, ..ServerOptions::default() }).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let started = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(5), common::http(addr, "GET", "/healthz", &[], "")).await;
    assert_eq!(health.expect("an answer at the cap").status, 200);
    let body = r#"{"subject": {"user": "bob"}, "method": "GET", "host": "h", "path": "/"}"#;
    let check = tokio::time::timeout(Duration::from_secs(5), common::http(addr, "POST", "/v1/check", &[], body)).await;
    // no index is published: denied, by a server that answers
    assert_eq!(check.expect("an answer at the cap").status, 403);
    assert!(started.elapsed() < Duration::from_secs(3), "answered only after {:?}", started.elapsed());
    let mut still_open = 0;
    for conn in &mut idle {
        if !closed_within(conn, Duration::from_millis(50)).await {
            still_open += 1;
        }
    }
    assert!(still_open <= cap, "{still_open} idle connections open under a cap of {cap}");
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `turnstile serve` on the examples through `sh`, so that `ulimit` can be set first.
fn serve_binary(shell_prefix: &str, extra: &str) -> (Running, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let script = format!(
        "{shell_prefix} exec '{}' serve --manifests examples --listen {addr} --api-listen 127.0.0.1:0 {extra}",
        env!("CARGO_BIN_EXE_turnstile")
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = Running(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return (running, addr);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("turnstile did not listen on {addr}");
}

/// The report's case: more idle connections than the process has descriptors. The cap keeps
/// descriptors free, idle connections make room, and a real request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_under_1024_descriptors_does_not_lock_out_a_request() {
    rlimit::increase_nofile_limit(4096).unwrap();
    let (_server, addr) = serve_binary("ulimit -n 1024 &&", "--anonymous");
    let mut flood = Vec::new();
    for _ in 0..1100 {
        match TcpStream::connect(addr).await {
            Ok(conn) => flood.push(conn),
            Err(e) => panic!("connection {} refused: {e}", flood.len()),
        }
    }
    let started = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(5), common::http(addr, "GET", "/readyz", &[], "")).await;
    assert_eq!(health.expect("/readyz answers").status, 200);
    let headers = [("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "api.example.com"), ("X-Forwarded-Uri", "/")];
    let decision =
        tokio::time::timeout(Duration::from_secs(5), common::http(addr, "GET", "/authz/forward", &headers, "")).await;
    // anonymous has no grant: denied, by a server that is answering
    assert_eq!(decision.expect("a decision is answered").status, 403);
    assert!(started.elapsed() < Duration::from_secs(3), "answered only after {:?}", started.elapsed());
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
}

/// An idle keep-alive connection does not hold the process for the drain timeout, and SIGHUP
/// reloads the manifests instead of stopping the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_idle_keep_alives_do_not_hold_shutdown() {
    let (mut server, addr) = serve_binary("", "--anonymous");
    let mut keep_alive = TcpStream::connect(addr).await.unwrap();
    keep_alive.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 512];
    let n = keep_alive.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));

    signal(&server.0, "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.0.try_wait().unwrap().is_none(), "SIGHUP stopped the process");
    assert_eq!(common::http(addr, "GET", "/readyz", &[], "").await.status, 200);

    let started = Instant::now();
    signal(&server.0, "TERM");
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "an idle keep-alive connection holds the shutdown");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.0.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("SIGHUP: reloading `examples`"), "{log}");
    assert_eq!(log.matches("index published").count(), 2, "one load at start, one on SIGHUP:\n{log}");
}

//! A real Kubernetes API server for the cluster tests: etcd and kube-apiserver as plain
//! processes on 127.0.0.1 (the envtest way), with Turnstile's CRDs installed.
//!
//! The binaries come from `KUBEBUILDER_ASSETS` (a folder with `kube-apiserver`, `etcd`,
//! `kubectl`), else from `scripts/kube-assets.sh`, which builds them once into a cache outside
//! the clone. [`shared`] starts one server per test binary; a test that stops its server
//! starts its own with [`Cluster::start`]. Every process started here is stopped when the test
//! process ends, however it ends: each runs under a watchdog that kills it once this process
//! is gone.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub assets: PathBuf,
    pub kubeconfig: PathBuf,
    pub port: u16,
    /// Flags given to kube-apiserver beyond the harness's own.
    extra: Vec<String>,
    etcd: Mutex<Option<Child>>,
    apiserver: Mutex<Option<Child>>,
}

/// The folder holding `kube-apiserver`, `etcd` and `kubectl`.
pub fn assets() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        return dir.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kube-assets.sh");
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().expect("run kube-assets.sh");
    assert!(out.status.success(), "scripts/kube-assets.sh failed; set KUBEBUILDER_ASSETS or run it by hand");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `cmd` under a watchdog that kills it when this test process exits.
fn spawn_guarded(program: &Path, args: &[String], log: &Path) -> Child {
    let script = r#"
        "$@" &
        child=$!
        trap 'kill -KILL $child 2>/dev/null; wait $child; exit' TERM INT
        while kill -0 "$WATCH_PID" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done
        kill $child 2>/dev/null
        wait $child
    "#;
    let log = std::fs::File::create(log).unwrap();
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("guard")
        .arg(program)
        .args(args)
        .env("WATCH_PID", std::process::id().to_string())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

static SHARED: OnceLock<Cluster> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// The test binary's API server, started on first use. Tests that share it take turns: the
/// guard returned keeps the others out, and the server starts each turn with no Turnstile
/// objects.
pub fn shared() -> (&'static Cluster, MutexGuard<'static, ()>) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = SHARED.get_or_init(Cluster::start);
    cluster.kubectl(&["delete", "ou,pset,roles.turnstile.dev,ub,apicat", "--all", "--wait=true"]);
    (cluster, guard)
}

impl Cluster {
    /// Starts etcd and kube-apiserver, waits until the server is ready, and installs the CRDs.
    pub fn start() -> Cluster {
        Cluster::start_with(&[], "")
    }

    /// [`Cluster::start`], with more kube-apiserver flags and more lines for its token file
    /// (`token,user,uid,"group1,group2"`); the user `admin` (token `admin-token`) is in
    /// `system:masters`.
    pub fn start_with(apiserver_args: &[String], tokens: &str) -> Cluster {
        let assets = assets();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        std::fs::write(d.join("tokens.csv"), format!("admin-token,admin,1,\"system:masters\"\n{tokens}")).unwrap();
        let key = d.join("sa.key");
        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: admin-token
contexts:
- name: test
  context: {{cluster: test, user: admin, namespace: default}}
current-context: test
"
            ),
        )
        .unwrap();
        let cluster = Cluster {
            dir,
            assets,
            kubeconfig,
            port,
            extra: apiserver_args.to_vec(),
            etcd: Mutex::new(None),
            apiserver: Mutex::new(None),
        };
        cluster.start_etcd();
        cluster.start_apiserver();
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/turnstile.yaml");
        cluster.kubectl(&["apply", "-f", crds.to_str().unwrap()]);
        cluster.kubectl(&["wait", "--for=condition=established", "crd", "--all", "--timeout=60s"]);
        cluster
    }

    fn start_etcd(&self) {
        let d = self.dir.path();
        let (client, peer) = (free_port(), free_port());
        std::fs::write(d.join("etcd.port"), client.to_string()).unwrap();
        let args = [
            format!("--data-dir={}", d.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer}"),
        ];
        let child = spawn_guarded(&self.assets.join("etcd"), &args, &d.join("etcd.log"));
        *self.etcd.lock().unwrap() = Some(child);
    }

    /// Starts (or restarts) kube-apiserver on the cluster's port and waits until it is ready.
    pub fn start_apiserver(&self) {
        let d = self.dir.path();
        let etcd = std::fs::read_to_string(d.join("etcd.port")).unwrap();
        let key = d.join("sa.key").display().to_string();
        let mut args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd}"),
            format!("--secure-port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            "--insecure-port=0".into(),
            format!("--cert-dir={}", d.join("certs").display()),
            format!("--token-auth-file={}", d.join("tokens.csv").display()),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={key}"),
            format!("--service-account-signing-key-file={key}"),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
        ];
        // A flag given again replaces the harness's (kube-apiserver appends list flags).
        let flag = |a: &str| a.split('=').next().unwrap_or_default().to_owned();
        args.retain(|a| !self.extra.iter().any(|e| flag(e) == flag(a)));
        args.extend(self.extra.iter().cloned());
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        let log = d.join(format!("apiserver-{started}.log"));
        let child = spawn_guarded(&self.assets.join("kube-apiserver"), &args, &log);
        *self.apiserver.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.kubectl_output(&["get", "--raw", "/readyz"]);
            if out.status.success() {
                break;
            }
            let exited = self.apiserver.lock().unwrap().as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                panic!("kube-apiserver not ready (exited: {exited}); its log ends:\n{}", tail.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops kube-apiserver abruptly (`SIGKILL`), as a crash would; etcd keeps running.
    pub fn stop_apiserver(&self) {
        if let Some(mut child) = self.apiserver.lock().unwrap().take() {
            // The watchdog forwards TERM to the server and waits for it.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        Command::new(self.assets.join("kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl and returns its standard output; fails the test when kubectl fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply -f -` with `yaml` on its input.
    pub fn apply_yaml(&self, yaml: &str) {
        use std::io::Write;
        let mut child = Command::new(self.assets.join("kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `kubectl patch --type=merge`.
    pub fn patch(&self, kind: &str, name: &str, patch: &str) {
        self.kubectl(&["patch", kind, name, "--type=merge", "-p", patch]);
    }

    /// A field of one object, by JSONPath (`{.status.conditions[0].reason}`).
    pub fn get(&self, kind: &str, name: &str, jsonpath: &str) -> String {
        self.kubectl(&["get", kind, name, "-o", &format!("jsonpath={jsonpath}")])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in [&self.apiserver, &self.etcd] {
            if let Some(mut c) = child.lock().unwrap().take() {
                let _ = Command::new("kill").arg(c.id().to_string()).status();
                let _ = c.wait();
            }
        }
    }
}

/// A `turnstile run` process against a cluster, stopped on drop.
pub struct Turnstile {
    pub addr: SocketAddr,
    /// The `/v1/*` listener.
    pub api_addr: SocketAddr,
    child: Child,
    pub log: PathBuf,
    /// When the process was started.
    pub started: Instant,
}

impl Turnstile {
    /// Starts `turnstile run` with `args` and waits until it accepts connections.
    pub fn start(cluster: &Cluster, identity: &str, args: &[&str]) -> Turnstile {
        let mut all = vec!["run", "--identity", identity, "--lease-namespace", "default"];
        all.extend(args);
        Turnstile::spawn(&all, Some(&cluster.kubeconfig), cluster.dir.path(), identity)
    }

    /// Starts `turnstile COMMAND…` (`args`, without `--listen`) on a free port, logging into
    /// `log_dir`, and waits until it accepts connections.
    pub fn spawn(args: &[&str], kubeconfig: Option<&Path>, log_dir: &Path, name: &str) -> Turnstile {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Turnstile::spawn_at(addr, args, kubeconfig, log_dir, name)
    }

    /// [`Turnstile::spawn`] on a given address.
    pub fn spawn_at(
        addr: SocketAddr,
        args: &[&str],
        kubeconfig: Option<&Path>,
        log_dir: &Path,
        name: &str,
    ) -> Turnstile {
        let log = log_dir.join(format!("turnstile-{name}-{}.log", addr.port()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_turnstile"));
        let api_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        command.args(args).arg("--listen").arg(addr.to_string()).arg("--api-listen").arg(api_addr.to_string());
        if let Some(k) = kubeconfig {
            command.env("KUBECONFIG", k);
        }
        let started = Instant::now();
        let child = command
            .env("RUST_LOG", "info,turnstile::decision=off")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t = Turnstile { addr, api_addr, child, log, started };
        t.wait_for(Duration::from_secs(30), "its HTTP port", || std::net::TcpStream::connect(addr).is_ok());
        t
    }

    /// Resident memory of the process, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    /// Polls `f` every 50 ms until it holds; fails the test after `within`, with the log.
    pub fn wait_for(&self, within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < within, "{what} not within {within:?}; turnstile log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One plain HTTP/1.1 request, to the `/v1/*` listener for those paths; returns the status
    /// and body (status 0 when the connection failed).
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = if path.starts_with("/v1/") { self.api_addr } else { self.addr };
        let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (0, String::new()) };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: turnstile\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, body.to_owned())
    }

    /// `POST /v1/check`, answered as JSON.
    pub fn check(&self, request: &serde_json::Value) -> serde_json::Value {
        let (status, body) = self.request("POST", "/v1/check", &request.to_string());
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/v1/check answered {status} {body:?}: {e}"))
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.request("GET", "/readyz", "").0 == 200
    }

    /// Stops the process abruptly, as a crashed pod would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Suspends (`STOP`) or resumes (`CONT`) the process.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
    }
}

impl Drop for Turnstile {
    fn drop(&mut self) {
        self.kill();
    }
}

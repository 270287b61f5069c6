//! The `turnstile` commands (DESIGN §6).

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Claims, Report, Request, Snapshot, Subject, split_url};
use crate::sources::{self, files};

/// `0.1.0 (commit abc1234)`: the version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TURNSTILE_COMMIT"), ")");

/// Turnstile: Kubernetes-native authorization for ingresses, services and the API server.
#[derive(Debug, Parser)]
#[command(name = "turnstile", version = VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decide one request against a folder of manifests; exit 0 when allowed, 1 when denied.
    Check(CheckArgs),
    /// Check a folder of manifests as the controller would; non-zero exit on any error.
    Validate(ValidateArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Serve decisions over HTTP from a folder of manifests (file mode).
    Serve(ServeArgs),
    /// Serve decisions over HTTP from the custom resources of a cluster, and write their status.
    Run(RunArgs),
    /// Ask a running server's health endpoint; exit 0 when it answers 2xx (for container
    /// health checks in an image with no curl).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder (or file) of manifests (`examples` in this repository).
    #[arg(long, env = "TURNSTILE_MANIFESTS")]
    pub manifests: PathBuf,
    /// Do not publish a folder that holds no Turnstile object (it would deny every request);
    /// without it, such a folder is published and reported on `/readyz`.
    #[arg(long, env = "TURNSTILE_REFUSE_EMPTY")]
    pub refuse_empty: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What `serve` and `run` share: the HTTP server, authentication and logs.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "TURNSTILE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Address of the `/v1/*` listener (decisions and views for any subject its caller names:
    /// sidecars, tools, UIs). Loopback by default, so that only the pod reaches it; the same
    /// address as `--listen` serves everything on one port.
    #[arg(long, env = "TURNSTILE_API_LISTEN", default_value = "127.0.0.1:8081")]
    pub api_listen: std::net::SocketAddr,
    /// A file holding a token that callers of `/v1/*` must send as `Authorization: Bearer …`.
    #[arg(long, env = "TURNSTILE_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Serve `/metrics` (and health) on this address, over plain HTTP, instead of beside the
    /// proxy endpoints on `--listen`.
    #[arg(long, env = "TURNSTILE_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Config file (YAML) with an `authn` section: issuers, claims, trusted headers, anonymous.
    #[arg(long, env = "TURNSTILE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Read `X-Auth-Request-User` / `-Groups` (oauth2-proxy) when no token is sent.
    #[arg(long, env = "TURNSTILE_TRUSTED_HEADERS")]
    pub trusted_headers: bool,
    /// Treat requests without identity as `system:anonymous`.
    #[arg(long, env = "TURNSTILE_ANONYMOUS")]
    pub anonymous: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs `--tls-key`.
    #[arg(long, env = "TURNSTILE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for `--tls-cert`.
    #[arg(long, env = "TURNSTILE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Threads answering requests [default: one per CPU the process may use]. Fewer leave
    /// room for a proxy or load generator on the same machine.
    #[arg(long, env = "TURNSTILE_WORKERS")]
    pub workers: Option<std::num::NonZeroUsize>,
    /// Close a connection after this many seconds with no traffic and no request being answered.
    #[arg(long, env = "TURNSTILE_IDLE_TIMEOUT", default_value_t = crate::http::IDLE_TIMEOUT.as_secs())]
    pub idle_timeout: u64,
    /// Connections open at once; at the cap, the longest-idle one is closed for a newcomer.
    #[arg(long, env = "TURNSTILE_MAX_CONNECTIONS", default_value_t = crate::http::MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// On SIGTERM, fail `/readyz` for this many seconds while still serving, so that endpoints
    /// drop the pod before its listener closes; then drain and stop.
    #[arg(long, env = "TURNSTILE_SHUTDOWN_DELAY", default_value_t = 0)]
    pub shutdown_delay: u64,
    /// Answer a SubjectAccessReview that no rule allows with `denied`, instead of no opinion
    /// (which leaves it to the API server's next authorizer, RBAC).
    #[arg(long, env = "TURNSTILE_SAR_HARD_DENY")]
    pub sar_hard_deny: bool,
    /// Answer a denial on the proxy endpoints with the whole answer (user, groups, roles,
    /// deciding rule), which proxies pass to the client; by default only status and reason.
    #[arg(long, env = "TURNSTILE_FULL_DENIAL_BODY")]
    pub full_denial_body: bool,
    /// Over gRPC `ext_authz`, take the user from the SPIFFE id of the client certificate Envoy
    /// verified (`attributes.source.principal`) when there is one, instead of from `Authorization`.
    #[arg(long, env = "TURNSTILE_GRPC_PEER_IDENTITY")]
    pub grpc_peer_identity: bool,
    /// Log format.
    #[arg(long, env = "TURNSTILE_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Log every decision (user, OU, operation, result, deciding rule).
    #[arg(long, env = "TURNSTILE_DECISION_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub decision_log: bool,
}

/// `turnstile run`: the operator.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Name of the `coordination.k8s.io/v1` Lease that elects the replica writing status.
    #[arg(long, env = "TURNSTILE_LEASE_NAME", default_value = "turnstile")]
    pub lease_name: String,
    /// Namespace of that Lease [default: the pod's namespace, else `default`].
    #[arg(long, env = "TURNSTILE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease [default: the host name].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Watch only objects with these labels (`key=value,…`), to run several independent
    /// Turnstiles from one cluster.
    #[arg(long, env = "TURNSTILE_SELECTOR")]
    pub selector: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The server's config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default)]
    pub authn: crate::http::authn::AuthnConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Folder (or file) of manifests (`examples` in this repository).
    #[arg(long)]
    pub manifests: PathBuf,
    /// The user asking.
    #[arg(long)]
    pub user: String,
    /// A group of the user (repeatable).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// OU context of the request (default `global`).
    #[arg(long)]
    pub ou: Option<String>,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Full URL (`https://api.example.com/api/v1/x`) or a path.
    #[arg(long)]
    pub url: String,
    /// Request header `Name: value` (repeatable).
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// JSON body, for `j()` extractors.
    #[arg(long)]
    pub body: Option<String>,
    /// Print every binding, set and rule considered.
    #[arg(long)]
    pub explain: bool,
    /// `text`, or `json` for the `/v1/check` answer.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once(':').ok_or_else(|| format!("header `{s}` is not `Name: value`"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The endpoint to ask; `https://` is accepted with any certificate (the server's own).
    #[arg(long, env = "TURNSTILE_HEALTHCHECK_URL", default_value = "http://127.0.0.1:8080/readyz")]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Folder (or file) of manifests.
    #[arg(required_unless_present = "manifests", conflicts_with = "manifests")]
    pub dir: Option<PathBuf>,
    /// The same, as the other commands take it.
    #[arg(long)]
    pub manifests: Option<PathBuf>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check(args),
        Command::Validate(args) => validate(args),
        Command::Crds => {
            print!("{}", sources::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => crate::run::files::run(args),
        Command::Run(args) => crate::run::cluster::run(args),
        Command::Healthcheck(args) => healthcheck(args),
    }
}

fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(std::time::Duration::from_secs(3))
            .build()?;
        anyhow::Ok(client.get(&args.url).send().await?.status())
    });
    match status {
        Ok(s) if s.is_success() => Ok(ExitCode::SUCCESS),
        Ok(s) => {
            eprintln!("{}: {s}", args.url);
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("{}: {e:#}", args.url);
            Ok(ExitCode::from(1))
        }
    }
}

/// Loads a folder and builds its snapshot.
pub fn load(dir: &std::path::Path) -> anyhow::Result<(files::Loaded, Snapshot, Report)> {
    let loaded = files::load(dir)?;
    let (snapshot, report) = Snapshot::build(&loaded.definitions(), jiff::Timestamp::now());
    Ok((loaded, snapshot, report))
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (loaded, snapshot, report) = load(&args.manifests)?;
    // `serve` publishes nothing from a folder with a load problem (it keeps its previous index,
    // or stays unready), so no decision here could be the one it would make.
    if !loaded.problems.is_empty() {
        for p in &loaded.problems {
            eprintln!("error: {p}");
        }
        bail!(
            "`turnstile serve` would not load `{}`: {} document(s) cannot be used; no decision is made",
            args.manifests.display(),
            loaded.problems.len()
        );
    }
    for (kind, name, p) in report.errors() {
        eprintln!("warning: {kind}/{name} is not ready: {p}");
    }
    let body = args
        .body
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .context("`--body` is not JSON")?;
    let (host, path) = split_url(&args.url);
    if !path.starts_with('/') {
        bail!("`--url` must be a full URL or start with `/`");
    }
    let req = Request {
        subject: Some(Subject { user: &args.user, groups: &args.groups }),
        claims: Claims::Subject { user_claim: "sub" },
        method: &args.method,
        host,
        path,
        headers: &args.headers,
        body: body.as_ref(),
        ou: args.ou.as_deref(),
        now: jiff::Timestamp::now(),
    };
    let (decision, trace) = if args.explain {
        let (d, t) = snapshot.explain(&req);
        (d, Some(t))
    } else {
        (snapshot.decide(&req), None)
    };
    let mut answer = decision.answer();
    answer.trace = trace;
    let mut out = String::new();
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?,
        Output::Text => {
            let verdict = if answer.allowed { "allowed" } else { "denied" };
            writeln!(out, "{verdict} ({}): {}", answer.status, answer.reason)?;
            writeln!(out, "  user:      {}", answer.user.as_deref().unwrap_or("-"))?;
            writeln!(out, "  groups:    {}", answer.groups.join(", "))?;
            writeln!(out, "  ou:        {}", answer.ou.as_deref().unwrap_or("-"))?;
            writeln!(out, "  roles:     {}", answer.roles.join(", "))?;
            writeln!(out, "  operation: {}", if answer.operation.is_empty() { "-" } else { &answer.operation })?;
            writeln!(out, "  rule:      {}", answer.rule.as_deref().unwrap_or("-"))?;
            if let Some(t) = &answer.trace {
                writeln!(out, "trace:")?;
                for line in serde_saphyr::to_string(t)?.lines() {
                    writeln!(out, "  {line}")?;
                }
            }
        }
    }
    emit(&out)?;
    Ok(if answer.allowed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Writes a command's output to stdout. A reader that stops early (`| head`) is not an error:
/// the exit code still says what the command found.
fn emit(text: &str) -> std::io::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.or(args.manifests).expect("clap requires one");
    let (loaded, _, report) = load(&dir)?;
    let mut out = String::new();
    for note in &loaded.notes {
        writeln!(out, "note: {note}")?;
    }
    for p in &loaded.problems {
        writeln!(out, "error: {p}")?;
    }
    let at = |kind, name: &str| {
        loaded
            .origins
            .get(&(kind, name.to_owned()))
            .map(|os| os.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let mut errors = loaded.problems.len();
    for (kind, name, p) in report.errors() {
        errors += 1;
        writeln!(out, "error: {}: {kind}/{name}: {p}", at(kind, name))?;
    }
    let mut warnings = 0;
    for (kind, name, p) in report.warnings() {
        warnings += 1;
        writeln!(out, "warning: {}: {kind}/{name}: {p}", at(kind, name))?;
    }
    writeln!(
        out,
        "{} objects in {} files: {errors} errors, {warnings} warnings",
        loaded.resources.len(),
        loaded.files
    )?;
    emit(&out)?;
    Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

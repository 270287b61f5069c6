//! The two serving modes, each a small module that feeds the one [`Publisher`]:
//!
//! ```text
//! files   (`serve`): a folder, reloaded on change ──┐
//!                                                   ├─▶ Publisher ─▶ http
//! cluster (`run`):   the five kinds, watched ───────┘
//! ```
//!
//! What they share lives here: the runtime, logging, authentication and the HTTP listener.

use std::any::Any;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::{LogFormat, ServeConfig, ServerArgs};
use crate::publisher::Publisher;

pub mod cluster;
pub mod files;

/// Something a source keeps alive while the server runs (a file watcher, its tasks).
pub type Guard = Box<dyn Any + Send>;

/// Starts logging and the runtime, lets `source` start feeding a new publisher, and serves
/// HTTP from it until Ctrl-C or SIGTERM. `what` names the source in the startup log line.
pub fn serve<F, Fut>(args: &ServerArgs, what: &str, source: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Arc<Publisher>) -> Fut,
    Fut: Future<Output = anyhow::Result<Guard>>,
{
    init_logging(args.log_format, args.decision_log);
    let mut config: ServeConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            serde_saphyr::from_str(&text).with_context(|| format!("`{}` is not a valid config", path.display()))?
        }
        None => ServeConfig::default(),
    };
    config.authn.trusted_headers |= args.trusted_headers;
    config.authn.anonymous |= args.anonymous;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        runtime.worker_threads(n.get());
    }
    let runtime = runtime.enable_all().build()?;
    // Two TLS backends are linked (through reqwest and kube); name the one to use.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    runtime.block_on(async {
        let authn = crate::http::authn::Authenticator::new(config.authn).await;
        let publisher = Publisher::new();
        let _guard = source(publisher.clone()).await?;
        let delay = std::time::Duration::from_secs(args.shutdown_delay);
        let draining = publisher.clone();
        let shutdown = async move {
            shutdown().await;
            if !delay.is_zero() {
                tracing::info!("shutting down: /readyz fails for {delay:?} while requests are still served");
                draining.drain();
                tokio::time::sleep(delay).await;
            }
        };
        let admission: crate::http::AdmissionCheck = Arc::new(|object, world| {
            let world = world.map(|(snapshot, report)| crate::sources::admission::World { snapshot, report });
            crate::sources::admission::check(object, world, jiff::Timestamp::now())
        });
        let options = crate::http::Options { sar_hard_deny: args.sar_hard_deny, admission: Some(admission) };
        let state = crate::http::AppState::with_options(publisher, authn, options);
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| format!("cannot load `{}` and `{}`", cert.display(), key.display()))?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(crate::http::DRAIN_TIMEOUT));
            });
            tracing::info!("serving {what} on https://{}", args.listen);
            let service = tower::make::Shared::new(crate::http::Authorizer::new(state));
            let mut server = axum_server::bind_rustls(args.listen, tls).handle(handle);
            crate::http::configure(server.http_builder(), crate::http::HEADER_READ_TIMEOUT);
            server.serve(service).await?;
        } else {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            tracing::info!("serving {what} on http://{}", listener.local_addr()?);
            crate::http::serve(listener, state, crate::http::HEADER_READ_TIMEOUT, shutdown).await?;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat, decisions: bool) {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if !decisions {
        filter = filter.add_directive("turnstile::decision=off".parse().expect("a valid directive"));
    }
    // Colour only on a terminal: codes in a file or a log collector are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

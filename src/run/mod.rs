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
use axum_server::tls_rustls::RustlsConfig;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ServeConfig, ServerArgs};
use crate::http::{Authorizer, ServerOptions, Surface};
use crate::publisher::Publisher;

use watch::{Changes, Hangups};

pub mod cluster;
pub mod files;
mod logging;
mod watch;

/// Something a source keeps alive while the server runs (a file watcher, its tasks).
pub type Guard = Box<dyn Any + Send>;

/// Starts logging and the runtime, lets `source` start feeding a new publisher, and serves
/// HTTP from it until Ctrl-C or SIGTERM. `what` names the source in the startup log line.
pub fn serve<F, Fut>(args: &ServerArgs, what: &str, source: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Arc<Publisher>) -> Fut,
    Fut: Future<Output = anyhow::Result<Guard>>,
{
    logging::init(args.log_format, args.decision_log);
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
        // SIGHUP reloads what was read from files (manifests, TLS); it never stops the process.
        let mut hangups = Hangups::new();
        tokio::spawn(async move {
            loop {
                hangups.next().await;
                tracing::info!("SIGHUP: files read at startup are read again");
            }
        });
        let publisher = Publisher::new();
        let _guard = source(publisher.clone()).await?;
        let delay = Duration::from_secs(args.shutdown_delay);
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
        let options = crate::http::Options {
            sar_hard_deny: args.sar_hard_deny,
            admission: Some(admission),
            full_denial_body: args.full_denial_body,
            grpc_peer_identity: args.grpc_peer_identity,
            metrics_listener: args.metrics_listen.is_some(),
        };
        let state = crate::http::AppState::with_options(publisher, authn, options);
        let api_token = match &args.api_token_file {
            Some(path) => Some(api_token(path)?),
            None => None,
        };
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls(cert.clone(), key.clone()).await?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let options = ServerOptions {
            idle_timeout: Duration::from_secs(args.idle_timeout),
            max_connections: connection_cap(args.max_connections),
            tls,
            ..ServerOptions::default()
        };
        let bind =
            async |addr| tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"));
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
        let serve_on =
            |listener, authorizer, options| crate::http::serve(listener, authorizer, options, shutdown.clone());
        let listener = bind(args.listen).await?;
        let api_token = api_token.as_deref();
        let mut servers = Vec::new();
        if args.api_listen == args.listen {
            tracing::info!("serving {what} on {scheme}://{}, /v1/* included", listener.local_addr()?);
            let everything = Authorizer::new(state.clone(), Surface::Both, api_token);
            servers.push(serve_on(listener, everything, options.clone()));
        } else {
            let api_listener = bind(args.api_listen).await?;
            tracing::info!("serving {what} on {scheme}://{}", listener.local_addr()?);
            tracing::info!("serving /v1/* on {scheme}://{}", api_listener.local_addr()?);
            let api = Authorizer::new(state.clone(), Surface::Api, api_token);
            servers.push(serve_on(listener, Authorizer::proxy(state.clone()), options.clone()));
            servers.push(serve_on(api_listener, api, options.clone()));
        }
        if let Some(addr) = args.metrics_listen {
            let metrics_listener = bind(addr).await?;
            tracing::info!("serving /metrics on http://{}", metrics_listener.local_addr()?);
            let metrics = Authorizer::new(state, Surface::Metrics, None);
            servers.push(serve_on(metrics_listener, metrics, ServerOptions { tls: None, ..options }));
        }
        for served in futures::future::join_all(servers).await {
            served?;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Loads the TLS certificate and key, and loads them again whenever their files change (a
/// certificate renewed in a mounted Secret, say) or on SIGHUP. A pair that does not load then
/// leaves the previous one serving.
async fn tls(cert: PathBuf, key: PathBuf) -> anyhow::Result<RustlsConfig> {
    let config = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| format!("cannot load `{}` and `{}`", cert.display(), key.display()))?;
    let mut changes = Changes::new(&[&cert, &key]).context("cannot watch the TLS certificate and key")?;
    let mut hangups = Hangups::new();
    let reloading = config.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                change = changes.next() => if change.is_none() { return },
                () = hangups.next() => {}
            }
            match reloading.reload_from_pem_file(&cert, &key).await {
                Ok(()) => tracing::info!("TLS certificate loaded again from `{}`", cert.display()),
                Err(e) => tracing::error!("cannot load the TLS certificate again, the previous one is kept: {e}"),
            }
        }
    });
    Ok(config)
}

/// The `/v1/*` bearer token from its file (a mounted Secret), without surrounding whitespace.
fn api_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let token = text.trim();
    if token.len() < 16 {
        anyhow::bail!("the token in `{}` is shorter than 16 characters", path.display());
    }
    Ok(token.to_owned())
}

/// Raises the descriptor limit as far as allowed and fits `wanted` connections under it, leaving
/// room for manifests, watches and outgoing connections.
fn connection_cap(wanted: usize) -> usize {
    const RESERVE: u64 = 128;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fits = limit.saturating_sub(RESERVE).max(1) as usize;
    if wanted > fits {
        tracing::warn!("--max-connections {wanted} lowered to {fits}: the process may open {limit} files");
    }
    wanted.min(fits)
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

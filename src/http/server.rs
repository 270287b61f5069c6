//! Accepting connections, plain or TLS through one path: HTTP/1.1 and HTTP/2 on one port,
//! answers sent at once, idle and half-open connections closed, a cap on open connections, and a
//! graceful stop that closes idle keep-alive connections at once.

use std::future::Future;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::Authorizer;
use super::connections::{Admit, Connections};

/// How long a connection may stay open with nothing said either way and no request being
/// answered: longer than nginx's 60 s upstream keep-alive, so that a proxy closes an idle
/// connection first and never reuses one the server is closing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// How long a new connection may stay silent before its first request (a TLS handshake also has
/// its own 10 s). Proxies and probes send theirs at once; a client that connects and says
/// nothing, or sends an HTTP/2 preface and stops, is closed after this.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once, by default; the process raises its descriptor limit to fit.
pub const MAX_CONNECTIONS: usize = 4096;

/// Longest wait, when stopping, for the requests under way.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How a listener serves.
#[derive(Clone)]
pub struct ServerOptions {
    pub idle_timeout: Duration,
    pub first_request_timeout: Duration,
    pub max_connections: usize,
    /// Serve HTTPS with this configuration (reloadable in place) instead of plain HTTP.
    pub tls: Option<RustlsConfig>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            idle_timeout: IDLE_TIMEOUT,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            tls: None,
        }
    }
}

/// The HTTP settings of every listener. hyper's header-read clock also bounds an idle
/// keep-alive connection, so it is the idle timeout, and it bounds a client that trickles its
/// headers (slowloris).
fn configure(builder: &mut auto::Builder<TokioExecutor>, options: &ServerOptions) {
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.idle_timeout);
    builder.http2().timer(TokioTimer::new());
}

/// Serves `authorizer` on `listener` until `shutdown` resolves, then lets the requests under way
/// finish (for at most [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    authorizer: Authorizer,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(DRAIN_TIMEOUT));
    });
    let connections = Connections::new(options.max_connections, options.idle_timeout, options.first_request_timeout);
    let admit = Admit(connections);
    let service = tower::make::Shared::new(authorizer);
    let listener = listener.into_std()?;
    let on_error = |peer: Option<&std::net::SocketAddr>, e: &std::io::Error| match peer {
        // The listener itself (out of descriptors, say); the server backs off and retries.
        None => tracing::warn!("cannot accept a connection: {e}"),
        Some(peer) => tracing::debug!("connection from {peer} refused: {e}"),
    };
    match options.tls.clone() {
        Some(tls) => {
            let mut server = axum_server::from_tcp_rustls(listener, tls)?
                .map(|tls| tls.acceptor(admit))
                .handle(handle)
                .accept_error_handler(on_error);
            configure(server.http_builder(), &options);
            server.serve(service).await
        }
        None => {
            let mut server =
                axum_server::from_tcp(listener)?.acceptor(admit).handle(handle).accept_error_handler(on_error);
            configure(server.http_builder(), &options);
            server.serve(service).await
        }
    }
}

//! Accepting connections: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, answers sent at once,
//! a limit on how long a client may take to send a request's headers, and a graceful stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::{AppState, Authorizer};

/// Longest time a client may take to send a request's headers; then its connection is closed, so
/// a client that trickles them (slowloris) cannot hold connections. hyper starts this clock when
/// it waits for the next request, so it is also how long an idle keep-alive connection stays open:
/// longer than the 60 s upstream keep-alive of nginx and ingress-nginx, so that a proxy never
/// reuses a connection the server is closing.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(75);

/// Longest wait, when stopping, for the requests under way.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP settings every listener uses, plain or TLS.
pub fn configure(builder: &mut auto::Builder<TokioExecutor>, header_read_timeout: Duration) {
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
}

/// Serves the authorizer on `listener` until `shutdown` resolves, then lets the requests under way
/// finish (for at most [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    configure(&mut builder, header_read_timeout);
    let service = TowerToHyperService::new(Authorizer::new(state));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and latency counts: send each at once.
        let _ = tcp.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(tcp), service.clone()).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("stopped with requests still under way after {DRAIN_TIMEOUT:?}");
    }
    Ok(())
}

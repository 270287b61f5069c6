//! The connections a listener holds: at most a set number at once, each closed when it has been
//! idle too long, and the longest-idle one closed to make room when a new client arrives at the
//! cap. Clients that connect and send nothing, an HTTP/2 preface and nothing more, or half a
//! request, can therefore neither keep descriptors for good nor lock out the proxy and the
//! kubelet's probes.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::Service;

/// How long a newcomer at the cap waits for the connection it displaced to close.
const ADMIT_WAIT: Duration = Duration::from_secs(1);

/// The open connections of one listener.
pub struct Connections {
    slots: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    idle_timeout: Duration,
    first_request_timeout: Duration,
    epoch: Instant,
    /// Whether the cap was reached since it was last logged, so that a flood logs once.
    at_cap: AtomicBool,
}

/// What is known of one connection, shared between its stream, its service and the registry.
struct Activity {
    /// Requests being answered; a connection with none is idle.
    in_flight: AtomicUsize,
    /// Whether a request has arrived: until one does, the first-request timeout applies.
    served: AtomicBool,
    /// Milliseconds from [`Connections::epoch`] to the last request's start (or the
    /// connection's accept): the eviction order.
    last_active: AtomicU64,
    evicted: AtomicBool,
    /// The task reading the connection, woken to notice an eviction.
    reader: AtomicWaker,
}

impl Connections {
    /// At most `max` connections; each closed after `idle_timeout` with nothing received while
    /// no request is being answered, or `first_request_timeout` before its first request.
    pub fn new(max: usize, idle_timeout: Duration, first_request_timeout: Duration) -> Arc<Connections> {
        Arc::new(Connections {
            slots: Arc::new(Semaphore::new(max)),
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            idle_timeout,
            first_request_timeout,
            epoch: Instant::now(),
            at_cap: AtomicBool::new(false),
        })
    }

    /// Connections open now.
    fn count(&self) -> usize {
        self.open.lock().expect("not poisoned").len()
    }

    /// Takes a slot for a new connection: at the cap, closes the longest-idle connection and waits
    /// (briefly) for its slot. Fails when every connection is busy answering.
    async fn admit(self: &Arc<Self>) -> io::Result<Admitted> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !self.at_cap.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        open = self.count(),
                        "connection cap reached: closing the longest-idle connections to make room"
                    );
                }
                if !self.evict_longest_idle() {
                    return Err(io::Error::other("at the connection cap with every connection busy"));
                }
                match tokio::time::timeout(ADMIT_WAIT, self.slots.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(io::Error::other("at the connection cap: no connection closed in time")),
                }
            }
        };
        if self.slots.available_permits() > 0 {
            self.at_cap.store(false, Ordering::Relaxed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last_active: AtomicU64::new(millis_since(self.epoch)),
            evicted: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        });
        self.open.lock().expect("not poisoned").insert(id, activity.clone());
        Ok(Admitted { connections: self.clone(), id, activity, _permit: permit })
    }

    /// Marks the idle connection that has been quiet longest to be closed; false if none is idle.
    fn evict_longest_idle(&self) -> bool {
        let open = self.open.lock().expect("not poisoned");
        let victim = open
            .values()
            .filter(|a| a.in_flight.load(Ordering::Acquire) == 0 && !a.evicted.load(Ordering::Relaxed))
            .min_by_key(|a| a.last_active.load(Ordering::Relaxed));
        match victim {
            Some(a) => {
                a.evicted.store(true, Ordering::Release);
                a.reader.wake();
                true
            }
            None => false,
        }
    }
}

/// Milliseconds since `epoch`: the eviction order's clock.
fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// A connection's place among the open ones, given up when its stream is dropped.
struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.open.lock().expect("not poisoned").remove(&self.id);
    }
}

/// Admits connections to a listener: `TCP_NODELAY` (answers are small and latency counts), a
/// slot under the cap, the idle clock on the stream and request counting on the service. Under
/// TLS it runs before the handshake, so a stalled handshake is idle time too.
#[derive(Clone)]
pub struct Admit(pub Arc<Connections>);

impl<S: Send + 'static> axum_server::accept::Accept<TcpStream, S> for Admit {
    type Stream = Tracked<TcpStream>;
    type Service = Counted<S>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let connections = self.0.clone();
        Box::pin(async move {
            let _ = stream.set_nodelay(true);
            let admitted = connections.admit().await?;
            let counted = Counted { inner: service, activity: admitted.activity.clone(), epoch: connections.epoch };
            let idle = Box::pin(tokio::time::sleep(connections.first_request_timeout));
            let tracked = Tracked {
                inner: stream,
                idle,
                idle_timeout: connections.idle_timeout,
                first_request_timeout: connections.first_request_timeout,
                last_io: Instant::now(),
                admitted,
            };
            Ok((tracked, counted))
        })
    }
}

/// A connection's stream that fails once the connection has been idle for the idle timeout
/// (nothing received for that long while no request is being answered), or once it has been
/// evicted. hyper then closes the connection. Sends are not timed: each answers a request,
/// and the request's bytes already counted.
pub struct Tracked<S> {
    inner: S,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    first_request_timeout: Duration,
    last_io: Instant,
    admitted: Admitted,
}

impl<S> Tracked<S> {
    fn evicted(&self) -> bool {
        self.admitted.activity.evicted.load(Ordering::Acquire)
    }

    /// Called when the inner stream is not ready: `Ready` with an error once the connection is
    /// idle past its timeout, else `Pending` with the timer armed.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let activity = &self.admitted.activity;
            let busy = activity.in_flight.load(Ordering::Acquire) > 0;
            let limit = match activity.served.load(Ordering::Relaxed) {
                true => self.idle_timeout,
                false => self.first_request_timeout,
            };
            let quiet_until = self.last_io + limit;
            if !busy && quiet_until <= Instant::now() {
                let why = format!("idle for {limit:?}");
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            // There was traffic (or a request is being answered) since the timer was set: the
            // timer is moved, not reset on every read.
            let next = if busy { Instant::now() + limit } else { quiet_until };
            self.idle.as_mut().reset(next);
        }
    }

    fn evicted_error() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "closed to make room at the connection cap")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.evicted() {
            return Poll::Ready(Err(Self::evicted_error()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                // Waiting for the client: an eviction must wake this task (and is checked
                // again, in case it came before the waker was registered).
                this.admitted.activity.reader.register(cx.waker());
                if this.evicted() {
                    return Poll::Ready(Err(Self::evicted_error()));
                }
                this.poll_idle(cx).map(Err)
            }
            ready => {
                if buf.filled().len() > before {
                    this.last_io = Instant::now();
                }
                ready
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Pending => this.poll_idle(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_idle(cx).map(Err),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's service, counting the requests being answered so that a busy connection is
/// neither idle nor evicted.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
    epoch: Instant,
}

impl<S, R> Service<R> for Counted<S>
where
    S: Service<R>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let busy = Busy::start(self.activity.clone(), self.epoch);
        Answering { inner: self.inner.call(request), _busy: busy }
    }
}

/// A request being answered on a connection.
pub struct Answering<F> {
    inner: F,
    _busy: Busy,
}

impl<F: Future + Unpin> Future for Answering<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// Counts one request in flight for as long as it lives.
struct Busy {
    activity: Arc<Activity>,
}

impl Busy {
    fn start(activity: Arc<Activity>, epoch: Instant) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.served.store(true, Ordering::Relaxed);
        activity.last_active.store(millis_since(epoch), Ordering::Relaxed);
        Busy { activity }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

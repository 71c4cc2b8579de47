//! The operators' HTTP endpoint: `/metrics` (Prometheus), `/healthz`
//! (alive), `/readyz` (consuming with a registry).
//!
//! It serves only counts, states and reasons: no alert content, no
//! address, no secret.
//!
//! Connections are bounded ([`Limits`]), per listener (the operators'
//! endpoint and the acknowledgement pages each have theirs): a client has
//! `header_timeout` to send a request's headers, and a kept-alive
//! connection is closed after the same time idle; at most
//! `max_connections` are open at once. When all are taken, a new client
//! takes the place of the oldest connection that has no request under way
//! (still sending its headers, or idle): clients that send their headers
//! one byte at a time cannot keep `/healthz` or an acknowledgement page
//! from answering, they only push each other out. Only when every
//! connection is being answered do new ones wait in the kernel's backlog.
//! A slow or hostile client cannot hold the file descriptors that the
//! broker and the mail servers need.
//!
//! No cap per client address: the probes and the slow clients may share
//! one (loopback, a NAT, the reverse proxy in front of the pages), and a
//! cap would shut the probe out with them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::health::Health;
use crate::settings::HttpSettings;
use crate::telemetry::metrics::Metrics;

/// The main loop beats every `BEAT`; it is dead if silent for three.
pub const BEAT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Endpoint {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// How much of relais one HTTP client may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl From<&HttpSettings> for Limits {
    fn from(http: &HttpSettings) -> Self {
        Self {
            header_timeout: http.header_timeout,
            max_connections: http.max_connections,
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    limits: Limits,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let router = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Endpoint { metrics, health });
    serve_bounded(listener, router, limits, stop).await;
}

/// Serves `router` on `listener` within `limits` until `stop` is
/// cancelled, then lets the requests under way finish. A failure to accept
/// (e.g. no file descriptor left) is logged and waited out, never fatal.
pub async fn serve_bounded(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let waiting = Arc::new(Waiting::default());
    let connections = TaskTracker::new();
    let mut next_id: u64 = 0;
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                // Every slot taken: the oldest connection with no request
                // under way gives its place; with none, wait for one to end.
                waiting.evict_oldest();
                tokio::select! {
                    () = stop.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        next_id += 1;
        let id = next_id;
        let evicted = CancellationToken::new();
        let entry = waiting.add(id, evicted.clone());
        let service = TowerToHyperService::new(router.clone());
        let requests = waiting.clone();
        let service = service_fn(move |request| {
            let busy = requests.busy(id);
            let answered = Service::call(&service, request);
            async move {
                let response = answered.await;
                drop(busy);
                response
            }
        });
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            // Dropped after the connection: forgets it once it is gone.
            let _entry = entry;
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_BUFFER);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = evicted.cancelled() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// The connections of one listener with no request under way (sending
/// their first request's headers, or idle between two), by the order they
/// were accepted: the oldest gives its place to a new client when every
/// slot is taken.
#[derive(Default)]
struct Waiting {
    connections: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connection `id`, just accepted, waiting for its first request;
    /// forgotten when the returned entry is dropped.
    fn add(self: &Arc<Self>, id: u64, evict: CancellationToken) -> Entry {
        self.lock().insert(id, evict);
        Entry {
            waiting: self.clone(),
            id,
        }
    }

    /// Connection `id` is answering a request: it cannot be evicted until
    /// the returned guard is dropped (the response is made).
    fn busy(self: &Arc<Self>, id: u64) -> Busy {
        let evict = self.lock().remove(&id);
        Busy {
            waiting: self.clone(),
            id,
            evict,
        }
    }

    /// Closes the oldest connection with no request under way, if any.
    fn evict_oldest(&self) {
        if let Some((_, evict)) = self.lock().pop_first() {
            evict.cancel();
        }
    }
}

/// A connection's place among the [`Waiting`], removed on drop.
struct Entry {
    waiting: Arc<Waiting>,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.waiting.lock().remove(&self.id);
    }
}

/// A request under way; its connection is evictable again once dropped.
struct Busy {
    waiting: Arc<Waiting>,
    id: u64,
    /// `None` if the connection was evicted just before its request came.
    evict: Option<CancellationToken>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(evict) = self.evict.take() {
            self.waiting.lock().insert(self.id, evict);
        }
    }
}

/// A pause after a failed accept, so that a lack of file descriptors does
/// not spin the loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The most a request's head may take (hyper's minimum); these endpoints
/// take no body.
const MAX_BUFFER: usize = 8192;

async fn metrics_text(State(endpoint): State<Endpoint>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        endpoint.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(endpoint): State<Endpoint>) -> Response {
    if endpoint.health.alive(BEAT * 3) {
        (StatusCode::OK, "alive\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the main loop is stuck\n").into_response()
    }
}

async fn readyz(State(endpoint): State<Endpoint>) -> Response {
    let readiness = endpoint.health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

//! The operators' HTTP endpoint: `/metrics` (Prometheus), `/healthz`
//! (alive), `/readyz` (consuming with a registry).
//!
//! It serves only counts, states and reasons: no alert content, no
//! address, no secret.
//!
//! Connections are bounded ([`Limits`]): a client has `header_timeout` to
//! send a request's headers, and a kept-alive connection is closed after
//! the same time idle; at most `max_connections` are served at once, the
//! others waiting in the kernel's backlog. A slow or hostile client cannot
//! hold the file descriptors that the broker and the mail servers need.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
    let connections = TaskTracker::new();
    loop {
        // Accept only with a slot free: the others wait in the backlog.
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
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
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_BUFFER);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
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

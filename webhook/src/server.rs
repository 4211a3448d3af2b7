//! HTTP side: the admission router (`/mutate`, `/validate`, served over TLS), the health router
//! (`/healthz`, `/readyz`, `/metrics`, plain HTTP), the accept loops and graceful shutdown,
//! and [`run`], which wires flags, certificates, the Kubernetes client and caches together.
//!
//! Startup log lines on stderr (tests and the benchmark read them). The message is
//! - `listening on https://ADDR` once the admission port is bound (ADDR is the real address,
//!   e.g. `127.0.0.1:41234` for `--listen 127.0.0.1:0`);
//! - `health listening on http://ADDR` once the health port is bound.
//!
//! Plain format: `2026-01-01T00:00:00.000000Z  INFO mlplatform_webhook::server: listening on
//! https://127.0.0.1:41234 addr=127.0.0.1:41234`. JSON format: one object per line with
//! `"message":"listening on https://127.0.0.1:41234"` and `"addr":"127.0.0.1:41234"`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::Endpoint;
use crate::admission::{self, AdmissionResponse, GroupVersionKind, Violation};
use crate::cache::{ClusterCache, FetchError};
use crate::cluster::FinalView;
use crate::config::Args;
pub use crate::config::{CLIENT_TIMEOUT, ConnectionTimeouts, IDLE_TIMEOUT};
use crate::metrics::{Metrics, Outcome};
use crate::mutate::InjectionConfig;
use crate::tls::{ReloadingCert, TlsError};

/// How often the certificate files are checked for changes.
pub const CERT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Shared state of the request handlers.
#[derive(Debug)]
pub struct App {
    pub cache: Arc<ClusterCache>,
    pub injection: InjectionConfig,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive.
    pub client_timeout: Duration,
    shutting_down: AtomicBool,
}

impl App {
    pub fn new(
        cache: Arc<ClusterCache>,
        injection: InjectionConfig,
        metrics: Metrics,
        max_body_bytes: usize,
    ) -> Arc<Self> {
        Self::with_client_timeout(cache, injection, metrics, max_body_bytes, CLIENT_TIMEOUT)
    }

    pub fn with_client_timeout(
        cache: Arc<ClusterCache>,
        injection: InjectionConfig,
        metrics: Metrics,
        max_body_bytes: usize,
        client_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            cache,
            injection,
            metrics,
            max_body_bytes,
            client_timeout,
            shutting_down: AtomicBool::new(false),
        })
    }

    fn is_ready(&self) -> bool {
        self.cache.is_ready() && !self.shutting_down.load(Ordering::Acquire)
    }
}

/// `/mutate` and `/validate`.
pub fn admission_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .with_state(app)
}

/// `/healthz`, `/readyz`, `/metrics`.
pub fn health_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else if app.shutting_down.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "caches not synced yet (namespaces, serviceaccounts)\n",
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

fn mutate(State(app): State<Arc<App>>, request: Request) -> impl Future<Output = Response> {
    review(app, Endpoint::Mutate, request)
}

fn validate(State(app): State<Arc<App>>, request: Request) -> impl Future<Output = Response> {
    review(app, Endpoint::Validate, request)
}

fn plain_error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// Not an `async fn`: the request's head is read before the future is made, so the future
/// (which axum allocates and moves for every request) holds the body, not the whole request.
fn review(app: Arc<App>, endpoint: Endpoint, request: Request) -> impl Future<Output = Response> {
    let started = Instant::now();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = request.into_body();
    async move {
        let (outcome, response) = review_inner(&app, endpoint, declared, body).await;
        app.metrics
            .endpoint(endpoint)
            .record(outcome, started.elapsed());
        response
    }
}

/// Reads the body with a size limit (checked against `declared`, the Content-Length, first)
/// and a deadline.
async fn read_body(
    app: &App,
    declared: Option<u64>,
    body: Body,
) -> Result<bytes::Bytes, (Outcome, Response)> {
    let limit = app.max_body_bytes;
    let too_large = || {
        (
            Outcome::too_large,
            plain_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {limit} bytes (--max-body-bytes)"),
            ),
        )
    };
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut collect = std::pin::pin!(Limited::new(body, limit).collect());
    // The body usually came in with the head: then no timer is set up for it.
    let collected = match futures::poll!(collect.as_mut()) {
        std::task::Poll::Ready(collected) => Ok(collected),
        // Boxed for the same reason as the cache fetch: the timer's state is large.
        std::task::Poll::Pending => {
            Box::pin(tokio::time::timeout(app.client_timeout, collect)).await
        }
    };
    let deadline = app.client_timeout;
    match collected {
        Err(_) => Err((
            Outcome::timeout,
            plain_error(
                StatusCode::REQUEST_TIMEOUT,
                format!("request body not received within {deadline:?}"),
            ),
        )),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(err)) => Err((
            Outcome::bad_request,
            plain_error(
                StatusCode::BAD_REQUEST,
                format!("could not read request body: {err}"),
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

async fn review_inner(
    app: &App,
    endpoint: Endpoint,
    declared: Option<u64>,
    body: Body,
) -> (Outcome, Response) {
    let body = match read_body(app, declared, body).await {
        Ok(body) => body,
        Err(failed) => return failed,
    };
    let req = match admission::parse_review_for(endpoint, &body) {
        Ok(req) => req,
        Err(err) => {
            debug!(endpoint = endpoint.as_str(), error = %err, "bad request");
            return (
                Outcome::bad_request,
                plain_error(StatusCode::BAD_REQUEST, err.to_string()),
            );
        }
    };
    let cache = app.cache.as_ref();
    let decided = match crate::decide(endpoint, &req, cache, &app.injection) {
        Ok(decided) => decided,
        Err(missing) => {
            // Boxed: a miss is rare, and the GET's state would otherwise make every
            // request's future (which axum allocates and moves) a few KB larger.
            match Box::pin(app.cache.fetch(&missing)).await {
                Ok(()) => {}
                // Chosen by the operator: not worth a line per request.
                Err(err @ FetchError::LookupDisabled { .. }) => {
                    debug!(error = %err, "cache miss; deciding without it");
                }
                Err(err) => warn!(error = %err, "cache miss not resolved; deciding without it"),
            }
            crate::decide(endpoint, &req, &FinalView(cache), &app.injection).unwrap_or_else(
                // FinalView never reports a miss; kept total rather than panicking.
                |missing| {
                    AdmissionResponse::deny(
                        &req.uid,
                        503,
                        "ServiceUnavailable",
                        format!("cluster state not available: {missing:?}"),
                    )
                },
            )
        }
    };
    let outcome = record_decision(app, endpoint, &req.kind, &decided);
    let encoded = admission::encode_review(&decided);
    (
        outcome,
        ([(header::CONTENT_TYPE, "application/json")], encoded).into_response(),
    )
}

fn record_decision(
    app: &App,
    endpoint: Endpoint,
    kind: &GroupVersionKind<'_>,
    decided: &AdmissionResponse,
) -> Outcome {
    let m = &app.metrics;
    match decided.violation {
        Some(Violation::ServiceAccount(mode)) => m.violation(mode).inc(),
        Some(Violation::InvalidPolicy) => m.denials_policy_invalid.inc(),
        None => 0,
    };
    if decided.unhandled_kind && m.unhandled_kinds.record(endpoint, &kind.group, &kind.kind) {
        // Once per kind: a mis-registered rule sends every object of that kind here.
        warn!(
            endpoint = endpoint.as_str(),
            group = %kind.group,
            kind = %kind.kind,
            "received a kind this endpoint does not handle (logged once per kind; counted in mlplatform_webhook_unhandled_kind_total); remove it from the webhook configuration's rules"
        );
    }
    let kind = kind.kind.as_ref();
    if !decided.allowed {
        return Outcome::denied;
    }
    if !decided.patch.is_empty() {
        if endpoint == Endpoint::Mutate && kind == "Pod" {
            m.pods_patched.inc();
        } else {
            m.service_accounts_patched.inc();
        }
        return Outcome::patched;
    }
    if decided.warnings.is_empty() {
        Outcome::allowed
    } else {
        Outcome::warned
    }
}

/// When a connection last started a request, read by its idle watchdog.
struct Activity {
    opened: Instant,
    /// Nanoseconds from `opened` to the start of the latest request; `u64::MAX`: none yet.
    last_request: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_request: AtomicU64::new(u64::MAX),
        }
    }

    fn touch(&self) {
        let since = self.opened.elapsed().as_nanos();
        self.last_request.store(
            u64::try_from(since).unwrap_or(u64::MAX - 1),
            Ordering::Relaxed,
        );
    }

    /// When the connection counts as idle: `client` after it opened if it never sent a
    /// request, else `idle` after its latest request started.
    fn deadline(&self, timeouts: ConnectionTimeouts) -> Instant {
        match self.last_request.load(Ordering::Relaxed) {
            u64::MAX => later(self.opened, timeouts.client),
            nanos => later(self.opened + Duration::from_nanos(nanos), timeouts.idle),
        }
    }
}

/// `at + after`, for any flag value: a timeout too large for an `Instant` means a year.
fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .or_else(|| at.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(at)
}

/// The router as a hyper service that records each request's start for the idle watchdog
/// (in `call`, so the request's future is the router's own, not wrapped).
#[derive(Clone)]
struct Touching<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: hyper::service::Service<R>, R> hyper::service::Service<R> for Touching<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.activity.touch();
        self.inner.call(request)
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then drains connections
/// for at most `grace`. Connections are bounded by `timeouts`: a client that does not finish
/// its handshake or send a request head in time, or a keep-alive connection left idle, is
/// closed (gracefully: a request in flight is still answered; h2 gets a GOAWAY).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    timeouts: ConnectionTimeouts,
) {
    let acceptor = TlsAcceptor::from(tls);
    // Each connection task holds a receiver; `closed()` resolves once all have ended.
    let (live, _) = watch::channel(());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog bounds waiting for request heads; hyper's own header timer would also
    // cut keep-alive connections at the client timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Usually EMFILE: back off instead of spinning.
                warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let live = live.subscribe();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(timeouts.client, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            serve_connection(&builder, tls, router, peer, shutdown, timeouts).await;
            drop(live);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, live.closed()).await.is_err() {
        warn!(
            ?grace,
            "in-flight admission requests did not finish within the grace period"
        );
    }
}

/// Serves one connection until the client closes it, it idles past its deadline, or the
/// server shuts down.
async fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    router: Router,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    timeouts: ConnectionTimeouts,
) {
    let activity = Arc::new(Activity::new());
    let service = Touching {
        inner: TowerToHyperService::new(router),
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    // Set once a graceful close has started: the connection is dropped if it is still open
    // then (a peer that never reads, or never answers h2's GOAWAY ping).
    let mut hard_deadline: Option<Instant> = None;
    let mut draining = false;
    loop {
        let wake = hard_deadline.unwrap_or_else(|| activity.deadline(timeouts));
        // Biased: the connection first (it is what woke the task almost every time), and
        // no random branch order to draw per poll.
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(err) = result {
                    debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(wake.into()) => {
                if hard_deadline.is_some() {
                    debug!(%peer, "connection did not close in time; dropping it");
                    return;
                }
                // A request may have started since the deadline was computed.
                if activity.deadline(timeouts) <= Instant::now() {
                    debug!(%peer, "closing idle connection");
                    conn.as_mut().graceful_shutdown();
                    hard_deadline = Some(later(Instant::now(), timeouts.client));
                }
            }
            _ = shutdown.wait_for(|stop| *stop), if !draining => {
                // In-flight requests finish; the server bounds the wait by its grace period.
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Serves the health router on `listener` until `shutdown` resolves.
pub async fn serve_health(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        let _ = drained_tx.send(());
    });
    let server = std::pin::pin!(server.into_future());
    // After shutdown starts, bound the wait for idle scrapers' connections.
    let bounded = async {
        let _ = drained_rx.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => if let Err(err) = result { error!(error = %err, "health server failed") },
        () = bounded => {}
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {flag} {addr}: {source}")]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read --kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no Kubernetes configuration found (not in a cluster, no KUBECONFIG or ~/.kube/config): {0}; pass --kubeconfig"
    )]
    InferConfig(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client, RunError> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let config = match kubeconfig {
        Some(path) => {
            let to_err = |source| RunError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(to_err)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(to_err)?
        }
        None => match Config::incluster() {
            Ok(config) => config,
            Err(_) => Config::infer().await.map_err(RunError::InferConfig)?,
        },
    };
    kube::Client::try_from(config).map_err(RunError::Client)
}

async fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { flag, addr, source })
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    warn!(error = %err, "cannot listen for SIGTERM; only ctrl-c stops the server");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The runtime the webhook (and the benchmark's null server) serves on. With one core to
/// use (a CPU limit of 1, or pinned), tokio's current-thread scheduler: the same work without
/// the multi-thread scheduler's cross-thread queues and atomics; otherwise one worker per core.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // Counts the cgroup CPU quota and the affinity mask, so a pod limited to one CPU gets one.
    runtime_for(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

fn runtime_for(cores: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// Runs the webhook until `shutdown` resolves. Everything that can be wrong with the flags
/// (certificate files, kubeconfig, addresses) is checked before serving.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = ReloadingCert::load(
        args.tls_cert_file.clone(),
        args.tls_key_file.clone(),
        provider.clone(),
    )?;
    let tls = Arc::new(crate::tls::server_config(cert.clone(), provider)?);
    let client = kube_client(args.kubeconfig.as_deref()).await?;

    let metrics = Metrics::new();
    let cache = ClusterCache::with_service_account_lookup_timeout(
        client,
        metrics.clone(),
        args.service_account_lookup_timeout(),
    );
    let timeouts = args.connection_timeouts();
    let app = App::with_client_timeout(
        cache.clone(),
        args.injection_config(),
        metrics.clone(),
        args.max_body_bytes,
        timeouts.client,
    );

    let tls_listener = bind("--listen", args.listen).await?;
    let health_listener = bind("--health-listen", args.health_listen).await?;
    let tls_addr = tls_listener.local_addr().unwrap_or(args.listen);
    let health_addr = health_listener.local_addr().unwrap_or(args.health_listen);
    info!(addr = %tls_addr, "listening on https://{tls_addr}");
    info!(addr = %health_addr, "health listening on http://{health_addr}");

    let watchers = tokio::spawn(cache.run_watchers());
    let cert_poller = tokio::spawn(cert.watch(CERT_POLL_INTERVAL, metrics));

    let (stop_tx, stop_rx) = watch::channel(false);
    let grace = args.shutdown_grace();
    let tls_server = tokio::spawn(serve_tls(
        tls_listener,
        tls,
        admission_router(app.clone()),
        stop_rx.clone(),
        grace,
        timeouts,
    ));
    let health_server = tokio::spawn(serve_health(
        health_listener,
        health_router(app.clone()),
        stop_rx,
        grace,
    ));

    shutdown.await;
    info!("shutting down: draining in-flight requests");
    app.shutting_down.store(true, Ordering::Release);
    let _ = stop_tx.send(true);
    let _ = tls_server.await;
    let _ = health_server.await;
    watchers.abort();
    cert_poller.abort();
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_core_gets_the_current_thread_scheduler_and_it_runs_everything() {
        use tokio::runtime::RuntimeFlavor;
        let runtime = runtime_for(1).unwrap();
        assert_eq!(
            runtime.handle().runtime_flavor(),
            RuntimeFlavor::CurrentThread
        );
        // Spawned tasks, timers and blocking work (the certificate poller) all run on it.
        let answer = runtime.block_on(async {
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tokio::task::spawn_blocking(|| 7).await
            })
            .await
        });
        assert_eq!(answer.unwrap().unwrap(), 7);
        assert_eq!(
            runtime_for(2).unwrap().handle().runtime_flavor(),
            RuntimeFlavor::MultiThread
        );
    }

    #[test]
    fn idle_deadlines_follow_the_latest_request_and_never_overflow() {
        let timeouts = ConnectionTimeouts {
            client: Duration::from_secs(1),
            idle: Duration::from_secs(5),
        };
        let activity = Activity::new();
        assert_eq!(
            activity.deadline(timeouts),
            activity.opened + timeouts.client
        );
        activity.touch();
        let deadline = activity.deadline(timeouts);
        assert!(deadline >= activity.opened + timeouts.idle);
        assert!(deadline <= Instant::now() + timeouts.idle);
        let huge = ConnectionTimeouts {
            client: Duration::from_secs(u64::MAX),
            idle: Duration::from_secs(u64::MAX),
        };
        assert!(activity.deadline(huge) > Instant::now());
    }
}

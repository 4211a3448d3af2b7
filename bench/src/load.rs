//! The load generator: keep-alive HTTPS/1.1 connections driving one POST body.
//!
//! Two shapes: closed loop (fixed concurrency, as fast as the server answers) for
//! throughput, and open loop (fixed arrival rate) for latency at a given load. Open-loop
//! latency is measured from each request's scheduled start, so a stalled server shows up
//! in the percentiles instead of silently lowering the rate (coordinated omission).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP to {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("building a request: {0}")]
    Request(#[from] http::Error),
}

/// Where and what to send.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    pub path: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub body: Bytes,
}

/// Decides whether a response is the right answer (not merely a 200).
pub type ResponseCheck = Arc<dyn Fn(StatusCode, &[u8]) -> bool + Send + Sync>;

/// What a run saw.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub latencies_ns: Vec<u64>,
    /// Transport failures (connect, TLS, HTTP).
    pub errors: u64,
    /// Answers that the check rejected.
    pub wrong: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl RunOutcome {
    fn merge(&mut self, other: RunOutcome) {
        self.latencies_ns.extend(other.latencies_ns);
        self.errors += other.errors;
        self.wrong += other.wrong;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn fail(&mut self, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert(message);
    }
}

/// One keep-alive HTTPS/1.1 connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    target: Target,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Self, LoadError> {
        let addr = target.addr;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| LoadError::Connect { addr, source })?;
        tcp.set_nodelay(true)
            .map_err(|source| LoadError::Connect { addr, source })?;
        let tls = TlsConnector::from(target.tls.clone())
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|source| LoadError::Connect { addr, source })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|source| LoadError::Http { addr, source })?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; errors surface on send.
            let _closed = connection.await;
        });
        Ok(Self {
            sender,
            target: target.clone(),
        })
    }

    /// POSTs the target body, returns status and the whole response body.
    pub async fn post(&mut self) -> Result<(StatusCode, Bytes), LoadError> {
        let addr = self.target.addr;
        let request = Request::post(self.target.path.as_str())
            .header(header::HOST, addr.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(self.target.body.clone()))?;
        self.sender
            .ready()
            .await
            .map_err(|source| LoadError::Http { addr, source })?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|source| LoadError::Http { addr, source })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|source| LoadError::Http { addr, source })?
            .to_bytes();
        Ok((status, body))
    }
}

/// Sends one request on `conn` (reconnecting first if needed) and records the result with
/// latency measured from `start`.
async fn one_request(
    conn: &mut Option<Connection>,
    target: &Target,
    check: &ResponseCheck,
    start: Instant,
    out: &mut RunOutcome,
) {
    if conn.is_none() {
        match Connection::open(target).await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                out.fail(e.to_string());
                return;
            }
        }
    }
    let Some(c) = conn.as_mut() else { return };
    match c.post().await {
        Ok((status, body)) => {
            out.latencies_ns.push(start.elapsed().as_nanos() as u64);
            if !check(status, &body) {
                out.wrong += 1;
                out.first_error.get_or_insert_with(|| {
                    format!(
                        "wrong answer (HTTP {status}): {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
            }
        }
        Err(e) => {
            out.fail(e.to_string());
            *conn = None;
        }
    }
}

/// `concurrency` connections, each sending back to back until `duration` has passed.
pub async fn closed_loop(
    target: &Target,
    concurrency: usize,
    duration: Duration,
    check: &ResponseCheck,
) -> RunOutcome {
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..concurrency.max(1)).map(|_| {
        let target = target.clone();
        let check = check.clone();
        tokio::spawn(async move {
            let mut out = RunOutcome::default();
            let mut conn = None;
            while Instant::now() < deadline {
                one_request(&mut conn, &target, &check, Instant::now(), &mut out).await;
            }
            out
        })
    });
    collect(futures::future::join_all(workers).await, started)
}

/// `rate` requests per second for `duration`, spread over `connections` connections: request
/// k goes out at `start + k / rate` on connection `k % connections`.
pub async fn fixed_rate(
    target: &Target,
    rate: u32,
    connections: usize,
    duration: Duration,
    check: &ResponseCheck,
) -> RunOutcome {
    let connections = connections.max(1);
    let total = (f64::from(rate) * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now() + Duration::from_millis(20);
    let workers = (0..connections).map(|worker| {
        let target = target.clone();
        let check = check.clone();
        tokio::spawn(async move {
            let mut out = RunOutcome::default();
            let mut conn = Connection::open(&target).await.ok();
            let mut k = worker as u64;
            while k < total {
                let scheduled = started + interval.mul_f64(k as f64);
                sleep_precisely_until(scheduled).await;
                one_request(&mut conn, &target, &check, scheduled, &mut out).await;
                k += connections as u64;
            }
            out
        })
    });
    collect(futures::future::join_all(workers).await, started)
}

/// tokio's timer has millisecond granularity, which would add up to a millisecond to every
/// open-loop sample; so sleep coarsely, then yield until the exact instant (the client has
/// a core of its own).
async fn sleep_precisely_until(until: Instant) {
    if let Some(coarse) = until.checked_sub(Duration::from_millis(2))
        && coarse > Instant::now()
    {
        tokio::time::sleep_until(coarse.into()).await;
    }
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

fn collect(
    results: Vec<Result<RunOutcome, tokio::task::JoinError>>,
    started: Instant,
) -> RunOutcome {
    let mut total = RunOutcome::default();
    for result in results {
        match result {
            Ok(out) => total.merge(out),
            Err(e) => total.fail(format!("load worker failed: {e}")),
        }
    }
    total.elapsed = started.elapsed();
    total
}

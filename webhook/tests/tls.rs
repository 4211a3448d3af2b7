//! Real TLS: certificate rotation through kubelet-style symlink swaps while a keep-alive
//! connection and an in-flight request stay up; TLS 1.1 and plain HTTP refused; connections
//! that send nothing (or stop half-way through a handshake or request head) are closed within
//! the client timeout, keep-alive connections within the idle timeout.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Pki, client_config, pod_review, served_leaf, tls_connect};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mlplatform_webhook::cache::ClusterCache;
use mlplatform_webhook::metrics::Metrics;
use mlplatform_webhook::mutate::InjectionConfig;
use mlplatform_webhook::server::{App, ConnectionTimeouts, admission_router, serve_tls};
use mlplatform_webhook::tls::{ReloadingCert, server_config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

struct Running {
    addr: SocketAddr,
    metrics: Metrics,
    stop: watch::Sender<bool>,
}

/// Serves /mutate over TLS from `cert`/`key`, polling them every 50 ms.
async fn start(cert: &Path, key: &Path) -> Running {
    start_with(cert, key, ConnectionTimeouts::default()).await
}

async fn start_with(cert: &Path, key: &Path, timeouts: ConnectionTimeouts) -> Running {
    let metrics = Metrics::new();
    let cache = ClusterCache::offline(metrics.clone());
    let app = App::new(cache, InjectionConfig::default(), metrics.clone(), 1 << 20);
    let provider = common::provider();
    let reloading = ReloadingCert::load(cert.to_owned(), key.to_owned(), provider.clone()).unwrap();
    let tls = Arc::new(server_config(reloading.clone(), provider).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve_tls(
        listener,
        tls,
        admission_router(app),
        stop_rx,
        Duration::from_secs(5),
        timeouts,
    ));
    tokio::spawn(reloading.watch(Duration::from_millis(50), metrics.clone()));
    Running {
        addr,
        metrics,
        stop,
    }
}

/// Kubelet's Secret volume layout: `tls.crt -> ..data/tls.crt`, `..data -> ..<version>`.
fn write_secret_version(dir: &Path, version: &str, pki: &Pki) {
    let version_dir = dir.join(version);
    std::fs::create_dir(&version_dir).unwrap();
    pki.write(&version_dir.join("tls.crt"), &version_dir.join("tls.key"));
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}

async fn wait_for_leaf(
    addr: SocketAddr,
    cas: &[&rustls_pki_types::CertificateDer<'static>],
    want: &Pki,
) {
    for _ in 0..100 {
        if served_leaf(addr, cas).await == want.leaf_der {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server never served the rotated certificate");
}

type Sender<B> = hyper::client::conn::http1::SendRequest<B>;

async fn http1_connection<B>(
    addr: SocketAddr,
    cas: &[&rustls_pki_types::CertificateDer<'static>],
) -> Sender<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tls_connect(
        addr,
        client_config(cas, rustls::DEFAULT_VERSIONS, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn mutate_request<B>(body: B) -> Request<B> {
    Request::post("/mutate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

async fn uid_of(response: http::Response<hyper::body::Incoming>) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap();
    review["response"]["uid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_serves_new_cert_and_keeps_existing_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (Pki::new("ca-one"), Pki::new("ca-two"));
    write_secret_version(dir.path(), "..v1", &one);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let server = start(&cert, &key).await;
    let cas = [&one.ca_der, &two.ca_der];
    assert!(served_leaf(server.addr, &cas).await == one.leaf_der);

    // A keep-alive connection with one request done, and one with a request half sent.
    let mut keep_alive = http1_connection::<Full<Bytes>>(server.addr, &cas).await;
    let body = Bytes::from(serde_json::to_vec(&pod_review("before", "ns", "sa")).unwrap());
    let response = keep_alive
        .send_request(mutate_request(Full::new(body)))
        .await
        .unwrap();
    assert_eq!(uid_of(response).await, "before");

    let mut in_flight = http1_connection::<StreamBody<_>>(server.addr, &cas).await;
    let (chunks_tx, chunks_rx) =
        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let streamed = StreamBody::new(tokio_stream_from(chunks_rx));
    let pending =
        tokio::spawn(async move { in_flight.send_request(mutate_request(streamed)).await });
    let body = serde_json::to_vec(&pod_review("in-flight", "ns", "sa")).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    chunks_tx
        .send(Ok(Frame::data(Bytes::copy_from_slice(first))))
        .await
        .unwrap();

    write_secret_version(dir.path(), "..v2", &two);
    wait_for_leaf(server.addr, &cas, &two).await;

    chunks_tx
        .send(Ok(Frame::data(Bytes::copy_from_slice(rest))))
        .await
        .unwrap();
    drop(chunks_tx);
    let response = pending
        .await
        .unwrap()
        .expect("in-flight request failed across rotation");
    assert_eq!(uid_of(response).await, "in-flight");

    let body = Bytes::from(serde_json::to_vec(&pod_review("after", "ns", "sa")).unwrap());
    let response = keep_alive
        .send_request(mutate_request(Full::new(body)))
        .await
        .expect("keep-alive connection failed after rotation");
    assert_eq!(uid_of(response).await, "after");

    // A fresh hyper-rustls client that trusts only the new CA works.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(&[&two.ca_der], rustls::DEFAULT_VERSIONS, &[]))
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(connector);
    let body = Bytes::from(serde_json::to_vec(&pod_review("new-client", "ns", "sa")).unwrap());
    let request = Request::post(format!("https://localhost:{}/mutate", server.addr.port()))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A broken new pair is refused and the working one kept.
    std::fs::write(dir.path().join("..v2/tls.crt"), "not a certificate").unwrap();
    let metrics = &server.metrics;
    for _ in 0..100 {
        if metrics
            .encode()
            .contains(r#"tls_reloads_total{result="failed"} 1"#)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = metrics.encode();
    assert!(
        text.contains(r#"tls_reloads_total{result="failed"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tls_reloads_total{result="ok"} 1"#),
        "{text}"
    );
    assert!(served_leaf(server.addr, &cas).await == two.leaf_der);
    let _ = server.stop.send(true);
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A TLS 1.1 ClientHello (no supported_versions extension) with TLS 1.1-era suites.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend([7u8; 32]); // random
    hello.push(0); // session id
    hello.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, RSA-AES128-SHA
    hello.extend([0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, (hello.len() >> 8) as u8, hello.len() as u8];
    handshake.extend(hello);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend(handshake);
    record
}

async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_tls_1_1_and_plain_http_but_speaks_tls_1_2_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("ca");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.write(&cert, &key);
    let server = start(&cert, &key).await;

    let reply = raw_exchange(server.addr, &tls11_client_hello()).await;
    // No ServerHello: either an alert record (0x15) or a closed connection.
    assert!(
        reply.first() != Some(&0x16),
        "server answered a TLS 1.1 hello: {reply:?}"
    );
    if let Some(&first) = reply.first() {
        assert_eq!(first, 0x15, "expected an alert, got {reply:?}");
    }

    let reply = raw_exchange(
        server.addr,
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert!(
        !reply.starts_with(b"HTTP/"),
        "plain HTTP was served: {}",
        String::from_utf8_lossy(&reply)
    );

    let tls12 = tls_connect(
        server.addr,
        client_config(&[&pki.ca_der], &[&rustls::version::TLS12], &[b"h2"]),
    )
    .await
    .expect("TLS 1.2 must be accepted");
    let (_, conn) = tls12.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls12))
            .await
            .unwrap();
    tokio::spawn(connection);
    let body = Bytes::from(serde_json::to_vec(&pod_review("h2", "ns", "sa")).unwrap());
    let request = Request::post("https://localhost/mutate")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(uid_of(response).await, "h2");
    let _ = server.stop.send(true);
}

/// Reads until the server closes the connection (EOF or error); the time it took, or `None`
/// if it stayed open for `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    mut stream: S,
    opened: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| opened.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_keep_alive_clients_keep_working() {
    const CLIENT: Duration = Duration::from_millis(300);
    const IDLE: Duration = Duration::from_millis(1_000);
    // Far above the bounds, far below "held for 60 s": only reached when nothing closes them.
    const LIMIT: Duration = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("ca");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.write(&cert, &key);
    let timeouts = ConnectionTimeouts {
        client: CLIENT,
        idle: IDLE,
    };
    let server = start_with(&cert, &key, timeouts).await;
    let cas = [&pki.ca_der];

    // 30 handshaken connections that never send a request, over both ALPN protocols; 5 that
    // stop half-way through a request head; 5 TCP connections that never send a ClientHello.
    let mut silent = Vec::new();
    for i in 0..30 {
        let alpn: &[&[u8]] = if i % 2 == 0 { &[b"h2"] } else { &[b"http/1.1"] };
        let config = client_config(&cas, rustls::DEFAULT_VERSIONS, alpn);
        let stream = tls_connect(server.addr, config).await.unwrap();
        silent.push(tokio::spawn(closed_within(stream, Instant::now(), LIMIT)));
    }
    for _ in 0..5 {
        let config = client_config(&cas, rustls::DEFAULT_VERSIONS, &[b"http/1.1"]);
        let mut stream = tls_connect(server.addr, config).await.unwrap();
        stream
            .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        silent.push(tokio::spawn(closed_within(stream, Instant::now(), LIMIT)));
    }
    for _ in 0..5 {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        silent.push(tokio::spawn(closed_within(tcp, Instant::now(), LIMIT)));
    }

    // Meanwhile keep-alive clients (HTTP/1.1 and h2) send requests with pauses longer than
    // the client timeout but shorter than the idle timeout: every request is served on the
    // same connection, which the server closes only after it idles for the idle timeout.
    let h1 = async {
        let stream = tls_connect(
            server.addr,
            client_config(&cas, rustls::DEFAULT_VERSIONS, &[b"http/1.1"]),
        )
        .await
        .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        for i in 0..4 {
            if i > 0 {
                tokio::time::sleep(CLIENT + Duration::from_millis(150)).await;
            }
            let uid = format!("h1-{i}");
            let body = Bytes::from(serde_json::to_vec(&pod_review(&uid, "ns", "sa")).unwrap());
            let response = sender
                .send_request(mutate_request(Full::new(body)))
                .await
                .unwrap_or_else(|e| panic!("keep-alive request {i} failed: {e}"));
            assert_eq!(uid_of(response).await, uid);
        }
        let last = Instant::now();
        let closed = tokio::time::timeout(LIMIT, conn).await;
        closed.ok().map(|_| last.elapsed())
    };
    let h2 = async {
        let stream = tls_connect(
            server.addr,
            client_config(&cas, rustls::DEFAULT_VERSIONS, &[b"h2"]),
        )
        .await
        .unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        for i in 0..4 {
            if i > 0 {
                tokio::time::sleep(CLIENT + Duration::from_millis(150)).await;
            }
            // Two concurrent streams per round on the one connection.
            let requests = (0..2).map(|j| {
                let mut sender = sender.clone();
                let uid = format!("h2-{i}-{j}");
                async move {
                    let body =
                        Bytes::from(serde_json::to_vec(&pod_review(&uid, "ns", "sa")).unwrap());
                    let request = Request::post("https://localhost/mutate")
                        .header("content-type", "application/json")
                        .body(Full::new(body))
                        .unwrap();
                    let response = sender
                        .send_request(request)
                        .await
                        .unwrap_or_else(|e| panic!("h2 request {uid} failed: {e}"));
                    assert_eq!(uid_of(response).await, uid);
                }
            });
            futures::future::join_all(requests).await;
        }
        let last = Instant::now();
        let closed = tokio::time::timeout(LIMIT, conn).await;
        closed.ok().map(|_| last.elapsed())
    };
    let (h1_idle, h2_idle) = tokio::join!(h1, h2);

    for (i, conn) in silent.into_iter().enumerate() {
        let closed = conn.await.unwrap();
        let Some(after) = closed else {
            panic!("silent connection {i} still open after {LIMIT:?}");
        };
        // Closed by the bound, not at once: a client that is merely slow to start gets its time.
        assert!(
            after >= CLIENT - Duration::from_millis(100),
            "silent connection {i} closed after {after:?}, before the {CLIENT:?} bound"
        );
    }
    for (protocol, idle) in [("HTTP/1.1", h1_idle), ("h2", h2_idle)] {
        let Some(idle) = idle else {
            panic!("idle {protocol} keep-alive connection still open after {LIMIT:?}");
        };
        assert!(
            idle >= IDLE - Duration::from_millis(100),
            "{protocol} keep-alive connection closed after {idle:?}, before the idle timeout {IDLE:?}"
        );
    }
    let _ = server.stop.send(true);
}

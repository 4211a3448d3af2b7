//! The ceiling: the webhook's stack (axum on hyper, rustls with ring, tokio) answering every
//! AdmissionReview with a fixed "allowed" after parsing the body into `serde_json::Value`.
//! Whatever the webhook does beyond this costs throughput; the ratio shows how much.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Answers any AdmissionReview with `allowed: true`, echoing its uid.
async fn allow(body: Bytes) -> Response {
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not JSON: {e}")).into_response(),
    };
    let uid = review
        .pointer("/request/uid")
        .cloned()
        .unwrap_or(Value::Null);
    let answer = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": { "uid": uid, "allowed": true },
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

pub fn router() -> Router {
    Router::new()
        .route("/mutate", post(allow))
        .route("/validate", post(allow))
}

/// Serves HTTPS on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let app = router();
    loop {
        let (tcp, peer): (_, SocketAddr) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            if tcp.set_nodelay(true).is_err() {
                return;
            }
            let Ok(tls) = acceptor.accept(tcp).await else {
                log_handshake_failure(peer, "TLS handshake failed");
                return;
            };
            let service = hyper::service::service_fn(move |req| app.clone().oneshot(req));
            let _done = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// The ceiling logs nothing per request (neither does the webhook at level warn); handshake
/// failures go to stderr so a misconfigured client is visible.
fn log_handshake_failure(peer: SocketAddr, what: &str) {
    eprintln!("noop-ceiling: {peer}: {what}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Connection, Target};
    use crate::pki::{TestPki, server_config};
    use rustls_pki_types::ServerName;

    #[tokio::test]
    async fn answers_allowed_with_the_uid_over_tls() {
        let pki = TestPki::generate(&["127.0.0.1"]).unwrap();
        let tls = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, Arc::new(tls)));
        let review = crate::review::pod_create_review("uid-7", &crate::review::training_pod());
        let target = Target {
            addr,
            server_name: ServerName::try_from("127.0.0.1").unwrap(),
            path: "/mutate".into(),
            tls: pki.client_config().unwrap(),
            body: review.to_string().into(),
        };
        let mut conn = Connection::open(&target).await.unwrap();
        for _ in 0..3 {
            let (status, body) = conn.post().await.unwrap();
            assert_eq!(status, StatusCode::OK);
            crate::review::check_allowed(&body, "uid-7").unwrap();
        }
        assert!(crate::review::check_allowed(b"{}", "uid-7").is_err());
        server.abort();
    }
}

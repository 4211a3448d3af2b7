//! The floor: the webhook's own HTTPS stack (its TLS config and `serve_tls`, axum on hyper,
//! rustls with ring, tokio) answering every AdmissionReview without parsing it: the request
//! uid is found by a byte search and spliced into a fixed answer. What the webhook costs above
//! this is its parsing, deciding and encoding.
//!
//! The fixed answer is "allowed" (about 100 bytes) unless an answer file is given: then it is
//! that answer, e.g. the webhook's own 2.4 KB patch for the benchmark's pod, so the floor also
//! pays for sending what the webhook sends.
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mlplatform_webhook::server::{ConnectionTimeouts, serve_tls};
use tokio::net::TcpListener;
use tokio::sync::watch;

const PREFIX: &[u8] =
    br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":""#;
const SUFFIX: &[u8] = br#"","allowed":true}}"#;

/// The first `"uid":"..."` value in `body`: the request's own uid in the API server's field
/// order (`request.uid` is its first field).
pub fn find_uid(body: &[u8]) -> Option<&[u8]> {
    let (start, len) = uid_span(body)?;
    Some(&body[start..start + len])
}

/// Where the first `"uid":"..."` value is: its start and length.
fn uid_span(body: &[u8]) -> Option<(usize, usize)> {
    const KEY: &[u8] = br#""uid":""#;
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some((start, len))
}

/// The fixed answer, split around its uid.
#[derive(Debug, Clone)]
pub struct Answer {
    before_uid: Bytes,
    after_uid: Bytes,
}

impl Default for Answer {
    /// "allowed", nothing else.
    fn default() -> Self {
        Self {
            before_uid: Bytes::from_static(PREFIX),
            after_uid: Bytes::from_static(SUFFIX),
        }
    }
}

impl Answer {
    /// A full AdmissionReview answer; each request's uid replaces the one in it.
    pub fn from_review(review: &[u8]) -> Option<Self> {
        let (start, len) = uid_span(review)?;
        Some(Self {
            before_uid: Bytes::copy_from_slice(&review[..start]),
            after_uid: Bytes::copy_from_slice(&review[start + len..]),
        })
    }
}

async fn echo(State(answer): State<Arc<Answer>>, body: Bytes) -> Response {
    let Some(uid) = find_uid(&body) else {
        return (StatusCode::BAD_REQUEST, "no uid").into_response();
    };
    let mut out = Vec::with_capacity(answer.before_uid.len() + uid.len() + answer.after_uid.len());
    out.extend_from_slice(&answer.before_uid);
    out.extend_from_slice(uid);
    out.extend_from_slice(&answer.after_uid);
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// The null server's routes, answering with "allowed".
pub fn router() -> Router {
    router_with(Answer::default())
}

/// The null server's routes, answering with `answer`.
pub fn router_with(answer: Answer) -> Router {
    Router::new()
        .route("/mutate", post(echo))
        .route("/validate", post(echo))
        .with_state(Arc::new(answer))
}

/// Serves HTTPS on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, answer: Answer) {
    // Never signalled: the bench kills the process.
    let (_stop, stop_rx) = watch::channel(false);
    serve_tls(
        listener,
        tls,
        router_with(answer),
        stop_rx,
        Duration::from_secs(1),
        ConnectionTimeouts::default(),
    )
    .await;
}

/// The webhook's own TLS configuration (certificate resolver with reload, TLS 1.2+, ALPN).
pub fn webhook_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = mlplatform_webhook::tls::ReloadingCert::load(
        cert.to_owned(),
        key.to_owned(),
        provider.clone(),
    )?;
    Ok(Arc::new(mlplatform_webhook::tls::server_config(
        cert, provider,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Connection, Target};
    use crate::pki::TestPki;
    use rustls_pki_types::ServerName;

    #[test]
    fn finds_the_request_uid_first() {
        let body = crate::review::pod_create_review_body("uid-1", &crate::review::training_pod());
        assert_eq!(find_uid(body.as_bytes()), Some(&b"uid-1"[..]));
        assert_eq!(find_uid(b"{}"), None);
        assert_eq!(find_uid(br#"{"uid":"unterminated"#), None);
    }

    #[tokio::test]
    async fn answers_with_a_given_review_under_each_requests_uid() {
        use tower::ServiceExt as _;
        let given = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"old","allowed":true,"patchType":"JSONPatch","patch":"W10="}}"#;
        let answer = Answer::from_review(given).unwrap();
        assert!(Answer::from_review(b"{}").is_none());
        let body = crate::review::pod_create_review_body("uid-9", &crate::review::training_pod());
        let request = axum::http::Request::post("/mutate")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = router_with(answer).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let out = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let expected = String::from_utf8(given.to_vec())
            .unwrap()
            .replace(r#""uid":"old""#, r#""uid":"uid-9""#);
        assert_eq!(out, expected.as_bytes());
    }

    #[tokio::test]
    async fn echoes_the_uid_over_the_webhooks_tls_stack() {
        let pki = TestPki::generate(&["127.0.0.1"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let certs = pki.write_to(dir.path()).unwrap();
        let tls = crate::null::webhook_tls(&certs.cert, &certs.key).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, tls, Answer::default()));
        let body = crate::review::pod_create_review_body("uid-7", &crate::review::training_pod());
        let target = Target {
            addr,
            server_name: ServerName::try_from("127.0.0.1").unwrap(),
            path: "/mutate".into(),
            tls: pki.client_config().unwrap(),
            body: body.into(),
        };
        let mut conn = Connection::open(&target).await.unwrap();
        for _ in 0..3 {
            let (status, body) = conn.post().await.unwrap();
            assert_eq!(status, StatusCode::OK);
            crate::review::check_allowed(&body, "uid-7").unwrap();
        }
        server.abort();
    }
}

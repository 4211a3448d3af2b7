//! In-process HTTP tests through the real axum routers (tower `oneshot`), no sockets.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use base64::Engine as _;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mlplatform_webhook::cache::ClusterCache;
use mlplatform_webhook::cluster::{NamespaceEntry, ServiceAccountEntry};
use mlplatform_webhook::metrics::Metrics;
use mlplatform_webhook::mutate::InjectionConfig;
use mlplatform_webhook::server::{App, admission_router, health_router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const LIMIT: usize = 64 * 1024;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn app() -> Arc<App> {
    let metrics = Metrics::new();
    let cache = ClusterCache::offline(metrics.clone());
    let labels = map(&[("mlplatform.io/managed", "true")]);
    let annotations = map(&[
        ("mlplatform.io/user-service-account", "ml-user"),
        ("mlplatform.io/enforcement", "enforce"),
    ]);
    cache.insert_namespace(
        "ml-team",
        Some(NamespaceEntry::from_metadata(
            Some(&labels),
            Some(&annotations),
        )),
    );
    cache.insert_service_account(
        "ml-team",
        "ml-user",
        Some(ServiceAccountEntry::from_annotations(Some(&map(&[(
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::111122223333:role/r",
        )])))),
    );
    App::new(cache, InjectionConfig::default(), metrics, LIMIT)
}

fn pod_review(uid: &str, namespace: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": {
                "metadata": {"name": "p"},
                "spec": {"serviceAccountName": service_account, "containers": [{"name": "c", "image": "i"}]}
            }
        }
    })
}

async fn post(app: &Arc<App>, path: &str, body: impl Into<Body>) -> (StatusCode, Vec<u8>) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap();
    let response = admission_router(app.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

async fn get_health(app: &Arc<App>, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = health_router(app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn happy_mutate_returns_base64_json_patch() {
    let app = app();
    let body = serde_json::to_vec(&pod_review("u-1", "ml-team", "ml-user")).unwrap();
    let (status, out) = post(&app, "/mutate", body).await;
    assert_eq!(status, StatusCode::OK);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(out["response"]["uid"], "u-1");
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(out["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(out["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: Vec<Value> = serde_json::from_slice(&patch).unwrap();
    let paths: Vec<&str> = patch
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/volumes",
            "/spec/containers/0/env",
            "/spec/containers/0/volumeMounts"
        ]
    );
    let (_, metrics) = get_health(&app, "/metrics").await;
    assert!(
        metrics.contains(
            r#"mlplatform_webhook_requests_total{endpoint="mutate",outcome="patched"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"mlplatform_webhook_mutations_total{resource="pods"} 1"#));
}

#[tokio::test]
async fn happy_validate_denies_with_403_in_a_200_review() {
    let app = app();
    let body = serde_json::to_vec(&pod_review("u-2", "ml-team", "default")).unwrap();
    let (status, out) = post(&app, "/validate", body).await;
    assert_eq!(status, StatusCode::OK);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["response"]["uid"], "u-2");
    assert_eq!(out["response"]["allowed"], false);
    assert_eq!(out["response"]["status"]["code"], 403);
    let message = out["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("Pod ml-team/p")
            && message.contains("\"default\"")
            && message.contains("\"ml-user\""),
        "{message}"
    );
    let (_, metrics) = get_health(&app, "/metrics").await;
    assert!(
        metrics
            .contains(r#"mlplatform_webhook_service_account_violations_total{mode="enforce"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn body_that_is_not_json_is_400_with_a_message() {
    let app = app();
    let (status, out) = post(&app, "/mutate", "this is not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("not JSON"), "{text}");
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
}

#[tokio::test]
async fn json_that_is_not_an_admission_review_is_400() {
    let app = app();
    for body in [
        json!({"apiVersion": "v1", "kind": "Pod"}),
        json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x", "operation": "CREATE"}}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        json!([1, 2, 3]),
    ] {
        let (status, out) = post(&app, "/validate", serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413_declared_or_streamed() {
    let app = app();
    let big = vec![b' '; LIMIT + 1];
    let (status, _) = post(&app, "/mutate", big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Without Content-Length (chunked): the limit applies while reading.
    let chunks = futures::stream::iter(
        big.chunks(1024)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let (status, out) = post(&app, "/mutate", Body::from_stream(chunks)).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn unhandled_kind_is_admitted_by_mutate_with_a_warning_and_denied_by_validate() {
    let app = app();
    let mut review = pod_review("u-3", "ml-team", "ml-user");
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Secret"});
    let (status, out) = post(&app, "/mutate", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["response"]["uid"], "u-3");
    assert_eq!(out["response"]["allowed"], true);
    assert!(out["response"].get("patch").is_none(), "{out}");
    let warning = out["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("\"Secret\"") && warning.contains("MutatingWebhookConfiguration"),
        "{warning}"
    );
    // /validate still says no (SPEC §7: the wrong kind gets a denied review).
    let (status, out) = post(&app, "/validate", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["response"]["allowed"], false);
    assert_eq!(out["response"]["status"]["code"], 400);
    assert!(
        out["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("Secret")
    );
    let (_, metrics) = get_health(&app, "/metrics").await;
    for endpoint in ["mutate", "validate"] {
        let line = format!(
            r#"mlplatform_webhook_unhandled_kind_total{{endpoint="{endpoint}",group="",kind="Secret"}} 1"#
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn unreadable_cluster_state_fails_closed_for_validate_and_open_for_mutate() {
    // The offline cache cannot fetch, so an unknown namespace/ServiceAccount stays unknown.
    let app = app();
    let review = pod_review("u-4", "elsewhere", "someone");
    let (status, out) = post(&app, "/validate", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["response"]["allowed"], false);
    assert_eq!(out["response"]["status"]["code"], 503);
    let (_, out) = post(&app, "/mutate", serde_json::to_vec(&review).unwrap()).await;
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["response"]["allowed"], true);
    assert!(out["response"].get("patch").is_none());
    assert!(
        out["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not injected")
    );
}

#[tokio::test]
async fn health_endpoints() {
    let app = app();
    assert_eq!(get_health(&app, "/healthz").await.0, StatusCode::OK);
    // The offline cache counts as synced.
    assert_eq!(get_health(&app, "/readyz").await.0, StatusCode::OK);
    let (status, metrics) = get_health(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("mlplatform_webhook_request_duration_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"mlplatform_webhook_cache_objects{cache="namespaces"} 1"#),
        "{metrics}"
    );
}

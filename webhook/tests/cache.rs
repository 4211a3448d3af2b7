//! The live cache through kube's real client against the Kubernetes API test double.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mlplatform_testkit::kube_double::KubeDouble;
use mlplatform_webhook::cache::ClusterCache;
use mlplatform_webhook::cluster::{ClusterView, Lookup};
use mlplatform_webhook::metrics::Metrics;
use mlplatform_webhook::mutate::InjectionConfig;
use mlplatform_webhook::server::{App, admission_router, health_router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ROLE: &str = "arn:aws:iam::111122223333:role/ml";

fn managed_namespace(name: &str, managed: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"mlplatform.io/managed": if managed { "true" } else { "false" }},
            "annotations": {"mlplatform.io/user-service-account": "ml-user", "mlplatform.io/enforcement": "enforce"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:metadata": {}}}]
        }
    })
}

fn service_account(namespace: &str, name: &str, role: Option<&str>) -> Value {
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}});
    if let Some(role) = role {
        sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": role});
    }
    sa
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn is_managed(cache: &ClusterCache, ns: &str) -> Option<bool> {
    match cache.namespace(ns) {
        Lookup::Found(entry) => Some(matches!(entry.policy, Ok(Some(_)))),
        _ => None,
    }
}

async fn get_status(app: &Arc<App>, path: &str) -> StatusCode {
    let request = Request::get(path).body(Body::empty()).unwrap();
    health_router(app.clone())
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_after_first_sync_then_watch_updates() {
    let double = KubeDouble::start().await;
    double.apply_fixture(managed_namespace("ml-team", true));
    double.apply_fixture(service_account("ml-team", "ml-user", Some(ROLE)));
    let metrics = Metrics::new();
    let cache = ClusterCache::new(double.client(), metrics.clone());
    let app = App::new(
        cache.clone(),
        InjectionConfig::default(),
        metrics.clone(),
        1 << 20,
    );
    assert!(!cache.is_ready());
    assert_eq!(
        get_status(&app, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let watchers = tokio::spawn(cache.clone().run_watchers());
    eventually("caches synced", || cache.is_ready()).await;
    assert_eq!(get_status(&app, "/readyz").await, StatusCode::OK);
    assert_eq!(is_managed(&cache, "ml-team"), Some(true));
    // ServiceAccounts that existed before start came in with the first list.
    match cache.service_account("ml-team", "ml-user") {
        Lookup::Found(sa) => assert_eq!(sa.role_arn.as_deref(), Some(ROLE)),
        other => panic!("ml-user not listed: {other:?}"),
    }

    // Namespace label change is seen.
    double.apply_fixture(managed_namespace("ml-team", false));
    eventually("namespace unmanaged", || {
        is_managed(&cache, "ml-team") == Some(false)
    })
    .await;

    // A ServiceAccount created after start is seen, with its role.
    double.apply_fixture(service_account("ml-team", "late", Some(ROLE)));
    eventually("new ServiceAccount cached", || {
        match cache.service_account("ml-team", "late") {
            Lookup::Found(sa) => sa.role_arn.as_deref() == Some(ROLE),
            _ => false,
        }
    })
    .await;
    // A deleted ServiceAccount leaves the cache (a later request would GET it again).
    let api = kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        double.client(),
        "ml-team",
    );
    api.delete("late", &Default::default()).await.unwrap();
    eventually("deleted ServiceAccount dropped", || {
        cache.service_account("ml-team", "late") == Lookup::Missing
    })
    .await;
    let text = metrics.encode();
    assert!(
        text.contains(r#"mlplatform_webhook_cache_objects{cache="serviceaccounts"}"#),
        "{text}"
    );
    watchers.abort();
}

fn mutate_review(uid: &str, namespace: &str, sa: &str) -> Vec<u8> {
    serde_json::to_vec(&common::pod_review(uid, namespace, sa)).unwrap()
}

async fn mutate(app: &Arc<App>, body: Vec<u8>) -> Value {
    let request = Request::post("/mutate").body(Body::from(body)).unwrap();
    let response = admission_router(app.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

fn gets_of(double: &KubeDouble, path: &str) -> usize {
    double
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_miss_does_one_get_then_uses_the_cached_result() {
    let double = KubeDouble::start().await;
    double.apply_fixture(managed_namespace("ml-team", true));
    double.apply_fixture(service_account("ml-team", "just-created", Some(ROLE)));
    let metrics = Metrics::new();
    // No watchers: every key starts as a miss, as for an object created just before its pod.
    let cache = ClusterCache::new(double.client(), metrics.clone());
    let app = App::new(
        cache.clone(),
        InjectionConfig::default(),
        metrics.clone(),
        1 << 20,
    );
    double.clear_requests();

    let path = "/api/v1/namespaces/ml-team/serviceaccounts/just-created";
    let first = mutate(&app, mutate_review("a", "ml-team", "just-created")).await;
    assert!(first["response"]["patch"].is_string(), "{first}");
    assert_eq!(gets_of(&double, path), 1);
    let second = mutate(&app, mutate_review("b", "ml-team", "just-created")).await;
    assert!(second["response"]["patch"].is_string(), "{second}");
    assert_eq!(
        gets_of(&double, path),
        1,
        "second request must use the cache"
    );

    // A ServiceAccount that does not exist: one GET (404), then cached as absent.
    let missing = "/api/v1/namespaces/ml-team/serviceaccounts/nobody";
    for uid in ["c", "d"] {
        let out = mutate(&app, mutate_review(uid, "ml-team", "nobody")).await;
        assert_eq!(out["response"]["allowed"], true);
        assert!(out["response"].get("patch").is_none());
    }
    assert_eq!(gets_of(&double, missing), 1);
    let text = metrics.encode();
    assert!(text.contains(r#"mlplatform_webhook_cache_miss_fetches_total{cache="serviceaccounts",result="found"} 1"#), "{text}");
    assert!(text.contains(r#"mlplatform_webhook_cache_miss_fetches_total{cache="serviceaccounts",result="not_found"} 1"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_down_on_a_miss_is_bounded_and_fails_safe() {
    let double = KubeDouble::start().await;
    let client = double.client();
    double.shutdown();
    let metrics = Metrics::new();
    let cache = ClusterCache::new(client, metrics.clone());
    let app = App::new(cache, InjectionConfig::default(), metrics, 1 << 20);
    let started = std::time::Instant::now();
    let out = mutate(&app, mutate_review("e", "ml-team", "someone")).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fetch not bounded: {:?}",
        started.elapsed()
    );
    assert_eq!(out["response"]["allowed"], true);
    assert!(
        out["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not injected")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_one_key_share_one_get() {
    let double = KubeDouble::start().await;
    double.apply_fixture(service_account("ml-team", "burst", Some(ROLE)));
    let metrics = Metrics::new();
    let cache = ClusterCache::new(double.client(), metrics.clone());
    let app = App::new(cache, InjectionConfig::default(), metrics, 1 << 20);
    double.clear_requests();
    let requests = (0..20).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            mutate(&app, mutate_review(&format!("r{i}"), "ml-team", "burst")).await
        })
    });
    for out in futures::future::join_all(requests).await {
        let out = out.unwrap();
        assert!(out["response"]["patch"].is_string(), "{out}");
    }
    assert_eq!(
        gets_of(&double, "/api/v1/namespaces/ml-team/serviceaccounts/burst"),
        1
    );
}

/// The role ARN a /mutate answer injects into the first container, if any.
fn injected_role(out: &Value) -> Option<String> {
    use base64::Engine as _;
    let patch = out["response"]["patch"].as_str()?;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .ok()?;
    let ops: Value = serde_json::from_slice(&patch).ok()?;
    ops.as_array()?
        .iter()
        .filter(|op| op["path"] == "/spec/containers/0/env")
        .flat_map(|op| op["value"].as_array().into_iter().flatten())
        .find(|var| var["name"] == "AWS_ROLE_ARN")
        .and_then(|var| var["value"].as_str().map(str::to_owned))
}

/// A watch-fed cache that cannot have seen a ServiceAccount: the ServiceAccount list/watch
/// fails (the namespace watch works), so the only way to learn about the ServiceAccount
/// created just before the pod is the live lookup.
async fn cache_blind_to_new_service_accounts(
    double: &KubeDouble,
    lookup_timeout: Duration,
) -> (Arc<App>, Arc<ClusterCache>, tokio::task::JoinHandle<()>) {
    double.apply_fixture(managed_namespace("ml-team", true));
    double.inject_failure("GET", "/api/v1/serviceaccounts", 503, 1_000_000);
    let metrics = Metrics::new();
    let cache = ClusterCache::with_service_account_lookup_timeout(
        double.client(),
        metrics.clone(),
        lookup_timeout,
    );
    let app = App::new(cache.clone(), InjectionConfig::default(), metrics, 1 << 20);
    let watchers = tokio::spawn(cache.clone().run_watchers());
    eventually("namespace watch synced", || {
        is_managed(&cache, "ml-team") == Some(true)
    })
    .await;
    (app, cache, watchers)
}

async fn create_service_account(double: &KubeDouble, name: &str) {
    let api = kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        double.client(),
        "ml-team",
    );
    let sa = serde_json::from_value(service_account("ml-team", name, Some(ROLE))).unwrap();
    api.create(&Default::default(), &sa).await.unwrap();
}

/// amazon-eks-pod-identity-webhook #174: a pod created right after its ServiceAccount, before
/// the watch delivered it, still gets the ServiceAccount's role: the webhook looks it up live
/// (once; the answer is cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_right_after_its_service_account_gets_the_role_by_live_lookup() {
    let double = KubeDouble::start().await;
    let (app, cache, watchers) =
        cache_blind_to_new_service_accounts(&double, Duration::from_secs(2)).await;
    create_service_account(&double, "fresh").await;
    assert_eq!(cache.service_account("ml-team", "fresh"), Lookup::Missing);
    double.clear_requests();

    let out = mutate(&app, mutate_review("p1", "ml-team", "fresh")).await;
    assert_eq!(injected_role(&out).as_deref(), Some(ROLE), "{out}");
    let path = "/api/v1/namespaces/ml-team/serviceaccounts/fresh";
    assert_eq!(gets_of(&double, path), 1);
    // Cached: the next pod needs no GET.
    assert!(matches!(
        cache.service_account("ml-team", "fresh"),
        Lookup::Found(_)
    ));
    let out = mutate(&app, mutate_review("p2", "ml-team", "fresh")).await;
    assert_eq!(injected_role(&out).as_deref(), Some(ROLE), "{out}");
    assert_eq!(gets_of(&double, path), 1);
    watchers.abort();
}

/// The same pod with the live lookup off (`--service-account-lookup-timeout-ms 0`): what a
/// miss gave before the lookup, admitted without IRSA and with a warning, and no GET. This
/// is what the test above would see without the lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_live_lookup_such_a_pod_is_admitted_without_irsa_and_warned() {
    let double = KubeDouble::start().await;
    let (app, _cache, watchers) =
        cache_blind_to_new_service_accounts(&double, Duration::ZERO).await;
    create_service_account(&double, "fresh").await;
    double.clear_requests();

    let out = mutate(&app, mutate_review("p1", "ml-team", "fresh")).await;
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(injected_role(&out), None, "{out}");
    let warning = out["response"]["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("not injected"), "{out}");
    assert_eq!(
        gets_of(&double, "/api/v1/namespaces/ml-team/serviceaccounts/fresh"),
        0
    );
    watchers.abort();
}

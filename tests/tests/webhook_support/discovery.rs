//! A minimal Kubernetes discovery endpoint, enough for `kubectl apply --dry-run=client`:
//! kubectl needs discovery to map kinds to resources, and GETs each object (404 here, so
//! every object is "created (dry run)"). It stores nothing and accepts no writes.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// (plural, kind, namespaced).
type Resource = (&'static str, &'static str, bool);

/// (groupVersion, resources) for the kinds manifests/ uses.
const RESOURCES: &[(&str, &[Resource])] = &[
    (
        "v1",
        &[
            ("namespaces", "Namespace", false),
            ("serviceaccounts", "ServiceAccount", true),
            ("services", "Service", true),
            ("secrets", "Secret", true),
            ("pods", "Pod", true),
        ],
    ),
    ("apps/v1", &[("deployments", "Deployment", true)]),
    (
        "rbac.authorization.k8s.io/v1",
        &[
            ("clusterroles", "ClusterRole", false),
            ("clusterrolebindings", "ClusterRoleBinding", false),
        ],
    ),
    (
        "policy/v1",
        &[("poddisruptionbudgets", "PodDisruptionBudget", true)],
    ),
    (
        "admissionregistration.k8s.io/v1",
        &[
            (
                "mutatingwebhookconfigurations",
                "MutatingWebhookConfiguration",
                false,
            ),
            (
                "validatingwebhookconfigurations",
                "ValidatingWebhookConfiguration",
                false,
            ),
        ],
    ),
];

fn resource_list(group_version: &str) -> Option<Value> {
    let (_, resources) = RESOURCES.iter().find(|(gv, _)| *gv == group_version)?;
    let resources: Vec<Value> = resources
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({
                "name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    Some(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": group_version, "resources": resources,
    }))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

fn not_found() -> Response {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": "NotFound", "code": 404, "message": "not found",
    });
    json_response(StatusCode::NOT_FOUND, &status)
}

fn router() -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async {
                ok(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0"}))
            }),
        )
        .route(
            "/api",
            get(|| async { ok(json!({"kind": "APIVersions", "versions": ["v1"]})) }),
        )
        .route(
            "/apis",
            get(|| async {
                let groups: Vec<Value> = RESOURCES
                    .iter()
                    .filter_map(|(gv, _)| gv.split_once('/'))
                    .map(|(group, version)| {
                        let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
                        json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
                    })
                    .collect();
                ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
            }),
        )
        .route(
            "/api/v1",
            get(|| async { resource_list("v1").map_or_else(not_found, ok) }),
        )
        .route(
            "/apis/{group}/{version}",
            get(|UrlPath((group, version)): UrlPath<(String, String)>| async move {
                resource_list(&format!("{group}/{version}")).map_or_else(not_found, ok)
            }),
        )
        .fallback(|| async { not_found() })
}

/// A running discovery endpoint and a kubeconfig that points at it.
pub struct Discovery {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Discovery {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router()).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("http://{addr}"));
        Self {
            addr,
            kubeconfig,
            _dir: dir,
            _server: server,
        }
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self._server.abort();
    }
}

fn write_kubeconfig(path: &Path, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: discovery, cluster: {{server: \"{server}\"}}}}]\n\
         contexts: [{{name: discovery, context: {{cluster: discovery, user: nobody}}}}]\n\
         users: [{{name: nobody, user: {{}}}}]\n\
         current-context: discovery\n"
    );
    std::fs::write(path, text).unwrap();
}

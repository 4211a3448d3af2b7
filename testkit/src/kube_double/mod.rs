//! An in-memory Kubernetes API server over plain HTTP, reached through kube's real client
//! and real kubectl, behaving like kube-apiserver wherever our code can observe it. It is
//! held to a recording of kube-apiserver v1.36.2 (`scripts/conformance.sh`, run by
//! `make test`; accepted differences in `testkit/conformance-allow.txt`).
//!
//! What it does: discovery (`/api`, `/apis`, `/version`), CRUD on built-in resources and
//! on resources of stored CRDs, one global resourceVersion, optimistic concurrency (stale
//! PUT → 409), merge / JSON / strategic-merge (approximated: lists of named objects merge by
//! name) patches, server-side apply with per-manager field ownership (re-applying without
//! a field removes it; conflicts with other appliers → 409 unless `force`), `dryRun=All`,
//! `/status` subresources, finalizers, propagation policies, namespace deletion, label and
//! field selectors, watches with history replay, bookmarks and 410 Gone, metadata-only
//! (`PartialObjectMetadata`) and Table responses, SubjectAccessReviews decided by real RBAC
//! over stored Roles and bindings, admission webhooks from stored webhook
//! configurations, called over HTTPS (see [`KubeDouble::route_service`]), and admission
//! policies (`admissionregistration.k8s.io/v1` Validating/MutatingAdmissionPolicies and their
//! bindings, their CEL evaluated with the `cel` crate; see `admission_policy`). Built-in
//! resources can be withdrawn to play an older server ([`KubeDouble::withdraw_resource`]).
//!
//! Requests are the kubeconfig's admin (system:masters) unless they impersonate
//! (`Impersonate-User`/`-Group`, [`KubeDouble::client_as`], `kubectl --as`): then RBAC over
//! the stored Roles and bindings decides, with the apiserver's 403 messages. Discovery stays
//! open to everyone, as the default `system:discovery` role makes it.
//!
//! Stored objects carry the apiserver's defaults (Services get a clusterIP and port
//! protocols, workloads their strategy and pod-template defaults, webhook configurations
//! their timeouts and selectors...), so "desired == stored" comparisons meet real objects.
//! Answers have the real server's shape: `metadata.managedFields` on every object (the
//! `fieldManager`, else the User-Agent's first word), `metadata.generation` only on kinds
//! that have one, list items without `kind`/`apiVersion` (custom resources keep theirs), a
//! `Status` for an immediate DELETE of kinds whose registry does not return the object
//! (ConfigMaps, Deployments, RBAC...), error `details` with causes and reasons, and a
//! plain-text `404 page not found` for API groups nobody serves.
//!
//! Pods go through the built-in admission plugins before any webhook sees them:
//! ServiceAccount (no `serviceAccountName` means `default`; a missing ServiceAccount is a
//! 403; a `kube-api-access-<random>` projected token volume mounted in every container),
//! DefaultTolerationSeconds and Priority; they are created `Pending` with a QoS class.
//! Mutating webhooks see a new object as the apiserver sends it (no uid, no generated name
//! yet), validating webhooks see it as created.
//!
//! Deleting a namespace makes it `Terminating` and removes its contents at once; creates
//! into it get 403 with cause `NamespaceTerminating`, and a namespace controller removes the
//! namespace after [`KubeDouble::set_namespace_termination_delay`] (1 s by default) once
//! nothing is left in it. `default`, `kube-system` and `kube-public` cannot be deleted.
//! Foreground and orphan deletion add their `foregroundDeletion`/`orphan` finalizer to the
//! object they answer with; the garbage collector's work then happens at once.
//!
//! A fresh double holds what a fresh cluster has: namespaces `default`, `kube-system`,
//! `kube-public`, `kube-node-lease`, each with a `default` ServiceAccount created on
//! namespace creation (as the serviceaccount controller does), and the `cluster-admin`
//! ClusterRole bound to `system:masters`.
//!
//! What it does not model: authentication (every request is the admin), controllers other
//! than the namespace controller and garbage collection (Deployments get no Pods, statuses
//! change only when a test writes them), the `kube-root-ca.crt` ConfigMaps,
//! OpenAPI documents and schemas. Validation covers names, labels, annotations, immutable
//! fields, and the required fields and cross-field rules of the kinds our product writes
//! (workload selectors vs template labels, binding subjects and roleRef, RBAC rules,
//! webhook configurations, ConfigMap/Secret keys), not every field of every kind.
//! Garbage collection through ownerReferences happens at once rather than in the
//! background; list pages (`limit`/`continue`) read the current state, not a snapshot.
//! Field ownership treats lists as atomic, and only `Apply` managers conflict.
//!
//! Protobuf is not spoken. kubectl reads work (it accepts JSON back), and so do
//! `kubectl apply --server-side --validate=false` (apply sends YAML), `kubectl apply
//! --dry-run=client --validate=false` and `kubectl delete`. But kubectl sends protobuf
//! bodies when it creates or updates built-in objects otherwise, and does not fall back to
//! JSON (kubernetes/kubernetes#86253), so `kubectl create`, client-side `apply` and `auth
//! can-i` get a clear 415 here. There is no OpenAPI document, hence `--validate=false`.
//!
//! ```no_run
//! # async fn demo() {
//! use mlplatform_testkit::KubeDouble;
//! let double = KubeDouble::start().await;
//! double.apply_fixture(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "aws-auth", "namespace": "kube-system"}, "data": {"mapRoles": "[]"}}));
//! let client = double.client(); // or write_kubeconfig() for a binary under test
//! // ... run the code under test ...
//! assert!(double.mutating_requests().is_empty(), "a re-run writes nothing");
//! # }
//! ```

mod admission;
mod admission_policy;
mod apply;
mod authz;
mod defaults;
mod json;
mod kinds;
mod managed;
mod pod_admission;
mod rbac;
mod recording;
mod render;
mod request;
mod resources;
mod selectors;
mod server;
mod status;
mod store;
mod time;
mod validation;
mod watch_stream;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

pub use rbac::{Decision, RbacObjects, Request as AccessRequest, UserInfo, authorize};
pub use recording::RecordedRequest;
pub use status::ApiError;
pub use store::strategic_merge;

use recording::InjectedFailure;
use request::{Shared, lock};
use store::Store;

/// How often the namespace controller looks for namespaces to finish deleting.
const CONTROLLER_TICK: Duration = Duration::from_millis(50);

/// A fixture that cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("fixture #{index} needs apiVersion, kind and metadata.name (got {summary})")]
    Incomplete { index: usize, summary: String },
    #[error("cannot read fixtures from {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fixtures in {path} are not valid YAML or JSON: {message}")]
    Parse { path: String, message: String },
}

struct Inner {
    shared: Arc<Shared>,
    url: String,
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The in-memory API server. Cheap to clone; the server task stops when the last clone
/// drops or on [`KubeDouble::shutdown`].
#[derive(Clone)]
pub struct KubeDouble {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KubeDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDouble")
            .field("url", &self.inner.url)
            .finish()
    }
}

impl KubeDouble {
    /// Starts on 127.0.0.1 with a free port, serving from a background tokio task.
    ///
    /// # Panics
    /// When no local port can be bound (test infrastructure: there is nothing to recover).
    pub async fn start() -> KubeDouble {
        match KubeDouble::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
            Ok(double) => double,
            Err(e) => panic!("kube double: cannot listen on 127.0.0.1:0: {e}"),
        }
    }

    /// Starts on `addr` (the `kube-double` binary's `--listen`).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<KubeDouble> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            routes: Mutex::new(std::collections::HashMap::new()),
            requests: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            shutdown: shutdown_rx.clone(),
            addr,
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        spawn_namespace_controller(shared.clone(), shutdown_rx.clone());
        let mut stop = shutdown_rx;
        tokio::spawn(async move {
            // Graceful: stop accepting, close idle keep-alive connections; open watches end
            // on the same signal, so nothing keeps the server alive.
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "kube double server stopped");
            }
        });
        Ok(KubeDouble {
            inner: Arc::new(Inner {
                shared,
                url: format!("http://{addr}"),
                shutdown: shutdown_tx,
            }),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    /// Stops serving (open watches end too); the stored state stays readable.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    /// A kube client pointed at the double, default namespace "default".
    ///
    /// # Panics
    /// Outside a tokio runtime, or if kube cannot build a client for a plain-HTTP URL.
    pub fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let uri: http::Uri = match self.inner.url.parse() {
            Ok(uri) => uri,
            Err(e) => panic!("kube double: bad url {}: {e}", self.inner.url),
        };
        match kube::Client::try_from(kube::Config::new(uri)) {
            Ok(client) => client,
            Err(e) => panic!("kube double: cannot build a kube client: {e}"),
        }
    }

    /// A kube client that impersonates `user` (and `groups`), as `kubectl --as` does: the
    /// double then authorizes every request with RBAC over the stored Roles and bindings, and
    /// a denial is the apiserver's 403. ServiceAccounts are `system:serviceaccount:NS:NAME`.
    ///
    /// # Panics
    /// Like [`KubeDouble::client`].
    pub fn client_as(&self, user: &str, groups: &[&str]) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let uri: http::Uri = match self.inner.url.parse() {
            Ok(uri) => uri,
            Err(e) => panic!("kube double: bad url {}: {e}", self.inner.url),
        };
        let mut config = kube::Config::new(uri);
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups =
                Some(groups.iter().map(|g| g.to_string()).collect());
        }
        match kube::Client::try_from(config) {
            Ok(client) => client,
            Err(e) => panic!("kube double: cannot build a kube client: {e}"),
        }
    }

    /// The kubeconfig document for [`KubeDouble::write_kubeconfig`].
    pub fn kubeconfig(&self, context_name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context_name, "cluster": {"server": self.url()}}],
            "users": [{"name": context_name, "user": {"token": "kube-double-admin"}}],
            "contexts": [{"name": context_name, "context": {"cluster": context_name, "user": context_name}}],
            "current-context": context_name,
        })
    }

    /// Writes a kubeconfig with one cluster, user and context, all named `context_name`
    /// (the current context). EKS ARNs work as names, as in `aws eks update-kubeconfig`.
    pub fn write_kubeconfig(&self, path: &Path, context_name: &str) -> std::io::Result<()> {
        let yaml = serde_yaml_ng::to_string(&self.kubeconfig(context_name))
            .map_err(std::io::Error::other)?;
        // Written next to the target and renamed, so a reader polling for the file never
        // sees half of it.
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        std::fs::write(&partial, yaml)?;
        std::fs::rename(&partial, path)
    }

    /// Inserts or overwrites an object directly: no request is recorded, nothing is
    /// validated, server fields are filled in when missing, watchers see the change.
    ///
    /// # Panics
    /// When the object lacks apiVersion, kind or metadata.name (a broken test fixture).
    pub fn apply_fixture(&self, obj: Value) {
        if let Err(e) = self.try_apply_fixture(obj) {
            panic!("{e}");
        }
    }

    /// [`KubeDouble::apply_fixture`] that reports a broken fixture instead of panicking.
    pub fn try_apply_fixture(&self, obj: Value) -> Result<Value, FixtureError> {
        let summary = summarize(&obj);
        lock(&self.inner.shared.store)
            .insert_fixture(obj)
            .ok_or(FixtureError::Incomplete { index: 0, summary })
    }

    /// Loads every document of a YAML (multi-document) or JSON file as fixtures; a JSON
    /// array or a `kind: List` document counts as many. Returns how many were stored.
    pub fn load_fixtures_file(&self, path: &Path) -> Result<usize, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let parse_error = |message: String| FixtureError::Parse {
            path: path.display().to_string(),
            message,
        };
        let mut documents = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document)
                .map_err(|e| parse_error(e.to_string()))?;
            match value {
                Value::Null => {}
                Value::Array(items) => documents.extend(items),
                v if v.get("kind").and_then(Value::as_str) == Some("List") => {
                    documents.extend(
                        v.get("items")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
                v => documents.push(v),
            }
        }
        let mut store = lock(&self.inner.shared.store);
        for (index, document) in documents.iter().enumerate() {
            if store.insert_fixture(document.clone()).is_none() {
                return Err(FixtureError::Incomplete {
                    index: index + 1,
                    summary: summarize(document),
                });
            }
        }
        Ok(documents.len())
    }

    /// A stored object, exactly as stored.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (group, _) = resources::split_api_version(api_version);
        let key = store::ObjectKey {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: namespace.unwrap_or("").to_string(),
            name: name.to_string(),
        };
        lock(&self.inner.shared.store).get_by_key(&key).cloned()
    }

    /// Every stored object of a kind (all namespaces), ordered by namespace and name.
    pub fn list_objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let (group, _) = resources::split_api_version(api_version);
        lock(&self.inner.shared.store).objects_of(group, kind)
    }

    /// Every HTTP request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.shared.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.inner.shared.requests).clear();
    }

    /// Requests that write: POST/PUT/PATCH/DELETE, except SubjectAccessReview,
    /// SelfSubjectAccessReview, LocalSubjectAccessReview, TokenReview and SelfSubjectReview
    /// creates, which are questions. `dryRun=All` writes are included (see
    /// [`RecordedRequest::is_dry_run`]).
    pub fn mutating_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_mutating)
            .collect()
    }

    /// The next `times` requests with this method (or "*") and path (exact, or a prefix
    /// ending in '*'; query ignored) get a Kubernetes `Status` error with `status` as code.
    pub fn inject_failure(&self, method: &str, path: &str, status: u16, times: usize) {
        if times == 0 {
            return;
        }
        lock(&self.inner.shared.failures).push(InjectedFailure {
            method: method.to_uppercase(),
            path: path.to_string(),
            status,
            remaining: times,
        });
    }

    /// Makes admission webhooks whose `clientConfig.service` is `namespace/name` reachable
    /// at `addr` (e.g. the real webhook binary listening on 127.0.0.1). The double verifies
    /// the webhook's certificate against the configuration's caBundle for the name
    /// `name.namespace.svc`, as the apiserver does. Webhooks behind Services without a route
    /// are skipped: the double runs no Pods that could serve them.
    pub fn route_service(&self, namespace: &str, name: &str, addr: SocketAddr) {
        lock(&self.inner.shared.routes).insert((namespace.to_string(), name.to_string()), addr);
    }

    /// How long a deleted namespace stays `Terminating` (default 1 s) before the
    /// namespace controller removes it; its contents go at once.
    pub fn set_namespace_termination_delay(&self, delay: Duration) {
        lock(&self.inner.shared.store).set_namespace_termination_delay(delay);
    }

    /// Stops serving a built-in resource (e.g. `("admissionregistration.k8s.io/v1",
    /// "mutatingadmissionpolicies")`), as an older API server would not serve it: discovery
    /// leaves it out and its requests get 404.
    pub fn withdraw_resource(&self, api_version: &str, plural: &str) {
        let (group, version) = resources::split_api_version(api_version);
        lock(&self.inner.shared.store).withdraw(group, version, plural);
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.shared.store).current_rv()
    }

    /// Forgets the watch history, like etcd compaction: watches from an older
    /// resourceVersion then get a 410 Gone ERROR event and must re-list.
    pub fn compact_history(&self) {
        lock(&self.inner.shared.store).compact_history();
    }
}

/// The namespace controller: finishes namespace deletions once their delay has passed,
/// until the double shuts down.
fn spawn_namespace_controller(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CONTROLLER_TICK) => {
                    lock(&shared.store).run_namespace_controller(Instant::now());
                }
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    });
}

/// Parses `NAMESPACE/NAME=HOST:PORT` (the `kube-double --route-service` argument).
pub fn parse_service_route(text: &str) -> Result<(String, String, SocketAddr), String> {
    let (service, addr) = text
        .split_once('=')
        .ok_or("expected NAMESPACE/NAME=HOST:PORT")?;
    let (namespace, name) = service
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
        .ok_or("expected NAMESPACE/NAME before '='")?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{addr} is not HOST:PORT: {e}"))?;
    Ok((namespace.to_string(), name.to_string(), addr))
}

fn summarize(obj: &Value) -> String {
    let text = obj.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_routes_parse() {
        let (ns, name, addr) =
            parse_service_route("mlplatform-system/mlplatform-webhook=127.0.0.1:8443").unwrap();
        assert_eq!(
            (ns.as_str(), name.as_str(), addr.port()),
            ("mlplatform-system", "mlplatform-webhook", 8443)
        );
        for bad in ["x", "ns=127.0.0.1:1", "/n=127.0.0.1:1", "ns/n=localhost"] {
            assert!(parse_service_route(bad).is_err(), "{bad}");
        }
    }
}

//! The live cluster cache: namespaces and ServiceAccounts from metadata-only watches
//! (`kube::runtime::watcher` over `Api<PartialObjectMeta<K>>`, kube 5's replacement for the
//! deprecated `metadata_watcher`), each stored as the small parsed entry the decisions need
//! (no managedFields, labels or unrelated annotations are kept). A request that misses the
//! cache triggers one bounded GET whose result (found or not found) is cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};

use crate::cluster::{ClusterView, Lookup, Missing, NamespaceEntry, ServiceAccountEntry};
use crate::metrics::{CacheMetrics, Metrics};

/// How long a cache-miss GET may take before the request is decided without it.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no Kubernetes client configured")]
    NoClient,
    #[error("GET {what} timed out after {FETCH_TIMEOUT:?}")]
    Timeout { what: String },
    #[error("GET {what} failed: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// A concurrent request made the GET for the same key, and it failed.
    #[error("{0}")]
    Shared(String),
}

/// `None` values are negative entries: fetched and known not to exist.
type NamespaceMap = HashMap<String, Option<Arc<NamespaceEntry>>>;
type ServiceAccountMap = HashMap<String, HashMap<String, Option<Arc<ServiceAccountEntry>>>>;
/// The outcome of one GET, shared with the requests that waited for it.
type SharedFetch = OnceCell<Result<(), String>>;

pub struct ClusterCache {
    client: Option<kube::Client>,
    namespaces: RwLock<NamespaceMap>,
    service_accounts: RwLock<ServiceAccountMap>,
    namespaces_synced: AtomicBool,
    service_accounts_synced: AtomicBool,
    /// Fetches in progress: concurrent misses on one key (a Deployment scaling up right
    /// after its ServiceAccount was created) share one GET.
    in_flight: Mutex<HashMap<Missing, Arc<SharedFetch>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for ClusterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCache")
            .field("has_client", &self.client.is_some())
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

fn lookup<T>(slot: Option<&Option<Arc<T>>>) -> Lookup<T> {
    match slot {
        Some(Some(entry)) => Lookup::Found(entry.clone()),
        Some(None) => Lookup::NotFound,
        None => Lookup::Missing,
    }
}

impl ClusterView for ClusterCache {
    fn namespace(&self, name: &str) -> Lookup<NamespaceEntry> {
        let map = self.namespaces.read().unwrap_or_else(|p| p.into_inner());
        lookup(map.get(name))
    }

    fn service_account(&self, namespace: &str, name: &str) -> Lookup<ServiceAccountEntry> {
        let map = self
            .service_accounts
            .read()
            .unwrap_or_else(|p| p.into_inner());
        lookup(map.get(namespace).and_then(|m| m.get(name)))
    }
}

/// Shared by every unmanaged namespace (most of a cluster).
static UNMANAGED: LazyLock<Arc<NamespaceEntry>> =
    LazyLock::new(|| Arc::new(NamespaceEntry { policy: Ok(None) }));

fn namespace_entry(meta: &PartialObjectMeta<Namespace>) -> Arc<NamespaceEntry> {
    let entry = NamespaceEntry::from_metadata(
        meta.metadata.labels.as_ref(),
        meta.metadata.annotations.as_ref(),
    );
    if entry.policy == Ok(None) {
        UNMANAGED.clone()
    } else {
        Arc::new(entry)
    }
}

fn service_account_entry(meta: &PartialObjectMeta<ServiceAccount>) -> Arc<ServiceAccountEntry> {
    ServiceAccountEntry::from_annotations(meta.metadata.annotations.as_ref())
}

impl ClusterCache {
    /// A cache that watches the cluster through `client` once [`Self::run_watchers`] runs.
    pub fn new(client: kube::Client, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self::build(Some(client), metrics))
    }

    /// A cache with no cluster behind it (tests): filled with the `insert_*` methods, reports
    /// synced at once, and every fetch fails.
    pub fn offline(metrics: Metrics) -> Arc<Self> {
        let cache = Self::build(None, metrics);
        cache.namespaces_synced.store(true, Ordering::Release);
        cache.service_accounts_synced.store(true, Ordering::Release);
        Arc::new(cache)
    }

    fn build(client: Option<kube::Client>, metrics: Metrics) -> Self {
        Self {
            client,
            namespaces: RwLock::default(),
            service_accounts: RwLock::default(),
            namespaces_synced: AtomicBool::new(false),
            service_accounts_synced: AtomicBool::new(false),
            in_flight: Mutex::default(),
            metrics,
        }
    }

    /// True once both watches have completed their first list.
    pub fn is_ready(&self) -> bool {
        self.namespaces_synced.load(Ordering::Acquire)
            && self.service_accounts_synced.load(Ordering::Acquire)
    }

    pub fn insert_namespace(&self, name: &str, entry: Option<NamespaceEntry>) {
        let mut map = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
        map.insert(name.to_owned(), entry.map(Arc::new));
        self.metrics.namespaces.objects.set(map.len() as i64);
    }

    pub fn insert_service_account(
        &self,
        namespace: &str,
        name: &str,
        entry: Option<Arc<ServiceAccountEntry>>,
    ) {
        let mut map = self
            .service_accounts
            .write()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned(), entry);
        self.metrics
            .service_accounts
            .objects
            .set(map.values().map(HashMap::len).sum::<usize>() as i64);
    }

    /// Runs both watches until the returned future is dropped. Errors are retried with
    /// backoff (logged); readiness flips once each has listed everything once.
    pub async fn run_watchers(self: Arc<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        // `Api<PartialObjectMeta<K>>` makes metadata-only list/watch requests.
        let namespaces = watch(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        );
        let service_accounts = watch(
            Api::<PartialObjectMeta<ServiceAccount>>::all(client),
            watcher::Config::default(),
        );
        tokio::join!(
            self.clone().watch_namespaces(namespaces),
            self.clone().watch_service_accounts(service_accounts),
        );
    }

    async fn watch_namespaces(
        self: Arc<Self>,
        stream: impl Stream<Item = watcher::Result<Event<PartialObjectMeta<Namespace>>>>,
    ) {
        let mut stream = std::pin::pin!(stream.default_backoff());
        let mut buffer = NamespaceMap::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    warn!(error = %err, "namespace watch failed; retrying");
                    continue;
                }
            };
            match event {
                Event::Apply(meta) => {
                    let name = meta.metadata.name.clone().unwrap_or_default();
                    self.insert_namespace_arc(name, namespace_entry(&meta));
                }
                Event::Delete(meta) => {
                    let name = meta.metadata.name.as_deref().unwrap_or_default();
                    let mut map = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
                    map.remove(name);
                    self.metrics.namespaces.objects.set(map.len() as i64);
                }
                Event::Init => buffer.clear(),
                Event::InitApply(meta) => {
                    let name = meta.metadata.name.clone().unwrap_or_default();
                    buffer.insert(name, Some(namespace_entry(&meta)));
                }
                Event::InitDone => {
                    let mut map = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
                    *map = std::mem::take(&mut buffer);
                    self.metrics.namespaces.objects.set(map.len() as i64);
                    drop(map);
                    if !self.namespaces_synced.swap(true, Ordering::AcqRel) {
                        info!("namespace cache synced");
                    }
                }
            }
        }
    }

    fn insert_namespace_arc(&self, name: String, entry: Arc<NamespaceEntry>) {
        let mut map = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
        map.insert(name, Some(entry));
        self.metrics.namespaces.objects.set(map.len() as i64);
    }

    async fn watch_service_accounts(
        self: Arc<Self>,
        stream: impl Stream<Item = watcher::Result<Event<PartialObjectMeta<ServiceAccount>>>>,
    ) {
        let mut stream = std::pin::pin!(stream.default_backoff());
        let mut buffer = ServiceAccountMap::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    warn!(error = %err, "serviceaccount watch failed; retrying");
                    continue;
                }
            };
            match event {
                Event::Apply(meta) => {
                    let (ns, name) = sa_key(&meta);
                    self.insert_service_account(ns, name, Some(service_account_entry(&meta)));
                }
                Event::Delete(meta) => {
                    let (ns, name) = sa_key(&meta);
                    let mut map = self
                        .service_accounts
                        .write()
                        .unwrap_or_else(|p| p.into_inner());
                    if let Some(in_ns) = map.get_mut(ns) {
                        in_ns.remove(name);
                        if in_ns.is_empty() {
                            map.remove(ns);
                        }
                    }
                    self.metrics
                        .service_accounts
                        .objects
                        .set(map.values().map(HashMap::len).sum::<usize>() as i64);
                }
                Event::Init => buffer.clear(),
                Event::InitApply(meta) => {
                    let (ns, name) = sa_key(&meta);
                    buffer
                        .entry(ns.to_owned())
                        .or_default()
                        .insert(name.to_owned(), Some(service_account_entry(&meta)));
                }
                Event::InitDone => {
                    let mut map = self
                        .service_accounts
                        .write()
                        .unwrap_or_else(|p| p.into_inner());
                    *map = std::mem::take(&mut buffer);
                    self.metrics
                        .service_accounts
                        .objects
                        .set(map.values().map(HashMap::len).sum::<usize>() as i64);
                    drop(map);
                    if !self.service_accounts_synced.swap(true, Ordering::AcqRel) {
                        info!("serviceaccount cache synced");
                    }
                }
            }
        }
    }

    /// One bounded GET for a key a decision missed; the result is cached (a 404 as a negative
    /// entry, unless the watch has meanwhile delivered the object). Concurrent callers for
    /// the same key wait for the first one's GET instead of making their own.
    pub async fn fetch(&self, missing: &Missing) -> Result<(), FetchError> {
        let cell = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(missing.clone())
            .or_default()
            .clone();
        let mut own_error = None;
        let shared = cell
            .get_or_init(|| async {
                let result = self.fetch_uncoalesced(missing).await;
                let shared = result.as_ref().map_err(ToString::to_string).copied();
                own_error = result.err();
                shared
            })
            .await
            .clone();
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if in_flight
                .get(missing)
                .is_some_and(|c| Arc::ptr_eq(c, &cell))
            {
                in_flight.remove(missing);
            }
        }
        match (own_error, shared) {
            (Some(err), _) => Err(err),
            (None, Err(message)) => Err(FetchError::Shared(message)),
            (None, Ok(())) => Ok(()),
        }
    }

    async fn fetch_uncoalesced(&self, missing: &Missing) -> Result<(), FetchError> {
        match missing {
            Missing::Namespace(name) => self.fetch_namespace(name).await,
            Missing::ServiceAccount { namespace, name } => {
                self.fetch_service_account(namespace, name).await
            }
        }
    }

    async fn fetch_namespace(&self, name: &str) -> Result<(), FetchError> {
        let what = format!("namespace {name}");
        let metrics = &self.metrics.namespaces;
        let client = self.client.clone().ok_or(FetchError::NoClient)?;
        let api = Api::<Namespace>::all(client);
        let result = bounded_get(&api, name, &what, metrics).await?;
        let mut map = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
        match result {
            Some(meta) => {
                map.insert(name.to_owned(), Some(namespace_entry(&meta)));
            }
            None => {
                map.entry(name.to_owned()).or_insert(None);
            }
        }
        self.metrics.namespaces.objects.set(map.len() as i64);
        Ok(())
    }

    async fn fetch_service_account(&self, namespace: &str, name: &str) -> Result<(), FetchError> {
        let what = format!("serviceaccount {namespace}/{name}");
        let metrics = &self.metrics.service_accounts;
        let client = self.client.clone().ok_or(FetchError::NoClient)?;
        let api = Api::<ServiceAccount>::namespaced(client, namespace);
        let result = bounded_get(&api, name, &what, metrics).await?;
        let mut map = self
            .service_accounts
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let in_ns = map.entry(namespace.to_owned()).or_default();
        match result {
            Some(meta) => {
                in_ns.insert(name.to_owned(), Some(service_account_entry(&meta)));
            }
            None => {
                in_ns.entry(name.to_owned()).or_insert(None);
            }
        }
        self.metrics
            .service_accounts
            .objects
            .set(map.values().map(HashMap::len).sum::<usize>() as i64);
        Ok(())
    }
}

fn sa_key(meta: &PartialObjectMeta<ServiceAccount>) -> (&str, &str) {
    (
        meta.metadata.namespace.as_deref().unwrap_or_default(),
        meta.metadata.name.as_deref().unwrap_or_default(),
    )
}

async fn bounded_get<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    metrics: &CacheMetrics,
) -> Result<Option<PartialObjectMeta<K>>, FetchError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    debug!(what, "cache miss; fetching");
    let result = match tokio::time::timeout(FETCH_TIMEOUT, api.get_metadata_opt(name)).await {
        Err(_) => Err(FetchError::Timeout {
            what: what.to_owned(),
        }),
        Ok(Err(source)) => Err(FetchError::Api {
            what: what.to_owned(),
            source,
        }),
        Ok(Ok(found)) => Ok(found),
    };
    match &result {
        Ok(Some(_)) => metrics.fetch_found.inc(),
        Ok(None) => metrics.fetch_not_found.inc(),
        Err(_) => metrics.fetch_failed.inc(),
    };
    result
}

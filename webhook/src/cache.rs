//! The live cluster cache: namespaces and ServiceAccounts from metadata-only watches
//! (`kube::runtime::watcher` over `Api<PartialObjectMeta<K>>`, kube 5's replacement for the
//! deprecated `metadata_watcher`), each stored as the small parsed entry the decisions need
//! (no managedFields, labels or unrelated annotations are kept). A request that misses the
//! cache triggers one bounded GET whose result (found or not found) is cached: a pod created
//! right after its ServiceAccount (before the watch delivered it, the Go webhook's #174)
//! still gets the ServiceAccount's role. The ServiceAccount GET's bound is
//! `--service-account-lookup-timeout-ms` (0: no GET); when it fails the decision takes the
//! same fallback as for an API server it cannot reach (a pod is admitted without IRSA, with
//! a warning).
//!
//! Requests read without locking: the state is an immutable [`Snapshot`], replaced (copy on
//! write, one namespace's ServiceAccounts at a time) on every change, with a generation
//! counter; each thread keeps the snapshot it last used and takes the lock only to pick up a
//! newer one, i.e. once per change rather than once per request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// How long a cache-miss GET may take before the request is decided without it (namespaces;
/// the default for ServiceAccounts).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no Kubernetes client configured")]
    NoClient,
    #[error(
        "{what} is not cached and live lookups are off (--service-account-lookup-timeout-ms 0)"
    )]
    LookupDisabled { what: String },
    #[error("GET {what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
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
type NamespaceMap = HashMap<Arc<str>, Option<Arc<NamespaceEntry>>>;
type AccountsInNamespace = HashMap<Arc<str>, Option<Arc<ServiceAccountEntry>>>;
type ServiceAccountMap = HashMap<Arc<str>, Arc<AccountsInNamespace>>;
/// The outcome of one GET, shared with the requests that waited for it.
type SharedFetch = OnceCell<Result<(), String>>;

/// Everything the cache knows at one moment; never changed once published.
#[derive(Debug, Default, Clone)]
struct Snapshot {
    namespaces: Arc<NamespaceMap>,
    service_accounts: Arc<ServiceAccountMap>,
}

impl Snapshot {
    fn service_account_count(&self) -> usize {
        self.service_accounts.values().map(|m| m.len()).sum()
    }

    fn set_namespace(&mut self, name: &str, entry: Option<Arc<NamespaceEntry>>) {
        Arc::make_mut(&mut self.namespaces).insert(name.into(), entry);
    }

    fn set_service_account(
        &mut self,
        namespace: &str,
        name: &str,
        entry: Option<Arc<ServiceAccountEntry>>,
    ) {
        let all = Arc::make_mut(&mut self.service_accounts);
        let in_namespace = all.entry(namespace.into()).or_default();
        Arc::make_mut(in_namespace).insert(name.into(), entry);
    }
}

/// Source of [`ClusterCache`] ids, so a thread's remembered snapshot is matched to its cache.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The snapshot this thread last read: (cache id, generation, snapshot).
    static LAST_SNAPSHOT: RefCell<Option<(u64, u64, Arc<Snapshot>)>> = const { RefCell::new(None) };
}

pub struct ClusterCache {
    client: Option<kube::Client>,
    id: u64,
    /// The published snapshot; the lock is held by writers while they replace it and by a
    /// reader only when its thread's copy is older than `generation`.
    state: RwLock<Arc<Snapshot>>,
    /// Bumped after each replacement of `state`.
    generation: AtomicU64,
    namespaces_synced: AtomicBool,
    service_accounts_synced: AtomicBool,
    /// Fetches in progress: concurrent misses on one key (a Deployment scaling up right
    /// after its ServiceAccount was created) share one GET.
    in_flight: Mutex<HashMap<Missing, Arc<SharedFetch>>>,
    /// Bound of a ServiceAccount GET on a miss; zero: no GET.
    service_account_lookup_timeout: Duration,
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
        self.read(|state| lookup(state.namespaces.get(name)))
    }

    fn service_account(&self, namespace: &str, name: &str) -> Lookup<ServiceAccountEntry> {
        self.read(|state| {
            lookup(
                state
                    .service_accounts
                    .get(namespace)
                    .and_then(|m| m.get(name)),
            )
        })
    }
}

/// Shared by every unmanaged namespace (most of a cluster).
static UNMANAGED: LazyLock<Arc<NamespaceEntry>> = LazyLock::new(|| {
    Arc::new(NamespaceEntry {
        policy: Ok(None),
        fs_group: None,
    })
});

fn namespace_entry(meta: &PartialObjectMeta<Namespace>) -> Arc<NamespaceEntry> {
    let entry = NamespaceEntry::from_metadata(
        meta.metadata.labels.as_ref(),
        meta.metadata.annotations.as_ref(),
    );
    if entry == **UNMANAGED {
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
        Self::with_service_account_lookup_timeout(client, metrics, FETCH_TIMEOUT)
    }

    /// [`Self::new`] with the bound of the live GET of a ServiceAccount the cache has not seen
    /// (`--service-account-lookup-timeout-ms`); zero turns that GET off.
    pub fn with_service_account_lookup_timeout(
        client: kube::Client,
        metrics: Metrics,
        timeout: Duration,
    ) -> Arc<Self> {
        let mut cache = Self::build(Some(client), metrics);
        cache.service_account_lookup_timeout = timeout;
        Arc::new(cache)
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
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            state: RwLock::default(),
            generation: AtomicU64::new(0),
            namespaces_synced: AtomicBool::new(false),
            service_accounts_synced: AtomicBool::new(false),
            in_flight: Mutex::default(),
            service_account_lookup_timeout: FETCH_TIMEOUT,
            metrics,
        }
    }

    /// True once both watches have completed their first list.
    pub fn is_ready(&self) -> bool {
        self.namespaces_synced.load(Ordering::Acquire)
            && self.service_accounts_synced.load(Ordering::Acquire)
    }

    /// Runs `f` on the current snapshot: this thread's copy when it is current, otherwise
    /// the published one (taken under the read lock and kept for the next call).
    fn read<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        LAST_SNAPSHOT.with(|last| {
            let mut last = last.borrow_mut();
            if let Some((id, seen, snapshot)) = &*last
                && *id == self.id
                && *seen == generation
            {
                return f(snapshot);
            }
            let snapshot = self.state.read().unwrap_or_else(|p| p.into_inner()).clone();
            let result = f(&snapshot);
            *last = Some((self.id, generation, snapshot));
            result
        })
    }

    /// Publishes a new snapshot made by `change` from the current one (copy on write: only
    /// the maps `change` touches are copied).
    fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Snapshot::clone(&state);
        change(&mut next);
        self.metrics
            .namespaces
            .objects
            .set(next.namespaces.len() as i64);
        self.metrics
            .service_accounts
            .objects
            .set(next.service_account_count() as i64);
        *state = Arc::new(next);
        // After the swap: a reader that sees the new generation finds the new snapshot.
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn insert_namespace(&self, name: &str, entry: Option<NamespaceEntry>) {
        self.update(|state| state.set_namespace(name, entry.map(Arc::new)));
    }

    pub fn insert_service_account(
        &self,
        namespace: &str,
        name: &str,
        entry: Option<Arc<ServiceAccountEntry>>,
    ) {
        self.update(|state| state.set_service_account(namespace, name, entry));
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
                    let name = meta.metadata.name.as_deref().unwrap_or_default();
                    let entry = namespace_entry(&meta);
                    self.update(|state| state.set_namespace(name, Some(entry)));
                }
                Event::Delete(meta) => {
                    let name = meta.metadata.name.as_deref().unwrap_or_default();
                    self.update(|state| {
                        Arc::make_mut(&mut state.namespaces).remove(name);
                    });
                }
                Event::Init => buffer.clear(),
                Event::InitApply(meta) => {
                    let name = meta.metadata.name.as_deref().unwrap_or_default();
                    buffer.insert(name.into(), Some(namespace_entry(&meta)));
                }
                Event::InitDone => {
                    let listed = Arc::new(std::mem::take(&mut buffer));
                    self.update(|state| state.namespaces = listed);
                    if !self.namespaces_synced.swap(true, Ordering::AcqRel) {
                        info!("namespace cache synced");
                    }
                }
            }
        }
    }

    async fn watch_service_accounts(
        self: Arc<Self>,
        stream: impl Stream<Item = watcher::Result<Event<PartialObjectMeta<ServiceAccount>>>>,
    ) {
        let mut stream = std::pin::pin!(stream.default_backoff());
        let mut buffer: HashMap<Arc<str>, AccountsInNamespace> = HashMap::new();
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
                    self.update(|state| {
                        let all = Arc::make_mut(&mut state.service_accounts);
                        if let Some(in_ns) = all.get_mut(ns) {
                            Arc::make_mut(in_ns).remove(name);
                            if in_ns.is_empty() {
                                all.remove(ns);
                            }
                        }
                    });
                }
                Event::Init => buffer.clear(),
                Event::InitApply(meta) => {
                    let (ns, name) = sa_key(&meta);
                    buffer
                        .entry(ns.into())
                        .or_default()
                        .insert(name.into(), Some(service_account_entry(&meta)));
                }
                Event::InitDone => {
                    let listed: ServiceAccountMap = std::mem::take(&mut buffer)
                        .into_iter()
                        .map(|(ns, accounts)| (ns, Arc::new(accounts)))
                        .collect();
                    let listed = Arc::new(listed);
                    self.update(|state| state.service_accounts = listed);
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
        if let Missing::ServiceAccount { namespace, name } = missing
            && self.service_account_lookup_timeout.is_zero()
        {
            return Err(FetchError::LookupDisabled {
                what: format!("serviceaccount {namespace}/{name}"),
            });
        }
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
        let result = bounded_get(&api, name, &what, FETCH_TIMEOUT, metrics).await?;
        self.update(|state| match result {
            Some(meta) => state.set_namespace(name, Some(namespace_entry(&meta))),
            // A negative entry, unless the watch has meanwhile delivered the namespace.
            None if state.namespaces.contains_key(name) => {}
            None => state.set_namespace(name, None),
        });
        Ok(())
    }

    async fn fetch_service_account(&self, namespace: &str, name: &str) -> Result<(), FetchError> {
        let what = format!("serviceaccount {namespace}/{name}");
        let metrics = &self.metrics.service_accounts;
        let client = self.client.clone().ok_or(FetchError::NoClient)?;
        let api = Api::<ServiceAccount>::namespaced(client, namespace);
        let timeout = self.service_account_lookup_timeout;
        let result = bounded_get(&api, name, &what, timeout, metrics).await?;
        self.update(|state| match result {
            Some(meta) => {
                state.set_service_account(namespace, name, Some(service_account_entry(&meta)));
            }
            None if state
                .service_accounts
                .get(namespace)
                .is_some_and(|m| m.contains_key(name)) => {}
            None => state.set_service_account(namespace, name, None),
        });
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
    timeout: Duration,
    metrics: &CacheMetrics,
) -> Result<Option<PartialObjectMeta<K>>, FetchError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    debug!(what, "cache miss; fetching");
    let result = match tokio::time::timeout(timeout, api.get_metadata_opt(name)).await {
        Err(_) => Err(FetchError::Timeout {
            what: what.to_owned(),
            after: timeout,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ServiceAccountEntry;

    fn found<T>(lookup: &Lookup<T>) -> bool {
        matches!(lookup, Lookup::Found(_))
    }

    #[test]
    fn readers_see_every_change_and_caches_do_not_mix() {
        let (a, b) = (
            ClusterCache::offline(Metrics::new()),
            ClusterCache::offline(Metrics::new()),
        );
        assert_eq!(a.namespace("x"), Lookup::Missing);
        a.insert_namespace("x", None);
        assert_eq!(a.namespace("x"), Lookup::NotFound);
        // This thread now holds a's snapshot; b must not answer from it.
        assert_eq!(b.namespace("x"), Lookup::Missing);
        a.insert_namespace(
            "x",
            Some(NamespaceEntry {
                policy: Ok(None),
                fs_group: None,
            }),
        );
        assert!(found(&a.namespace("x")));
        a.insert_service_account("x", "sa", Some(ServiceAccountEntry::from_annotations(None)));
        assert!(found(&a.service_account("x", "sa")));
        assert_eq!(a.service_account("x", "other"), Lookup::Missing);
        // Other threads, with no snapshot yet or an old one, see the same.
        let a2 = a.clone();
        let seen = std::thread::spawn(move || {
            let before = found(&a2.service_account("x", "sa"));
            a2.insert_service_account("x", "other", None);
            (before, a2.service_account("x", "other"))
        })
        .join()
        .unwrap();
        assert_eq!(seen, (true, Lookup::NotFound));
        assert_eq!(a.service_account("x", "other"), Lookup::NotFound);
        let text = a.metrics.encode();
        assert!(
            text.contains(r#"cache_objects{cache="serviceaccounts"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn a_change_copies_only_the_namespace_it_touches() {
        let cache = ClusterCache::offline(Metrics::new());
        cache.insert_service_account("a", "sa", None);
        cache.insert_service_account("b", "sa", None);
        let before = cache.read(|s| s.service_accounts["a"].clone());
        cache.insert_service_account("b", "other", None);
        let after = cache.read(|s| s.service_accounts["a"].clone());
        assert!(Arc::ptr_eq(&before, &after));
    }
}

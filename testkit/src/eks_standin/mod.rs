//! A stand-in for the EKS operations moto lacks, in front of moto: EKS Pod Identity
//! associations, add-ons, access entries and access policies, and the cluster's
//! authentication mode. Same REST paths, JSON members, error types (`x-amzn-ErrorType` and
//! `{"message": ..}`) and status codes as the service, so the real `aws-sdk-eks` client and
//! our binaries talk to it through `AWS_ENDPOINT_URL`. Every other request (IAM, STS, EC2,
//! EKS CreateCluster/DescribeCluster/ListClusters...) is forwarded to moto unchanged and its
//! answer streamed back.
//!
//! ```no_run
//! # async fn demo() {
//! use mlplatform_testkit::{EksStandIn, Moto, unique_name};
//! let standin = EksStandIn::start(Moto::shared());      // or EksStandIn::shared()
//! let config = standin.sdk_config().await;              // or standin.env() for a child
//! let cluster = unique_name("demo");
//! standin.create_eks_cluster(&cluster).unwrap();         // in moto, through the stand-in
//! standin.set_authentication_mode(&cluster, "API_AND_CONFIG_MAP");
//! standin.preset_pod_identity_association(&cluster, "ml", "sa",
//!     "arn:aws:iam::123456789012:role/theirs", &[]);
//! // ... run the code under test against standin.endpoint() ...
//! assert!(standin.eks_writes_for(&cluster).is_empty(), "a re-run writes nothing");
//! # }
//! ```
//!
//! What the stand-in answers itself (state in memory, per cluster name):
//! - **Pod Identity**: Create/List (`namespace`, `serviceAccount`, `maxResults` 1-100,
//!   `nextToken`)/Describe/Update/DeletePodIdentityAssociation. One association per
//!   namespace and ServiceAccount: another is `409 ResourceInUseException` "Association
//!   already exists: a-…". Ids are `a-` + 17 characters (a malformed one is
//!   InvalidParameterException, as the service says). The role must exist in moto's IAM and
//!   trust `pods.eks.amazonaws.com` with `sts:AssumeRole` ("Role provided in the request does
//!   not exist" / "Trust policy of the role provided is invalid"), unless
//!   [`EksStandIn::skip_role_checks`]; `sts:TagSession` is not checked.
//! - **Add-ons**: Create/Describe/List/DeleteAddon for the usual EKS add-on names
//!   (`eks-pod-identity-agent`, `vpc-cni`...; others are InvalidParameterException).
//!   `CREATING`, then `ACTIVE` after [`EksStandIn::set_addon_delay`] (zero by default).
//!   A missing add-on is `404` "No addon: NAME found in cluster: CLUSTER".
//! - **Access entries**: Create/Describe/List (`associatedPolicyArn`)/Update/DeleteAccessEntry,
//!   Associate/Disassociate/ListAssociatedAccessPolicies, ListAccessPolicies. On a
//!   `CONFIG_MAP` cluster every entry operation is `400 InvalidRequestException` "The
//!   cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to
//!   perform this operation."; a second entry for a principal is `409` "The specified
//!   access entry resource is already in use on this cluster."; a missing one is `404`
//!   "The specified principalArn could not be found. …". Default usernames, `system:`
//!   groups and reserved username prefixes, node entry types, `cluster`/`namespace` scopes
//!   (namespaces required for `namespace`, `*` suffix allowed) are checked as EKS does.
//! - **Authentication mode**: DescribeCluster and CreateCluster are forwarded and
//!   `accessConfig` added to moto's answer. A cluster starts in `CONFIG_MAP` (the API's
//!   default, [`DEFAULT_AUTHENTICATION_MODE`]) unless CreateCluster asked for another.
//!   UpdateClusterConfig with `accessConfig` moves CONFIG_MAP → API_AND_CONFIG_MAP → API,
//!   one step at a time and never back ("Unsupported authentication mode update from X
//!   to Y", InvalidParameterException, as is the same mode again); the mode applies at once,
//!   the answer says `InProgress` and DescribeUpdate `Successful`.
//! - **Tags**: `tags` on create and in every answer; Tag/Untag/ListTagsForResource on the
//!   association, access-entry and add-on ARNs (others go to moto).
//! - A cluster moto does not know is `404 ResourceNotFoundException` "No cluster found for
//!   name: NAME." (asked of moto on every call, so clusters made directly in moto count).
//!
//! Not modelled: add-on updates (UpdateAddon is `501 NotImplemented`), add-on versions and
//! configuration schemas, associations made by add-ons (`ownerArn`), the cluster creator's
//! access entry EKS adds on switching modes, eventual consistency, IAM checks of access-entry
//! principals, and any authorization (every caller may do everything).

mod access;
mod model;
mod pod_identity;
mod server;
mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

pub use model::{DEFAULT_AUTHENTICATION_MODE, EksCall};

use crate::moto::{Moto, aws_env, create_eks_cluster_via, sdk_config_for};
use model::{AddonStatus, ClusterState, State, Tags, association_id, now_epoch};
use server::{Shared, lock};

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum EksStandInError {
    #[error("EKS stand-in: cannot listen on 127.0.0.1: {0}")]
    Listen(#[source] std::io::Error),
    #[error("EKS stand-in: cannot start its runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The EKS stand-in on 127.0.0.1 (plain HTTP, a free port), served from its own thread, so
/// it works from sync and async tests alike. Stops when dropped.
pub struct EksStandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EksStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksStandIn")
            .field("endpoint", &self.endpoint())
            .field("moto", &self.shared.upstream.base)
            .finish()
    }
}

impl EksStandIn {
    /// A stand-in in front of `moto`.
    ///
    /// # Panics
    /// When no local port can be bound (test infrastructure: nothing to recover).
    pub fn start(moto: &Moto) -> EksStandIn {
        match EksStandIn::try_start(&moto.endpoint()) {
            Ok(standin) => standin,
            Err(e) => panic!("{e}"),
        }
    }

    /// One stand-in per test process, in front of [`Moto::shared`]. Tests share it: use
    /// [`crate::unique_name`] clusters (every preset is per cluster).
    ///
    /// # Panics
    /// When moto or the stand-in cannot be started (the message says why).
    pub fn shared() -> &'static EksStandIn {
        static SHARED: OnceLock<EksStandIn> = OnceLock::new();
        SHARED.get_or_init(|| EksStandIn::start(Moto::shared()))
    }

    /// A stand-in in front of the moto (or anything speaking like it) at `upstream`, e.g.
    /// `http://127.0.0.1:5000`.
    pub fn try_start(upstream: &str) -> Result<EksStandIn, EksStandInError> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(EksStandInError::Listen)?;
        listener
            .set_nonblocking(true)
            .map_err(EksStandInError::Listen)?;
        let addr = listener.local_addr().map_err(EksStandInError::Listen)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(EksStandInError::Runtime)?;
        // The hyper client needs a runtime to be built in.
        let upstream = {
            let _entered = runtime.enter();
            server::Shared {
                state: Mutex::new(State::default()),
                upstream: upstream::Upstream::new(upstream),
            }
        };
        let shared = Arc::new(upstream);
        let (stop, stopped) = watch::channel(false);
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("eks-standin-{}", addr.port()))
            .spawn(move || serve(runtime, listener, app, stopped))
            .map_err(EksStandInError::Runtime)?;
        Ok(EksStandIn {
            shared,
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: what `AWS_ENDPOINT_URL` should be.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// [`Moto::env`] pointing at the stand-in.
    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint())
    }

    /// [`Moto::sdk_config`] pointing at the stand-in.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }

    /// Creates an EKS cluster in us-east-1 through the stand-in (so moto has it) and returns
    /// it as DescribeCluster would, `accessConfig` included.
    pub fn create_eks_cluster(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        create_eks_cluster_via(self.addr.port(), name, "us-east-1")
    }

    fn with_cluster<T>(&self, cluster: &str, f: impl FnOnce(&mut ClusterState) -> T) -> T {
        let mut state = lock(&self.shared);
        f(state.clusters.entry(cluster.to_string()).or_default())
    }

    /// Sets the cluster's authentication mode (any string: tests may want a bad one).
    pub fn set_authentication_mode(&self, cluster: &str, mode: &str) {
        self.with_cluster(cluster, |c| c.auth_mode = Some(mode.to_string()));
    }

    /// The cluster's authentication mode as DescribeCluster reports it.
    pub fn authentication_mode(&self, cluster: &str) -> String {
        self.with_cluster(cluster, |c| c.auth_mode().to_string())
    }

    /// How long add-ons created on `cluster` from now on stay `CREATING` (zero by default).
    pub fn set_addon_delay(&self, cluster: &str, delay: Duration) {
        self.with_cluster(cluster, |c| c.addon_delay = delay);
    }

    /// Stops looking up Pod Identity roles in moto's IAM for `cluster`.
    pub fn skip_role_checks(&self, cluster: &str) {
        self.with_cluster(cluster, |c| c.skip_role_checks = true);
    }

    /// An association made by someone else (no role checks); returns its id.
    pub fn preset_pod_identity_association(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        role_arn: &str,
        tags: &[(&str, &str)],
    ) -> String {
        let id = association_id();
        let mut state = lock(&self.shared);
        let seq = state.next_seq();
        let now = now_epoch();
        let association = model::Association {
            seq,
            id: id.clone(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            role_arn: role_arn.to_string(),
            target_role_arn: None,
            external_id: None,
            disable_session_tags: false,
            policy: None,
            tags: to_tags(tags),
            created_at: now,
            modified_at: now,
        };
        let cluster = state.clusters.entry(cluster.to_string()).or_default();
        cluster.associations.insert(seq, association);
        id
    }

    /// An installed add-on in `status` (`ACTIVE`, `DEGRADED`, `CREATE_FAILED`...), with
    /// health issues as `(code, message)`.
    pub fn preset_addon(&self, cluster: &str, name: &str, status: &str, issues: &[(&str, &str)]) {
        let mut addon = pod_identity::new_addon(name, None, AddonStatus::Fixed(status.to_string()));
        addon.issues = issues
            .iter()
            .map(|(code, message)| json!({"code": code, "message": message, "resourceIds": []}))
            .collect();
        self.with_cluster(cluster, |c| c.addons.insert(name.to_string(), addon));
    }

    /// Removes an add-on; whether there was one.
    pub fn remove_addon(&self, cluster: &str, name: &str) -> bool {
        self.with_cluster(cluster, |c| c.addons.remove(name).is_some())
    }

    /// A STANDARD access entry made by someone else (whatever the authentication mode).
    pub fn preset_access_entry(
        &self,
        cluster: &str,
        principal_arn: &str,
        kubernetes_groups: &[&str],
        tags: &[(&str, &str)],
    ) {
        let mut state = lock(&self.shared);
        let seq = state.next_seq();
        let groups = kubernetes_groups.iter().map(|g| g.to_string()).collect();
        let entry = access::new_entry(seq, principal_arn, "STANDARD", None, groups, to_tags(tags));
        let cluster = state.clusters.entry(cluster.to_string()).or_default();
        cluster
            .entries
            .retain(|_, e| e.principal_arn != principal_arn);
        cluster.entries.insert(seq, entry);
    }

    /// Every request seen, in order.
    pub fn calls(&self) -> Vec<EksCall> {
        lock(&self.shared).calls.clone()
    }

    /// The state-changing EKS operations the stand-in answered for `cluster`, whatever
    /// their outcome, tagging of its resources included: e.g. to check that a re-run
    /// writes nothing.
    pub fn eks_writes_for(&self, cluster: &str) -> Vec<EksCall> {
        let marker = format!("/{cluster}/");
        self.calls()
            .into_iter()
            .filter(|c| c.is_eks_write())
            .filter(|c| model::percent_decode(&c.path).is_some_and(|p| p.contains(&marker)))
            .collect()
    }

    /// Forgets the calls seen so far.
    pub fn clear_calls(&self) {
        lock(&self.shared).calls.clear();
    }
}

impl Drop for EksStandIn {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn to_tags(tags: &[(&str, &str)]) -> Tags {
    tags.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The server thread: serves until told to stop, then gives open requests a moment.
fn serve(
    runtime: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    app: axum::Router,
    stopped: watch::Receiver<bool>,
) {
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "EKS stand-in cannot listen");
                return;
            }
        };
        let mut graceful = stopped.clone();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|stop| *stop).await;
        });
        let mut deadline = stopped;
        tokio::select! {
            result = server => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "EKS stand-in stopped");
                }
            }
            _ = async move {
                let _ = deadline.wait_for(|stop| *stop).await;
                let started = Instant::now();
                tokio::time::sleep(Duration::from_secs(2).saturating_sub(started.elapsed())).await;
            } => {}
        }
    });
}

//! The cluster's IAM OIDC provider (what `eksctl utils associate-iam-oidc-provider` does):
//! found for the cluster's issuer, created only when missing, client ID `sts.amazonaws.com`.
//!
//! Thumbprint: SHA-1 of the top certificate the issuer presents in its TLS chain (the last one
//! sent, as eksctl takes it), fetched over rustls (ring) with a short timeout and the system's
//! roots. When the issuer cannot be reached or its chain does not verify, the thumbprint is
//! omitted: IAM no longer needs it for EKS issuers (it trusts their CA itself).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use mlplatform_namespace_policy::eks;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use serde::Serialize;
use sha1::{Digest, Sha1};
use tokio::net::TcpStream;

use crate::arn::parse_eks_cluster_arn;
use crate::aws::{Aws, AwsError};
use crate::common::Change;
use crate::facts::{ClusterFacts, issuer_host_path};
use crate::irsa::oidc_provider_arn;
use crate::steps::{Direction, OidcAction, OidcStep, Plan, Step};

/// How long the thumbprint fetch may take in all (connect + handshake).
pub(crate) const THUMBPRINT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error(
        "EKS cluster {cluster} has no OIDC issuer; IRSA needs one (EKS clusters since 1.13 have it): check --cluster"
    )]
    NoIssuer { cluster: String },
    #[error("EKS answered with cluster ARN {arn:?}, which does not parse: {message}")]
    BadClusterArn { arn: String, message: String },
    #[error("{0}")]
    Aws(#[from] AwsError),
}

/// Why no thumbprint could be computed (never fatal: the provider is created without one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbprintError {
    #[error("issuer URL {0:?} is not https://HOST[:PORT]/...")]
    BadIssuer(String),
    #[error("cannot connect to {host}:{port}: {message}")]
    Connect {
        host: String,
        port: u16,
        message: String,
    },
    #[error("TLS handshake with {host} failed: {message}")]
    Tls { host: String, message: String },
    #[error("{host} did not answer within {secs}s")]
    Timeout { host: String, secs: u64 },
    #[error("{host} sent no certificate")]
    NoCertificate { host: String },
}

/// What `oidc associate` prints: what it found or will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcOutputs {
    pub(crate) cluster: String,
    pub(crate) issuer: String,
    pub provider_arn: String,
    /// Created (or, in a plan, to be created) or Unchanged (already there).
    pub change: Change,
    pub(crate) client_ids: Vec<String>,
    /// Empty when the provider exists, or when the issuer's chain could not be read.
    pub(crate) thumbprints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) thumbprint_skipped: Option<String>,
}

/// Options of the thumbprint fetch.
#[derive(Debug, Clone)]
pub struct ThumbprintOptions {
    /// false: do not contact the issuer at all (`--skip-thumbprint`).
    pub fetch: bool,
    pub timeout: Duration,
    /// None: the system's roots.
    pub roots: Option<Arc<RootCertStore>>,
}

impl Default for ThumbprintOptions {
    fn default() -> Self {
        Self {
            fetch: true,
            timeout: THUMBPRINT_TIMEOUT,
            roots: None,
        }
    }
}

/// `oidc associate`'s plan: one step, the provider.
pub type OidcPlan = Plan<OidcOutputs>;

/// The plan's one step: create the provider when missing (untagged: a provider made by
/// `oidc associate` is the user's, and disconnect never deletes it).
fn provider_step(outputs: &OidcOutputs) -> Step {
    Step::Oidc(OidcStep {
        issuer: issuer_host_path(&outputs.issuer),
        provider_arn: outputs.provider_arn.clone(),
        change: outputs.change,
        action: if outputs.change == Change::Created {
            OidcAction::Create {
                url: outputs.issuer.clone(),
                client_ids: outputs.client_ids.clone(),
                thumbprints: outputs.thumbprints.clone(),
                tags: Vec::new(),
            }
        } else {
            OidcAction::None
        },
    })
}

/// Pure: the provider the cluster needs, given what IAM holds and the thumbprint (if any).
pub fn plan_oidc(
    cluster: &ClusterFacts,
    existing: Option<String>,
    thumbprint: Result<Option<String>, String>,
) -> Result<OidcPlan, OidcError> {
    let outputs = oidc_outputs(cluster, existing, thumbprint)?;
    let step = provider_step(&outputs);
    Ok(Plan::new(outputs, vec![step], Direction::Create))
}

fn oidc_outputs(
    cluster: &ClusterFacts,
    existing: Option<String>,
    thumbprint: Result<Option<String>, String>,
) -> Result<OidcOutputs, OidcError> {
    let issuer = cluster
        .oidc_issuer
        .clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| OidcError::NoIssuer {
            cluster: cluster.name.clone(),
        })?;
    let parsed = parse_eks_cluster_arn(&cluster.arn).map_err(|e| OidcError::BadClusterArn {
        arn: cluster.arn.clone(),
        message: e.to_string(),
    })?;
    let client_ids = vec![eks::DEFAULT_AUDIENCE.to_owned()];
    Ok(match existing {
        Some(arn) => OidcOutputs {
            cluster: cluster.name.clone(),
            issuer,
            provider_arn: arn,
            change: Change::Unchanged,
            client_ids,
            thumbprints: Vec::new(),
            thumbprint_skipped: None,
        },
        None => {
            let (thumbprints, skipped) = match thumbprint {
                Ok(Some(t)) => (vec![t], None),
                Ok(None) => (
                    Vec::new(),
                    Some("not fetched (--skip-thumbprint)".to_owned()),
                ),
                Err(why) => (Vec::new(), Some(why)),
            };
            OidcOutputs {
                provider_arn: oidc_provider_arn(
                    &parsed.partition,
                    &parsed.account,
                    &issuer_host_path(&issuer),
                ),
                cluster: cluster.name.clone(),
                issuer,
                change: Change::Created,
                client_ids,
                thumbprints,
                thumbprint_skipped: skipped,
            }
        }
    })
}

/// Lowercase hex SHA-1 of a DER certificate (the form IAM's ThumbprintList holds).
pub fn thumbprint_of(der: &[u8]) -> String {
    hex::encode(Sha1::digest(der))
}

/// `https://host[:port]/path` → (host, port).
pub(crate) fn issuer_host_port(issuer_url: &str) -> Result<(String, u16), ThumbprintError> {
    let bad = || ThumbprintError::BadIssuer(issuer_url.to_owned());
    let rest = issuer_url.trim().strip_prefix("https://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    // IPv6 literal: [::1]:443
    if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => 443,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_owned(), port.parse().map_err(|_| bad())?)),
        None => Ok((authority.to_owned(), 443)),
    }
}

/// The system's trust roots (empty when none can be loaded: every fetch then fails to verify,
/// and the thumbprint is omitted).
pub(crate) fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::debug!(error = %e, "loading a system root certificate failed");
    }
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "system roots loaded");
    roots
}

/// Name resolution on a detached thread: a resolver that hangs past the timeout must not
/// hold the process at exit (the runtime waits for its own blocking tasks when it shuts down).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = (host.to_owned(), port);
    std::thread::Builder::new()
        .name("oidc-resolve".to_owned())
        .spawn(move || {
            let found = target
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>)
                .map_err(|e| e.to_string());
            let _ = tx.send(found);
        })
        .map_err(|e| format!("cannot start the resolver thread: {e}"))?;
    match rx.await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err("the name resolves to no address".to_owned()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the resolver thread stopped".to_owned()),
    }
}

/// Connects to the issuer, verifies its chain against `roots`, and returns the thumbprint of
/// the last certificate it sent.
pub async fn fetch_thumbprint(
    issuer_url: &str,
    roots: Arc<RootCertStore>,
    timeout: Duration,
) -> Result<String, ThumbprintError> {
    let (host, port) = issuer_host_port(issuer_url)?;
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| ThumbprintError::BadIssuer(issuer_url.to_owned()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ThumbprintError::Tls {
        host: host.clone(),
        message: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let connect_failed = |message: String| ThumbprintError::Connect {
            host: host.clone(),
            port,
            message,
        };
        let addrs = resolve(&host, port).await.map_err(connect_failed)?;
        let tcp = TcpStream::connect(addrs.as_slice())
            .await
            .map_err(|e| connect_failed(e.to_string()))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| ThumbprintError::Tls {
                host: host.clone(),
                message: e.to_string(),
            })?;
        let (_, conn) = tls.get_ref();
        conn.peer_certificates()
            .and_then(|chain| chain.last())
            .map(|top| thumbprint_of(top.as_ref()))
            .ok_or_else(|| ThumbprintError::NoCertificate { host: host.clone() })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ThumbprintError::Timeout {
            host: host.clone(),
            secs: timeout.as_secs().max(1),
        })?
}

/// What `oidc associate` plans from: the cluster, the provider IAM holds for its issuer (if
/// any), and the issuer's thumbprint when the provider is missing (an error says why not).
pub struct OidcFacts {
    pub cluster: ClusterFacts,
    pub existing: Option<String>,
    pub thumbprint: Result<Option<String>, String>,
}

/// Reads the cluster, IAM and (only when the provider is missing) the issuer. Writes nothing.
pub async fn read_oidc_facts(
    aws: &Aws,
    cluster_name: &str,
    options: &ThumbprintOptions,
) -> Result<OidcFacts, OidcError> {
    let cluster = aws.describe_cluster(cluster_name).await?;
    let issuer = cluster
        .oidc_issuer
        .clone()
        .ok_or_else(|| OidcError::NoIssuer {
            cluster: cluster.name.clone(),
        })?;
    let existing = aws.find_oidc_provider(&issuer).await?;
    let thumbprint = if existing.is_some() || !options.fetch {
        Ok(None)
    } else {
        let roots = options
            .roots
            .clone()
            .unwrap_or_else(|| Arc::new(system_roots()));
        match fetch_thumbprint(&issuer, roots, options.timeout).await {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                tracing::info!(error = %e, "no thumbprint; IAM does not need one for EKS issuers");
                Err(format!("issuer not verifiable ({e}); IAM does not need it"))
            }
        }
    };
    Ok(OidcFacts {
        cluster,
        existing,
        thumbprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(issuer: Option<&str>) -> ClusterFacts {
        ClusterFacts {
            name: "c1".into(),
            arn: "arn:aws:eks:us-east-1:123456789012:cluster/c1".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            oidc_issuer: issuer.map(str::to_owned),
            authentication_mode: None,
            version: None,
            endpoint: None,
        }
    }

    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC";

    #[test]
    fn missing_provider_is_planned_with_the_sts_client_id() {
        let plan = plan_oidc(&cluster(Some(ISSUER)), None, Ok(Some("ab".repeat(20)))).unwrap();
        assert_eq!(plan.outputs.change, Change::Created);
        assert_eq!(
            plan.outputs.provider_arn,
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
        );
        assert_eq!(
            plan.outputs.client_ids,
            vec!["sts.amazonaws.com".to_owned()]
        );
        assert_eq!(plan.outputs.thumbprints, vec!["ab".repeat(20)]);
        let Some(OidcStep {
            action: OidcAction::Create { url, tags, .. },
            ..
        }) = plan.oidc_step()
        else {
            panic!("{:?}", plan.steps)
        };
        assert_eq!((url.as_str(), tags.len()), (ISSUER, 0));
    }

    #[test]
    fn existing_provider_is_kept_and_unreachable_issuers_omit_the_thumbprint() {
        let arn = "arn:aws:iam::123456789012:oidc-provider/x".to_owned();
        let plan = plan_oidc(&cluster(Some(ISSUER)), Some(arn.clone()), Ok(None)).unwrap();
        assert_eq!(
            (plan.outputs.change, plan.outputs.provider_arn),
            (Change::Unchanged, arn)
        );
        let plan = plan_oidc(&cluster(Some(ISSUER)), None, Err("down".into())).unwrap();
        assert!(plan.outputs.thumbprints.is_empty());
        assert_eq!(plan.outputs.thumbprint_skipped.as_deref(), Some("down"));
        assert_eq!(
            plan_oidc(&cluster(None), None, Ok(None)).unwrap_err(),
            OidcError::NoIssuer {
                cluster: "c1".into()
            }
        );
    }

    #[test]
    fn issuer_urls_split_into_host_and_port() {
        assert_eq!(
            issuer_host_port(ISSUER).unwrap(),
            ("oidc.eks.us-east-1.amazonaws.com".into(), 443)
        );
        assert_eq!(
            issuer_host_port("https://localhost:8443/id/x").unwrap(),
            ("localhost".into(), 8443)
        );
        assert_eq!(
            issuer_host_port("https://[::1]:9/x").unwrap(),
            ("::1".into(), 9)
        );
        for bad in [
            "http://x/y",
            "https:///x",
            "https://h:port/x",
            "https://u@h/x",
        ] {
            assert!(issuer_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thumbprints_are_lowercase_hex_sha1() {
        // SHA-1("abc") from FIPS 180-2.
        assert_eq!(
            thumbprint_of(b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}

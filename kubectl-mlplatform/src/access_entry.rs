//! Cluster access for an IAM principal: an EKS access entry or an aws-auth mapping, chosen by
//! `--auth-mode auto|configmap|access-entry` and the cluster's authenticationMode.
//!
//! `auto`: API or API_AND_CONFIG_MAP → an access entry (username, Kubernetes groups, and an
//! access policy scoped to the profile's namespaces); CONFIG_MAP (or a cluster that does not
//! say, as older ones) → aws-auth. Idempotent: the entry and its associations are read first
//! and only differences are written. Only entries tagged as made by kubectl-mlplatform are
//! ever updated or deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use serde::Serialize;

use crate::aws::{Aws, AwsError, classify};
use crate::aws_auth::store::modify_aws_auth;
use crate::aws_auth::{AwsAuthError, Mapping, kind_of_arn, normalize_arn};
use crate::common::{Change, DryRun};

/// What connect maps a vendor role to when the profile names no access policy.
pub const DEFAULT_ACCESS_POLICY: &str =
    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy";

/// `--auth-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Follow the cluster's authentication mode.
    #[default]
    Auto,
    /// The aws-auth ConfigMap.
    Configmap,
    /// An EKS access entry.
    AccessEntry,
}

/// The mechanism actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    AwsAuth,
    AccessEntry,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessEntryError {
    #[error(
        "EKS cluster {cluster} uses authentication mode API, which ignores the aws-auth ConfigMap; use --auth-mode access-entry (or auto), or switch the cluster to API_AND_CONFIG_MAP"
    )]
    ConfigMapIgnored { cluster: String },
    #[error(
        "EKS cluster {cluster} uses authentication mode CONFIG_MAP, which has no access entries; use --auth-mode configmap (or auto), or enable them (`aws eks update-cluster-config --name {cluster} --access-config authenticationMode=API_AND_CONFIG_MAP`)"
    )]
    AccessEntriesDisabled { cluster: String },
    #[error(
        "an EKS access entry for {principal} already exists on cluster {cluster} and was not made by kubectl-mlplatform; refusing to change or delete it: remove it (`aws eks delete-access-entry --cluster-name {cluster} --principal-arn {principal}`) or use --auth-mode configmap"
    )]
    NotOurs { principal: String, cluster: String },
    #[error(
        "no namespaces to scope the access policy to; pass the namespaces (an access entry without them would be cluster-wide)"
    )]
    NoNamespaces,
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{0}")]
    AwsAuth(#[from] AwsAuthError),
}

/// Pure: the mechanism for `mode` on a cluster whose authenticationMode is `cluster_mode`.
pub(crate) fn choose_mechanism(
    mode: AuthMode,
    cluster: &str,
    cluster_mode: Option<&str>,
) -> Result<Mechanism, AccessEntryError> {
    let entries_work = matches!(cluster_mode, Some("API" | "API_AND_CONFIG_MAP"));
    let config_map_works = cluster_mode != Some("API");
    match mode {
        AuthMode::Auto if entries_work => Ok(Mechanism::AccessEntry),
        AuthMode::Auto => Ok(Mechanism::AwsAuth),
        AuthMode::Configmap if config_map_works => Ok(Mechanism::AwsAuth),
        AuthMode::Configmap => Err(AccessEntryError::ConfigMapIgnored {
            cluster: cluster.to_owned(),
        }),
        AuthMode::AccessEntry if entries_work => Ok(Mechanism::AccessEntry),
        AuthMode::AccessEntry => Err(AccessEntryError::AccessEntriesDisabled {
            cluster: cluster.to_owned(),
        }),
    }
}

/// The access wanted for one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessRequest {
    pub(crate) cluster: String,
    pub(crate) principal_arn: String,
    pub(crate) username: String,
    pub(crate) groups: Vec<String>,
    pub(crate) namespaces: Vec<String>,
    pub(crate) policy_arn: String,
}

/// Where an associated access policy applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "namespaces")]
pub enum Scope {
    Cluster,
    Namespace(BTreeSet<String>),
}

/// An access entry as EKS holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedEntry {
    pub username: Option<String>,
    pub groups: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
    pub policies: BTreeMap<String, Scope>,
}

impl ObservedEntry {
    pub(crate) fn is_ours(&self) -> bool {
        self.tags.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum AccessEntryAction {
    #[serde(rename_all = "camelCase")]
    CreateEntry {
        username: String,
        groups: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    UpdateEntry {
        username: String,
        groups: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    AssociatePolicy {
        policy_arn: String,
        namespaces: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    DisassociatePolicy {
        policy_arn: String,
    },
    DeleteEntry,
}

/// Pure: the writes that make the entry what `req` asks for.
pub(crate) fn plan_access_entry(
    req: &AccessRequest,
    observed: Option<&ObservedEntry>,
) -> Result<(Change, Vec<AccessEntryAction>), AccessEntryError> {
    if req.namespaces.is_empty() {
        return Err(AccessEntryError::NoNamespaces);
    }
    let groups: BTreeSet<String> = req.groups.iter().cloned().collect();
    let namespaces: BTreeSet<String> = req.namespaces.iter().cloned().collect();
    let associate = AccessEntryAction::AssociatePolicy {
        policy_arn: req.policy_arn.clone(),
        namespaces: namespaces.iter().cloned().collect(),
    };
    let Some(entry) = observed else {
        return Ok((
            Change::Created,
            vec![
                AccessEntryAction::CreateEntry {
                    username: req.username.clone(),
                    groups: groups.into_iter().collect(),
                },
                associate,
            ],
        ));
    };
    if !entry.is_ours() {
        return Err(AccessEntryError::NotOurs {
            principal: req.principal_arn.clone(),
            cluster: req.cluster.clone(),
        });
    }
    let mut actions = Vec::new();
    if entry.username.as_deref() != Some(req.username.as_str()) || entry.groups != groups {
        actions.push(AccessEntryAction::UpdateEntry {
            username: req.username.clone(),
            groups: groups.into_iter().collect(),
        });
    }
    if entry.policies.get(&req.policy_arn) != Some(&Scope::Namespace(namespaces)) {
        actions.push(associate);
    }
    // Our entry holds exactly the policy asked for: a changed profile must not leave a
    // broader one behind.
    for policy in entry.policies.keys().filter(|p| **p != req.policy_arn) {
        actions.push(AccessEntryAction::DisassociatePolicy {
            policy_arn: policy.clone(),
        });
    }
    let change = if actions.is_empty() {
        Change::Unchanged
    } else {
        Change::Updated
    };
    Ok((change, actions))
}

/// Pure: removing the entry (only ours).
pub(crate) fn plan_access_entry_removal(
    cluster: &str,
    principal_arn: &str,
    observed: Option<&ObservedEntry>,
) -> Result<(Change, Vec<AccessEntryAction>), AccessEntryError> {
    match observed {
        None => Ok((Change::Absent, Vec::new())),
        Some(entry) if entry.is_ours() => {
            Ok((Change::Deleted, vec![AccessEntryAction::DeleteEntry]))
        }
        Some(_) => Err(AccessEntryError::NotOurs {
            principal: principal_arn.to_owned(),
            cluster: cluster.to_owned(),
        }),
    }
}

/// The access entry of `principal_arn` with its policy associations; None when there is none.
pub(crate) async fn read_access_entry(
    aws: &Aws,
    cluster: &str,
    principal_arn: &str,
) -> Result<Option<ObservedEntry>, AwsError> {
    const OP: &str = "eks:DescribeAccessEntry";
    let out = match aws
        .eks
        .describe_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal_arn)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            return match classify(OP, e) {
                AwsError::Service { code, .. } if code == "ResourceNotFoundException" => Ok(None),
                other => Err(other),
            };
        }
    };
    let Some(entry) = out.access_entry() else {
        return Ok(None);
    };
    let mut observed = ObservedEntry {
        username: entry.username().map(str::to_owned),
        groups: entry.kubernetes_groups().iter().cloned().collect(),
        tags: entry
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        policies: BTreeMap::new(),
    };
    let mut next: Option<String> = None;
    loop {
        const LIST: &str = "eks:ListAssociatedAccessPolicies";
        let page = aws
            .eks
            .list_associated_access_policies()
            .cluster_name(cluster)
            .principal_arn(principal_arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| classify(LIST, e))?;
        for p in page.associated_access_policies() {
            let Some(arn) = p.policy_arn() else { continue };
            let scope = match p.access_scope() {
                Some(s) if s.r#type() == Some(&AccessScopeType::Namespace) => {
                    Scope::Namespace(s.namespaces().iter().cloned().collect())
                }
                _ => Scope::Cluster,
            };
            observed.policies.insert(arn.to_owned(), scope);
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => break,
        }
    }
    Ok(Some(observed))
}

/// Carries out access-entry actions in order.
pub(crate) async fn apply_access_entry(
    aws: &Aws,
    req_cluster: &str,
    principal_arn: &str,
    actions: &[AccessEntryAction],
) -> Result<(), AwsError> {
    for action in actions {
        match action {
            AccessEntryAction::CreateEntry { username, groups } => {
                const OP: &str = "eks:CreateAccessEntry";
                aws.eks
                    .create_access_entry()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .username(username)
                    .set_kubernetes_groups(Some(groups.clone()))
                    .set_tags(Some(HashMap::from([(
                        MANAGED_BY_LABEL.to_owned(),
                        MANAGED_BY_VALUE.to_owned(),
                    )])))
                    .r#type("STANDARD")
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::UpdateEntry { username, groups } => {
                const OP: &str = "eks:UpdateAccessEntry";
                aws.eks
                    .update_access_entry()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .username(username)
                    .set_kubernetes_groups(Some(groups.clone()))
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::AssociatePolicy {
                policy_arn,
                namespaces,
            } => {
                const OP: &str = "eks:AssociateAccessPolicy";
                let scope = AccessScope::builder()
                    .r#type(AccessScopeType::Namespace)
                    .set_namespaces(Some(namespaces.clone()))
                    .build();
                aws.eks
                    .associate_access_policy()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .policy_arn(policy_arn)
                    .access_scope(scope)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::DisassociatePolicy { policy_arn } => {
                const OP: &str = "eks:DisassociateAccessPolicy";
                aws.eks
                    .disassociate_access_policy()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .policy_arn(policy_arn)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::DeleteEntry => {
                const OP: &str = "eks:DeleteAccessEntry";
                match aws
                    .eks
                    .delete_access_entry()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) => match classify(OP, e) {
                        // Gone meanwhile: the goal holds.
                        AwsError::Service { code, .. } if code == "ResourceNotFoundException" => {}
                        other => return Err(other),
                    },
                }
            }
        }
    }
    Ok(())
}

/// What [`ensure_cluster_access`] / [`remove_cluster_access`] did (or would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessOutcome {
    pub mechanism: Mechanism,
    pub change: Change,
    /// The access-entry writes (empty for aws-auth, whose diff its own module reports).
    pub actions: Vec<AccessEntryAction>,
}

/// Gives `principal_arn` access to the cluster: an access entry scoped to `namespaces` with
/// `policy_arn` (default [`DEFAULT_ACCESS_POLICY`]), or an aws-auth mapping to
/// `username`/`groups`, as `auth_mode` and the cluster decide. Reads first; writes only
/// differences; `dry_run` client writes nothing, server sends only the aws-auth write with
/// dryRun=All (EKS has no dry run, so access entries are only read).
#[allow(clippy::too_many_arguments)]
pub async fn ensure_cluster_access(
    aws: &Aws,
    kube: &kube::Client,
    cluster: &str,
    principal_arn: &str,
    username: &str,
    groups: &[String],
    namespaces: &[String],
    policy_arn: Option<&str>,
    auth_mode: AuthMode,
    dry_run: DryRun,
) -> Result<AccessOutcome, AccessEntryError> {
    let facts = aws.describe_cluster(cluster).await?;
    match choose_mechanism(auth_mode, cluster, facts.authentication_mode.as_deref())? {
        Mechanism::AwsAuth => {
            let kind = kind_of_arn(principal_arn)?;
            let mapping = Mapping {
                arn: normalize_arn(kind, principal_arn)?,
                username: username.to_owned(),
                groups: groups.to_vec(),
            };
            let change = modify_aws_auth(kube, dry_run, move |auth| {
                auth.upsert(kind, mapping.clone())
            })
            .await?;
            Ok(AccessOutcome {
                mechanism: Mechanism::AwsAuth,
                change,
                actions: Vec::new(),
            })
        }
        Mechanism::AccessEntry => {
            let req = AccessRequest {
                cluster: cluster.to_owned(),
                principal_arn: principal_arn.to_owned(),
                username: username.to_owned(),
                groups: groups.to_vec(),
                namespaces: namespaces.to_vec(),
                policy_arn: policy_arn.unwrap_or(DEFAULT_ACCESS_POLICY).to_owned(),
            };
            let observed = read_access_entry(aws, cluster, principal_arn).await?;
            let (change, actions) = plan_access_entry(&req, observed.as_ref())?;
            if dry_run == DryRun::None {
                apply_access_entry(aws, cluster, principal_arn, &actions).await?;
            }
            Ok(AccessOutcome {
                mechanism: Mechanism::AccessEntry,
                change,
                actions,
            })
        }
    }
}

/// Takes the access [`ensure_cluster_access`] gave away again: the aws-auth mapping, or the
/// access entry (only one tagged as ours).
pub async fn remove_cluster_access(
    aws: &Aws,
    kube: &kube::Client,
    cluster: &str,
    principal_arn: &str,
    auth_mode: AuthMode,
    dry_run: DryRun,
) -> Result<AccessOutcome, AccessEntryError> {
    let facts = aws.describe_cluster(cluster).await?;
    match choose_mechanism(auth_mode, cluster, facts.authentication_mode.as_deref())? {
        Mechanism::AwsAuth => {
            let kind = kind_of_arn(principal_arn)?;
            let arn = normalize_arn(kind, principal_arn)?;
            let change =
                modify_aws_auth(kube, dry_run, move |auth| auth.remove(kind, &arn)).await?;
            Ok(AccessOutcome {
                mechanism: Mechanism::AwsAuth,
                change,
                actions: Vec::new(),
            })
        }
        Mechanism::AccessEntry => {
            let observed = read_access_entry(aws, cluster, principal_arn).await?;
            let (change, actions) =
                plan_access_entry_removal(cluster, principal_arn, observed.as_ref())?;
            if dry_run == DryRun::None {
                apply_access_entry(aws, cluster, principal_arn, &actions).await?;
            }
            Ok(AccessOutcome {
                mechanism: Mechanism::AccessEntry,
                change,
                actions,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/vendor";
    const VIEW: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy";

    fn req() -> AccessRequest {
        AccessRequest {
            cluster: "c1".into(),
            principal_arn: ROLE.into(),
            username: "vendor".into(),
            groups: vec!["mlplatform:vendor".into()],
            namespaces: vec!["b".into(), "a".into()],
            policy_arn: DEFAULT_ACCESS_POLICY.into(),
        }
    }

    fn ours(policies: BTreeMap<String, Scope>) -> ObservedEntry {
        ObservedEntry {
            username: Some("vendor".into()),
            groups: BTreeSet::from(["mlplatform:vendor".to_owned()]),
            tags: BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned())]),
            policies,
        }
    }

    fn scoped(ns: &[&str]) -> Scope {
        Scope::Namespace(ns.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn auto_follows_the_cluster_and_explicit_modes_say_when_they_cannot_work() {
        use AuthMode::{Auto, Configmap};
        use Mechanism::AwsAuth;
        for (mode, cluster_mode, want) in [
            (Auto, Some("API"), Some(Mechanism::AccessEntry)),
            (
                Auto,
                Some("API_AND_CONFIG_MAP"),
                Some(Mechanism::AccessEntry),
            ),
            (Auto, Some("CONFIG_MAP"), Some(AwsAuth)),
            (Auto, None, Some(AwsAuth)),
            (Configmap, Some("API_AND_CONFIG_MAP"), Some(AwsAuth)),
            (Configmap, Some("API"), None),
            (
                AuthMode::AccessEntry,
                Some("API"),
                Some(Mechanism::AccessEntry),
            ),
            (AuthMode::AccessEntry, Some("CONFIG_MAP"), None),
            (AuthMode::AccessEntry, None, None),
        ] {
            let got = choose_mechanism(mode, "c1", cluster_mode).ok();
            assert_eq!(got, want, "{mode:?} on {cluster_mode:?}");
        }
        let err = choose_mechanism(Configmap, "c1", Some("API")).unwrap_err();
        assert!(
            err.to_string().contains("--auth-mode access-entry"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_entry_is_created_with_a_namespace_scoped_policy() {
        let (change, actions) = plan_access_entry(&req(), None).unwrap();
        assert_eq!(change, Change::Created);
        assert_eq!(
            actions,
            vec![
                AccessEntryAction::CreateEntry {
                    username: "vendor".into(),
                    groups: vec!["mlplatform:vendor".into()]
                },
                AccessEntryAction::AssociatePolicy {
                    policy_arn: DEFAULT_ACCESS_POLICY.into(),
                    namespaces: vec!["a".into(), "b".into()]
                },
            ]
        );
    }

    #[test]
    fn an_entry_as_wanted_is_left_alone_and_drift_is_repaired() {
        let wanted = BTreeMap::from([(DEFAULT_ACCESS_POLICY.to_owned(), scoped(&["a", "b"]))]);
        assert_eq!(
            plan_access_entry(&req(), Some(&ours(wanted))).unwrap(),
            (Change::Unchanged, vec![])
        );
        let mut drifted = ours(BTreeMap::from([
            (DEFAULT_ACCESS_POLICY.to_owned(), scoped(&["a"])),
            (VIEW.to_owned(), Scope::Cluster),
        ]));
        drifted.groups.insert("extra".into());
        let (change, actions) = plan_access_entry(&req(), Some(&drifted)).unwrap();
        assert_eq!(change, Change::Updated);
        assert_eq!(actions.len(), 3, "{actions:?}");
        assert!(matches!(actions[0], AccessEntryAction::UpdateEntry { .. }));
        assert!(matches!(
            actions[1],
            AccessEntryAction::AssociatePolicy { .. }
        ));
        assert_eq!(
            actions[2],
            AccessEntryAction::DisassociatePolicy {
                policy_arn: VIEW.into()
            }
        );
    }

    #[test]
    fn entries_not_ours_are_refused_and_namespaces_are_required() {
        let mut theirs = ours(BTreeMap::new());
        theirs.tags.clear();
        assert!(matches!(
            plan_access_entry(&req(), Some(&theirs)),
            Err(AccessEntryError::NotOurs { .. })
        ));
        assert!(matches!(
            plan_access_entry_removal("c1", ROLE, Some(&theirs)),
            Err(AccessEntryError::NotOurs { .. })
        ));
        assert_eq!(
            plan_access_entry_removal("c1", ROLE, None).unwrap(),
            (Change::Absent, vec![])
        );
        assert_eq!(
            plan_access_entry_removal("c1", ROLE, Some(&ours(BTreeMap::new()))).unwrap(),
            (Change::Deleted, vec![AccessEntryAction::DeleteEntry])
        );
        let mut no_ns = req();
        no_ns.namespaces.clear();
        assert!(matches!(
            plan_access_entry(&no_ns, None),
            Err(AccessEntryError::NoNamespaces)
        ));
    }
}

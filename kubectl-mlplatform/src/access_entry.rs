//! Cluster access for an IAM principal: an EKS access entry or an aws-auth mapping, chosen by
//! `--auth-mode auto|configmap|access-entry` and the cluster's authenticationMode.
//!
//! `auto`: API or API_AND_CONFIG_MAP → an access entry (username, Kubernetes groups, and an
//! access policy scoped to the profile's namespaces); CONFIG_MAP (or a cluster that does not
//! say, as older ones) → aws-auth. Idempotent: the entry and its associations are read first
//! and only differences are written. Only entries tagged as made by kubectl-mlplatform are
//! ever updated or deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::common::Change;
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

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

/// Pure: the writes that make the entry what `req` asks for (username, groups, and the access
/// policy scoped to `req.namespaces`).
pub(crate) fn plan_access_entry(
    req: &AccessRequest,
    observed: Option<&ObservedEntry>,
) -> Result<(Change, Vec<AccessEntryAction>), AccessEntryError> {
    if req.namespaces.is_empty() {
        return Err(AccessEntryError::NoNamespaces);
    }
    plan_entry(req, Some(&req.policy_arn), observed)
}

/// Pure: an entry with only the username and Kubernetes groups (what an aws-auth mapping
/// gives: the groups' RBAC bindings grant the rights); `req.policy_arn` and `req.namespaces`
/// are not used, and associations our entry holds go.
pub(crate) fn plan_group_entry(
    req: &AccessRequest,
    observed: Option<&ObservedEntry>,
) -> Result<(Change, Vec<AccessEntryAction>), AccessEntryError> {
    plan_entry(req, None, observed)
}

fn plan_entry(
    req: &AccessRequest,
    policy: Option<&str>,
    observed: Option<&ObservedEntry>,
) -> Result<(Change, Vec<AccessEntryAction>), AccessEntryError> {
    let groups: BTreeSet<String> = req.groups.iter().cloned().collect();
    let namespaces: BTreeSet<String> = req.namespaces.iter().cloned().collect();
    let associate = policy.map(|policy_arn| AccessEntryAction::AssociatePolicy {
        policy_arn: policy_arn.to_owned(),
        namespaces: namespaces.iter().cloned().collect(),
    });
    let Some(entry) = observed else {
        let create = AccessEntryAction::CreateEntry {
            username: req.username.clone(),
            groups: groups.into_iter().collect(),
        };
        return Ok((
            Change::Created,
            std::iter::once(create).chain(associate).collect(),
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
    if let (Some(policy), Some(associate)) = (policy, associate)
        && entry.policies.get(policy) != Some(&Scope::Namespace(namespaces))
    {
        actions.push(associate);
    }
    // Our entry holds exactly the policy asked for: a changed profile must not leave a
    // broader one behind.
    for other in entry.policies.keys().filter(|p| Some(p.as_str()) != policy) {
        actions.push(AccessEntryAction::DisassociatePolicy {
            policy_arn: other.clone(),
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
    fn a_group_entry_carries_no_policy_and_drops_ours() {
        let (change, actions) = plan_group_entry(&req(), None).unwrap();
        assert_eq!(change, Change::Created);
        assert_eq!(
            actions,
            vec![AccessEntryAction::CreateEntry {
                username: "vendor".into(),
                groups: vec!["mlplatform:vendor".into()]
            }]
        );
        let held = ours(BTreeMap::from([(VIEW.to_owned(), Scope::Cluster)]));
        assert_eq!(
            plan_group_entry(&req(), Some(&held)).unwrap(),
            (
                Change::Updated,
                vec![AccessEntryAction::DisassociatePolicy {
                    policy_arn: VIEW.into()
                }]
            )
        );
        assert_eq!(
            plan_group_entry(&req(), Some(&ours(BTreeMap::new()))).unwrap(),
            (Change::Unchanged, vec![])
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

//! `aws-auth migrate`, pure: which cluster-access mappings move between the aws-auth ConfigMap
//! and EKS access entries, and the plan that moves them without a gap in access.
//!
//! Which mappings: those connect made, i.e. a mapping whose username and groups are a built-in
//! profile's (`clusterAccess`: its username and named group, with `system:masters` after
//! `--cluster-admin`) *and* whose role carries our tags for that profile and this cluster (a
//! vendor role connect created); plus every principal named with `--arn` (hopsworks maps a
//! role that existed before, which carries no tag of ours: a look-alike is reported with the
//! `--arn` that moves it). Back to aws-auth: our access entries (tagged by us) with a profile's
//! username and groups, plus `--arn`.
//!
//! What they become: the groups become the entry's `kubernetesGroups`; where the profile's
//! access is namespace-scoped (a namespace bundle binds its group), the entry also gets the
//! access policy connect gives, scoped to the profile's managed namespaces — exactly the entry
//! connect makes on such a cluster, so a later connect or doctor finds nothing to change.
//!
//! Order (the plan runs one step at a time, as listed): the authentication mode first (only
//! with `--update-authentication-mode`), then per principal the new access path, and only then
//! the old one is removed (aws-auth with [`AwsAuthAction::Remove`], which keeps every other
//! entry's text). A failure anywhere leaves the principal with access; a re-run continues.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::access_entry::{
    AccessEntryError, AccessRequest, DEFAULT_ACCESS_POLICY, ObservedEntry, plan_access_entry,
    plan_access_entry_removal, plan_group_entry,
};
use crate::aws_auth::{AwsAuth, Mapping, MappingKind, SYSTEM_MASTERS};
use crate::common::Change;
use crate::facts::ClusterFacts;
use crate::output::Summary;
use crate::steps::{
    AccessEntryStep, AwsAuthAction, AwsAuthStep, ClusterConfigAction, ClusterConfigStep, Plan, Step,
};
use crate::vocabulary::{RoleMaker, role_is_ours};

const CONFIG_MAP: &str = "CONFIG_MAP";
const API_AND_CONFIG_MAP: &str = "API_AND_CONFIG_MAP";
const API: &str = "API";
/// Username prefixes EKS refuses on access entries.
const RESERVED_USERNAME_PREFIXES: [&str; 5] = ["system:", "eks:", "aws:", "amazon:", "iam:"];

/// `--to`: where the mappings go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MigrateTarget {
    /// EKS access entries (the cluster must allow them: API_AND_CONFIG_MAP or API).
    AccessEntries,
    /// The aws-auth ConfigMap (back; not on an API cluster, which ignores it).
    AwsAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "EKS cluster {cluster} uses authentication mode CONFIG_MAP, which has no access entries; switch it first with `aws eks update-cluster-config --name {cluster} --access-config authenticationMode=API_AND_CONFIG_MAP` (a one-way change: it cannot go back to CONFIG_MAP), or pass --update-authentication-mode to have migrate do that; nothing was changed"
    )]
    ConfigMapMode { cluster: String },
    #[error(
        "EKS cluster {cluster} uses authentication mode API, which ignores aws-auth and cannot be switched back (a one-way change); the access entries stay; nothing was changed"
    )]
    ApiMode { cluster: String },
    #[error("cannot move the mapping of {arn}: {reason}; nothing was changed")]
    NotMovable { arn: String, reason: String },
    #[error(
        "no aws-auth mapping and no access entry made by kubectl-mlplatform for {arn} on EKS cluster {cluster}; check --arn (`kubectl mlplatform aws-auth get`)"
    )]
    NothingFor { arn: String, cluster: String },
    #[error("{0}")]
    AccessEntry(#[from] AccessEntryError),
    #[error("{0}")]
    AwsAuth(String),
}

/// A built-in profile's connect mapping, rendered for this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileAccess {
    pub(crate) profile: String,
    pub(crate) username: String,
    pub(crate) group: String,
    /// The profile's access is scoped to its namespaces (a bundle binds its group there).
    pub(crate) namespaced: bool,
    /// Namespaces currently managed for the profile.
    pub(crate) namespaces: Vec<String>,
}

/// What migrate read.
#[derive(Debug, Clone)]
pub(crate) struct MigrationFacts {
    pub(crate) cluster: ClusterFacts,
    /// None: there is no aws-auth ConfigMap.
    pub(crate) aws_auth: Option<AwsAuth>,
    pub(crate) profiles: Vec<ProfileAccess>,
    /// Tags of the roles aws-auth maps, by the mapping's ARN (absent: no such role).
    pub(crate) role_tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Access entries by principal ARN (none on a CONFIG_MAP cluster, which has none).
    pub(crate) entries: BTreeMap<String, ObservedEntry>,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigrationRequest {
    pub(crate) to: MigrateTarget,
    /// `--arn`, normalized as aws-auth holds it.
    pub(crate) arns: Vec<(MappingKind, String)>,
    pub(crate) update_authentication_mode: bool,
}

/// What migrate prints besides the change rows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MigrationReport {
    pub(crate) cluster: String,
    pub(crate) to: MigrateTarget,
    /// The cluster's authentication mode once the plan is carried out.
    pub(crate) authentication_mode: String,
    /// The principals whose access the plan moves (or finds moved already).
    pub(crate) principals: Vec<String>,
}

impl Summary for MigrationReport {
    fn fields(&self) -> Vec<(&'static str, String)> {
        let to = match self.to {
            MigrateTarget::AccessEntries => "access-entries",
            MigrateTarget::AwsAuth => "aws-auth",
        };
        let mut fields = vec![
            ("cluster", self.cluster.clone()),
            ("to", to.to_owned()),
            ("authenticationMode", self.authentication_mode.clone()),
        ];
        if !self.principals.is_empty() {
            fields.push(("principals", self.principals.join(", ")));
        }
        fields
    }

    /// Every entry, association and aws-auth edit, in the order they are carried out.
    fn rendered(plan: &Plan<Self>) -> Value {
        let mut entries = Vec::new();
        let mut aws_auth = Vec::new();
        let mut mode = Value::Null;
        for step in &plan.steps {
            match step {
                Step::AccessEntry(s) => entries.push(serde_json::to_value(s).unwrap_or_default()),
                Step::AwsAuth(s) => aws_auth.push(serde_json::to_value(s).unwrap_or_default()),
                Step::ClusterConfig(s) => mode = serde_json::to_value(s).unwrap_or_default(),
                _ => {}
            }
        }
        json!({"authenticationMode": mode, "accessEntries": entries, "awsAuth": aws_auth})
    }
}

/// The profile whose connect mapping has this username and these groups.
pub(crate) fn profile_of<'a>(
    profiles: &'a [ProfileAccess],
    username: &str,
    groups: &[String],
) -> Option<&'a ProfileAccess> {
    let groups: BTreeSet<&str> = groups.iter().map(String::as_str).collect();
    profiles.iter().find(|p| {
        let plain = BTreeSet::from([p.group.as_str()]);
        let admin = BTreeSet::from([p.group.as_str(), SYSTEM_MASTERS]);
        p.username == username && (groups == plain || groups == admin)
    })
}

/// Why an aws-auth mapping cannot become an access entry (EKS refuses such entries).
fn entry_refusal(m: &Mapping) -> Option<String> {
    if let Some(group) = m.groups.iter().find(|g| g.starts_with("system:")) {
        let hint = if group == SYSTEM_MASTERS {
            " (connect --cluster-admin): keep it in aws-auth, or give cluster-admin through the AmazonEKSClusterAdminPolicy access policy by hand"
        } else {
            ""
        };
        return Some(format!(
            "it maps to group {group}, which EKS refuses on access entries{hint}"
        ));
    }
    RESERVED_USERNAME_PREFIXES
        .iter()
        .find(|p| m.username.starts_with(**p))
        .map(|p| {
            format!(
                "its username {} starts with {p}, which EKS refuses on access entries",
                m.username
            )
        })
}

/// Plans the move.
pub(crate) fn plan_migration(
    req: &MigrationRequest,
    facts: &MigrationFacts,
) -> Result<Plan<MigrationReport>, MigrateError> {
    let cluster = &facts.cluster;
    let mode = cluster
        .authentication_mode
        .clone()
        .unwrap_or_else(|| CONFIG_MAP.to_owned());
    let mut planner = Planner {
        cluster,
        facts,
        steps: Vec::new(),
        warnings: Vec::new(),
        principals: Vec::new(),
    };
    let final_mode = match req.to {
        MigrateTarget::AccessEntries => planner.plan_to_access_entries(req, &mode)?,
        MigrateTarget::AwsAuth => planner.plan_to_aws_auth(req, &mode)?,
    };
    let outputs = MigrationReport {
        cluster: cluster.name.clone(),
        to: req.to,
        authentication_mode: final_mode,
        principals: planner.principals,
    };
    let mut plan = Plan::in_order(outputs, planner.steps);
    plan.warnings = planner.warnings;
    Ok(plan)
}

struct Planner<'a> {
    cluster: &'a ClusterFacts,
    facts: &'a MigrationFacts,
    steps: Vec<Step>,
    warnings: Vec<String>,
    principals: Vec<String>,
}

impl Planner<'_> {
    fn plan_to_access_entries(
        &mut self,
        req: &MigrationRequest,
        mode: &str,
    ) -> Result<String, MigrateError> {
        let auth = self.facts.aws_auth.as_ref();
        let mut moves: Vec<(MappingKind, Mapping)> = Vec::new();
        let explicit = |arn: &str| req.arns.iter().any(|(_, a)| a.eq_ignore_ascii_case(arn));
        for (kind, arn) in &req.arns {
            match auth.and_then(|a| a.find(*kind, arn)) {
                Some(m) => {
                    if let Some(reason) = entry_refusal(&m) {
                        return Err(MigrateError::NotMovable { arn: m.arn, reason });
                    }
                    moves.push((*kind, m));
                }
                // Moved already (a re-run): the entry is planned as wanted, aws-auth is absent.
                None => match self.facts.entries.get(arn).filter(|e| e.is_ours()) {
                    Some(entry) => moves.push((
                        *kind,
                        Mapping {
                            arn: arn.clone(),
                            username: entry.username.clone().unwrap_or_default(),
                            groups: entry.groups.iter().cloned().collect(),
                        },
                    )),
                    None => {
                        return Err(MigrateError::NothingFor {
                            arn: arn.clone(),
                            cluster: self.cluster.name.clone(),
                        });
                    }
                },
            }
        }
        for m in auth.map(AwsAuth::roles).unwrap_or_default() {
            if explicit(&m.arn) {
                continue;
            }
            let Some(profile) = profile_of(&self.facts.profiles, &m.username, &m.groups) else {
                continue;
            };
            let tagged = self.facts.role_tags.get(&m.arn).is_some_and(|tags| {
                role_is_ours(
                    tags,
                    &self.cluster.arn,
                    RoleMaker::Profile(&profile.profile),
                )
            });
            if !tagged {
                self.warnings.push(format!(
                    "aws-auth mapping {} looks like profile {}'s but its role is not tagged as made by kubectl-mlplatform for this cluster (e.g. a role that existed before connect); it stays in aws-auth: pass --arn {} to move it",
                    m.arn, profile.profile, m.arn
                ));
                continue;
            }
            if let Some(reason) = entry_refusal(&m) {
                self.warnings
                    .push(format!("kept aws-auth mapping {}: {reason}", m.arn));
                continue;
            }
            moves.push((MappingKind::Role, m));
        }
        let entries_work = matches!(mode, API_AND_CONFIG_MAP | API);
        let mut final_mode = mode.to_owned();
        if !entries_work && (!moves.is_empty() || req.update_authentication_mode) {
            if !req.update_authentication_mode {
                return Err(MigrateError::ConfigMapMode {
                    cluster: self.cluster.name.clone(),
                });
            }
            self.warnings.push(format!(
                "switching EKS cluster {} to authentication mode {API_AND_CONFIG_MAP}: a one-way change (it can go on to API, never back to CONFIG_MAP)",
                self.cluster.name
            ));
            self.steps.push(Step::ClusterConfig(ClusterConfigStep {
                cluster: self.cluster.name.clone(),
                from: mode.to_owned(),
                to: API_AND_CONFIG_MAP.to_owned(),
                change: Change::Updated,
                action: ClusterConfigAction::SetAuthenticationMode {
                    mode: API_AND_CONFIG_MAP.to_owned(),
                },
            }));
            final_mode = API_AND_CONFIG_MAP.to_owned();
        }
        for (kind, m) in moves {
            let entry = self.entry_step(&m)?;
            let removal = self.aws_auth_removal(kind, &m.arn)?;
            self.principals.push(m.arn);
            self.steps.push(Step::AccessEntry(entry));
            self.steps.push(Step::AwsAuth(removal));
        }
        Ok(final_mode)
    }

    /// The access entry `m` becomes: connect's for its profile, else its groups alone.
    fn entry_step(&self, m: &Mapping) -> Result<AccessEntryStep, MigrateError> {
        let profile = profile_of(&self.facts.profiles, &m.username, &m.groups);
        let namespaces = profile
            .filter(|p| p.namespaced)
            .map(|p| p.namespaces.clone())
            .unwrap_or_default();
        let req = AccessRequest {
            cluster: self.cluster.name.clone(),
            principal_arn: m.arn.clone(),
            username: m.username.clone(),
            groups: m.groups.clone(),
            namespaces: namespaces.clone(),
            policy_arn: DEFAULT_ACCESS_POLICY.to_owned(),
        };
        let observed = self.facts.entries.get(&m.arn);
        let (change, actions) = if namespaces.is_empty() {
            plan_group_entry(&req, observed)?
        } else {
            plan_access_entry(&req, observed)?
        };
        Ok(AccessEntryStep {
            cluster: self.cluster.name.clone(),
            principal_arn: m.arn.clone(),
            username: m.username.clone(),
            groups: m.groups.clone(),
            namespaces,
            change,
            actions,
        })
    }

    fn aws_auth_removal(&self, kind: MappingKind, arn: &str) -> Result<AwsAuthStep, MigrateError> {
        let change = match &self.facts.aws_auth {
            None => Change::Absent,
            Some(auth) => auth
                .preview_remove(kind, arn)
                .map_err(|e| MigrateError::AwsAuth(e.to_string()))?,
        };
        Ok(AwsAuthStep {
            arn: arn.to_owned(),
            change,
            action: if change == Change::Deleted {
                AwsAuthAction::Remove {
                    kind,
                    arn: arn.to_owned(),
                }
            } else {
                AwsAuthAction::None
            },
            wanted: None,
        })
    }

    fn plan_to_aws_auth(
        &mut self,
        req: &MigrationRequest,
        mode: &str,
    ) -> Result<String, MigrateError> {
        if mode == API {
            return Err(MigrateError::ApiMode {
                cluster: self.cluster.name.clone(),
            });
        }
        let auth = self.facts.aws_auth.as_ref();
        let mut moves: Vec<(MappingKind, String)> = Vec::new();
        for (kind, arn) in &req.arns {
            let found = self.facts.entries.contains_key(arn);
            let mapped = auth.and_then(|a| a.find(*kind, arn)).is_some();
            if !found && !mapped {
                return Err(MigrateError::NothingFor {
                    arn: arn.clone(),
                    cluster: self.cluster.name.clone(),
                });
            }
            moves.push((*kind, arn.clone()));
        }
        for (arn, entry) in &self.facts.entries {
            let username = entry.username.as_deref().unwrap_or_default();
            let groups: Vec<String> = entry.groups.iter().cloned().collect();
            if !entry.is_ours()
                || req.arns.iter().any(|(_, a)| a.eq_ignore_ascii_case(arn))
                || profile_of(&self.facts.profiles, username, &groups).is_none()
            {
                continue;
            }
            moves.push((MappingKind::Role, arn.clone()));
        }
        for (kind, arn) in moves {
            let entry = self.facts.entries.get(&arn);
            let mapping = match entry {
                Some(e) if e.groups.is_empty() || e.username.is_none() => {
                    return Err(MigrateError::NotMovable {
                        arn,
                        reason: "its access entry has no username or Kubernetes groups, so an aws-auth mapping of it would grant nothing (its rights come from access policies)".to_owned(),
                    });
                }
                Some(e) => Some(Mapping {
                    arn: arn.clone(),
                    username: e.username.clone().unwrap_or_default(),
                    groups: e.groups.iter().cloned().collect(),
                }),
                // Moved back already (a re-run): the mapping as it is.
                None => self
                    .facts
                    .aws_auth
                    .as_ref()
                    .and_then(|a| a.find(kind, &arn)),
            };
            let Some(mapping) = mapping else { continue };
            let change = match &self.facts.aws_auth {
                None => Change::Created,
                Some(auth) => auth
                    .preview_upsert(kind, mapping.clone())
                    .map_err(|e| MigrateError::AwsAuth(e.to_string()))?,
            };
            let upsert = AwsAuthStep {
                arn: arn.clone(),
                change,
                action: if change == Change::Unchanged {
                    AwsAuthAction::None
                } else {
                    AwsAuthAction::Upsert {
                        kind,
                        mapping: mapping.clone(),
                    }
                },
                wanted: Some(mapping.clone()),
            };
            let (change, actions) = plan_access_entry_removal(&self.cluster.name, &arn, entry)?;
            self.principals.push(arn.clone());
            self.steps.push(Step::AwsAuth(upsert));
            self.steps.push(Step::AccessEntry(AccessEntryStep {
                cluster: self.cluster.name.clone(),
                principal_arn: arn,
                username: mapping.username,
                groups: mapping.groups,
                namespaces: Vec::new(),
                change,
                actions,
            }));
        }
        Ok(mode.to_owned())
    }
}

#[cfg(test)]
mod tests;

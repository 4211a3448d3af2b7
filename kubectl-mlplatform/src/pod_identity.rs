//! EKS Pod Identity, pure: `--identity`, the trust a workload role needs (the EKS Pod Identity
//! service, scoped by the session tags EKS sets to one cluster, one namespace and exactly the
//! ServiceAccounts asked for; eksctl's trust is not scoped to the ServiceAccount, ours is),
//! reading such statements back out of a trust policy, editing a trust statement by statement,
//! and the association steps given what EKS holds (one association per ServiceAccount; a
//! re-run finds it and writes nothing, where eksctl fails with "association already exists").

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::common::Change;
use crate::facts::{PodIdentityAssociationFacts, ServiceAccountKey};
use crate::steps::{PodIdentityAction, PodIdentityStep};
use crate::vocabulary::{
    MANAGED_BY_VALUE, TAG_CLUSTER, TAG_MANAGED_BY, TAG_PROFILE, TAG_ROLE_KIND,
};

/// The service principal EKS Pod Identity assumes roles as.
pub(crate) const SERVICE_PRINCIPAL: &str = "pods.eks.amazonaws.com";
/// The add-on whose agent hands the credentials to pods.
pub(crate) const AGENT_ADDON: &str = "eks-pod-identity-agent";
/// Session tags EKS Pod Identity sets on every AssumeRole.
const CLUSTER_TAG: &str = "aws:RequestTag/eks-cluster-arn";
const NAMESPACE_TAG: &str = "aws:RequestTag/kubernetes-namespace";
const SERVICE_ACCOUNT_TAG: &str = "aws:RequestTag/kubernetes-service-account";

/// `--identity`: how a workload role reaches its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Identity {
    /// IAM roles for service accounts: trust on the cluster's OIDC provider, and the
    /// ServiceAccount's eks.amazonaws.com/role-arn annotation (what the vendor pages say).
    #[default]
    Irsa,
    /// EKS Pod Identity: trust on pods.eks.amazonaws.com, one association per ServiceAccount.
    PodIdentity,
}

impl Identity {
    /// The flag value (`--identity pod-identity`).
    pub(crate) const fn flag_value(self) -> &'static str {
        match self {
            Self::Irsa => "irsa",
            Self::PodIdentity => "pod-identity",
        }
    }
}

/// Why a Pod Identity association cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodIdentityError {
    #[error(
        "ServiceAccount {namespace}/{service_account} already has EKS Pod Identity association {association_id} with role {current_role}; nothing was written; pass --replace-association to point it at {wanted_role}"
    )]
    AssociationConflict {
        namespace: String,
        service_account: String,
        association_id: String,
        current_role: String,
        wanted_role: String,
    },
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A policy's statements as a list (IAM allows one statement without the list).
pub(crate) fn statements(policy: &Value) -> Vec<Value> {
    match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The statement that lets EKS Pod Identity of `cluster_arn` give the role to exactly
/// `service_accounts` in `namespace`.
pub(crate) fn trust_statement(
    cluster_arn: &str,
    namespace: &str,
    service_accounts: &[String],
) -> Value {
    let mut sas: Vec<&str> = service_accounts.iter().map(String::as_str).collect();
    sas.sort_unstable();
    sas.dedup();
    let sa_value = match sas.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    json!({
        "Effect": "Allow",
        "Principal": {"Service": SERVICE_PRINCIPAL},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {
            CLUSTER_TAG: cluster_arn,
            NAMESPACE_TAG: namespace,
            SERVICE_ACCOUNT_TAG: sa_value,
        }},
    })
}

/// One statement per namespace of `subjects`.
pub(crate) fn trust_statements(
    cluster_arn: &str,
    subjects: &BTreeSet<ServiceAccountKey>,
) -> Vec<Value> {
    let mut by_namespace: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (ns, sa) in subjects {
        by_namespace.entry(ns).or_default().push(sa.clone());
    }
    by_namespace
        .into_iter()
        .map(|(ns, sas)| trust_statement(cluster_arn, ns, &sas))
        .collect()
}

/// A whole trust policy for EKS Pod Identity of `cluster_arn` and `subjects`.
pub(crate) fn trust_policy(cluster_arn: &str, subjects: &BTreeSet<ServiceAccountKey>) -> Value {
    json!({"Version": "2012-10-17", "Statement": trust_statements(cluster_arn, subjects)})
}

fn trusts_service(statement: &Value) -> bool {
    statement["Effect"] == "Allow"
        && strings(&statement["Principal"]["Service"]).contains(&SERVICE_PRINCIPAL)
}

/// Whether any statement trusts EKS Pod Identity (of any cluster, scoped or not).
pub(crate) fn trusts_pod_identity(trust: &Value) -> bool {
    statements(trust).iter().any(trusts_service)
}

/// A statement trusting EKS Pod Identity of `cluster_arn` (its cluster session-tag condition).
pub(crate) fn is_statement_for(statement: &Value, cluster_arn: &str) -> bool {
    trusts_service(statement)
        && statement["Condition"].as_object().is_some_and(|ops| {
            ops.values()
                .any(|op| strings(&op[CLUSTER_TAG]).contains(&cluster_arn))
        })
}

/// The (namespace, ServiceAccount) pairs the Pod Identity statements of `cluster_arn` admit
/// by exact name (StringEquals).
pub(crate) fn subjects_in_trust(trust: &Value, cluster_arn: &str) -> BTreeSet<ServiceAccountKey> {
    let mut out = BTreeSet::new();
    for st in statements(trust)
        .iter()
        .filter(|s| is_statement_for(s, cluster_arn))
    {
        let exact = &st["Condition"]["StringEquals"];
        for ns in strings(&exact[NAMESPACE_TAG]) {
            for sa in strings(&exact[SERVICE_ACCOUNT_TAG]) {
                out.insert((ns.to_owned(), sa.to_owned()));
            }
        }
    }
    out
}

/// `trust` with the statements `keep` refuses left out and `add` appended; everything else
/// (Version, Id, other statements and their order) as it was.
pub(crate) fn rewrite_trust(
    trust: &Value,
    keep: impl Fn(&Value) -> bool,
    add: Vec<Value>,
) -> Value {
    let mut out: Map<String, Value> = trust.as_object().cloned().unwrap_or_default();
    out.entry("Version")
        .or_insert_with(|| Value::String("2012-10-17".to_owned()));
    let mut kept: Vec<Value> = statements(trust).into_iter().filter(|s| keep(s)).collect();
    kept.extend(add);
    out.insert("Statement".to_owned(), Value::Array(kept));
    Value::Object(out)
}

/// The ownership tags among a role's tags, for its associations: whoever owns the role owns
/// them too (`vocabulary::role_is_ours` reads both).
pub(crate) fn ownership_tags<'a>(
    tags: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    let keys = [TAG_MANAGED_BY, TAG_CLUSTER, TAG_PROFILE, TAG_ROLE_KIND];
    tags.into_iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Tags for an association of a role kubectl-mlplatform did not make (`--role-arn`).
pub(crate) fn default_ownership_tags(cluster_arn: &str) -> Vec<(String, String)> {
    vec![
        (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (TAG_CLUSTER.to_owned(), cluster_arn.to_owned()),
    ]
}

/// The role's name (last path segment) and account of an ARN; a bare name is itself.
fn role_identity(arn_or_name: &str) -> (Option<&str>, &str) {
    let name = arn_or_name.rsplit('/').next().unwrap_or(arn_or_name);
    let account = arn_or_name
        .starts_with("arn:")
        .then(|| arn_or_name.split(':').nth(4))
        .flatten();
    (account, name)
}

/// Same role, with or without a path, by name or ARN.
pub(crate) fn same_role(a: &str, b: &str) -> bool {
    let ((a_account, a_name), (b_account, b_name)) = (role_identity(a), role_identity(b));
    a_name == b_name
        && match (a_account, b_account) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// What one ServiceAccount's association should be and what EKS holds for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AssociationTarget<'a> {
    pub(crate) cluster: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) service_account: &'a str,
    /// The role (ARN; or, when removing, its name).
    pub(crate) role: &'a str,
    /// Every association EKS lists for the ServiceAccount (at most one).
    pub(crate) live: &'a [PodIdentityAssociationFacts],
}

impl AssociationTarget<'_> {
    fn step(&self, change: Change, action: PodIdentityAction) -> PodIdentityStep {
        PodIdentityStep {
            cluster: self.cluster.to_owned(),
            namespace: self.namespace.to_owned(),
            service_account: self.service_account.to_owned(),
            role_arn: self.role.to_owned(),
            change,
            action,
        }
    }
}

/// The association giving the role to the ServiceAccount: unchanged when EKS has it, created
/// (tagged `tags`) when there is none; one for another role is refused unless `replace`, then
/// updated to the role and tagged as ours.
pub(crate) fn plan_association(
    target: AssociationTarget<'_>,
    tags: Vec<(String, String)>,
    replace: bool,
) -> Result<PodIdentityStep, PodIdentityError> {
    if target
        .live
        .iter()
        .any(|a| same_role(&a.role_arn, target.role))
    {
        return Ok(target.step(Change::Unchanged, PodIdentityAction::None));
    }
    match target.live.first() {
        None => Ok(target.step(Change::Created, PodIdentityAction::Create { tags })),
        Some(other) if replace => Ok(target.step(
            Change::Updated,
            PodIdentityAction::Update {
                association_id: other.id.clone(),
                association_arn: other.arn.clone(),
                previous_role_arn: other.role_arn.clone(),
                tags,
            },
        )),
        Some(other) => Err(PodIdentityError::AssociationConflict {
            namespace: target.namespace.to_owned(),
            service_account: target.service_account.to_owned(),
            association_id: other.id.clone(),
            current_role: other.role_arn.clone(),
            wanted_role: target.role.to_owned(),
        }),
    }
}

/// Removal of the ServiceAccount's association with the role: deleted when `is_ours` says we
/// made it; one of someone else's is kept (with a warning); None when the ServiceAccount's
/// association is for another role (not ours to touch).
pub(crate) fn plan_association_removal(
    target: AssociationTarget<'_>,
    is_ours: impl Fn(&BTreeMap<String, String>) -> bool,
    warnings: &mut Vec<String>,
) -> Option<PodIdentityStep> {
    let Some(found) = target
        .live
        .iter()
        .find(|a| same_role(&a.role_arn, target.role))
    else {
        return target
            .live
            .is_empty()
            .then(|| target.step(Change::Absent, PodIdentityAction::None));
    };
    if is_ours(&found.tags) {
        return Some(target.step(
            Change::Deleted,
            PodIdentityAction::Delete {
                association_id: found.id.clone(),
            },
        ));
    }
    warnings.push(format!(
        "kept EKS Pod Identity association {} of {}/{}: not made by kubectl-mlplatform (delete it with `aws eks delete-pod-identity-association --cluster-name {} --association-id {}`)",
        found.id, target.namespace, target.service_account, target.cluster, found.id
    ));
    Some(target.step(Change::Unchanged, PodIdentityAction::None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "arn:aws:eks:us-east-1:123456789012:cluster/c1";
    const ROLE: &str = "arn:aws:iam::123456789012:role/team/r";

    fn key(ns: &str, sa: &str) -> ServiceAccountKey {
        (ns.to_owned(), sa.to_owned())
    }

    fn live(role: &str, tags: &[(&str, &str)]) -> PodIdentityAssociationFacts {
        PodIdentityAssociationFacts {
            id: "a-0123456789abcdefg".into(),
            arn: "arn:aws:eks:us-east-1:123456789012:podidentityassociation/c1/a-0123456789abcdefg"
                .into(),
            namespace: "ml".into(),
            service_account: "sa".into(),
            role_arn: role.into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn target<'a>(live: &'a [PodIdentityAssociationFacts]) -> AssociationTarget<'a> {
        AssociationTarget {
            cluster: "c1",
            namespace: "ml",
            service_account: "sa",
            role: ROLE,
            live,
        }
    }

    #[test]
    fn the_trust_is_scoped_to_cluster_namespace_and_service_accounts() {
        let subjects = BTreeSet::from([key("ml", "b"), key("ml", "a"), key("ops", "c")]);
        let trust = trust_policy(CLUSTER, &subjects);
        let st = &trust["Statement"][0];
        assert_eq!(st["Principal"]["Service"], SERVICE_PRINCIPAL);
        assert_eq!(st["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
        let exact = &st["Condition"]["StringEquals"];
        assert_eq!(exact[CLUSTER_TAG], CLUSTER);
        assert_eq!(exact[NAMESPACE_TAG], "ml");
        assert_eq!(exact[SERVICE_ACCOUNT_TAG], json!(["a", "b"]));
        assert_eq!(
            trust["Statement"][1]["Condition"]["StringEquals"][SERVICE_ACCOUNT_TAG],
            "c"
        );
        assert_eq!(subjects_in_trust(&trust, CLUSTER), subjects);
        assert!(subjects_in_trust(&trust, "arn:aws:eks:us-east-1:1:cluster/other").is_empty());
        assert!(trusts_pod_identity(&trust));
    }

    #[test]
    fn rewriting_keeps_other_statements_in_order() {
        let oidc = json!({"Effect": "Allow", "Principal": {"Federated": "p"},
            "Action": "sts:AssumeRoleWithWebIdentity"});
        let trust = json!({"Version": "2012-10-17", "Statement": oidc.clone()});
        let pi = trust_statement(CLUSTER, "ml", &["sa".to_owned()]);
        let both = rewrite_trust(&trust, |_| true, vec![pi.clone()]);
        assert_eq!(both["Statement"], json!([oidc, pi]));
        let back = rewrite_trust(&both, |s| !is_statement_for(s, CLUSTER), Vec::new());
        assert_eq!(back["Statement"], json!([oidc]));
        assert!(!trusts_pod_identity(&back));
    }

    #[test]
    fn associations_are_created_kept_or_refused() {
        let tags = default_ownership_tags(CLUSTER);
        let made = plan_association(target(&[]), tags.clone(), false).unwrap();
        assert_eq!(made.change, Change::Created);
        // The same role with or without its path: unchanged, nothing sent.
        let same = [live("arn:aws:iam::123456789012:role/r", &[])];
        let kept = plan_association(target(&same), tags.clone(), false).unwrap();
        assert_eq!(kept.action, PodIdentityAction::None);
        let theirs = [live("arn:aws:iam::123456789012:role/theirs", &[])];
        let err = plan_association(target(&theirs), tags.clone(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-0123456789abcdefg"), "{err}");
        assert!(err.contains("--replace-association"), "{err}");
        let replaced = plan_association(target(&theirs), tags, true).unwrap();
        assert!(matches!(replaced.action, PodIdentityAction::Update { .. }));
    }

    #[test]
    fn only_our_associations_of_the_role_are_removed() {
        let ours = |t: &BTreeMap<String, String>| t.contains_key(TAG_MANAGED_BY);
        let mut warnings = Vec::new();
        let mine = [live(ROLE, &[(TAG_MANAGED_BY, MANAGED_BY_VALUE)])];
        let step = plan_association_removal(target(&mine), ours, &mut warnings).unwrap();
        assert_eq!(step.change, Change::Deleted);
        let foreign = [live(ROLE, &[])];
        let step = plan_association_removal(target(&foreign), ours, &mut warnings).unwrap();
        assert_eq!(step.change, Change::Unchanged);
        assert_eq!(warnings.len(), 1);
        let other_role = [live("arn:aws:iam::123456789012:role/x", &[])];
        assert!(plan_association_removal(target(&other_role), ours, &mut warnings).is_none());
        let none = plan_association_removal(target(&[]), ours, &mut warnings).unwrap();
        assert_eq!(none.change, Change::Absent);
    }
}

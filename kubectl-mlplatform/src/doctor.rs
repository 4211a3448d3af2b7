//! `doctor`'s decisions, kept pure: a connect plan computed against the live state says which
//! objects are missing or drifted; the RBAC expectations say which SubjectAccessReviews must
//! come out allowed or denied.

use serde::Serialize;
use serde_json::Value;

use crate::common::Change;
use crate::facts::AddonFacts;
use crate::kube_io::AccessQuestion;
use crate::plan::Plan;
use crate::pod_identity::AGENT_ADDON;
use crate::profile::Profile;
use crate::steps::{ChangeRow, IamAction, ManualStepOut};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckStatus {
    Pass,
    Fail,
    /// Not a failure (yet): e.g. the webhook before `webhook install` exists.
    Warn,
}

impl CheckStatus {
    pub(crate) const fn symbol(self) -> &'static str {
        match self {
            Self::Pass => "✓",
            Self::Fail => "✗",
            Self::Warn => "!",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) status: CheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
    /// The exact command that fixes a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
}

impl Check {
    pub(crate) fn pass(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Pass,
            detail: None,
            fix: None,
        }
    }
    pub(crate) fn fail(name: impl Into<String>, detail: impl Into<String>, fix: &str) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: Some(detail.into()),
            fix: Some(fix.to_owned()),
        }
    }
    pub(crate) fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: Option<&str>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Warn,
            detail: Some(detail.into()),
            fix: fix.map(str::to_owned),
        }
    }
}

fn describe(row: &ChangeRow) -> String {
    let target = match &row.namespace {
        Some(ns) => format!("{} {ns}/{}", row.kind, row.name),
        None => format!("{} {}", row.kind, row.name),
    };
    match row.kind.as_str() {
        "IAMRole" => format!("{target} (trust: vendor account, external ID)"),
        "IRSARole" => format!("{target} (trust: the cluster's OIDC provider, ServiceAccounts)"),
        "PodIdentityRole" => {
            format!("{target} (trust: EKS Pod Identity of the cluster, ServiceAccounts)")
        }
        "PodIdentityAssociation" => format!(
            "EKS Pod Identity association {}/{}",
            row.namespace.as_deref().unwrap_or_default(),
            row.name
        ),
        "IAMOIDCProvider" => format!("IAM OIDC provider for {}", row.name),
        "AwsAuthMapping" => format!("aws-auth mapping {}", row.name),
        _ => target,
    }
}

/// One check per object of a connect plan computed against the live state: anything the plan
/// would write is something that is not as it should be. `live_trust`: the role's current
/// trust policy, to say what exactly is wrong with it.
pub(crate) fn checks_from_plan(plan: &Plan, live_trust: Option<&Value>, fix: &str) -> Vec<Check> {
    let wanted_trust = plan.iam_steps().find_map(|s| match &s.action {
        IamAction::UpdateTrust { trust_policy, .. } => Some(trust_policy),
        _ => None,
    });
    plan.changes()
        .iter()
        .map(|row| {
            let name = describe(row);
            match row.change {
                Change::Unchanged => Check::pass(name),
                Change::Created | Change::Absent => Check::fail(name, "missing", fix),
                Change::Updated if row.kind == "IAMRole" => {
                    let detail = match (live_trust, wanted_trust) {
                        (Some(live), Some(wanted)) => trust_drift(live, wanted),
                        _ => "trust policy differs from what the profile wants".to_owned(),
                    };
                    Check::fail(name, detail, fix)
                }
                Change::Updated if row.kind == "IRSARole" => Check::fail(
                    name,
                    "trust differs: not the cluster's OIDC provider or not exactly the profile's ServiceAccounts",
                    fix,
                ),
                Change::Updated if row.kind == "PodIdentityRole" => Check::fail(
                    name,
                    "trust differs: not pods.eks.amazonaws.com scoped to this cluster, namespace and exactly the profile's ServiceAccounts",
                    fix,
                ),
                Change::Updated if row.kind == "PodIdentityAssociation" => Check::fail(
                    name,
                    "points at another role",
                    &format!("{fix} --replace-association"),
                ),
                Change::Updated => Check::fail(name, "differs from what the profile wants", fix),
                Change::Deleted => Check::fail(name, "present but not in the profile", fix),
            }
        })
        .collect()
}

fn statements(policy: &Value) -> Vec<&Value> {
    match &policy["Statement"] {
        Value::Array(items) => items.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// What differs between two trust policies, in the terms a vendor uses: who is trusted, and
/// with which external ID.
pub(crate) fn trust_drift(live: &Value, wanted: &Value) -> String {
    let principals = |p: &Value| -> Vec<String> {
        let mut out: Vec<String> = statements(p)
            .iter()
            .flat_map(|s| strings(&s["Principal"]["AWS"]))
            .collect();
        out.sort();
        out
    };
    let external_ids = |p: &Value| -> Vec<String> {
        let mut out: Vec<String> = statements(p)
            .iter()
            .flat_map(|s| strings(&s["Condition"]["StringEquals"]["sts:ExternalId"]))
            .collect();
        out.sort();
        out
    };
    let mut problems = Vec::new();
    let (lp, wp) = (principals(live), principals(wanted));
    if lp != wp {
        problems.push(format!(
            "trusts {} instead of {}",
            lp.join(","),
            wp.join(",")
        ));
    }
    let (le, we) = (external_ids(live), external_ids(wanted));
    if le != we {
        problems.push(if le.is_empty() {
            "no external ID required".to_owned()
        } else {
            "external ID differs".to_owned()
        });
    }
    if problems.is_empty() {
        "trust policy differs from what the profile wants".to_owned()
    } else {
        problems.join("; ")
    }
}

/// An authorization the bundle promises, and whether it must be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RbacExpectation {
    pub(crate) description: String,
    pub(crate) question: AccessQuestion,
    pub(crate) allowed: bool,
}

/// What the profile's RBAC must (and must not) allow in `namespace`.
pub(crate) fn rbac_expectations(
    profile: &Profile,
    namespace: &str,
    user_sa: &str,
    system_sa: Option<&str>,
    vendor: Option<(&str, &str)>,
) -> Vec<RbacExpectation> {
    let mut out = vec![
        RbacExpectation {
            description: format!("user SA {user_sa} cannot create pods"),
            question: AccessQuestion::service_account(namespace, user_sa, "create", "", "pods"),
            allowed: false,
        },
        RbacExpectation {
            description: format!("user SA {user_sa} cannot read secrets"),
            question: AccessQuestion::service_account(namespace, user_sa, "get", "", "secrets"),
            allowed: false,
        },
    ];
    let bundle = profile.spec.namespace.as_ref();
    if bundle.is_some_and(|b| b.user_role.is_some()) {
        out.push(RbacExpectation {
            description: format!("user SA {user_sa} can list pods in {namespace}"),
            question: AccessQuestion::service_account(namespace, user_sa, "list", "", "pods"),
            allowed: true,
        });
    }
    if let Some(sa) = system_sa
        && bundle.is_some_and(|b| b.system_role_binding.is_some())
    {
        out.push(RbacExpectation {
            description: format!("system SA {sa} can create pods in {namespace}"),
            question: AccessQuestion::service_account(namespace, sa, "create", "", "pods"),
            allowed: true,
        });
    }
    if let Some((username, group)) = vendor
        && bundle.is_some_and(|b| b.vendor_role_binding.is_some())
    {
        // aws-auth usernames may hold {{SessionName}} templates; any concrete name will do.
        let user = username.replace("{{SessionName}}", "doctor");
        let ask = |verb: &str, group_name: &str, resource: &str, ns: Option<&str>| AccessQuestion {
            user: user.clone(),
            groups: vec![group.to_owned(), "system:authenticated".to_owned()],
            verb: verb.to_owned(),
            group: group_name.to_owned(),
            resource: resource.to_owned(),
            namespace: ns.map(str::to_owned),
        };
        out.push(RbacExpectation {
            description: format!("vendor group {group} can create jobs in {namespace}"),
            question: ask("create", "batch", "jobs", Some(namespace)),
            allowed: true,
        });
        out.push(RbacExpectation {
            description: format!("vendor group {group} cannot read secrets cluster-wide"),
            question: ask("list", "", "secrets", None),
            allowed: false,
        });
    }
    out
}

/// The EKS add-on that provides a CSI driver, when there is one.
fn csi_addon(provisioner: &str) -> Option<&'static str> {
    match provisioner {
        "ebs.csi.aws.com" => Some("aws-ebs-csi-driver"),
        "efs.csi.aws.com" => Some("aws-efs-csi-driver"),
        _ => None,
    }
}

/// The profile's StorageClass needs its CSI driver, and the cluster exactly one default class.
pub(crate) fn storage_checks(
    provisioner: &str,
    csi_driver_present: bool,
    default_classes: &[String],
    cluster: &str,
    region: &str,
    connect_fix: &str,
) -> Vec<Check> {
    let mut out = Vec::new();
    let name = format!("CSIDriver {provisioner}");
    if csi_driver_present {
        out.push(Check::pass(name));
    } else {
        let fix = match csi_addon(provisioner) {
            Some(addon) => format!(
                "aws eks create-addon --cluster-name {cluster} --addon-name {addon} --region {region}"
            ),
            None => format!("install the CSI driver for {provisioner}"),
        };
        out.push(Check::fail(
            name,
            "not installed: volumes of the StorageClass cannot be provisioned",
            &fix,
        ));
    }
    let name = "exactly one default StorageClass".to_owned();
    match default_classes {
        [_] => out.push(Check::pass(name)),
        [] => out.push(Check::fail(name, "no default StorageClass", connect_fix)),
        many => out.push(Check::fail(
            name,
            format!("{} default StorageClasses: {}", many.len(), many.join(", ")),
            connect_fix,
        )),
    }
    out
}

/// The vendor operator's CRDs: present, or a warning with how to install them (connect does
/// not install the operator itself).
pub(crate) fn crd_checks(group: &str, crd_names: &[String], install_hint: &str) -> Check {
    let suffix = format!(".{group}");
    let mut found: Vec<&str> = crd_names
        .iter()
        .filter(|n| n.ends_with(&suffix))
        .map(String::as_str)
        .collect();
    found.sort_unstable();
    let name = format!("operator CRDs *.{group}");
    if found.is_empty() {
        Check::warn(
            name,
            "absent: the operator is not installed",
            Some(install_hint),
        )
    } else {
        Check {
            detail: Some(format!("{} found", found.len())),
            ..Check::pass(name)
        }
    }
}

/// Manual steps this tool cannot verify: repeated on every doctor run, as warnings.
pub(crate) fn manual_step_checks(steps: &[ManualStepOut]) -> Vec<Check> {
    steps
        .iter()
        .map(|s| {
            Check::warn(
                format!("manual step: {}", s.name),
                format!("{} (not verifiable here)", s.description),
                Some(&s.command),
            )
        })
        .collect()
}

/// The EKS Pod Identity agent add-on: installed and ACTIVE, or the command that installs it.
pub(crate) fn pod_identity_agent_check(
    addon: Option<&AddonFacts>,
    cluster: &str,
    region: &str,
) -> Check {
    let name = format!("EKS add-on {AGENT_ADDON}");
    match addon {
        None => Check::fail(
            name,
            "not installed: pods get no credentials from their Pod Identity associations",
            &format!(
                "aws eks create-addon --cluster-name {cluster} --addon-name {AGENT_ADDON} --region {region}"
            ),
        ),
        Some(a) if a.status == "ACTIVE" => Check {
            detail: a.version.clone(),
            ..Check::pass(name)
        },
        Some(a) => {
            let mut detail = format!("status {}", a.status);
            if !a.issues.is_empty() {
                detail.push_str(&format!(" ({})", a.issues.join("; ")));
            }
            Check::fail(
                name,
                detail,
                &format!(
                    "aws eks describe-addon --cluster-name {cluster} --addon-name {AGENT_ADDON} --region {region}"
                ),
            )
        }
    }
}

/// Whole-report verdict.
pub(crate) fn failed_count(checks: &[Check]) -> usize {
    checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::load_profile;

    #[test]
    fn trust_drift_names_the_account_and_the_external_id() {
        use crate::plan::vendor_trust_policy;
        let wanted = vendor_trust_policy("aws", "111122223333", Some("x1"));
        let other_account = vendor_trust_policy("aws", "999999999999", Some("x1"));
        assert_eq!(
            trust_drift(&other_account, &wanted),
            "trusts arn:aws:iam::999999999999:root instead of arn:aws:iam::111122223333:root"
        );
        let other_id = vendor_trust_policy("aws", "111122223333", Some("x2"));
        assert_eq!(trust_drift(&other_id, &wanted), "external ID differs");
        let none = vendor_trust_policy("aws", "111122223333", None);
        assert_eq!(trust_drift(&none, &wanted), "no external ID required");
    }

    #[test]
    fn concurrent_rbac_expectations_cover_user_system_and_vendor() {
        let profile = load_profile("concurrent").unwrap();
        let e = rbac_expectations(
            &profile,
            "ns",
            "u",
            Some("s"),
            Some(("concurrent:{{SessionName}}", "mlplatform:concurrent")),
        );
        let allowed: Vec<_> = e
            .iter()
            .filter(|x| x.allowed)
            .map(|x| x.description.as_str())
            .collect();
        assert_eq!(allowed.len(), 3, "{allowed:?}");
        let vendor_secrets = e
            .iter()
            .find(|x| x.description.contains("cluster-wide"))
            .unwrap();
        assert_eq!(vendor_secrets.question.namespace, None);
        assert_eq!(vendor_secrets.question.user, "concurrent:doctor");
        assert!(!vendor_secrets.allowed);
    }
}

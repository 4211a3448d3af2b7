//! `doctor`'s decisions, kept pure: a connect plan computed against the live state says which
//! objects are missing or drifted; the RBAC expectations say which SubjectAccessReviews must
//! come out allowed or denied.

use serde::Serialize;

use crate::common::Change;
use crate::kube_io::AccessQuestion;
use crate::plan::{ChangeRow, Plan};
use crate::profile::Profile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Not a failure (yet): e.g. the webhook before `webhook install` exists.
    Warn,
}

impl CheckStatus {
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::Pass => "✓",
            Self::Fail => "✗",
            Self::Warn => "!",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The exact command that fixes a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Pass,
            detail: None,
            fix: None,
        }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: &str) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: Some(detail.into()),
            fix: Some(fix.to_owned()),
        }
    }
    pub fn warn(name: impl Into<String>, detail: impl Into<String>, fix: Option<&str>) -> Self {
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
        "AwsAuthMapping" => format!("aws-auth mapping {}", row.name),
        _ => target,
    }
}

/// One check per object of a connect plan computed against the live state: anything the plan
/// would write is something that is not as it should be.
pub fn checks_from_plan(plan: &Plan, fix: &str) -> Vec<Check> {
    plan.changes()
        .iter()
        .map(|row| {
            let name = describe(row);
            match row.change {
                Change::Unchanged => Check::pass(name),
                Change::Created | Change::Absent => Check::fail(name, "missing", fix),
                Change::Updated => Check::fail(name, "differs from what the profile wants", fix),
                Change::Deleted => Check::fail(name, "present but not in the profile", fix),
            }
        })
        .collect()
}

/// An authorization the bundle promises, and whether it must be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacExpectation {
    pub description: String,
    pub question: AccessQuestion,
    pub allowed: bool,
}

/// What the profile's RBAC must (and must not) allow in `namespace`.
pub fn rbac_expectations(
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

/// Whole-report verdict.
pub fn failed_count(checks: &[Check]) -> usize {
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

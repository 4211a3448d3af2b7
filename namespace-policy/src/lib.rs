//! The contract between the `kubectl mlplatform` plugin and the admission webhook (SPEC §3).
//!
//! A namespace is *managed* when it carries [`MANAGED_LABEL`]`: "true"`. Its policy lives in
//! namespace annotations written by the plugin and read (from a cache) by the webhook. Both
//! sides use this crate so that the keys and their meaning cannot drift apart.
//!
//! [`admission_policy`] renders the same rules as API-server admission policies, the second
//! engine. Its bindings select namespaces by label, so a managed namespace also carries
//! [`ENFORCEMENT_LABEL`] (see [`NamespacePolicy::to_labels`]): the plugin writes both.

pub mod admission_policy;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Label that marks a namespace as managed by mlplatform.
pub const MANAGED_LABEL: &str = "mlplatform.io/managed";
/// The only value of [`MANAGED_LABEL`] that means "managed".
pub const MANAGED_VALUE: &str = "true";

/// The low-privilege ServiceAccount that user workloads must run as.
pub const USER_SERVICE_ACCOUNT_ANNOTATION: &str = "mlplatform.io/user-service-account";
/// Comma list of ServiceAccounts also allowed (system components).
pub const SYSTEM_SERVICE_ACCOUNTS_ANNOTATION: &str = "mlplatform.io/system-service-accounts";
/// IAM role ARN that the user ServiceAccount should carry (optional).
pub const IRSA_ROLE_ARN_ANNOTATION: &str = "mlplatform.io/irsa-role-arn";
/// `enforce` | `warn` | `audit`.
pub const ENFORCEMENT_ANNOTATION: &str = "mlplatform.io/enforcement";
/// The enforcement mode again, as a label: admission policy bindings select namespaces by
/// label, never by annotation. The plugin writes it with the same value as
/// [`ENFORCEMENT_ANNOTATION`] (the webhook reads only the annotation). A missing label means
/// `enforce`; a label weaker than the annotation makes the admission policies refuse the
/// namespace's workloads until it is repaired.
pub const ENFORCEMENT_LABEL: &str = "mlplatform.io/enforcement";
/// Which profile (vendor) the plugin connected this namespace for.
pub const PROFILE_ANNOTATION: &str = "mlplatform.io/profile";
/// Opt-in, on a namespace or on a pod (the pod's wins): the group ID the webhook sets as
/// `spec.securityContext.fsGroup` on a pod it gives the IRSA token volume to and that sets
/// none, so that non-root containers can read the token. Read by the webhook only; not part
/// of [`POLICY_ANNOTATIONS`] (the plugin does not write it).
pub const FS_GROUP_ANNOTATION: &str = "mlplatform.io/fs-group";

/// Every annotation the plugin writes on a managed namespace; `disconnect` removes exactly these.
pub const POLICY_ANNOTATIONS: [&str; 5] = [
    USER_SERVICE_ACCOUNT_ANNOTATION,
    SYSTEM_SERVICE_ACCOUNTS_ANNOTATION,
    IRSA_ROLE_ARN_ANNOTATION,
    ENFORCEMENT_ANNOTATION,
    PROFILE_ANNOTATION,
];

/// `app.kubernetes.io/managed-by` value on every object the plugin creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "kubectl-mlplatform";

/// Annotations that amazon-eks-pod-identity-webhook reads; we keep its vocabulary.
pub mod eks {
    pub const ROLE_ARN: &str = "eks.amazonaws.com/role-arn";
    pub const AUDIENCE: &str = "eks.amazonaws.com/audience";
    pub const STS_REGIONAL_ENDPOINTS: &str = "eks.amazonaws.com/sts-regional-endpoints";
    pub const TOKEN_EXPIRATION: &str = "eks.amazonaws.com/token-expiration";
    pub const SKIP_CONTAINERS: &str = "eks.amazonaws.com/skip-containers";
    pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
    pub const DEFAULT_TOKEN_EXPIRATION: i64 = 86_400;
    /// The kubelet refuses projected tokens shorter than ten minutes.
    pub const MIN_TOKEN_EXPIRATION: i64 = 600;
}

/// What the webhook does with a workload that runs as a ServiceAccount it should not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum EnforcementMode {
    /// Deny the request (403).
    #[default]
    Enforce,
    /// Admit with an AdmissionResponse warning.
    Warn,
    /// Admit, log and count.
    Audit,
}

impl EnforcementMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Warn => "warn",
            Self::Audit => "audit",
        }
    }
}

impl fmt::Display for EnforcementMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EnforcementMode {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "enforce" => Ok(Self::Enforce),
            "warn" => Ok(Self::Warn),
            "audit" => Ok(Self::Audit),
            other => Err(PolicyError::BadEnforcement(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "namespace is labelled {MANAGED_LABEL}=true but has no {USER_SERVICE_ACCOUNT_ANNOTATION} annotation; run `kubectl mlplatform namespace add` to repair it"
    )]
    MissingUserServiceAccount,
    #[error(
        "annotation {ENFORCEMENT_ANNOTATION}={0:?} is not one of enforce, warn, audit; fix the annotation"
    )]
    BadEnforcement(String),
}

/// The policy of one managed namespace, as the annotations describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePolicy {
    pub user_service_account: String,
    pub system_service_accounts: Vec<String>,
    pub irsa_role_arn: Option<String>,
    pub enforcement: EnforcementMode,
}

/// True when the labels mark the namespace as managed.
pub fn is_managed<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> bool {
    labels
        .into_iter()
        .any(|(k, v)| k == MANAGED_LABEL && v == MANAGED_VALUE)
}

impl NamespacePolicy {
    /// Reads the policy from a namespace's labels and annotations.
    ///
    /// `Ok(None)`: not managed. `Err`: managed but the annotations are unusable; the webhook
    /// fails closed on that rather than silently admitting everything.
    pub fn from_metadata(
        labels: Option<&BTreeMap<String, String>>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Option<Self>, PolicyError> {
        if !labels.is_some_and(|l| is_managed(l.iter())) {
            return Ok(None);
        }
        let get = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let user_service_account = get(USER_SERVICE_ACCOUNT_ANNOTATION)
            .ok_or(PolicyError::MissingUserServiceAccount)?
            .to_owned();
        let system_service_accounts = get(SYSTEM_SERVICE_ACCOUNTS_ANNOTATION)
            .map(split_list)
            .unwrap_or_default();
        let irsa_role_arn = get(IRSA_ROLE_ARN_ANNOTATION).map(str::to_owned);
        let enforcement = get(ENFORCEMENT_ANNOTATION)
            .map(str::parse)
            .transpose()?
            .unwrap_or_default();
        Ok(Some(Self {
            user_service_account,
            system_service_accounts,
            irsa_role_arn,
            enforcement,
        }))
    }

    /// The annotations that describe this policy (what the plugin writes).
    pub fn to_annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert(
            USER_SERVICE_ACCOUNT_ANNOTATION.to_owned(),
            self.user_service_account.clone(),
        );
        if !self.system_service_accounts.is_empty() {
            out.insert(
                SYSTEM_SERVICE_ACCOUNTS_ANNOTATION.to_owned(),
                self.system_service_accounts.join(","),
            );
        }
        if let Some(arn) = &self.irsa_role_arn {
            out.insert(IRSA_ROLE_ARN_ANNOTATION.to_owned(), arn.clone());
        }
        out.insert(
            ENFORCEMENT_ANNOTATION.to_owned(),
            self.enforcement.as_str().to_owned(),
        );
        out
    }

    /// The labels that describe this policy (what the plugin writes beside the annotations).
    pub fn to_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_LABEL.to_owned(), MANAGED_VALUE.to_owned()),
            (
                ENFORCEMENT_LABEL.to_owned(),
                self.enforcement.as_str().to_owned(),
            ),
        ])
    }

    /// May a workload run as `service_account` (empty means `default`) in this namespace?
    pub fn allows(&self, service_account: &str) -> bool {
        let sa = effective_service_account(service_account);
        sa == self.user_service_account || self.system_service_accounts.iter().any(|s| s == sa)
    }
}

/// The mode the admission policy bindings apply to a namespace with these labels: the
/// [`ENFORCEMENT_LABEL`]'s, `enforce` when it is missing or not a mode.
pub fn enforcement_from_labels(labels: Option<&BTreeMap<String, String>>) -> EnforcementMode {
    match labels
        .and_then(|l| l.get(ENFORCEMENT_LABEL))
        .map(String::as_str)
    {
        Some("warn") => EnforcementMode::Warn,
        Some("audit") => EnforcementMode::Audit,
        _ => EnforcementMode::Enforce,
    }
}

/// An empty `serviceAccountName` means `default` to the API server.
pub fn effective_service_account(name: &str) -> &str {
    if name.is_empty() { "default" } else { name }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unmanaged_namespace_has_no_policy() {
        let labels = map(&[(MANAGED_LABEL, "false")]);
        let ann = map(&[(USER_SERVICE_ACCOUNT_ANNOTATION, "u")]);
        assert_eq!(
            NamespacePolicy::from_metadata(Some(&labels), Some(&ann)),
            Ok(None)
        );
        assert_eq!(NamespacePolicy::from_metadata(None, Some(&ann)), Ok(None));
    }

    #[test]
    fn managed_namespace_policy_round_trips_through_annotations() {
        let labels = map(&[(MANAGED_LABEL, "true")]);
        let ann = map(&[
            (USER_SERVICE_ACCOUNT_ANNOTATION, "users"),
            (SYSTEM_SERVICE_ACCOUNTS_ANNOTATION, " sys-a, ,sys-b "),
            (IRSA_ROLE_ARN_ANNOTATION, "arn:aws:iam::123456789012:role/r"),
            (ENFORCEMENT_ANNOTATION, "warn"),
        ]);
        let policy = NamespacePolicy::from_metadata(Some(&labels), Some(&ann))
            .unwrap()
            .unwrap();
        assert_eq!(policy.system_service_accounts, vec!["sys-a", "sys-b"]);
        assert_eq!(policy.enforcement, EnforcementMode::Warn);
        assert!(policy.allows("users"));
        assert!(policy.allows("sys-b"));
        assert!(!policy.allows("default"));
        assert!(!policy.allows(""));
        let again =
            NamespacePolicy::from_metadata(Some(&labels), Some(&policy.to_annotations())).unwrap();
        assert_eq!(again.as_ref(), Some(&policy));
        let written = policy.to_labels();
        assert_eq!(
            NamespacePolicy::from_metadata(Some(&written), Some(&policy.to_annotations())),
            Ok(Some(policy.clone()))
        );
        assert_eq!(enforcement_from_labels(Some(&written)), policy.enforcement);
    }

    #[test]
    fn empty_service_account_means_default() {
        let labels = map(&[(MANAGED_LABEL, "true")]);
        let ann = map(&[
            (USER_SERVICE_ACCOUNT_ANNOTATION, "users"),
            (SYSTEM_SERVICE_ACCOUNTS_ANNOTATION, "default"),
        ]);
        let policy = NamespacePolicy::from_metadata(Some(&labels), Some(&ann))
            .unwrap()
            .unwrap();
        assert!(policy.allows(""));
        assert_eq!(policy.enforcement, EnforcementMode::Enforce);
    }

    #[test]
    fn bindings_read_a_missing_or_unknown_label_as_enforce() {
        assert_eq!(enforcement_from_labels(None), EnforcementMode::Enforce);
        let odd = map(&[(ENFORCEMENT_LABEL, "block")]);
        assert_eq!(
            enforcement_from_labels(Some(&odd)),
            EnforcementMode::Enforce
        );
        let audit = map(&[(ENFORCEMENT_LABEL, "audit")]);
        assert_eq!(
            enforcement_from_labels(Some(&audit)),
            EnforcementMode::Audit
        );
    }

    #[test]
    fn managed_namespace_without_user_sa_is_an_error() {
        let labels = map(&[(MANAGED_LABEL, "true")]);
        assert_eq!(
            NamespacePolicy::from_metadata(Some(&labels), None),
            Err(PolicyError::MissingUserServiceAccount)
        );
    }

    #[test]
    fn bad_enforcement_is_an_error_naming_the_value() {
        let labels = map(&[(MANAGED_LABEL, "true")]);
        let ann = map(&[
            (USER_SERVICE_ACCOUNT_ANNOTATION, "u"),
            (ENFORCEMENT_ANNOTATION, "block"),
        ]);
        let err = NamespacePolicy::from_metadata(Some(&labels), Some(&ann)).unwrap_err();
        assert!(err.to_string().contains("\"block\""), "{err}");
    }
}

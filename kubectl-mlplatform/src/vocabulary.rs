//! The plugin's own marks, in one place: the tag keys it puts on IAM roles and OIDC providers,
//! the labels and annotations it puts on Kubernetes objects, the values they carry, the name it
//! writes as (field manager, inline policy) and the profile file's apiVersion. Ownership checks
//! read the same constants, so what marks an object as ours is defined once.
//!
//! Keys the webhook reads too are the contract in `mlplatform-namespace-policy`; they are
//! re-exported here, never spelled twice. EKS's own keys (`eks.amazonaws.com/...`) stay in
//! `mlplatform_namespace_policy::eks`.

// ------------------------------------------------ the webhook contract (namespace-policy)

pub(crate) use mlplatform_namespace_policy::{
    ENFORCEMENT_LABEL, IRSA_ROLE_ARN_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_LABEL,
    MANAGED_VALUE, POLICY_ANNOTATIONS, PROFILE_ANNOTATION,
};

// ------------------------------------------------ Kubernetes objects

/// Who the plugin's server-side applies and writes are recorded as.
pub(crate) const FIELD_MANAGER: &str = "kubectl-mlplatform";
/// Label naming the profile an object was made for (same key as the namespace annotation).
pub(crate) const PROFILE_LABEL: &str = PROFILE_ANNOTATION;
/// On a namespace that connect (or `namespace add`) created: the profile it was created for.
/// It stays when a disconnect without `--delete-namespace` takes the namespace's other marks
/// away, so that a later `disconnect --delete-namespace` still knows the namespace is its to
/// delete (and one that existed before never is).
pub(crate) const CREATED_FOR_ANNOTATION: &str = "mlplatform.io/created-for-profile";
/// On our StorageClass: the default classes we demoted (comma-separated), to restore them.
pub(crate) const DEMOTED_ANNOTATION: &str = "mlplatform.io/demoted-default-classes";
/// On a class we demoted: its default-class annotation before (restored on disconnect).
pub(crate) const PREVIOUS_DEFAULT_ANNOTATION: &str = "mlplatform.io/previous-default";
/// Label on ServiceAccounts `irsa` created (only those are deleted by `irsa delete`).
pub(crate) const SA_CREATED_LABEL: &str = "mlplatform.io/irsa-created";
pub(crate) const SA_CREATED_VALUE: &str = "true";
/// On the webhook's TLS Secrets: when the certificate expires (Unix seconds).
pub(crate) const NOT_AFTER_ANNOTATION: &str = "mlplatform.io/not-after";
/// Standard labels on the objects `webhook install` generates (Secrets, cert-manager objects).
pub(crate) const APP_NAME_LABEL: &str = "app.kubernetes.io/name";
pub(crate) const APP_NAME_WEBHOOK: &str = "mlplatform-webhook";
pub(crate) const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub(crate) const PART_OF_VALUE: &str = "kubectl-mlplatform";

// ------------------------------------------------ IAM

/// Tag keys that mark an IAM role as made by us for one profile and cluster.
/// The same keys as on Kubernetes objects, so one vocabulary marks everything we made.
pub(crate) const TAG_PROFILE: &str = PROFILE_ANNOTATION;
pub(crate) const TAG_CLUSTER: &str = "mlplatform.io/cluster";
pub(crate) const TAG_MANAGED_BY: &str = MANAGED_BY_LABEL;
/// Tag on an OIDC provider made by connect: the cluster ARN it was made for.
pub(crate) const TAG_OIDC_CREATED_BY: &str = TAG_CLUSTER;
/// Tag marking a role as an IRSA role (so `irsa` never touches a `connect` vendor role).
pub(crate) const TAG_ROLE_KIND: &str = "mlplatform.io/role-kind";
pub(crate) const ROLE_KIND_IRSA: &str = "irsa";
/// One tag per managed policy `irsa` attached: key prefix + short hash, value the ARN.
pub(crate) const TAG_ATTACHED_PREFIX: &str = "mlplatform.io/attached-policy/";
/// The one inline policy `irsa` writes (`--inline-policy`).
pub(crate) const INLINE_POLICY_NAME: &str = "mlplatform-irsa-inline";

/// Who made a role, for [`role_is_ours`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleMaker<'a> {
    /// `connect` for this profile (vendor, profile IRSA and existing-role policies).
    Profile(&'a str),
    /// `irsa create`.
    Irsa,
    /// Any command of kubectl-mlplatform (`irsa migrate` moves connect and `irsa` roles alike).
    Any,
}

/// The one ownership rule for IAM roles, used by every command: a role is ours to change or
/// delete only when it carries this cluster's tag and the maker's tags. `irsa` never touches a
/// connect role and connect never touches an `irsa` role or another profile's. The EKS Pod
/// Identity associations made for a role carry the role's ownership tags, so the same rule
/// says whose they are.
pub(crate) fn role_is_ours(
    tags: &std::collections::BTreeMap<String, String>,
    cluster_arn: &str,
    maker: RoleMaker<'_>,
) -> bool {
    let tag = |key: &str| tags.get(key).map(String::as_str);
    tag(TAG_CLUSTER) == Some(cluster_arn)
        && match maker {
            RoleMaker::Profile(profile) => tag(TAG_PROFILE) == Some(profile),
            RoleMaker::Irsa => {
                tag(TAG_MANAGED_BY) == Some(MANAGED_BY_VALUE)
                    && tag(TAG_ROLE_KIND) == Some(ROLE_KIND_IRSA)
            }
            RoleMaker::Any => tag(TAG_MANAGED_BY) == Some(MANAGED_BY_VALUE),
        }
}

// ------------------------------------------------ profile files

pub(crate) const PROFILE_API_VERSION: &str = "mlplatform.io/v1alpha1";
pub(crate) const PROFILE_KIND: &str = "Profile";

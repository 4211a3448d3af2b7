//! The admission policy install's facts, outputs and errors.

use mlplatform_namespace_policy::admission_policy::{
    self as rendered, COMPONENT_LABEL, COMPONENT_VALUE,
};
use serde::Serialize;
use serde_json::Value;

use crate::objects::{Kind, ObjectKey};
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// What `install` says on stderr on a server without MutatingAdmissionPolicy v1.
pub(crate) const MUTATING_NOT_SERVED: &str = "this API server does not serve MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.36 or later): only the ValidatingAdmissionPolicies are installed; the user ServiceAccount's eks.amazonaws.com/role-arn stays as connect and `namespace add` write it (or use the webhook: `kubectl mlplatform webhook install`)";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "this API server does not serve ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.30 or later); enforce the namespace policy with the webhook instead: `kubectl mlplatform webhook install`"
    )]
    NotServed,
    #[error(
        "{0} exists but is not labelled as made by kubectl-mlplatform; nothing was written; delete it (`kubectl delete {0}`) or leave the admission policies to it"
    )]
    NotOurs(String),
    #[error("reading {what}: {message}; check that your kubeconfig can read it")]
    Read { what: String, message: String },
    #[error("a rendered admission policy object lacks {0}; this is a build bug, please report it")]
    Malformed(&'static str),
    #[error("rendering YAML: {0}")]
    Render(String),
}

/// Which admission policy APIs (`admissionregistration.k8s.io/v1`, with their bindings) the
/// API server serves: a fact read before planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub(crate) struct ServedApis {
    /// ValidatingAdmissionPolicy (Kubernetes 1.30+).
    pub(crate) validating: bool,
    /// MutatingAdmissionPolicy (Kubernetes 1.36+).
    pub(crate) mutating: bool,
}

impl ServedApis {
    pub(crate) const fn all() -> Self {
        Self {
            validating: true,
            mutating: true,
        }
    }
}

/// What `policy install|uninstall` print besides the change rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyOutputs {
    /// The admission policy APIs the server serves.
    pub(crate) served_apis: ServedApis,
    /// What happens to the MutatingAdmissionPolicy part: `installed`, `removed` or
    /// `not served` (older servers get the validating part only).
    pub(crate) mutating_admission_policy: &'static str,
}

impl PolicyOutputs {
    pub(crate) fn installed(served: ServedApis) -> Self {
        Self {
            served_apis: served,
            mutating_admission_policy: if served.mutating {
                "installed"
            } else {
                "not served"
            },
        }
    }

    pub(crate) fn uninstalled(served: ServedApis) -> Self {
        Self {
            served_apis: served,
            mutating_admission_policy: if served.mutating {
                "removed"
            } else {
                "not served"
            },
        }
    }
}

/// Pure: every object `install` wants on a server that serves `served`, in apply order
/// (policies before their bindings, the validating part first).
pub(crate) fn manifests(served: ServedApis) -> Result<Vec<Value>, PolicyError> {
    if !served.validating {
        return Err(PolicyError::NotServed);
    }
    Ok(if served.mutating {
        rendered::all_objects()
    } else {
        rendered::validating_objects()
    })
}

pub(crate) fn key_of(object: &Value) -> Result<ObjectKey, PolicyError> {
    ObjectKey::of(object).ok_or(PolicyError::Malformed(
        "a known apiVersion/kind and metadata.name",
    ))
}

/// True when `live` carries the labels every rendered object carries: only such objects are
/// updated or deleted.
pub(crate) fn is_ours(live: &Value) -> bool {
    let labels = &live["metadata"]["labels"];
    labels[MANAGED_BY_LABEL] == MANAGED_BY_VALUE && labels[COMPONENT_LABEL] == COMPONENT_VALUE
}

/// The kinds `install` may have made that `served` serves, in deletion order: bindings
/// before their policies, the mutating part first.
pub(crate) fn kinds_served(served: ServedApis) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if served.mutating {
        kinds.extend([
            Kind::MutatingAdmissionPolicyBinding,
            Kind::MutatingAdmissionPolicy,
        ]);
    }
    if served.validating {
        kinds.extend([
            Kind::ValidatingAdmissionPolicyBinding,
            Kind::ValidatingAdmissionPolicy,
        ]);
    }
    kinds
}

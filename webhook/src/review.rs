//! The request half of the `admission.k8s.io/v1` AdmissionReview: the borrowed
//! [`AdmissionRequest`] both readers ([`crate::admission`]'s serde reader and
//! [`crate::scan`]'s one-pass reader) produce and the decisions read, and which view of
//! `request.object` each endpoint's decision reads. Kept apart from the readers so that they
//! and the decisions depend on it, not on each other.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::Endpoint;
use crate::objects::{Pod, PodForValidation, ServiceAccount, Text, Workload};

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// Group/version/kind of the object under review (`request.kind`).
#[derive(Debug, Default, Deserialize)]
pub struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    pub group: Cow<'a, str>,
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    #[serde(borrow, default)]
    pub kind: Cow<'a, str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// `request.object`, raw or already read into the view a decision needs.
#[derive(Debug, Default)]
pub enum Object<'a> {
    /// Absent or null (DELETE).
    #[default]
    Absent,
    /// Not read yet: the decision that needs it parses it.
    Raw(&'a RawValue),
    /// Skipped by [`crate::admission::parse_review_for`]: no decision of its endpoint reads it.
    Skipped,
    // Boxed: the request is moved a few times on its way to the decision.
    Pod(Box<Pod<'a>>),
    PodForValidation(Box<PodForValidation<'a>>),
    Workload(Box<Workload<'a>>),
    ServiceAccount(Box<ServiceAccount<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<&'a RawValue>::deserialize(deserializer)? {
            Some(raw) => Object::Raw(raw),
            None => Object::Absent,
        })
    }
}

/// A view of `request.object` a decision reads.
pub trait ObjectView<'a>: Deserialize<'a> {
    /// The view, when the reader already produced it.
    fn from_object<'r>(object: &'r Object<'a>) -> Option<&'r Self>;
}

macro_rules! object_view {
    ($($variant:ident),*) => {$(
        impl<'a> ObjectView<'a> for $variant<'a> {
            fn from_object<'r>(object: &'r Object<'a>) -> Option<&'r Self> {
                match object {
                    Object::$variant(view) => Some(&**view),
                    _ => None,
                }
            }
        }
    )*};
}
object_view!(Pod, PodForValidation, Workload, ServiceAccount);

/// A view that was read with the request, or parsed from the raw object for the decision.
#[derive(Debug)]
pub enum Held<'r, T> {
    Borrowed(&'r T),
    Owned(T),
}

impl<T> std::ops::Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Held::Borrowed(view) => view,
            Held::Owned(view) => view,
        }
    }
}

/// The part of `request` the decisions read. `object` is raw, or read by
/// [`crate::admission::parse_review_for`] into the view the endpoint's decision reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest<'a> {
    #[serde(borrow, default)]
    pub uid: Cow<'a, str>,
    #[serde(borrow, default)]
    pub kind: GroupVersionKind<'a>,
    #[serde(borrow, default)]
    pub sub_resource: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub namespace: Option<Text<'a>>,
    pub operation: Operation,
    #[serde(borrow, default)]
    pub object: Object<'a>,
}

impl AdmissionRequest<'_> {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// True when the request targets a subresource (`pods/status`, `deployments/scale`, ...).
    pub fn is_subresource(&self) -> bool {
        self.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
    }
}

/// The kinds `/validate` checks, and where each keeps its pod's ServiceAccount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        Some(match (group, kind) {
            ("", "Pod") => Self::Pod,
            ("apps", "Deployment") => Self::Deployment,
            ("apps", "StatefulSet") => Self::StatefulSet,
            ("apps", "DaemonSet") => Self::DaemonSet,
            ("apps", "ReplicaSet") => Self::ReplicaSet,
            ("batch", "Job") => Self::Job,
            ("batch", "CronJob") => Self::CronJob,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
        }
    }

    /// The field a user edits to fix a violation.
    pub const fn service_account_field(self) -> &'static str {
        match self {
            Self::Pod => "spec.serviceAccountName",
            Self::CronJob => "spec.jobTemplate.spec.template.spec.serviceAccountName",
            _ => "spec.template.spec.serviceAccountName",
        }
    }
}

/// The views of `request.object` the decisions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    Pod,
    PodForValidation,
    Workload,
    ServiceAccount,
}

/// Which view of `request.object` the decision of `endpoint` reads, given the fields before
/// it; `None`: the decision does not read the object. This must agree with the decisions in
/// `mutate` and `validate` (the property tests compare both readers' answers).
pub(crate) fn object_view(
    endpoint: Endpoint,
    kind: &GroupVersionKind<'_>,
    operation: Operation,
    subresource: bool,
) -> Option<View> {
    let write = matches!(operation, Operation::Create | Operation::Update);
    if subresource || !write {
        return None;
    }
    match (endpoint, kind.group.as_ref(), kind.kind.as_ref()) {
        (Endpoint::Mutate, "", "Pod") if operation == Operation::Create => Some(View::Pod),
        (Endpoint::Mutate, "", "ServiceAccount") => Some(View::ServiceAccount),
        (Endpoint::Validate, group, kind) => match WorkloadKind::from_group_kind(group, kind)? {
            WorkloadKind::Pod => Some(View::PodForValidation),
            _ => Some(View::Workload),
        },
        _ => None,
    }
}

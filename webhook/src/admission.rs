//! The `admission.k8s.io/v1` AdmissionReview wire format, read with borrowed serde structs
//! (only the fields the webhook needs; everything else is skipped) and written with the patch
//! as a base64 string, the way the API server and the Go webhooks expect it.
//!
//! Two readers give the same [`AdmissionRequest`]: [`parse_review`] (serde derive) keeps
//! `request.object` raw for the decision to parse (two passes over the object), and
//! [`parse_review_for`], the server's, reads the body once with [`crate::scan`]: the object
//! goes straight into the view the endpoint's decision reads (known from the kind and
//! operation the API server sends before it), or is skipped when no decision reads it.
//! Whenever that pass does not succeed, for any reason, [`parse_review_for`] answers what
//! [`parse_review`] answers, so errors and their messages are the same.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::Endpoint;
use crate::objects::{Pod, PodForValidation, ServiceAccount, Text, Workload};
use crate::patch::{JsonPatch, push_str};
use crate::validate::WorkloadKind;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// Why a body is not an AdmissionReview this webhook can answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("request body is not JSON: {0}; send an admission.k8s.io/v1 AdmissionReview")]
    NotJson(serde_json::Error),
    #[error("request body is not a valid AdmissionReview: {0}")]
    Malformed(serde_json::Error),
    #[error(
        "request body is not an admission.k8s.io/v1 AdmissionReview (apiVersion {api_version:?}, kind {kind:?}); configure admissionReviewVersions: [v1]"
    )]
    WrongEnvelope { api_version: String, kind: String },
    #[error("AdmissionReview has no request; the API server always sends one")]
    MissingRequest,
    #[error("AdmissionReview request has an empty uid")]
    MissingUid,
}

#[derive(Deserialize)]
struct ReviewEnvelope<'a> {
    #[serde(borrow, rename = "apiVersion", default)]
    api_version: Option<Text<'a>>,
    #[serde(borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    request: Option<AdmissionRequest<'a>>,
}

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
    /// Skipped by [`parse_review_for`]: no decision of its endpoint reads it.
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
/// [`parse_review_for`] into the view the endpoint's decision reads.
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

/// Parses a request body into its `request`; the envelope must be a v1 AdmissionReview.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<'_>, ReviewError> {
    let envelope: ReviewEnvelope<'_> = serde_json::from_slice(body).map_err(|err| {
        if err.is_data() {
            ReviewError::Malformed(err)
        } else {
            ReviewError::NotJson(err)
        }
    })?;
    let api_version = envelope.api_version.unwrap_or_default();
    let kind = envelope.kind.unwrap_or_default();
    if *api_version != *API_VERSION || *kind != *KIND {
        return Err(ReviewError::WrongEnvelope {
            api_version: api_version.0.into_owned(),
            kind: kind.0.into_owned(),
        });
    }
    let request = envelope.request.ok_or(ReviewError::MissingRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::MissingUid);
    }
    Ok(request)
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

/// Parses a request body for `endpoint`, reading `request.object` in the same pass when it
/// can; answers exactly what [`parse_review`] answers.
pub fn parse_review_for(
    endpoint: Endpoint,
    body: &[u8],
) -> Result<AdmissionRequest<'_>, ReviewError> {
    match crate::scan::read_review(endpoint, body) {
        Some(request) => Ok(request),
        None => parse_review(body),
    }
}

/// `metav1.Status` as used in an AdmissionResponse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub code: u16,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// What the webhook answers. Built by the pure decision functions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    pub status: Option<Status>,
    /// Empty: no patch is sent.
    pub patch: JsonPatch,
    pub warnings: Vec<String>,
    pub audit_annotations: BTreeMap<String, String>,
    /// Not sent: what the decision found, for metrics.
    pub violation: Option<Violation>,
}

/// A policy violation a `/validate` decision found (counted in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// The workload's ServiceAccount is not allowed; the namespace's mode decided the answer.
    ServiceAccount(mlplatform_namespace_policy::EnforcementMode),
    /// The managed namespace's policy does not parse: denied.
    InvalidPolicy,
}

impl AdmissionResponse {
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: true,
            ..Self::default()
        }
    }

    pub fn deny(uid: &str, code: u16, reason: &str, message: String) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(Status {
                code,
                message,
                reason: reason.to_owned(),
            }),
            ..Self::default()
        }
    }

    pub fn with_warning(mut self, warning: String) -> Self {
        self.warnings.push(warning);
        self
    }
}

/// Serializes the response as a full AdmissionReview, written directly; the patch becomes a
/// base64 string encoded straight into the output.
pub fn encode_review(response: &AdmissionResponse) -> Vec<u8> {
    let patch = (!response.patch.is_empty()).then(|| response.patch.as_json());
    let patch_len = patch.map_or(0, |p| base64::encoded_len(p.len(), true).unwrap_or(0));
    let mut out = Vec::with_capacity(160 + response.uid.len() + patch_len);
    out.extend_from_slice(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
    );
    push_str(&mut out, &response.uid);
    out.extend_from_slice(if response.allowed {
        br#","allowed":true"#
    } else {
        br#","allowed":false"#
    });
    // Serializing plain structs of strings into a Vec cannot fail.
    if let Some(status) = &response.status {
        out.extend_from_slice(br#","status":"#);
        let _ = serde_json::to_writer(&mut out, status);
    }
    if let Some(patch) = patch {
        out.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
        let start = out.len();
        out.resize(start + patch_len, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(patch, &mut out[start..])
            .unwrap_or(0);
        out.truncate(start + written);
        out.push(b'"');
    }
    if !response.warnings.is_empty() {
        out.extend_from_slice(br#","warnings":"#);
        let _ = serde_json::to_writer(&mut out, &response.warnings);
    }
    if !response.audit_annotations.is_empty() {
        out.extend_from_slice(br#","auditAnnotations":"#);
        let _ = serde_json::to_writer(&mut out, &response.audit_annotations);
    }
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn parses_minimal_review_and_keeps_object_raw() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"ns","operation":"CREATE","object":{"a":1},"extra":true}}"#;
        let req = parse_review(body).unwrap();
        assert_eq!(req.uid, "u1");
        assert_eq!(req.kind.kind, "Pod");
        assert_eq!(req.namespace(), "ns");
        assert_eq!(req.operation, Operation::Create);
        assert!(matches!(req.object, Object::Raw(raw) if raw.get() == r#"{"a":1}"#));
    }

    #[test]
    fn one_pass_reads_the_view_the_endpoint_needs_or_skips_the_object() {
        let review = |kind: &str, operation: &str, object: &str| {
            format!(
                r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"{kind}"}},"namespace":"ns","operation":"{operation}","object":{object}}}}}"#
            )
        };
        let pod = r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}"#;
        let body = review("Pod", "CREATE", pod);
        let req = parse_review_for(Endpoint::Mutate, body.as_bytes()).unwrap();
        assert!(
            matches!(&req.object, Object::Pod(p) if p.spec.containers.as_ref().unwrap().len() == 1)
        );
        let req = parse_review_for(Endpoint::Validate, body.as_bytes()).unwrap();
        assert!(matches!(req.object, Object::PodForValidation(_)));
        let body = review("Pod", "DELETE", "null");
        assert!(matches!(
            parse_review_for(Endpoint::Mutate, body.as_bytes())
                .unwrap()
                .object,
            Object::Skipped
        ));
        let body = review("ServiceAccount", "UPDATE", r#"{"metadata":{"name":"sa"}}"#);
        assert!(matches!(
            parse_review_for(Endpoint::Mutate, body.as_bytes())
                .unwrap()
                .object,
            Object::ServiceAccount(_)
        ));
        // Kind after object: kept raw, as parse_review does.
        let late = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{},"kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE"}}"#;
        assert!(matches!(
            parse_review_for(Endpoint::Mutate, late.as_bytes())
                .unwrap()
                .object,
            Object::Raw(_)
        ));
    }

    #[test]
    fn one_pass_falls_back_to_the_same_answer() {
        // Object not a valid Pod: the review still parses; the decision reports the object.
        let bad = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":"x"}}}}"#;
        let req = parse_review_for(Endpoint::Mutate, bad.as_bytes()).unwrap();
        assert!(matches!(req.object, Object::Raw(_)));
        for body in [
            &b"nope"[..],
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","uid":"v","operation":"CREATE"}}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#,
            br#"{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE"}}"#,
        ] {
            let fast = parse_review_for(Endpoint::Mutate, body).unwrap_err().to_string();
            let reference = parse_review(body).unwrap_err().to_string();
            assert_eq!(fast, reference);
        }
    }

    #[test]
    fn rejects_non_reviews_with_a_reason() {
        assert!(matches!(
            parse_review(b"nope"),
            Err(ReviewError::NotJson(_))
        ));
        let v1beta1 = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE"}}"#;
        let err = parse_review(v1beta1).unwrap_err();
        assert!(err.to_string().contains("v1beta1"), "{err}");
        let no_request = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert!(matches!(
            parse_review(no_request),
            Err(ReviewError::MissingRequest)
        ));
        let no_uid = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#;
        assert!(matches!(parse_review(no_uid), Err(ReviewError::MissingUid)));
        let no_operation = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}"#;
        let err = parse_review(no_operation).unwrap_err();
        assert!(matches!(err, ReviewError::Malformed(_)), "{err}");
        assert!(err.to_string().contains("operation"), "{err}");
    }

    #[test]
    fn encodes_patch_as_base64_string() {
        let mut response = AdmissionResponse::allow("u\"1");
        response.patch.add(&["/a"], |out| push_str(out, "b"));
        let out: Value = serde_json::from_slice(&encode_review(&response)).unwrap();
        assert_eq!(out["apiVersion"], API_VERSION);
        assert_eq!(out["response"]["uid"], "u\"1");
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(patch, json!([{"op": "add", "path": "/a", "value": "b"}]));
        let plain: Value =
            serde_json::from_slice(&encode_review(&AdmissionResponse::allow("u2"))).unwrap();
        assert_eq!(
            plain,
            json!({"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": "u2", "allowed": true}})
        );
    }
}

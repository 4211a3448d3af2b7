//! The `admission.k8s.io/v1` AdmissionReview wire format, read with borrowed serde structs
//! (only the fields the webhook needs; everything else is skipped) and written with the patch
//! as a base64 string, the way the API server and the Go webhooks expect it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::objects::Text;
use crate::patch::JsonPatch;

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

/// The part of `request` the decisions read. `object` stays raw until a decision parses it
/// into the small struct for its kind.
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
    pub object: Option<&'a RawValue>,
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

#[derive(Serialize)]
struct WireReview<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: WireResponse<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: &'a BTreeMap<String, String>,
}

/// Serializes the response as a full AdmissionReview; the patch becomes a base64 string.
pub fn encode_review(response: &AdmissionResponse) -> Vec<u8> {
    let patch = (!response.patch.is_empty()).then(|| {
        // Serializing plain structs of strings and JSON values cannot fail.
        let json = serde_json::to_vec(&response.patch).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    });
    let wire = WireReview {
        api_version: API_VERSION,
        kind: KIND,
        response: WireResponse {
            uid: &response.uid,
            allowed: response.allowed,
            status: response.status.as_ref(),
            patch_type: patch.is_some().then_some("JSONPatch"),
            patch,
            warnings: &response.warnings,
            audit_annotations: &response.audit_annotations,
        },
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::PatchOperation;
    use serde_json::{Value, json};

    #[test]
    fn parses_minimal_review_and_keeps_object_raw() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"ns","operation":"CREATE","object":{"a":1},"extra":true}}"#;
        let req = parse_review(body).unwrap();
        assert_eq!(req.uid, "u1");
        assert_eq!(req.kind.kind, "Pod");
        assert_eq!(req.namespace(), "ns");
        assert_eq!(req.operation, Operation::Create);
        assert_eq!(req.object.unwrap().get(), r#"{"a":1}"#);
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
        let mut response = AdmissionResponse::allow("u1");
        response
            .patch
            .push(PatchOperation::add("/a".into(), json!("b")));
        let out: Value = serde_json::from_slice(&encode_review(&response)).unwrap();
        assert_eq!(out["apiVersion"], API_VERSION);
        assert_eq!(out["response"]["uid"], "u1");
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

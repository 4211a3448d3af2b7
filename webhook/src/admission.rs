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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Endpoint;
use crate::objects::Text;
use crate::patch::{JsonPatch, push_str, quoted_len};
// The request types live in `review` (read by both readers and the decisions); re-exported
// here, where the wire format's users have always found them.
pub use crate::review::{
    API_VERSION, AdmissionRequest, GroupVersionKind, Held, KIND, Object, ObjectView, Operation,
};

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
    /// Not sent: the endpoint does not handle the review's kind (the server counts it and
    /// logs it once per kind).
    pub unhandled_kind: bool,
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
    const HEAD: &[u8] =
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#;
    const PATCH: &[u8] = br#","patchType":"JSONPatch","patch":""#;
    let allowed: &[u8] = if response.allowed {
        br#","allowed":true"#
    } else {
        br#","allowed":false"#
    };
    let patch = (!response.patch.is_empty()).then(|| response.patch.as_json());
    let patch_len = patch.map_or(0, |p| base64_simd::STANDARD.encoded_length(p.len()));
    // Exact unless there is a status, warnings or annotations: a buffer that is exactly full
    // becomes the response body without another allocation (`Bytes::from(Vec)`).
    let len = HEAD.len()
        + quoted_len(&response.uid)
        + allowed.len()
        + patch.map_or(0, |_| PATCH.len() + patch_len + 1)
        + 2;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(HEAD);
    push_str(&mut out, &response.uid);
    out.extend_from_slice(allowed);
    // Serializing plain structs of strings into a Vec cannot fail.
    if let Some(status) = &response.status {
        out.extend_from_slice(br#","status":"#);
        let _ = serde_json::to_writer(&mut out, status);
    }
    if let Some(patch) = patch {
        out.extend_from_slice(PATCH);
        // SIMD where the CPU has it: the patch is the largest part of the response.
        base64_simd::STANDARD.encode_append(patch, &mut out);
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
        let patch = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            out["response"]["patch"].as_str().unwrap(),
        )
        .unwrap();
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(patch, json!([{"op": "add", "path": "/a", "value": "b"}]));
        // Sized exactly, so the body needs no second allocation.
        let encoded = encode_review(&response);
        assert_eq!(encoded.len(), encoded.capacity());
        let plain: Value =
            serde_json::from_slice(&encode_review(&AdmissionResponse::allow("u2"))).unwrap();
        assert_eq!(
            plain,
            json!({"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": "u2", "allowed": true}})
        );
    }
}

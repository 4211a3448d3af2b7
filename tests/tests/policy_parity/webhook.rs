//! The webhook's side: its decision on a review, where its configuration sends it.

use base64::Engine as _;
use mlplatform_webhook::Endpoint;
use mlplatform_webhook::admission::{encode_review, parse_review};
use mlplatform_webhook::mutate::InjectionConfig;
use serde_json::Value;

use crate::engine::Verdict;
use crate::fixtures::{SERVICE_ACCOUNT_WEBHOOK, VALIDATING_WEBHOOK};
use crate::matching::matches;
use crate::namespaces::Namespace;

fn run_webhook(review: &Value, ns: &Namespace, mutate: bool) -> Value {
    let body = serde_json::to_vec(review).unwrap();
    let req = parse_review(&body).expect("fixtures are AdmissionReviews");
    let view = ns.view();
    let endpoint = if mutate {
        Endpoint::Mutate
    } else {
        Endpoint::Validate
    };
    let response = mlplatform_webhook::decide(endpoint, &req, &view, &InjectionConfig::default())
        .expect("a static view never misses");
    let wire: Value = serde_json::from_slice(&encode_review(&response)).unwrap();
    wire["response"].clone()
}

/// The webhook's verdict, or `Allow` when its configuration would not send the request.
pub(crate) fn webhook_verdict(
    review: &Value,
    ns: &Namespace,
) -> Result<(Verdict, Option<String>), String> {
    let config = &*VALIDATING_WEBHOOK;
    if !matches(
        &config["rules"],
        &config["namespaceSelector"],
        &review["request"],
        ns,
    ) {
        return Ok((Verdict::Allow, None));
    }
    let r = run_webhook(review, ns, false);
    let audit = r["auditAnnotations"][mlplatform_webhook::validate::AUDIT_ANNOTATION]
        .as_str()
        .map(str::to_owned);
    let warnings = r["warnings"].as_array().cloned().unwrap_or_default();
    let verdict = if r["allowed"] == false {
        Verdict::Deny {
            code: r["status"]["code"].as_u64().unwrap_or_default() as u16,
            message: r["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    } else if let [w] = warnings.as_slice() {
        Verdict::Warn(w.as_str().unwrap_or_default().to_owned())
    } else if let Some(a) = &audit {
        Verdict::Audit(a.clone())
    } else if warnings.is_empty() {
        Verdict::Allow
    } else {
        return Err(format!("webhook answered {r}"));
    };
    Ok((verdict, audit))
}

/// The object the webhook's mutation leaves (its JSON patch applied).
pub(crate) fn webhook_mutated(review: &Value, ns: &Namespace) -> Value {
    let config = &*SERVICE_ACCOUNT_WEBHOOK;
    let mut object = review["request"]["object"].clone();
    if !matches(
        &config["rules"],
        &config["namespaceSelector"],
        &review["request"],
        ns,
    ) {
        return object;
    }
    let r = run_webhook(review, ns, true);
    if let Some(patch) = r["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
    }
    object
}

//! Golden fixtures: `tests/fixtures/{mutate,validate}/*.json`, one file per rule.
//!
//! Each file holds the cluster state (namespaces, ServiceAccounts), the injection config
//! (flags), the AdmissionReview sent, and under `expected` the response (with the base64
//! patch decoded to a JSON array) and, for patches, the object after applying the patch with
//! the json-patch crate. Every mutation is re-run on its patched object and must add nothing.
//!
//! `BLESS=1 cargo test -p mlplatform-webhook --test golden` rewrites `expected` (review the diff).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use mlplatform_webhook::admission::{encode_review, parse_review};
use mlplatform_webhook::cluster::StaticClusterView;
use mlplatform_webhook::mutate::InjectionConfig;
use mlplatform_webhook::{Endpoint, decide};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn fixture_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    for dir in ["mutate", "validate"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn injection_config(fixture: &Value) -> InjectionConfig {
    let mut cfg = InjectionConfig::default();
    let c = &fixture["config"];
    if let Some(region) = c["awsRegion"].as_str() {
        cfg.aws_region = Some(region.to_owned());
    }
    if let Some(sts) = c["stsRegionalEndpoints"].as_bool() {
        cfg.sts_regional_endpoints = sts;
    }
    if let Some(aud) = c["tokenAudience"].as_str() {
        cfg.token_audience = aud.to_owned();
    }
    if let Some(exp) = c["tokenExpiration"].as_i64() {
        cfg.token_expiration = exp;
    }
    cfg
}

/// Runs one review through the real parse → decide → encode path; returns the wire JSON.
fn run_review(
    endpoint: Endpoint,
    review: &Value,
    view: &StaticClusterView,
    cfg: &InjectionConfig,
) -> Value {
    let body = serde_json::to_vec(review).unwrap();
    let req = parse_review(&body).unwrap();
    let response = decide(endpoint, &req, view, cfg).expect("a static view never misses");
    serde_json::from_slice(&encode_review(&response)).unwrap()
}

/// The wire response with the base64 patch replaced by the decoded JSON array.
fn decoded_response(out: &Value) -> Value {
    let mut response = out["response"].clone();
    if let Some(patch) = response.get("patch").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        response["patch"] = serde_json::from_slice(&bytes).unwrap();
    }
    response
}

fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut fixture: Value = serde_json::from_str(&text).unwrap();
    let endpoint = match fixture["endpoint"].as_str() {
        Some("mutate") => Endpoint::Mutate,
        Some("validate") => Endpoint::Validate,
        other => return Err(format!("unknown endpoint {other:?}")),
    };
    let cluster = &fixture["cluster"];
    let empty = vec![];
    let view = StaticClusterView::from_objects(
        cluster["namespaces"].as_array().unwrap_or(&empty),
        cluster["serviceAccounts"].as_array().unwrap_or(&empty),
    )
    .unwrap();
    let cfg = injection_config(&fixture);
    let review = fixture["review"].clone();
    let out = run_review(endpoint, &review, &view, &cfg);
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(
        out["response"]["uid"], review["request"]["uid"],
        "uid must be echoed"
    );
    let response = decoded_response(&out);

    let mut expected = json!({ "response": response });
    if let Some(patch) = response.get("patch") {
        assert_eq!(response["patchType"], "JSONPatch");
        let patch: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
        let mut object = review["request"]["object"].clone();
        json_patch::patch(&mut object, &patch).map_err(|e| format!("patch does not apply: {e}"))?;
        // Idempotence (reinvocationPolicy IfNeeded): the patched object needs nothing more.
        let mut again = review.clone();
        again["request"]["object"] = object.clone();
        let second = decoded_response(&run_review(endpoint, &again, &view, &cfg));
        if second.get("patch").is_some() {
            return Err(format!("second pass patched again: {}", second["patch"]));
        }
        expected["object"] = object;
    }

    if std::env::var_os("BLESS").is_some() {
        fixture["expected"] = expected;
        std::fs::write(path, serde_json::to_string_pretty(&fixture).unwrap() + "\n").unwrap();
        return Ok(());
    }
    let Some(want) = fixture.get("expected") else {
        return Err("no `expected` section; run with BLESS=1 and review it".into());
    };
    if *want != expected {
        return Err(format!(
            "mismatch:\n{}",
            pretty_assertions::Comparison::new(want, &expected)
        ));
    }
    Ok(())
}

#[test]
fn golden_fixtures() {
    let files = fixture_files();
    assert!(files.len() >= 40, "fixtures missing: found {}", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            check(path)
                .err()
                .map(|e| format!("{}: {e}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every rule the issue lists has its own fixture (so deleting one fails loudly).
#[test]
fn every_rule_has_a_fixture() {
    let names: Vec<String> = fixture_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for rule in [
        "pod-injects-irsa",
        "pod-appends-to-existing-arrays",
        "pod-user-env-wins",
        "pod-skip-containers",
        "pod-init-containers",
        "pod-windows",
        "pod-token-expiration-floor",
        "pod-token-expiration-pod-annotation",
        "pod-audience-sa-annotation",
        "pod-regional-sts-annotation",
        "sa-create-user-sa-gets-role",
        "sa-update-escapes-annotation-key",
        "sa-role-already-equal",
        "deployment-enforce-denied",
        "statefulset-enforce-denied",
        "daemonset-enforce-denied",
        "replicaset-enforce-denied",
        "job-enforce-denied",
        "cronjob-enforce-denied",
        "pod-enforce-denied",
        "warn-mode-warns",
        "audit-mode-annotates",
        "bad-enforcement-fails-closed",
        "wrong-kind",
    ] {
        assert!(names.iter().any(|n| n == rule), "no fixture for {rule}");
    }
}

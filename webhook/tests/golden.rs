//! Golden fixtures: `tests/fixtures/{mutate,validate}/*.json`, one file per rule.
//!
//! Each file holds the cluster state (namespaces, ServiceAccounts), the injection config
//! (flags), the AdmissionReview sent, and under `expected` the response (with the base64
//! patch decoded to a JSON array) and, for patches, the object after applying the patch with
//! the json-patch crate. Every mutation is re-run on its patched object and must add nothing.
//!
//! `tests/fixtures/real-reviews/*.json` are 26 AdmissionReviews exactly as kube-apiserver
//! v1.36.2 sent them (copied from `apiserver-conformance/admission-reviews`); they go through
//! the real router over HTTP, and each answer is compared with `real-reviews/expected/`.
//!
//! `BLESS=1` (or `UPDATE_GOLDEN=1`) `cargo test -p mlplatform-webhook --test golden` rewrites
//! the expected outputs (review the diff).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use base64::Engine as _;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mlplatform_webhook::admission::{encode_review, parse_review};
use mlplatform_webhook::cache::ClusterCache;
use mlplatform_webhook::cluster::{NamespaceEntry, ServiceAccountEntry, StaticClusterView};
use mlplatform_webhook::metrics::Metrics;
use mlplatform_webhook::mutate::InjectionConfig;
use mlplatform_webhook::server::{App, admission_router};
use mlplatform_webhook::{Endpoint, decide};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn bless() -> bool {
    std::env::var_os("BLESS").is_some() || std::env::var_os("UPDATE_GOLDEN").is_some()
}

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

    if bless() {
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
        "pod-fs-group-namespace-annotation",
        "pod-fs-group-pod-annotation-wins",
        "pod-fs-group-existing-never-overridden",
        "pod-fs-group-token-volume-present",
        "pod-fs-group-invalid-warns",
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

// ---- Real AdmissionReviews from kube-apiserver v1.36.2, through the HTTP router ----

/// The namespace the reviews were recorded in, and the role its policy and user SA carry
/// (the role review 02 already has, so that ServiceAccount UPDATE needs no patch).
const REAL_NAMESPACE: &str = "capture-demo";
const REAL_ROLE: &str = "arn:aws:iam::123456789012:role/ml-user";

fn real_review_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-reviews");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The cache as the watches would fill it for the recorded cluster: `capture-demo` managed and
/// enforcing (user SA `ml-user` with IRSA, system SA `ml-system`); its `default` SA without
/// IRSA. Pods running as `default` are denied by /validate and get no patch from /mutate.
fn real_review_app() -> Arc<App> {
    let metrics = Metrics::new();
    let cache = ClusterCache::offline(metrics.clone());
    let labels = string_map(&[("mlplatform.io/managed", "true")]);
    let annotations = string_map(&[
        ("mlplatform.io/user-service-account", "ml-user"),
        ("mlplatform.io/system-service-accounts", "ml-system"),
        ("mlplatform.io/irsa-role-arn", REAL_ROLE),
        ("mlplatform.io/enforcement", "enforce"),
    ]);
    cache.insert_namespace(
        REAL_NAMESPACE,
        Some(NamespaceEntry::from_metadata(
            Some(&labels),
            Some(&annotations),
        )),
    );
    let irsa = string_map(&[("eks.amazonaws.com/role-arn", REAL_ROLE)]);
    for (name, annotations) in [("ml-user", Some(&irsa)), ("default", None)] {
        cache.insert_service_account(
            REAL_NAMESPACE,
            name,
            Some(ServiceAccountEntry::from_annotations(annotations)),
        );
    }
    let injection = InjectionConfig {
        aws_region: Some("us-east-2".to_owned()),
        sts_regional_endpoints: true,
        ..InjectionConfig::default()
    };
    App::new(cache, injection, metrics, 1 << 20)
}

/// `review` serialized as the API server writes it (Go's encoding/json: struct fields in
/// declaration order, so `request.uid`, `kind` and `operation` come before `object`); the
/// fixtures store keys sorted, with `object` before `operation`.
fn api_server_order(review: &Value) -> String {
    const FIELDS: [&str; 15] = [
        "uid",
        "kind",
        "resource",
        "subResource",
        "requestKind",
        "requestResource",
        "requestSubResource",
        "name",
        "namespace",
        "operation",
        "userInfo",
        "object",
        "oldObject",
        "dryRun",
        "options",
    ];
    let request = review["request"].as_object().unwrap();
    assert!(
        request.keys().all(|k| FIELDS.contains(&k.as_str())),
        "unknown request field in {:?}",
        request.keys().collect::<Vec<_>>()
    );
    let fields: Vec<String> = FIELDS
        .iter()
        .filter_map(|f| request.get(*f).map(|v| format!("{}:{v}", json!(f))))
        .collect();
    format!(
        r#"{{"kind":{},"apiVersion":{},"request":{{{}}}}}"#,
        review["kind"],
        review["apiVersion"],
        fields.join(",")
    )
}

/// POSTs `review` to `path` on the real admission router: HTTP status and parsed body.
async fn post_review(app: &Arc<App>, path: &str, review: &Value) -> (StatusCode, Value) {
    post_body(app, path, serde_json::to_vec(review).unwrap()).await
}

async fn post_body(app: &Arc<App>, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = admission_router(app.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let parsed = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{path}: HTTP {status}, body is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{path}: content type"
    );
    (status, parsed)
}

/// Names that occur twice in one list of `object` (volumes; each container's env, mount names
/// and mount paths), as `list: name`.
fn duplicate_names(object: &Value) -> Vec<String> {
    fn dups(list: &Value, key: &str, what: &str, out: &mut Vec<String>) {
        let mut seen = HashSet::new();
        for item in list.as_array().into_iter().flatten() {
            if let Some(name) = item[key].as_str()
                && !seen.insert(name)
            {
                out.push(format!("{what}: {name}"));
            }
        }
    }
    let mut out = Vec::new();
    let spec = &object["spec"];
    dups(&spec["volumes"], "name", "volumes", &mut out);
    for field in ["containers", "initContainers", "ephemeralContainers"] {
        for container in spec[field].as_array().into_iter().flatten() {
            let at = format!("{field}/{}", container["name"]);
            dups(&container["env"], "name", &format!("{at} env"), &mut out);
            let mounts = &container["volumeMounts"];
            dups(mounts, "name", &format!("{at} volumeMounts"), &mut out);
            dups(mounts, "mountPath", &format!("{at} mountPaths"), &mut out);
        }
    }
    out
}

/// One real review: checks that hold for every answer, then the golden comparison.
async fn check_real_review(app: &Arc<App>, path: &Path) -> Result<(), String> {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let request = &review["request"];
    let endpoint = if name.contains("-validate-") {
        "/validate"
    } else {
        "/mutate"
    };
    let (status, out) = post_review(app, endpoint, &review).await;
    if status != StatusCode::OK {
        return Err(format!("HTTP {status}: {out}"));
    }
    // The same review with the API server's field order (read in one pass) answers the same.
    let (wire_status, wire_out) =
        post_body(app, endpoint, api_server_order(&review).into_bytes()).await;
    if (wire_status, &wire_out) != (status, &out) {
        return Err(format!(
            "API-server field order answered differently: {wire_status} {wire_out} vs {status} {out}"
        ));
    }
    if out["apiVersion"] != "admission.k8s.io/v1" || out["kind"] != "AdmissionReview" {
        return Err(format!("not an admission.k8s.io/v1 AdmissionReview: {out}"));
    }
    if out["response"]["uid"] != request["uid"] {
        return Err(format!("uid not echoed: {out}"));
    }
    let response = decoded_response(&out);
    let allowed = response["allowed"]
        .as_bool()
        .ok_or_else(|| format!("no allowed: {out}"))?;
    if !allowed {
        let code = response["status"]["code"].as_u64().unwrap_or(0);
        let message = response["status"]["message"].as_str().unwrap_or("");
        if code == 0 || message.is_empty() {
            return Err(format!("denied without a status code and message: {out}"));
        }
    }
    let operation = request["operation"].as_str().unwrap_or("");
    let subresource = request["subResource"].as_str().unwrap_or("");
    let kind = request["kind"]["kind"].as_str().unwrap_or("");
    // DELETE (object null), subresources, and on /mutate everything but pod CREATE and
    // ServiceAccount writes: admitted as sent.
    let unchanged = operation == "DELETE"
        || !subresource.is_empty()
        || (endpoint == "/mutate"
            && !(kind == "ServiceAccount" || (kind == "Pod" && operation == "CREATE")));
    if unchanged && (!allowed || response.get("patch").is_some()) {
        return Err(format!(
            "{endpoint}: {operation} of {kind} {subresource} must be admitted unchanged: {response}"
        ));
    }

    if let Some(patch) = response.get("patch") {
        if response["patchType"] != "JSONPatch" {
            return Err(format!("patch without patchType JSONPatch: {response}"));
        }
        let patch: json_patch::Patch =
            serde_json::from_value(patch.clone()).map_err(|e| format!("not a JSON patch: {e}"))?;
        let mut object = request["object"].clone();
        json_patch::patch(&mut object, &patch).map_err(|e| format!("patch does not apply: {e}"))?;
        let dups = duplicate_names(&object);
        if !dups.is_empty() {
            return Err(format!("patched object has duplicates: {dups:?}"));
        }
        // reinvocationPolicy IfNeeded: the webhook sees its own output and must add nothing.
        let mut again = review.clone();
        again["request"]["object"] = object;
        let (status, second) = post_review(app, endpoint, &again).await;
        let second = decoded_response(&second);
        if status != StatusCode::OK || second["allowed"] != true || second.get("patch").is_some() {
            return Err(format!("second pass over the patched object: {second}"));
        }
    } else if let Some(object) = request.get("object").filter(|o| !o.is_null()) {
        let dups = duplicate_names(object);
        if !dups.is_empty() {
            return Err(format!("object as sent has duplicates: {dups:?}"));
        }
    }

    // Server-side dry-run: the webhook has no side effects, so it answers as for a real write.
    if request["dryRun"] == true {
        let mut real = review.clone();
        real["request"]["dryRun"] = json!(false);
        let (_, wet) = post_review(app, endpoint, &real).await;
        if decoded_response(&wet) != response {
            return Err(format!(
                "dryRun answer differs from the real one: {response} vs {}",
                decoded_response(&wet)
            ));
        }
    }

    let actual = json!({
        "endpoint": endpoint,
        "httpStatus": status.as_u16(),
        "request": {
            "kind": request["kind"]["kind"],
            "operation": operation,
            "subResource": request["subResource"],
            "dryRun": request["dryRun"],
        },
        "response": response,
    });
    let golden = path
        .parent()
        .unwrap()
        .join("expected")
        .join(format!("{name}.json"));
    if bless() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(
            &golden,
            serde_json::to_string_pretty(&actual).unwrap() + "\n",
        )
        .unwrap();
        return Ok(());
    }
    let want: Value = match std::fs::read_to_string(&golden) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(_) => {
            return Err(format!(
                "no {}; run with UPDATE_GOLDEN=1 and review it",
                golden.display()
            ));
        }
    };
    if want != actual {
        return Err(format!(
            "differs from {}:\n{}",
            golden.display(),
            pretty_assertions::Comparison::new(&want, &actual)
        ));
    }
    Ok(())
}

#[tokio::test]
async fn real_apiserver_reviews_through_the_router() {
    let files = real_review_files();
    assert_eq!(files.len(), 26, "real reviews missing");
    let app = real_review_app();
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for path in &files {
        if let Err(e) = check_real_review(&app, path).await {
            failures.push(format!("{}: {e}", path.display()));
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let golden = path
            .parent()
            .unwrap()
            .join("expected")
            .join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(golden) {
            outcomes.push(serde_json::from_str::<Value>(&text).unwrap());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The policy must exercise every path: IRSA patches, the SA annotation, allow and deny.
    let count = |pred: &dyn Fn(&Value) -> bool| outcomes.iter().filter(|o| pred(o)).count();
    let patched_pods =
        count(&|o| o["request"]["kind"] == "Pod" && o["response"].get("patch").is_some());
    let patched_sas = count(&|o| {
        o["request"]["kind"] == "ServiceAccount" && o["response"].get("patch").is_some()
    });
    let denied = count(&|o| o["endpoint"] == "/validate" && o["response"]["status"]["code"] == 403);
    let admitted = count(&|o| o["endpoint"] == "/validate" && o["response"]["allowed"] == true);
    assert!(
        patched_pods >= 5 && patched_sas == 1 && denied >= 2 && admitted >= 4,
        "pods patched {patched_pods}, SAs patched {patched_sas}, denied {denied}, admitted {admitted}"
    );
}

//! The benchmark's request: a realistic pod-CREATE AdmissionReview (2–3 KB, what the API
//! server sends for a ReplicaSet's pod), and the check that a response is a correct IRSA
//! mutation of it, so a broken server cannot post good numbers.
use base64::Engine as _;
use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, IRSA_ROLE_ARN_ANNOTATION, MANAGED_LABEL, MANAGED_VALUE,
    USER_SERVICE_ACCOUNT_ANNOTATION, eks,
};
use serde_json::{Value, json};

/// The managed namespace, its user ServiceAccount and the role that SA carries.
pub const NAMESPACE: &str = "bench-team";
pub const USER_SERVICE_ACCOUNT: &str = "bench-user";
pub const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/mlplatform-bench-user";
/// Where pod-identity-webhook mounts the token, and so where we expect it.
pub const TOKEN_DIR: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
pub const TOKEN_VOLUME: &str = "aws-iam-token";

/// The objects the webhook's caches must hold: the managed namespace and its user SA.
pub fn cluster_fixtures() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    MANAGED_LABEL: MANAGED_VALUE,
                    "kubernetes.io/metadata.name": NAMESPACE,
                },
                "annotations": {
                    USER_SERVICE_ACCOUNT_ANNOTATION: USER_SERVICE_ACCOUNT,
                    IRSA_ROLE_ARN_ANNOTATION: ROLE_ARN,
                    ENFORCEMENT_ANNOTATION: "enforce",
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {
                "name": USER_SERVICE_ACCOUNT, "namespace": NAMESPACE,
                "annotations": { eks::ROLE_ARN: ROLE_ARN },
            },
        }),
    ]
}

/// A training pod as its ReplicaSet creates it: two containers, env, resources, volumes,
/// labels, and the kube-api-access volume the API server adds.
pub fn training_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": "feature-trainer-7d9f8c6b5-",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": "feature-trainer",
                "app.kubernetes.io/component": "trainer",
                "app.kubernetes.io/part-of": "churn-model",
                "pod-template-hash": "7d9f8c6b5",
            },
            "annotations": { "prometheus.io/scrape": "true", "prometheus.io/port": "9102" },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "feature-trainer-7d9f8c6b5",
                "uid": "5b1f0c8e-3a44-4f1e-9d7c-2f6f1d0a9b31", "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "serviceAccountName": USER_SERVICE_ACCOUNT,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000 },
            "containers": [
                {
                    "name": "trainer",
                    "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/churn/trainer:2.14.1",
                    "args": ["--epochs=20", "--data=s3://churn-features/train/", "--out=/work/model"],
                    "env": [
                        { "name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.example.com" },
                        { "name": "EXPERIMENT", "value": "churn-2026-11" },
                        { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                    ],
                    "resources": {
                        "requests": { "cpu": "2", "memory": "8Gi" },
                        "limits": { "memory": "8Gi", "nvidia.com/gpu": "1" },
                    },
                    "volumeMounts": [
                        { "name": "work", "mountPath": "/work" },
                        { "name": "config", "mountPath": "/etc/trainer", "readOnly": true },
                        { "name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true },
                    ],
                    "imagePullPolicy": "IfNotPresent",
                },
                {
                    "name": "metrics",
                    "image": "quay.io/prometheus/statsd-exporter:v0.28.0",
                    "ports": [{ "name": "metrics", "containerPort": 9102, "protocol": "TCP" }],
                    "env": [{ "name": "LOG_LEVEL", "value": "warn" }],
                    "resources": {
                        "requests": { "cpu": "50m", "memory": "64Mi" },
                        "limits": { "memory": "64Mi" },
                    },
                    "volumeMounts": [
                        { "name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true },
                    ],
                },
            ],
            "volumes": [
                { "name": "work", "emptyDir": { "sizeLimit": "20Gi" } },
                { "name": "config", "configMap": { "name": "trainer-config" } },
                { "name": "kube-api-access-x7k2p", "projected": { "defaultMode": 420, "sources": [
                    { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } },
                    { "configMap": { "name": "kube-root-ca.crt", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
                    { "downwardAPI": { "items": [{ "path": "namespace", "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } }] } },
                ] } },
            ],
            "tolerations": [{ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }],
        },
    })
}

/// The AdmissionReview the API server sends for `pod`.
pub fn pod_create_review(uid: &str, pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": "Pod" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "0c3c0a8e-1d0b-4b4e-8f57-7b0e2f1b6b11",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
            },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" },
        },
    })
}

/// The request body for `pod` as the API server writes it: Go's encoding/json emits struct
/// fields in declaration order, so `kind`, `apiVersion`, then `request` starting with its
/// `uid` (the null server relies on that order; a `serde_json::Value` would sort its keys or
/// not depending on features).
pub fn pod_create_review_body(uid: &str, pod: &Value) -> String {
    let review = pod_create_review(uid, pod);
    let request = &review["request"];
    let mut body =
        String::from(r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"#);
    for (i, key) in [
        "uid",
        "kind",
        "resource",
        "requestKind",
        "requestResource",
        "namespace",
        "operation",
        "userInfo",
        "object",
        "oldObject",
        "dryRun",
        "options",
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&Value::from(key).to_string());
        body.push(':');
        body.push_str(&request[key].to_string());
    }
    body.push_str("}}");
    body
}

/// Why a response is not the expected answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response field {field}: expected {expected}, got {got}")]
    Field {
        field: &'static str,
        expected: String,
        got: String,
    },
    #[error("response patch: {0}")]
    Patch(String),
    #[error("mutated pod: {0}")]
    Mutation(String),
}

fn expect_field(
    review: &Value,
    pointer: &'static str,
    expected: &Value,
) -> Result<(), ResponseError> {
    let got = review.pointer(pointer).unwrap_or(&Value::Null);
    if got == expected {
        Ok(())
    } else {
        Err(ResponseError::Field {
            field: pointer,
            expected: expected.to_string(),
            got: got.to_string(),
        })
    }
}

fn parse_review(body: &[u8], uid: &str) -> Result<Value, ResponseError> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| ResponseError::NotJson(e.to_string()))?;
    expect_field(&review, "/apiVersion", &json!("admission.k8s.io/v1"))?;
    expect_field(&review, "/kind", &json!("AdmissionReview"))?;
    expect_field(&review, "/response/uid", &json!(uid))?;
    expect_field(&review, "/response/allowed", &json!(true))?;
    Ok(review)
}

/// An allowed response for `uid` (what the no-op ceiling answers).
pub fn check_allowed(body: &[u8], uid: &str) -> Result<(), ResponseError> {
    parse_review(body, uid).map(drop)
}

/// An allowed response whose JSON patch, applied to `pod`, yields the IRSA-injected pod:
/// role ARN and token file env and the read-only token mount in every container, the
/// projected token volume, and every field of the original pod still there.
pub fn check_irsa_mutation(
    body: &[u8],
    uid: &str,
    pod: &Value,
    role_arn: &str,
) -> Result<(), ResponseError> {
    let review = parse_review(body, uid)?;
    expect_field(&review, "/response/patchType", &json!("JSONPatch"))?;
    let encoded = review
        .pointer("/response/patch")
        .and_then(Value::as_str)
        .ok_or_else(|| ResponseError::Patch("no base64 patch".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| ResponseError::Patch(format!("not base64: {e}")))?;
    let patch: json_patch::Patch = serde_json::from_slice(&decoded)
        .map_err(|e| ResponseError::Patch(format!("not a JSON patch: {e}")))?;
    let mut mutated = pod.clone();
    json_patch::patch(&mut mutated, &patch)
        .map_err(|e| ResponseError::Patch(format!("does not apply to the pod: {e}")))?;
    check_injected(pod, &mutated, role_arn).map_err(ResponseError::Mutation)
}

fn named<'a>(list: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    list?
        .as_array()?
        .iter()
        .find(|item| item["name"].as_str() == Some(name))
}

fn check_injected(original: &Value, mutated: &Value, role_arn: &str) -> Result<(), String> {
    let token_file = format!("{TOKEN_DIR}/token");
    let containers = mutated["spec"]["containers"]
        .as_array()
        .ok_or("no containers")?;
    let before = original["spec"]["containers"]
        .as_array()
        .ok_or("no containers")?;
    if containers.len() != before.len() {
        return Err("container count changed".into());
    }
    for (c, orig) in containers.iter().zip(before) {
        let name = c["name"].as_str().unwrap_or("?");
        for (env, want) in [
            ("AWS_ROLE_ARN", role_arn),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.as_str()),
        ] {
            let got = named(c.get("env"), env).and_then(|e| e["value"].as_str());
            if got != Some(want) {
                return Err(format!(
                    "container {name}: env {env} = {got:?}, want {want:?}"
                ));
            }
        }
        let mount = named(c.get("volumeMounts"), TOKEN_VOLUME)
            .ok_or_else(|| format!("container {name}: no {TOKEN_VOLUME} mount"))?;
        if mount["mountPath"] != TOKEN_DIR || mount["readOnly"] != true {
            return Err(format!("container {name}: token mount is {mount}"));
        }
        for key in ["env", "volumeMounts"] {
            for item in orig[key].as_array().into_iter().flatten() {
                if !c[key].as_array().is_some_and(|l| l.contains(item)) {
                    return Err(format!("container {name}: lost {key} entry {item}"));
                }
            }
        }
        for key in ["image", "resources", "args", "ports"] {
            if c.get(key) != orig.get(key) {
                return Err(format!("container {name}: {key} changed"));
            }
        }
    }
    let volume = named(mutated["spec"].get("volumes"), TOKEN_VOLUME)
        .ok_or_else(|| format!("no {TOKEN_VOLUME} volume"))?;
    let token = volume
        .pointer("/projected/sources")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().find_map(|src| src.get("serviceAccountToken")))
        .ok_or("token volume has no serviceAccountToken source")?;
    if token["audience"] != eks::DEFAULT_AUDIENCE {
        return Err(format!("token audience is {}", token["audience"]));
    }
    for volume in original["spec"]["volumes"].as_array().into_iter().flatten() {
        if !mutated["spec"]["volumes"]
            .as_array()
            .is_some_and(|l| l.contains(volume))
        {
            return Err(format!("lost volume {}", volume["name"]));
        }
    }
    for key in ["metadata", "securityContext", "tolerations"] {
        let (a, b) = if key == "metadata" {
            (original.get(key), mutated.get(key))
        } else {
            (original["spec"].get(key), mutated["spec"].get(key))
        };
        if a != b {
            return Err(format!("{key} changed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(uid: &str, patch: &Value) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": { "uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": encoded },
        })
        .to_string()
        .into_bytes()
    }

    /// The patch pod-identity-webhook would send for the training pod.
    fn correct_patch() -> Value {
        let env = |c: usize| {
            json!([
                { "op": "add", "path": format!("/spec/containers/{c}/env/-"), "value": { "name": "AWS_ROLE_ARN", "value": ROLE_ARN } },
                { "op": "add", "path": format!("/spec/containers/{c}/env/-"), "value": { "name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": format!("{TOKEN_DIR}/token") } },
                { "op": "add", "path": format!("/spec/containers/{c}/volumeMounts/-"), "value": { "name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true } },
            ])
        };
        let mut ops: Vec<Value> = Vec::new();
        for c in 0..2 {
            ops.extend(env(c).as_array().unwrap().iter().cloned());
        }
        ops.push(json!({ "op": "add", "path": "/spec/volumes/-", "value": {
            "name": TOKEN_VOLUME,
            "projected": { "sources": [{ "serviceAccountToken": { "audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token" } }] },
        }}));
        Value::Array(ops)
    }

    #[test]
    fn the_body_is_the_review_in_api_server_field_order() {
        let pod = training_pod();
        let body = pod_create_review_body("u-1", &pod);
        assert!(
            body.starts_with(r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u-1","kind":{"#),
            "{body}"
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, pod_create_review("u-1", &pod));
    }

    #[test]
    fn the_review_is_realistic_in_size() {
        let body = pod_create_review_body("u-1", &training_pod());
        assert!(
            (2_000..=3_200).contains(&body.len()),
            "review is {} bytes",
            body.len()
        );
    }

    #[test]
    fn a_correct_mutation_passes() {
        let pod = training_pod();
        let body = response("u-1", &correct_patch());
        assert_eq!(check_irsa_mutation(&body, "u-1", &pod, ROLE_ARN), Ok(()));
    }

    #[test]
    fn wrong_uid_denial_missing_env_or_dropped_fields_fail() {
        let pod = training_pod();
        let good = correct_patch();
        assert!(check_irsa_mutation(&response("other", &good), "u-1", &pod, ROLE_ARN).is_err());

        let denied = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u-1", "allowed": false, "status": {"code": 403}}});
        let err = check_irsa_mutation(denied.to_string().as_bytes(), "u-1", &pod, ROLE_ARN);
        assert!(matches!(
            err,
            Err(ResponseError::Field {
                field: "/response/allowed",
                ..
            })
        ));

        let mut missing_env = good.as_array().unwrap().clone();
        missing_env.remove(3); // second container's AWS_ROLE_ARN
        let err = check_irsa_mutation(
            &response("u-1", &Value::Array(missing_env)),
            "u-1",
            &pod,
            ROLE_ARN,
        );
        assert!(matches!(err, Err(ResponseError::Mutation(m)) if m.contains("AWS_ROLE_ARN")));

        // Rewriting a whole env array loses the user's entries (the Go webhook's #208).
        let mut rewrite = good.as_array().unwrap().clone();
        rewrite.push(json!({"op": "replace", "path": "/spec/containers/1/env",
            "value": [{"name": "AWS_ROLE_ARN", "value": ROLE_ARN},
                      {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": format!("{TOKEN_DIR}/token")}]}));
        let err = check_irsa_mutation(
            &response("u-1", &Value::Array(rewrite)),
            "u-1",
            &pod,
            ROLE_ARN,
        );
        assert!(matches!(err, Err(ResponseError::Mutation(m)) if m.contains("LOG_LEVEL")));

        assert!(check_irsa_mutation(b"not json", "u-1", &pod, ROLE_ARN).is_err());
    }

    #[test]
    fn fixtures_make_the_namespace_managed_with_the_role() {
        let fixtures = cluster_fixtures();
        let ns = &fixtures[0];
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(ns["metadata"]["labels"].clone()).unwrap();
        let annotations: std::collections::BTreeMap<String, String> =
            serde_json::from_value(ns["metadata"]["annotations"].clone()).unwrap();
        let policy = mlplatform_namespace_policy::NamespacePolicy::from_metadata(
            Some(&labels),
            Some(&annotations),
        )
        .unwrap()
        .unwrap();
        assert!(policy.allows(USER_SERVICE_ACCOUNT));
        assert_eq!(policy.irsa_role_arn.as_deref(), Some(ROLE_ARN));
    }
}

//! Admission webhooks, called the way kube-apiserver calls them: stored
//! Mutating/ValidatingWebhookConfigurations are matched by rules, scope, namespaceSelector
//! and objectSelector; an `AdmissionReview` (admission.k8s.io/v1) is POSTed over HTTPS,
//! verified against `caBundle`; JSON patches from mutating webhooks are applied; denials,
//! failures (per failurePolicy), sideEffects on dry-run, timeouts and warnings behave like
//! the apiserver's.
//!
//! Differences, on purpose: a webhook whose `clientConfig.service` has no route registered
//! with `KubeDouble::route_service` is skipped (the double runs no Pods, so nothing could
//! serve it; tests that install webhook configurations without a webhook keep working).
//! Webhooks see the object with server fields (uid, generated name) already filled in;
//! `reinvocationPolicy` and `matchConditions` (CEL) are not evaluated; there is one pass.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use super::json::str_list;
use super::resources::ResourceType;
use super::selectors::label_selector_object_matches;
use super::status::ApiError;
use super::store::{ObjectKey, Store, meta_str};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        }
    }
}

/// What is being admitted.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub operation: Operation,
    pub rt: ResourceType,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    /// The new object (None for DELETE).
    pub object: Option<Value>,
    /// The stored object (None for CREATE).
    pub old_object: Option<Value>,
    pub dry_run: bool,
}

/// Where a webhook is reached: connect to `addr`, verify the certificate for
/// `server_name`, POST to `path`; `url` is how error messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    addr: String,
    server_name: String,
    path: String,
    url: String,
}

/// One webhook of a configuration, ready to call.
#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    endpoint: Endpoint,
    ca_bundle: Option<Vec<u8>>,
    failure_policy_ignore: bool,
    side_effects: String,
    timeout: Duration,
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|x| x == "*" || x == wanted)
}

/// Whether one RuleWithOperations covers the request (k8s admission `rules.Matcher`).
pub fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let rt = &attrs.rt;
    if !has(&str_list(rule, "operations"), attrs.operation.as_str())
        || !has(&str_list(rule, "apiGroups"), &rt.group)
        || !has(&str_list(rule, "apiVersions"), &rt.version)
    {
        return false;
    }
    let resource_ok = str_list(rule, "resources").iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
        let res_ok = res == "*" || res == rt.plural;
        let sub_ok = match (sub, attrs.subresource.as_deref()) {
            ("", None) => true,
            ("*", Some(_)) => true,
            (wanted, Some(actual)) => wanted == actual,
            (_, None) => false,
        };
        res_ok && sub_ok
    });
    if !resource_ok {
        return false;
    }
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !rt.namespaced,
        "Namespaced" => rt.namespaced,
        _ => true,
    }
}

fn labels_of(object: Option<&Value>) -> Value {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .cloned()
        .unwrap_or(json!({}))
}

/// Whether a webhook entry applies: any rule matches, and both selectors admit it.
/// `namespace_labels` are the labels of the object's namespace (None for cluster-scoped).
pub fn webhook_applies(
    webhook: &Value,
    attrs: &Attributes,
    namespace_labels: Option<&Value>,
) -> bool {
    let rules = webhook.get("rules").and_then(Value::as_array);
    if !rules.is_some_and(|rules| rules.iter().any(|r| rule_matches(r, attrs))) {
        return false;
    }
    let selector_ok = |field: &str, labels: &Value| {
        webhook
            .get(field)
            .is_none_or(|sel| sel.is_null() || label_selector_object_matches(sel, labels))
    };
    let is_namespace = attrs.rt.group.is_empty() && attrs.rt.kind == "Namespace";
    let ns_ok = if is_namespace {
        let labels = labels_of(attrs.object.as_ref().or(attrs.old_object.as_ref()));
        selector_ok("namespaceSelector", &labels)
    } else {
        match namespace_labels {
            Some(labels) => selector_ok("namespaceSelector", labels),
            // Cluster-scoped objects are not filtered by namespaceSelector.
            None => true,
        }
    };
    // Either the new or the old object may match; absent ones (oldObject on CREATE) don't count.
    let object_ok = [attrs.object.as_ref(), attrs.old_object.as_ref()]
        .into_iter()
        .flatten()
        .any(|o| selector_ok("objectSelector", &labels_of(Some(o))));
    ns_ok && object_ok
}

/// The webhooks that apply to `attrs`, in configuration-name then list order, as the
/// apiserver orders them. Service-referenced webhooks without a route are skipped.
pub fn hooks(
    store: &Store,
    routes: &HashMap<(String, String), SocketAddr>,
    attrs: &Attributes,
    mutating: bool,
) -> Vec<Hook> {
    let kind = if mutating {
        "MutatingWebhookConfiguration"
    } else {
        "ValidatingWebhookConfiguration"
    };
    let namespace_labels = attrs.namespace.as_ref().map(|ns| {
        let key = ObjectKey {
            group: String::new(),
            kind: "Namespace".to_string(),
            namespace: String::new(),
            name: ns.clone(),
        };
        labels_of(store.get_by_key(&key))
    });
    let mut out = Vec::new();
    for configuration in store.objects_of("admissionregistration.k8s.io", kind) {
        let Some(webhooks) = configuration.get("webhooks").and_then(Value::as_array) else {
            continue;
        };
        for webhook in webhooks {
            if !webhook_applies(webhook, attrs, namespace_labels.as_ref()) {
                continue;
            }
            if let Some(hook) = to_hook(webhook, routes) {
                out.push(hook);
            }
        }
    }
    out
}

fn to_hook(webhook: &Value, routes: &HashMap<(String, String), SocketAddr>) -> Option<Hook> {
    let name = webhook
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let client_config = webhook.get("clientConfig")?;
    let endpoint = if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        let uri: http::Uri = url.parse().ok()?;
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        Endpoint {
            addr: if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            },
            server_name: host,
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            url: url.to_string(),
        }
    } else {
        let service = client_config.get("service")?;
        let ns = service.get("namespace").and_then(Value::as_str)?;
        let svc = service.get("name").and_then(Value::as_str)?;
        let addr = routes.get(&(ns.to_string(), svc.to_string()))?;
        let path = service
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        let port = service.get("port").and_then(Value::as_u64).unwrap_or(443);
        Endpoint {
            addr: addr.to_string(),
            server_name: format!("{svc}.{ns}.svc"),
            url: format!("https://{svc}.{ns}.svc:{port}{path}"),
            path,
        }
    };
    let ca_bundle = client_config
        .get("caBundle")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    Some(Hook {
        name,
        endpoint,
        ca_bundle,
        failure_policy_ignore: webhook.get("failurePolicy").and_then(Value::as_str)
            == Some("Ignore"),
        side_effects: webhook
            .get("sideEffects")
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string(),
        timeout: Duration::from_secs(
            webhook
                .get("timeoutSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(10)
                .clamp(1, 30),
        ),
    })
}

/// The AdmissionReview the apiserver would send.
pub fn review_request(attrs: &Attributes, uid: &str) -> Value {
    let rt = &attrs.rt;
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let resource = json!({"group": rt.group, "version": rt.version, "resource": rt.plural});
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": attrs.name,
        "operation": attrs.operation.as_str(),
        "userInfo": {"username": super::request::ADMIN_USER, "groups": ["system:masters", "system:authenticated"]},
        "object": attrs.object.clone().unwrap_or(Value::Null),
        "oldObject": attrs.old_object.clone().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": attrs.operation.options_kind()},
    });
    if let Some(ns) = &attrs.namespace {
        request["namespace"] = json!(ns);
    }
    if let Some(sub) = &attrs.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// POSTs the review and returns its `response`, or why the call failed.
async fn call(hook: &Hook, review: &Value, uid: &str) -> Result<Value, String> {
    let Endpoint {
        addr,
        server_name,
        path,
        url,
    } = &hook.endpoint;
    let exchange = async {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &hook.ca_bundle {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("caBundle is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("caBundle certificate rejected: {e}"))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server = ServerName::try_from(server_name.clone()).map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let separator = if path.contains('?') { '&' } else { '?' };
        let request = http::Request::post(format!(
            "{path}{separator}timeout={}s",
            hook.timeout.as_secs()
        ))
        .header(http::header::HOST, server_name.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("the server responded with HTTP {status}"));
        }
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| format!("response is not an AdmissionReview: {e}"))
    };
    let answer = tokio::time::timeout(hook.timeout, exchange)
        .await
        .map_err(|_| format!("Post \"{url}\": context deadline exceeded"))?
        .map_err(|e| format!("Post \"{url}\": {e}"))?;
    let response = answer
        .get("response")
        .cloned()
        .ok_or_else(|| "webhook response was absent".to_string())?;
    if response.get("uid").and_then(Value::as_str) != Some(uid) {
        return Err(format!(
            "expected response.uid=\"{uid}\", got \"{}\"",
            response.get("uid").and_then(Value::as_str).unwrap_or("")
        ));
    }
    Ok(response)
}

fn denial(hook: &Hook, response: &Value) -> ApiError {
    let status = response
        .get("result")
        .or_else(|| response.get("status"))
        .cloned()
        .unwrap_or(json!({}));
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook \"{}\" denied the request", hook.name);
    let text = match (message.is_empty(), reason.is_empty()) {
        (false, _) => format!("{denied_by}: {message}"),
        (true, false) => format!("{denied_by}: {reason}"),
        (true, true) => format!("{denied_by} without explanation"),
    };
    let reason = if reason.is_empty() {
        "BadRequest"
    } else {
        reason
    };
    ApiError::new(code, reason, text)
}

fn call_failed(hook: &Hook, err: &str) -> ApiError {
    ApiError::new(
        500,
        "InternalError",
        format!(
            "Internal error occurred: failed calling webhook \"{}\": failed to call webhook: {err}",
            hook.name
        ),
    )
}

fn warnings_of(response: &Value) -> Vec<String> {
    str_list(response, "warnings")
}

/// Calls the webhooks of one phase in order; mutating ones patch `attrs.object`.
/// Returns the warnings they sent.
pub async fn run(
    hooks: &[Hook],
    attrs: &mut Attributes,
    mutating: bool,
) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    for hook in hooks {
        if attrs.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
            return Err(ApiError::bad_request(format!(
                "admission webhook \"{}\" does not support dry run",
                hook.name
            )));
        }
        let uid = review_uid();
        let review = review_request(attrs, &uid);
        let response = match call(hook, &review, &uid).await {
            Ok(r) => r,
            Err(_) if hook.failure_policy_ignore => continue,
            Err(e) => return Err(call_failed(hook, &e)),
        };
        warnings.extend(warnings_of(&response));
        if response.get("allowed").and_then(Value::as_bool) != Some(true) {
            return Err(denial(hook, &response));
        }
        if !mutating {
            continue;
        }
        let Some(patch) = response.get("patch").and_then(Value::as_str) else {
            continue;
        };
        let apply = || -> Result<Value, String> {
            if response.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
                return Err("patchType must be JSONPatch".to_string());
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .map_err(|e| format!("patch is not base64: {e}"))?;
            let ops: json_patch::Patch = serde_json::from_slice(&bytes)
                .map_err(|e| format!("patch is not a JSON patch: {e}"))?;
            let mut object = attrs.object.clone().unwrap_or(Value::Null);
            json_patch::patch(&mut object, &ops.0)
                .map_err(|e| format!("patch could not be applied: {e}"))?;
            Ok(object)
        };
        match apply() {
            Ok(object) => attrs.object = Some(object),
            Err(e) if hook.failure_policy_ignore => {
                tracing::debug!(webhook = %hook.name, error = %e, "ignored")
            }
            Err(e) => return Err(call_failed(hook, &e)),
        }
    }
    Ok(warnings)
}

/// Whether any webhook configuration is stored (the fast path skips admission otherwise).
pub fn configured(store: &Store) -> bool {
    !store
        .objects_of(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        )
        .is_empty()
        || !store
            .objects_of(
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
            )
            .is_empty()
}

/// The name an admitted object goes by.
pub fn name_of(object: &Value) -> String {
    meta_str(object, "name").unwrap_or("").to_string()
}

/// A fresh AdmissionReview uid (UUID-shaped).
pub fn review_uid() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    let a = hasher.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        n & 0xfff,
        n
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> ResourceType {
        super::super::resources::built_in()
            .into_iter()
            .find(|r| r.plural == "pods")
            .unwrap()
    }

    fn attrs(op: Operation, sub: Option<&str>, labels: Value) -> Attributes {
        Attributes {
            operation: op,
            rt: pods(),
            subresource: sub.map(str::to_string),
            namespace: Some("ml".into()),
            name: "p".into(),
            object: Some(json!({"metadata": {"name": "p", "labels": labels}})),
            old_object: None,
            dry_run: false,
        }
    }

    fn rule(resources: Value) -> Value {
        json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": resources})
    }

    #[test]
    fn rules_match_operation_group_version_resource_and_subresource() {
        let a = attrs(Operation::Create, None, json!({}));
        assert!(rule_matches(&rule(json!(["pods"])), &a));
        assert!(rule_matches(&rule(json!(["*"])), &a));
        assert!(!rule_matches(&rule(json!(["pods/status"])), &a));
        assert!(!rule_matches(&rule(json!(["deployments"])), &a));
        let update = attrs(Operation::Update, None, json!({}));
        assert!(!rule_matches(&rule(json!(["pods"])), &update));
        let status = attrs(Operation::Create, Some("status"), json!({}));
        assert!(rule_matches(&rule(json!(["pods/status"])), &status));
        assert!(rule_matches(&rule(json!(["*/*"])), &status));
        assert!(!rule_matches(&rule(json!(["pods"])), &status));
        let mut cluster_only = rule(json!(["pods"]));
        cluster_only["scope"] = json!("Cluster");
        assert!(!rule_matches(&cluster_only, &a));
    }

    #[test]
    fn selectors_filter_by_namespace_and_object_labels() {
        let webhook = json!({
            "rules": [rule(json!(["pods"]))],
            "namespaceSelector": {"matchLabels": {"mlplatform.io/managed": "true"}},
            "objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}
        });
        let managed = json!({"mlplatform.io/managed": "true"});
        assert!(webhook_applies(
            &webhook,
            &attrs(Operation::Create, None, json!({})),
            Some(&managed)
        ));
        assert!(!webhook_applies(
            &webhook,
            &attrs(Operation::Create, None, json!({})),
            Some(&json!({}))
        ));
        assert!(!webhook_applies(
            &webhook,
            &attrs(Operation::Create, None, json!({"skip": "1"})),
            Some(&managed)
        ));
    }

    #[test]
    fn review_has_the_apiserver_shape() {
        let review = review_request(&attrs(Operation::Create, None, json!({})), "u1");
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["request"]["uid"], "u1");
        assert_eq!(
            review["request"]["resource"],
            json!({"group": "", "version": "v1", "resource": "pods"})
        );
        assert_eq!(review["request"]["namespace"], "ml");
        assert_eq!(review["request"]["operation"], "CREATE");
        assert_eq!(review["request"]["oldObject"], Value::Null);
    }

    #[test]
    fn denial_uses_the_webhooks_code_and_message() {
        let hook = Hook {
            name: "validate.mlplatform.io".into(),
            endpoint: Endpoint {
                addr: String::new(),
                server_name: String::new(),
                path: String::new(),
                url: String::new(),
            },
            ca_bundle: None,
            failure_policy_ignore: false,
            side_effects: "None".into(),
            timeout: Duration::from_secs(1),
        };
        let e = denial(
            &hook,
            &json!({"allowed": false, "status": {"code": 403, "message": "use ml-user"}}),
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "admission webhook \"validate.mlplatform.io\" denied the request: use ml-user"
        );
        let e = denial(&hook, &json!({"allowed": false}));
        assert_eq!(e.code, 400);
        assert!(e.message.ends_with("without explanation"));
    }
}

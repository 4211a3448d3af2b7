//! The double calls admission webhooks like the apiserver: over HTTPS verified with the
//! configuration's caBundle, selected by rules and namespaceSelector, with JSON patches,
//! denials, dry-run and failurePolicy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use mlplatform_testkit::KubeDouble;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

const SERVICE_DNS: &str = "mlplatform-webhook.mlplatform-system.svc";

/// A TLS webhook server: `/mutate` adds a label, `/validate` allows only SA `ml-user`.
struct FakeWebhook {
    addr: SocketAddr,
    ca_pem: String,
    reviews: Arc<Mutex<Vec<Value>>>,
}

fn pki(dns: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![dns.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

fn answer(path: &str, review: &Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let response = if path.starts_with("/mutate") {
        let has_labels = request
            .pointer("/object/metadata/labels")
            .is_some_and(Value::is_object);
        let patch = if has_labels {
            json!([{"op": "add", "path": "/metadata/labels/admitted-by", "value": "fake-webhook"}])
        } else {
            json!([{"op": "add", "path": "/metadata/labels", "value": {"admitted-by": "fake-webhook"}}])
        };
        json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
               "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string()),
               "warnings": ["mutated by the fake webhook"]})
    } else {
        let sa = request
            .pointer("/object/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default");
        if sa == "ml-user" {
            json!({"uid": uid, "allowed": true})
        } else {
            json!({"uid": uid, "allowed": false,
                   "status": {"code": 403, "message": format!("pod runs as {sa}; use ml-user")}})
        }
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

impl FakeWebhook {
    async fn start(dns: &str) -> FakeWebhook {
        let (ca_pem, cert_pem, key_pem) = pki(dns);
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let seen = reviews.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let body = req.into_body().collect().await?.to_bytes();
                                let review: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                seen.lock().unwrap().push(review.clone());
                                let out = answer(&path, &review).to_string();
                                Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(
                                    out,
                                ))))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeWebhook {
            addr,
            ca_pem,
            reviews,
        }
    }

    fn calls(&self) -> usize {
        self.reviews.lock().unwrap().len()
    }

    fn last(&self) -> Value {
        self.reviews.lock().unwrap().last().cloned().unwrap()
    }
}

fn configuration(kind: &str, path: &str, ca_pem: &str, failure_policy: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": format!("mlplatform{path}")},
        "webhooks": [{
            "name": format!("{}.mlplatform.io", path.trim_start_matches('/')),
            "clientConfig": {
                "service": {"namespace": "mlplatform-system", "name": "mlplatform-webhook", "path": path},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"mlplatform.io/managed": "true"}},
            "failurePolicy": failure_policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }]
    })
}

fn pod(name: &str, sa: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

async fn setup() -> (KubeDouble, FakeWebhook) {
    let hook = FakeWebhook::start(SERVICE_DNS).await;
    let double = KubeDouble::start().await;
    double.apply_fixture(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "ml", "labels": {"mlplatform.io/managed": "true"}}}));
    double.apply_fixture(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "free"}}),
    );
    // Pods need their ServiceAccount to exist, as on a real cluster.
    for ns in ["ml", "free"] {
        for sa in ["ml-user", "other"] {
            double.apply_fixture(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": sa, "namespace": ns}}));
        }
    }
    double.apply_fixture(configuration(
        "MutatingWebhookConfiguration",
        "/mutate",
        &hook.ca_pem,
        "Fail",
    ));
    double.apply_fixture(configuration(
        "ValidatingWebhookConfiguration",
        "/validate",
        &hook.ca_pem,
        "Fail",
    ));
    (double, hook)
}

#[tokio::test]
async fn routed_webhooks_mutate_and_deny_like_the_apiserver() {
    let (double, hook) = setup().await;
    let pods: Api<Pod> = Api::namespaced(double.client(), "ml");

    // No route yet: the double has nothing that could serve the Service, so no call.
    pods.create(&PostParams::default(), &pod("before-route", "other"))
        .await
        .unwrap();
    assert_eq!(hook.calls(), 0);

    double.route_service("mlplatform-system", "mlplatform-webhook", hook.addr);
    let good = pods
        .create(&PostParams::default(), &pod("good", "ml-user"))
        .await
        .unwrap();
    assert_eq!(good.metadata.labels.unwrap()["admitted-by"], "fake-webhook");
    let stored = double.object("v1", "Pod", Some("ml"), "good").unwrap();
    assert_eq!(stored["metadata"]["labels"]["admitted-by"], "fake-webhook");
    assert_eq!(hook.calls(), 2, "one mutating and one validating call");
    let review = hook.last();
    assert_eq!(review["request"]["operation"], "CREATE");
    assert_eq!(review["request"]["namespace"], "ml");
    assert_eq!(
        review["request"]["object"]["metadata"]["labels"]["admitted-by"], "fake-webhook",
        "validating webhooks see the mutated object"
    );

    let err = pods
        .create(&PostParams::default(), &pod("bad", "other"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403);
            assert_eq!(
                status.message,
                "admission webhook \"validate.mlplatform.io\" denied the request: pod runs as other; use ml-user"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(double.object("v1", "Pod", Some("ml"), "bad").is_none());

    // namespaceSelector: unmanaged namespaces are not sent to the webhook.
    let calls = hook.calls();
    Api::<Pod>::namespaced(double.client(), "free")
        .create(&PostParams::default(), &pod("free", "other"))
        .await
        .unwrap();
    assert_eq!(hook.calls(), calls);

    // Server-side dry run reaches the webhook (what `webhook status` relies on) and stores nothing.
    let dry = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let err = pods
        .create(&dry, &pod("dry-bad", "other"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );
    assert_eq!(hook.last()["request"]["dryRun"], true);
    pods.create(&dry, &pod("dry-good", "ml-user"))
        .await
        .unwrap();
    assert!(double.object("v1", "Pod", Some("ml"), "dry-good").is_none());
}

#[tokio::test]
async fn unreachable_or_untrusted_webhooks_follow_failure_policy() {
    let (double, hook) = setup().await;
    double.route_service("mlplatform-system", "mlplatform-webhook", hook.addr);
    // A caBundle that did not sign the webhook's certificate: the call fails → Fail policy → 500.
    let (other_ca, _, _) = pki(SERVICE_DNS);
    double.apply_fixture(configuration(
        "ValidatingWebhookConfiguration",
        "/validate",
        &other_ca,
        "Fail",
    ));
    let pods: Api<Pod> = Api::namespaced(double.client(), "ml");
    let err = pods
        .create(&PostParams::default(), &pod("p1", "ml-user"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 500);
            assert!(
                status
                    .message
                    .contains("failed calling webhook \"validate.mlplatform.io\""),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(double.object("v1", "Pod", Some("ml"), "p1").is_none());
    // Ignore policy: the broken webhook is skipped.
    double.apply_fixture(configuration(
        "ValidatingWebhookConfiguration",
        "/validate",
        &other_ca,
        "Ignore",
    ));
    pods.create(&PostParams::default(), &pod("p2", "other"))
        .await
        .unwrap();
    assert!(double.object("v1", "Pod", Some("ml"), "p2").is_some());
}

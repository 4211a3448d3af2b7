//! Property tests: whatever the body, parsing and deciding never panic, every review that
//! parses gets a response echoing its uid, and the one-pass reader the server uses
//! (`parse_review_for`) answers byte for byte what the reference reader (`parse_review`,
//! object parsed by the decision) answers.

use std::collections::BTreeMap;

use mlplatform_webhook::admission::{encode_review, parse_review, parse_review_for};
use mlplatform_webhook::cluster::StaticClusterView;
use mlplatform_webhook::mutate::InjectionConfig;
use mlplatform_webhook::{Endpoint, decide};
use proptest::prelude::*;
use serde_json::{Value, json};

fn view() -> StaticClusterView {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut view = StaticClusterView::new();
    view.add_namespace(
        "ns",
        Some(&map(&[("mlplatform.io/managed", "true")])),
        Some(&map(&[
            ("mlplatform.io/user-service-account", "u"),
            (
                "mlplatform.io/irsa-role-arn",
                "arn:aws:iam::111122223333:role/r",
            ),
            ("mlplatform.io/fs-group", "65534"),
        ])),
    );
    view.add_service_account(
        "ns",
        "u",
        Some(&map(&[(
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::111122223333:role/r",
        )])),
    );
    view
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9_/~.-]{0,12}".prop_map(Value::from),
        Just(json!("u")),
        Just(json!("aws-iam-token")),
        Just(json!("AWS_ROLE_ARN")),
        Just(json!("/var/run/secrets/eks.amazonaws.com/serviceaccount")),
        Just(json!("windows")),
        Just(json!(1.5e-3)),
        // Escapes, a control character and non-ASCII: the one-pass reader leaves strings it
        // reads with escapes to serde, and must check skipped ones exactly as serde does.
        Just(json!("q\"uote\\ / \u{1} \t")),
        Just(json!("ünïcode ☃")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("env".to_owned()),
                    Just("volumeMounts".to_owned()),
                    Just("containers".to_owned()),
                    Just("annotations".to_owned()),
                    Just("template".to_owned()),
                    Just("spec".to_owned()),
                    Just("volumes".to_owned()),
                    Just("initContainers".to_owned()),
                    Just("jobTemplate".to_owned()),
                    Just("nodeSelector".to_owned()),
                    Just("serviceAccountName".to_owned()),
                    Just("mountPath".to_owned()),
                    Just("AWS_REGION".to_owned()),
                    Just("eks.amazonaws.com/skip-containers".to_owned()),
                    Just("kubernetes.io/os".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check(body: &[u8]) {
    let view = view();
    let cfg = InjectionConfig {
        aws_region: Some("eu-west-1".into()),
        ..InjectionConfig::default()
    };
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        let (reference, one_pass) = (parse_review(body), parse_review_for(endpoint, body));
        match (reference, one_pass) {
            (Ok(req), Ok(fast)) => {
                let response =
                    decide(endpoint, &req, &view, &cfg).expect("static view never misses");
                assert_eq!(response.uid, req.uid.as_ref());
                let encoded = encode_review(&response);
                let out: Value = serde_json::from_slice(&encoded).unwrap();
                assert_eq!(out["response"]["uid"], req.uid.as_ref());
                let fast = decide(endpoint, &fast, &view, &cfg).expect("static view never misses");
                assert_eq!(
                    String::from_utf8_lossy(&encode_review(&fast)),
                    String::from_utf8_lossy(&encoded),
                    "{endpoint:?}: one-pass reader differs on {}",
                    String::from_utf8_lossy(body)
                );
            }
            (Err(reference), Err(fast)) => assert_eq!(fast.to_string(), reference.to_string()),
            (reference, fast) => panic!(
                "{endpoint:?}: readers disagree on {}: reference {:?}, one pass {:?}",
                String::from_utf8_lossy(body),
                reference.map(|r| r.uid),
                fast.map(|r| r.uid)
            ),
        }
    }
}

/// A pod whose parts are mostly well-formed (so the one-pass reader reads them itself) and
/// sometimes arbitrary JSON.
fn pod_like() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        4 => prop_oneof![
            Just(json!("c")),
            Just(json!("AWS_REGION")),
            Just(json!("AWS_DEFAULT_REGION")),
            Just(json!("AWS_ROLE_ARN")),
            Just(json!("AWS_WEB_IDENTITY_TOKEN_FILE")),
            Just(json!("AWS_STS_REGIONAL_ENDPOINTS")),
            Just(json!("aws-iam-token")),
            Just(json!("skip-me")),
        ],
        1 => prop_oneof![Just(Value::Null), Just(json!(7)), Just(json!("e\"sc"))],
    ]
    .boxed();
    let named = prop::collection::vec(
        (name.clone(), any_json()).prop_map(|(n, extra)| json!({"name": n, "value": extra})),
        0..4,
    )
    .boxed();
    let path = prop_oneof![
        4 => Just(json!("/var/run/secrets/eks.amazonaws.com/serviceaccount")),
        4 => Just(json!("/m")),
        1 => any_json(),
    ];
    let mounts = prop::collection::vec(
        (name.clone(), path)
            .prop_map(|(n, p)| json!({"name": n, "mountPath": p, "readOnly": true})),
        0..3,
    )
    .boxed();
    let container = (
        name.clone(),
        prop_oneof![6 => named.clone().prop_map(Value::from), 1 => Just(Value::Null), 1 => any_json()],
        prop_oneof![6 => mounts.prop_map(Value::from), 1 => Just(Value::Null), 1 => any_json()],
    )
        .prop_map(|(n, env, mounts)| {
            json!({"name": n, "image": "i", "env": env, "volumeMounts": mounts, "resources": {"limits": {"cpu": "1"}}})
        });
    let containers = prop_oneof![
        8 => prop::collection::vec(container, 0..3).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any_json(),
    ]
    .boxed();
    let annotations = prop_oneof![
        2 => Just(json!({"eks.amazonaws.com/skip-containers": "skip-me", "other": "x"})),
        1 => Just(json!({"mlplatform.io/fs-group": "2000"})),
        1 => Just(json!({"mlplatform.io/fs-group": "-5", "mlplatform.io/fs-group": "x"})),
        2 => Just(json!({"eks.amazonaws.com/token-expiration": "3600", "eks.amazonaws.com/token-expiration": "700"})),
        2 => Just(json!({"a": "b"})),
        1 => any_json(),
    ];
    let selector = prop_oneof![
        2 => Just(json!({"kubernetes.io/os": "windows"})),
        2 => Just(json!({"beta.kubernetes.io/os": "windows", "zone": "a"})),
        2 => Just(Value::Null),
        1 => any_json(),
    ];
    let volumes =
        prop_oneof![8 => named.prop_map(Value::from), 1 => Just(Value::Null), 1 => any_json()];
    // The one-pass reader reads integers itself and leaves the rest (-0, floats, overflow,
    // other types) to serde.
    let fs_group = prop_oneof![
        4 => (0..70_000i64).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(json!(-3)),
        1 => Just(json!(1.5)),
        1 => Just(json!(9_223_372_036_854_775_807i64)),
        1 => Just(json!(18_446_744_073_709_551_615u64)),
        1 => any_json(),
    ];
    let security_context = prop_oneof![
        3 => Just(json!({})),
        3 => fs_group.prop_map(|g| json!({"runAsNonRoot": true, "fsGroup": g})),
        1 => Just(Value::Null),
        1 => Just(json!("absent")),
        1 => any_json(),
    ];
    (
        containers.clone(),
        containers,
        volumes,
        annotations,
        selector,
        security_context,
    )
        .prop_map(
            |(containers, init, volumes, annotations, selector, security_context)| {
                let mut pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": "p-", "annotations": annotations, "labels": {"a": "b"}},
                    "spec": {
                        "containers": containers, "initContainers": init, "volumes": volumes,
                        "nodeSelector": selector, "serviceAccountName": "u",
                        "securityContext": security_context,
                    },
                });
                if pod["spec"]["securityContext"] == "absent" {
                    pod["spec"].as_object_mut().unwrap().remove("securityContext");
                }
                pod
            },
        )
}

/// The real reviews from kube-apiserver, in its field order, as bytes (read once).
fn real_review_bodies() -> Vec<Vec<u8>> {
    static BODIES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    BODIES.get_or_init(read_real_review_bodies).clone()
}

fn read_real_review_bodies() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-reviews");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let request = review["request"].as_object().unwrap();
            let order = [
                "uid", "kind", "resource", "subResource", "requestKind", "requestResource",
                "requestSubResource", "name", "namespace", "operation", "userInfo", "object",
                "oldObject", "dryRun", "options",
            ];
            let fields: Vec<String> = order
                .iter()
                .filter_map(|f| request.get(*f).map(|v| format!("{}:{v}", json!(f))))
                .collect();
            // The recorded namespace is the view's managed one, so decisions go all the way.
            format!(
                r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{}}}}}"#,
                fields.join(",")
            )
            .replace("capture-demo", "ns")
            .replace("\"ml-user\"", "\"u\"")
            .into_bytes()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Real reviews with a few bytes changed, removed or inserted: whatever serde_json
    /// accepts or rejects, the one-pass reader must agree (same answer, same error).
    #[test]
    fn both_readers_agree_on_damaged_real_reviews(
        file in 0..26usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop_oneof![
            Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b','),
            Just(b':'), Just(b' '), Just(b'0'), Just(b'-'), Just(b'e'), Just(b'.'), Just(b'n'),
            Just(b'u'), Just(0x01u8), Just(0xffu8), any::<u8>(),
        ]), 1..4),
    ) {
        let mut body = real_review_bodies().swap_remove(file);
        for (at, how, byte) in edits {
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => body.insert(i, byte),
                _ => {
                    body.remove(i);
                }
            }
        }
        check(&body);
    }

    #[test]
    fn both_readers_agree_on_pods_in_api_server_order(
        pod in pod_like(),
        namespace in prop_oneof![Just("ns"), Just("other")],
        operation in prop_oneof![Just("CREATE"), Just("UPDATE")],
    ) {
        let review = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"x","kind":{{"group":"","version":"v1","kind":"Pod"}},"namespace":"{namespace}","operation":"{operation}","userInfo":{{"username":"u"}},"object":{pod},"oldObject":null,"dryRun":false}}}}"#
        );
        check(review.as_bytes());
    }

    #[test]
    fn both_readers_agree_on_fs_group_literals(
        literal in prop_oneof![
            Just("0"), Just("-0"), Just("65534"), Just("1e3"), Just("2.0"), Just("-9223372036854775808"),
            Just("-9223372036854775809"), Just("9223372036854775808"), Just("01"), Just("null"),
            Just("\"7\""), Just("1,\"fsGroup\":2"), Just("[]"),
        ],
        security_context_first in any::<bool>(),
    ) {
        let security_context = format!(r#""securityContext":{{"fsGroup":{literal}}}"#);
        let containers = r#""containers":[{"name":"c"}]"#;
        let spec = if security_context_first {
            format!(r#"{{{security_context},"serviceAccountName":"u",{containers}}}"#)
        } else {
            format!(r#"{{"serviceAccountName":"u",{containers},{security_context}}}"#)
        };
        let review = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"x","kind":{{"group":"","version":"v1","kind":"Pod"}},"namespace":"ns","operation":"CREATE","object":{{"metadata":{{"name":"p"}},"spec":{spec}}}}}}}"#
        );
        check(review.as_bytes());
    }

    #[test]
    fn real_reviews_agree_undamaged(file in 0..26usize) {
        check(&real_review_bodies().swap_remove(file));
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&body);
    }

    #[test]
    fn arbitrary_objects_in_real_reviews_never_panic(
        kind in prop_oneof![Just("Pod"), Just("ServiceAccount"), Just("Deployment"), Just("CronJob"), Just("Secret")],
        group in prop_oneof![Just(""), Just("apps"), Just("batch")],
        operation in prop_oneof![Just("CREATE"), Just("UPDATE"), Just("DELETE")],
        metadata in any_json(),
        spec in any_json(),
        containers in any_json(),
        annotations in any_json(),
        null_object in any::<bool>(),
        sub_resource in prop_oneof![Just(None), Just(Some("")), Just(Some("status"))],
        order in 0..3u8,
    ) {
        let object = json!({
            "metadata": {"name": "u", "annotations": annotations},
            "spec": {"serviceAccountName": "u", "containers": containers, "template": {"spec": spec.clone()}, "extra": spec},
            "status": metadata,
        });
        let object = if null_object { Value::Null } else { object };
        let sub_resource = sub_resource.map(Value::from);
        // The API server's field order (kind and operation before the object), the object
        // first, and subResource after the object.
        let fields: Vec<(&str, Value)> = vec![
            ("uid", json!("x")),
            ("kind", json!({"group": group, "version": "v1", "kind": kind})),
            ("namespace", json!("ns")),
            ("operation", json!(operation)),
            ("object", object),
        ];
        let order: Vec<usize> = match order {
            0 => vec![0, 1, 2, 3, 4],
            1 => vec![4, 3, 2, 1, 0],
            _ => vec![0, 1, 3, 4, 2],
        };
        let mut request = String::from("{");
        for (n, i) in order.into_iter().enumerate() {
            if n > 0 {
                request.push(',');
            }
            let (key, value) = &fields[i];
            request.push_str(&format!("{}:{}", json!(key), value));
        }
        if let Some(sub) = sub_resource {
            request.push_str(&format!(",\"subResource\":{sub}"));
        }
        request.push('}');
        let review = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{request}}}"#
        );
        check(review.as_bytes());
    }
}

//! Property tests: whatever the body, parsing and deciding never panic, and every review that
//! parses gets a response echoing its uid.

use std::collections::BTreeMap;

use mlplatform_webhook::admission::{encode_review, parse_review};
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
    if let Ok(req) = parse_review(body) {
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            let response = decide(endpoint, &req, &view, &cfg).expect("static view never misses");
            assert_eq!(response.uid, req.uid.as_ref());
            let out: Value = serde_json::from_slice(&encode_review(&response)).unwrap();
            assert_eq!(out["response"]["uid"], req.uid.as_ref());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

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
    ) {
        let object = json!({
            "metadata": {"name": "u", "annotations": annotations},
            "spec": {"serviceAccountName": "u", "containers": containers, "template": {"spec": spec.clone()}, "extra": spec},
            "status": metadata,
        });
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "x",
                "kind": {"group": group, "version": "v1", "kind": kind},
                "namespace": "ns",
                "operation": operation,
                "object": object,
            }
        });
        check(&serde_json::to_vec(&review).unwrap());
    }
}

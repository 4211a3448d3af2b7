//! The kube double where the real kube-apiserver v1.36 was recorded answering
//! (`../shared/apiserver-conformance`): namespace lifecycle, the built-in Pod admission,
//! list and delete shapes, RBAC decisions and their 403s.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use mlplatform_testkit::KubeDouble;
use serde_json::{Value, json};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn api_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
}

/// A GET answered as JSON, for shapes typed clients hide.
async fn get_json(client: &kube::Client, path: &str) -> Value {
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    client.request::<Value>(request).await.unwrap()
}

#[tokio::test]
async fn namespace_deletion_terminates_refuses_new_content_then_finishes() {
    let double = KubeDouble::start().await;
    double.set_namespace_termination_delay(Duration::from_millis(300));
    let client = double.client();
    create_namespace(&client, "team").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    assert!(
        sas.get("default").await.is_ok(),
        "the default SA appears like in a real cluster"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let deleted = nss.delete("team", &DeleteParams::default()).await.unwrap();
    let terminating = deleted.left().expect("a namespace delete answers with it");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(
        double
            .object("v1", "ConfigMap", Some("team"), "x")
            .is_none(),
        "the contents go first"
    );
    let still = nss.get("team").await.unwrap();
    assert_eq!(
        still.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );

    let err = cms
        .create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "configmaps \"late\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    let cause = &status.details.as_ref().unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("NamespaceTerminating", "metadata.namespace")
    );

    tokio::time::timeout(Duration::from_secs(10), async {
        while nss.get_opt("team").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the namespace controller removes the namespace");
    create_namespace(&client, "team").await;
    cms.create(&PostParams::default(), &cm("again", json!({})))
        .await
        .unwrap();
}

#[tokio::test]
async fn pods_go_through_service_account_priority_and_toleration_admission() {
    let double = KubeDouble::start().await;
    let client = double.client();
    create_namespace(&client, "team").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "ml-user"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    let pod = |name: &str, spec: Value| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let created = pods
        .create(
            &PostParams::default(),
            &pod(
                "p",
                json!({"serviceAccountName": "ml-user", "containers": [{"name": "c", "image": "busybox"}]}),
            ),
        )
        .await
        .unwrap();
    let value = serde_json::to_value(&created).unwrap();
    let spec = &value["spec"];
    assert_eq!(spec["serviceAccount"], "ml-user");
    let volume = spec["volumes"][0]["name"].as_str().unwrap();
    assert!(
        volume.starts_with("kube-api-access-") && volume.len() == "kube-api-access-".len() + 5,
        "{volume}"
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"][0],
        json!({"name": volume, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    );
    assert_eq!(
        spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3607
    );
    assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(
        value["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert_eq!(value["metadata"]["generation"], 1);

    let err = pods
        .create(
            &PostParams::default(),
            &pod("q", json!({"serviceAccountName": "nosuch", "containers": [{"name": "c", "image": "busybox"}]})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods \"q\" is forbidden: error looking up service account team/nosuch: serviceaccount \"nosuch\" not found"
    );

    let quiet = pods
        .create(
            &PostParams::default(),
            &pod("r", json!({"automountServiceAccountToken": false, "containers": [{"name": "c", "image": "busybox"}]})),
        )
        .await
        .unwrap();
    assert!(
        quiet.spec.unwrap().volumes.is_none(),
        "automount off: no token volume"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "team");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"serviceAccountName": "ml-user", "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let created = deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let template = created.spec.unwrap().template.spec.unwrap();
    assert_eq!(template.service_account.as_deref(), Some("ml-user"));
    assert!(
        template.volumes.is_none(),
        "templates are not admitted as pods"
    );
}

#[tokio::test]
async fn lists_deletes_and_unknown_groups_answer_like_the_apiserver() {
    let double = KubeDouble::start().await;
    let client = double.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(
        &PostParams {
            field_manager: Some("conformance".into()),
            ..Default::default()
        },
        &cm("a", json!({"app": "web"})),
    )
    .await
    .unwrap();
    let list = get_json(&client, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("ConfigMapList"), Some("v1"))
    );
    let item = &list["items"][0];
    assert!(
        item.get("kind").is_none() && item.get("apiVersion").is_none(),
        "list items carry no kind/apiVersion: {item}"
    );
    assert_eq!(
        item["metadata"]["managedFields"][0]["manager"],
        "conformance"
    );
    assert!(item["metadata"].get("generation").is_none());
    let one = get_json(&client, "/api/v1/namespaces/default/configmaps/a").await;
    assert_eq!(one["kind"], "ConfigMap", "a single GET names its type");

    let deleted = cms.delete("a", &DeleteParams::default()).await.unwrap();
    let status = deleted
        .right()
        .expect("a ConfigMap delete answers with a Status");
    assert_eq!(status.details.unwrap().name, "a");
    let sas: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    let sa = sas
        .delete("default", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .expect("held by foregroundDeletion: the object");
    assert_eq!(
        sa.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(
        sas.get_opt("default").await.unwrap().is_none(),
        "collected at once"
    );

    let unknown: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::core::ApiResource {
            group: "nosuch.example.com".into(),
            version: "v1".into(),
            api_version: "nosuch.example.com/v1".into(),
            kind: "Thing".into(),
            plural: "things".into(),
        },
    );
    let (code, reason) = api_code(unknown.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(code, 404);
    assert_eq!(
        reason, "Failed to parse error data",
        "a plain-text 404, not a Status"
    );
}

#[tokio::test]
async fn subject_access_reviews_use_stored_rbac() {
    let double = KubeDouble::start().await;
    let client = double.client();
    double.apply_fixture(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "user", "namespace": "default"},
        "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]}]
    }));
    double.apply_fixture(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "user", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "user"},
        "subjects": [{"kind": "ServiceAccount", "name": "ml-user", "namespace": "default"}]
    }));
    let sars: Api<SubjectAccessReview> = Api::all(client.clone());
    let ask = |ns: &str, group: &str, resource: &str, verb: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("system:serviceaccount:default:ml-user".into()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let yes = sars
        .create(
            &PostParams::default(),
            &ask("default", "batch", "jobs", "create"),
        )
        .await
        .unwrap();
    let status = yes.status.unwrap();
    assert!(status.allowed, "{status:?}");
    assert!(
        status
            .reason
            .unwrap()
            .contains("RoleBinding \"user/default\"")
    );
    for (ns, group, resource, verb) in [
        ("other", "batch", "jobs", "create"),
        ("default", "", "jobs", "create"),
        ("default", "batch", "jobs", "delete"),
    ] {
        let no = sars
            .create(&PostParams::default(), &ask(ns, group, resource, verb))
            .await
            .unwrap();
        assert!(
            !no.status.unwrap().allowed,
            "{ns} {group} {resource} {verb}"
        );
    }

    let ssars: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let me = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("delete".into()),
                resource: Some("nodes".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(
        ssars
            .create(&PostParams::default(), &me)
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
    assert!(double.mutating_requests().is_empty(), "reviews are reads");
    assert_eq!(double.requests().len(), 5);
}

#[tokio::test]
async fn impersonated_requests_are_authorized_by_rbac() {
    let double = KubeDouble::start().await;
    create_namespace(&double.client(), "team").await;
    double.apply_fixture(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "cm-reader", "namespace": "team"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    }));
    double.apply_fixture(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "cm-reader", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "vendor", "namespace": "team"}]
    }));
    let vendor = double.client_as("system:serviceaccount:team:vendor", &[]);
    let team: Api<ConfigMap> = Api::namespaced(vendor.clone(), "team");
    assert!(team.list(&ListParams::default()).await.is_ok());
    let err = team
        .create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                "configmaps is forbidden: User \"system:serviceaccount:team:vendor\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"team\""
            );
        }
        other => panic!("{other:?}"),
    }
    let elsewhere: Api<ConfigMap> = Api::namespaced(vendor.clone(), "default");
    assert_eq!(
        api_code(elsewhere.list(&ListParams::default()).await.unwrap_err()).0,
        403
    );
    assert!(
        double.list_objects("v1", "ConfigMap").is_empty(),
        "nothing was written"
    );

    // A self review answers for the impersonated user.
    let ssars: Api<SelfSubjectAccessReview> = Api::all(vendor.clone());
    let ask = |verb: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("team".into()),
                verb: Some(verb.into()),
                resource: Some("configmaps".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(
        ssars
            .create(&PostParams::default(), &ask("watch"))
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
    assert!(
        !ssars
            .create(&PostParams::default(), &ask("delete"))
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
    // system:masters may do anything.
    let admin_again = double.client_as("someone", &["system:masters"]);
    Api::<ConfigMap>::namespaced(admin_again, "team")
        .create(&PostParams::default(), &cm("ok", json!({})))
        .await
        .unwrap();
}

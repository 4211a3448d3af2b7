//! The kube double through kube's real client: typed, dynamic, watcher/reflector,
//! metadata-only, errors and dry-run. (Namespace lifecycle, Pod admission and RBAC are in
//! `kube_double_apiserver.rs`.)

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind, PartialObjectMeta};
use kube::discovery::Discovery;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use mlplatform_testkit::KubeDouble;
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
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

#[tokio::test]
async fn typed_crud_with_apiserver_errors() {
    let double = KubeDouble::start().await;
    let client = double.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());

    let created = cms
        .create(&PostParams::default(), &cm("a", json!({"app": "web"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, None, "ConfigMaps have no generation");
    assert!(meta.managed_fields.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));

    let (code, reason) = api_code(
        cms.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let (code, _) = api_code(cms.get("missing").await.unwrap_err());
    assert_eq!(code, 404);
    assert!(cms.get_opt("missing").await.unwrap().is_none());

    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let err = elsewhere
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.message, "namespaces \"nowhere\" not found");
        }
        other => panic!("{other:?}"),
    }

    // Replace with the current resourceVersion works; with the old one it conflicts.
    let mut updated = created.clone();
    updated.data = Some([("k".to_string(), "v2".to_string())].into());
    let replaced = cms
        .replace("a", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    let (code, reason) = api_code(
        cms.replace("a", &PostParams::default(), &updated)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    // Patches: merge, JSON, strategic (approximated), server-side apply.
    let merged = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap()["m"], "1");
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/data/k", "value": "j"}]))
            .unwrap();
    let patched = cms
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["k"], "j");
    let strategic = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"s": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["s"], "1");
    let applied = cms
        .patch(
            "applied",
            &PatchParams::apply("testkit").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"x": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["x"], "1");

    let listed = cms
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some());
    let listed = cms
        .list(&ListParams::default().fields("metadata.name=applied"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let deleted = cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.right().is_some(),
        "a ConfigMap delete answers with a Status"
    );
    assert!(
        double
            .object("v1", "ConfigMap", Some("default"), "a")
            .is_none()
    );
    let (code, _) = api_code(cms.delete("a", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn invalid_names_and_labels_are_rejected_with_422() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    let (code, reason) = api_code(
        cms.create(&PostParams::default(), &cm("Not_Valid", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let (code, _) = api_code(
        cms.create(
            &PostParams::default(),
            &cm("ok", json!({"a": "not valid!"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(double.list_objects("v1", "ConfigMap").is_empty());
}

#[tokio::test]
async fn dry_run_validates_but_stores_nothing() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    let rv_before = double.resource_version();
    let out = cms
        .create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &cm("dry", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    assert!(
        double
            .object("v1", "ConfigMap", Some("default"), "dry")
            .is_none()
    );
    assert_eq!(
        double.resource_version(),
        rv_before,
        "no resourceVersion consumed"
    );
    let (code, _) = api_code(
        cms.create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &cm("BAD", json!({})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422, "dry-run still validates");

    cms.create(&PostParams::default(), &cm("real", json!({})))
        .await
        .unwrap();
    let rv_before = double.resource_version();
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let out = cms
        .patch("real", &pp, &Patch::Merge(json!({"data": {"k": "dry"}})))
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["k"], "dry");
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("real", &dp).await.unwrap();
    let stored = double
        .object("v1", "ConfigMap", Some("default"), "real")
        .unwrap();
    assert_eq!(stored["data"]["k"], "v");
    assert_eq!(double.resource_version(), rv_before);
    let dry_writes: Vec<_> = double
        .mutating_requests()
        .into_iter()
        .filter(|r| r.is_dry_run())
        .collect();
    assert_eq!(dry_writes.len(), 4);
}

/// Waits (at most 10s) until the reflector's store satisfies `pred`.
async fn eventually<K>(reader: &reflector::Store<K>, pred: impl Fn(&reflector::Store<K>) -> bool)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        while !pred(reader) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the reflector caught up within 10s");
}

#[tokio::test]
async fn reflector_sees_create_update_delete() {
    let double = KubeDouble::start().await;
    let client = double.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default()));
    let task = tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.state().len(), 1);

    let names = |r: &reflector::Store<ConfigMap>| {
        let mut n: Vec<String> = r
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        n.sort();
        n
    };

    cms.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    eventually(&reader, |r| names(r) == ["after", "before"]).await;
    cms.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .unwrap();
    eventually(&reader, |r| {
        r.state()
            .iter()
            .any(|c| c.data.as_ref().is_some_and(|d| d["k"] == "changed"))
    })
    .await;
    cms.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    eventually(&reader, |r| names(r) == ["after"]).await;
    // A fixture is a change too: watchers see it.
    double.apply_fixture(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fixture", "namespace": "default"}}));
    eventually(&reader, |r| names(r) == ["after", "fixture"]).await;
    task.abort();
}

#[tokio::test]
async fn label_selector_watch_turns_label_changes_into_added_and_deleted() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    let rv = double.resource_version().to_string();
    let mut events = cms
        .watch(&WatchParams::default().labels("team=ml").timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("x", json!({"team": "other"})))
        .await
        .unwrap();
    cms.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "ml"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": null}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(_)) => seen.push("ADDED"),
            Some(WatchEvent::Modified(_)) => seen.push("MODIFIED"),
            Some(WatchEvent::Deleted(_)) => seen.push("DELETED"),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_410() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    let old = double.resource_version().to_string();
    cms.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    double.compact_history();
    let mut events = cms
        .watch(&WatchParams::default().timeout(5), &old)
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_ends_at_timeout_with_a_bookmark() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    let rv = double.resource_version().to_string();
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(10),
        cms.watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default().timeout(1)
            },
            &rv,
        )
        .await
        .unwrap()
        .collect::<Vec<_>>(),
    )
    .await
    .expect("the watch closes at timeoutSeconds");
    assert!(
        matches!(events.last(), Some(Ok(WatchEvent::Bookmark(_)))),
        "{events:?}"
    );
}

#[tokio::test]
async fn streaming_list_watcher_works() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    cms.create(&PostParams::default(), &cm("one", json!({})))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().streaming_lists()),
    );
    let task = tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.state().len(), 1);
    task.abort();
    assert!(
        double
            .requests()
            .iter()
            .any(|r| r.query_param("sendInitialEvents").as_deref() == Some("true"))
    );
}

#[tokio::test]
async fn metadata_get_list_and_watchers() {
    let double = KubeDouble::start().await;
    let client = double.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("m", json!({"a": "b"})))
        .await
        .unwrap();

    let meta = cms.get_metadata("m").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["a"], "b");
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let raw = double.requests();
    assert!(raw.iter().all(|r| r.method == "GET" || r.method == "POST"));

    // The current way: Api<PartialObjectMeta<K>> with the ordinary watcher.
    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(client.clone());
    let (reader, writer) = reflector::store();
    let task = tokio::spawn(
        reflector(writer, watcher(meta_api, watcher::Config::default()))
            .applied_objects()
            .for_each(|_| async {}),
    );
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.state().len(), 1);
    cms.create(&PostParams::default(), &cm("m2", json!({})))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while reader.state().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    task.abort();

    // The deprecated metadata_watcher still in use by some code.
    #[allow(deprecated)]
    let mut stream = kube::runtime::metadata_watcher(cms.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.metadata.name.unwrap().starts_with('m'));
}

#[tokio::test]
async fn injected_failures_hit_the_next_matching_requests_only() {
    let double = KubeDouble::start().await;
    double.apply_fixture(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"}, "data": {"mapRoles": "[]"}}));
    assert!(double.requests().is_empty(), "fixtures are not requests");
    let cms: Api<ConfigMap> = Api::namespaced(double.client(), "kube-system");
    double.inject_failure(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/aws-auth",
        409,
        1,
    );
    let current = cms.get("aws-auth").await.unwrap();
    let (code, reason) = api_code(
        cms.replace("aws-auth", &PostParams::default(), &current)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    cms.replace("aws-auth", &PostParams::default(), &current)
        .await
        .unwrap();
    double.inject_failure("GET", "/api/v1/namespaces/kube-system/*", 500, 2);
    assert_eq!(api_code(cms.get("aws-auth").await.unwrap_err()).0, 500);
    assert_eq!(api_code(cms.get("aws-auth").await.unwrap_err()).0, 500);
    cms.get("aws-auth").await.unwrap();
    let writes = double.mutating_requests();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].method, "PUT");
    assert_eq!(writes[0].content_type.as_deref(), Some("application/json"));
    double.clear_requests();
    assert!(double.requests().is_empty());
}

#[tokio::test]
async fn discovery_dynamic_api_and_crds() {
    let double = KubeDouble::start().await;
    let client = double.client();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (deploy, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    assert_eq!(deploy.plural, "deployments");
    assert!(caps.scope == kube::discovery::Scope::Namespaced);
    assert!(discovery.has_group("cert-manager.io"));
    assert!(discovery.has_group("admissionregistration.k8s.io"));

    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "trainingjobs.sagemaker.aws.amazon.com"},
        "spec": {"group": "sagemaker.aws.amazon.com", "scope": "Namespaced",
            "names": {"plural": "trainingjobs", "kind": "TrainingJob", "singular": "trainingjob"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    }))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    assert_eq!(
        created.data["status"]["conditions"][1]["type"],
        "Established"
    );

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let gvk = GroupVersionKind::gvk("sagemaker.aws.amazon.com", "v1", "TrainingJob");
    let (ar, _) = discovery.resolve_gvk(&gvk).unwrap();
    let jobs: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &ar);
    let job = DynamicObject::new("tj", &ar).data(json!({"spec": {"x": 1}}));
    jobs.create(&PostParams::default(), &job).await.unwrap();
    assert_eq!(
        jobs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let unknown: Api<DynamicObject> = Api::default_namespaced_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("nope.io", "v1", "Nope"),
            "nopes",
        ),
    );
    assert_eq!(
        api_code(unknown.list(&ListParams::default()).await.unwrap_err()).0,
        404
    );
}

#[tokio::test]
async fn shutdown_stops_serving_even_kept_alive_connections() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    cms.list(&ListParams::default()).await.unwrap();
    double.shutdown();
    refused_soon(&cms).await;
    // The state stays readable for assertions.
    assert!(double.object("v1", "Namespace", None, "default").is_some());
}

#[tokio::test]
async fn clones_share_one_server() {
    let double = KubeDouble::start().await;
    let clone = double.clone();
    clone.apply_fixture(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shared"}}),
    );
    let nss: Api<Namespace> = Api::all(double.client());
    assert!(nss.get_opt("shared").await.unwrap().is_some());
    let sas: Api<ServiceAccount> = Api::namespaced(double.client(), "shared");
    assert!(
        sas.get_opt("default").await.unwrap().is_some(),
        "fixture namespaces get a default SA too"
    );
    drop(clone);
    assert!(
        nss.get_opt("shared").await.unwrap().is_some(),
        "still served while a clone lives"
    );
}

#[tokio::test]
async fn server_side_apply_owns_fields_per_manager() {
    let double = KubeDouble::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    let config = |annotations: serde_json::Value, data: serde_json::Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "applied", "annotations": annotations}, "data": data})
    };
    let installer = PatchParams::apply("mlplatform");
    cms.patch(
        "applied",
        &installer,
        &Patch::Apply(config(
            json!({"cert-manager.io/inject-ca-from": "x/y"}),
            json!({"a": "1"}),
        )),
    )
    .await
    .unwrap();
    // Re-applying without the annotation removes it, as on a real cluster.
    let out = cms
        .patch(
            "applied",
            &installer,
            &Patch::Apply(config(json!({}), json!({"a": "2"}))),
        )
        .await
        .unwrap();
    assert!(out.metadata.annotations.unwrap_or_default().is_empty());
    assert_eq!(out.data.unwrap()["a"], "2");

    // Another manager changing an owned field conflicts unless it forces.
    let other = PatchParams::apply("someone-else");
    let err = cms
        .patch(
            "applied",
            &other,
            &Patch::Apply(config(json!({}), json!({"a": "3"}))),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (409, "Conflict".to_string()));
    cms.patch(
        "applied",
        &other.clone().force(),
        &Patch::Apply(config(json!({}), json!({"a": "3"}))),
    )
    .await
    .unwrap();
    // A plain merge patch is not an apply and needs no manager.
    cms.patch(
        "applied",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"b": "1"}})),
    )
    .await
    .unwrap();
    assert_eq!(
        double
            .object("v1", "ConfigMap", Some("default"), "applied")
            .unwrap()["data"],
        json!({"a": "3", "b": "1"})
    );
}

#[tokio::test]
async fn lists_paginate_with_limit_and_continue() {
    let double = KubeDouble::start().await;
    for i in 0..5 {
        double.apply_fixture(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "default"}}));
    }
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap();
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items[0].metadata.name.as_deref(), Some("cm-2"));
    // kube's watcher pages through everything (page size 2 here).
    let (reader, writer) = reflector::store::<ConfigMap>();
    let config = watcher::Config {
        page_size: Some(2),
        ..Default::default()
    };
    let task = tokio::spawn(
        reflector(writer, watcher(cms.clone(), config))
            .applied_objects()
            .for_each(|_| async {}),
    );
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.state().len(), 5);
    task.abort();
}

#[tokio::test]
async fn server_stops_when_the_last_clone_drops() {
    let double = KubeDouble::start().await;
    let clone = double.clone();
    let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
    cms.list(&ListParams::default()).await.unwrap();
    drop(double);
    cms.list(&ListParams::default()).await.unwrap();
    drop(clone);
    refused_soon(&cms).await;
}

/// Lists until the double refuses (it stops in the background), failing after 10 s: waiting
/// a fixed time instead is a race on a busy machine.
async fn refused_soon(cms: &Api<ConfigMap>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cms.list(&ListParams::default()).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the double still answers 10 s after it was stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

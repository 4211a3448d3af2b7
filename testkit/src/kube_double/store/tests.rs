//! The store's unit tests: CRUD semantics without HTTP.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn rt(store: &Store, group: &str, plural: &str) -> ResourceType {
    store.resolve(group, "v1", plural).unwrap()
}

/// A workload (Deployment/ReplicaSet) or Pod body the apiserver accepts.
fn valid(name: &str, kind: &str) -> Value {
    let pod_spec = json!({"containers": [{"name": "c", "image": "busybox:1.36"}]});
    match kind {
        "Pod" => json!({"metadata": {"name": name}, "spec": pod_spec}),
        _ => json!({"metadata": {"name": name}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}}),
    }
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

#[test]
fn create_sets_server_fields_and_rejects_duplicates() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let created = s.create(&cms, Some("default"), cm("a"), false).unwrap();
    assert!(
        created["metadata"].get("generation").is_none(),
        "ConfigMaps have no generation"
    );
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "unknown"
    );
    assert!(meta_str(&created, "uid").is_some());
    assert_eq!(
        meta_str(&created, "resourceVersion"),
        Some(s.current_rv().to_string().as_str())
    );
    let err = s.create(&cms, Some("default"), cm("a"), false).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let err = s.create(&cms, Some("nope"), cm("b"), false).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
}

#[test]
fn dry_run_stores_nothing_and_consumes_no_resource_version() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let before = s.current_rv();
    let out = s.create(&cms, Some("default"), cm("a"), true).unwrap();
    assert_eq!(meta_str(&out, "name"), Some("a"));
    assert_eq!(s.current_rv(), before);
    assert!(s.get(&cms, Some("default"), "a").is_err());
}

#[test]
fn stale_put_conflicts_and_unconditional_put_wins() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let created = s.create(&cms, Some("default"), cm("a"), false).unwrap();
    let mut first = created.clone();
    first["data"]["a"] = json!("2");
    s.replace(&cms, Some("default"), "a", first, Part::Main, false)
        .unwrap();
    let mut stale = created.clone();
    stale["data"]["a"] = json!("3");
    let err = s
        .replace(&cms, Some("default"), "a", stale.clone(), Part::Main, false)
        .unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    stale["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let out = s
        .replace(&cms, Some("default"), "a", stale, Part::Main, false)
        .unwrap();
    assert_eq!(out["data"]["a"], "3");
}

#[test]
fn noop_update_keeps_resource_version() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let created = s.create(&cms, Some("default"), cm("a"), false).unwrap();
    let rv = s.current_rv();
    let out = s
        .replace(&cms, Some("default"), "a", created, Part::Main, false)
        .unwrap();
    assert_eq!(s.current_rv(), rv);
    assert_eq!(
        meta_str(&out, "resourceVersion"),
        Some(rv.to_string().as_str())
    );
}

#[test]
fn namespace_delete_terminates_then_the_controller_removes_it() {
    let mut s = Store::new();
    let nss = rt(&s, "", "namespaces");
    let cms = rt(&s, "", "configmaps");
    s.create(&nss, None, json!({"metadata": {"name": "team"}}), false)
        .unwrap();
    assert!(
        s.get(&rt(&s, "", "serviceaccounts"), Some("team"), "default")
            .is_ok()
    );
    s.create(&cms, Some("team"), cm("a"), false).unwrap();
    let deleted = s.delete(&nss, None, "team", &Value::Null, false).unwrap();
    assert_eq!(deleted["status"]["phase"], "Terminating");
    assert!(meta_str(&deleted, "deletionTimestamp").is_some());
    assert!(
        s.get(&cms, Some("team"), "a").is_err(),
        "contents go at once"
    );
    assert!(
        s.get(&nss, None, "team").is_ok(),
        "the namespace stays a while"
    );
    let err = s.create(&cms, Some("team"), cm("late"), false).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.to_status()["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
    s.run_namespace_controller(Instant::now());
    assert!(s.get(&nss, None, "team").is_ok(), "not before the delay");
    s.run_namespace_controller(Instant::now() + Duration::from_secs(60));
    assert!(s.get(&nss, None, "team").is_err());
}

#[test]
fn finalizers_keep_a_terminating_namespace() {
    let mut s = Store::new();
    s.set_namespace_termination_delay(Duration::ZERO);
    let nss = rt(&s, "", "namespaces");
    let cms = rt(&s, "", "configmaps");
    s.create(&nss, None, json!({"metadata": {"name": "team"}}), false)
        .unwrap();
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/keep"]);
    s.create(&cms, Some("team"), held, false).unwrap();
    s.delete(&nss, None, "team", &Value::Null, false).unwrap();
    s.run_namespace_controller(Instant::now() + Duration::from_secs(1));
    assert!(s.get(&nss, None, "team").is_ok(), "held by the ConfigMap");
    s.patch(
        &cms,
        Some("team"),
        "held",
        PatchType::Merge,
        &json!({"metadata": {"finalizers": null}}),
        Part::Main,
        false,
        &ApplyOptions::default(),
    )
    .unwrap();
    s.run_namespace_controller(Instant::now() + Duration::from_secs(1));
    assert!(s.get(&nss, None, "team").is_err());
    let err = s
        .delete(&nss, None, "default", &Value::Null, false)
        .unwrap_err();
    assert_eq!(err.code, 403, "default may not be deleted");
}

#[test]
fn deletes_answer_like_their_registry() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let sas = rt(&s, "", "serviceaccounts");
    s.create(&cms, Some("default"), cm("a"), false).unwrap();
    let out = s
        .delete(&cms, Some("default"), "a", &Value::Null, false)
        .unwrap();
    assert_eq!(
        (out["kind"].as_str(), out["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    assert_eq!(out["details"]["name"], "a");
    s.create(
        &sas,
        Some("default"),
        json!({"metadata": {"name": "sa"}}),
        false,
    )
    .unwrap();
    let out = s
        .delete(&sas, Some("default"), "sa", &Value::Null, true)
        .unwrap();
    assert_eq!(out["kind"], "ServiceAccount");
    assert!(
        meta_str(&out, "deletionTimestamp").is_none(),
        "gone at once"
    );
    let rbs = rt_rbac(&s, "rolebindings");
    let binding = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}, "subjects": []});
    s.create(&rbs, Some("default"), binding, false).unwrap();
    let held = s
        .delete(
            &rbs,
            Some("default"),
            "b",
            &json!({"propagationPolicy": "Foreground"}),
            false,
        )
        .unwrap();
    assert_eq!(
        held["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(
        s.get(&rbs, Some("default"), "b").is_err(),
        "the collector finished at once"
    );
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let mut body = cm("a");
    body["metadata"]["finalizers"] = json!(["example.com/keep"]);
    s.create(&cms, Some("default"), body, false).unwrap();
    let held = s
        .delete(&cms, Some("default"), "a", &Value::Null, false)
        .unwrap();
    assert!(meta_str(&held, "deletionTimestamp").is_some());
    assert!(s.get(&cms, Some("default"), "a").is_ok());
    s.patch(
        &cms,
        Some("default"),
        "a",
        PatchType::Merge,
        &json!({"metadata": {"finalizers": null}}),
        Part::Main,
        false,
        &ApplyOptions {
            field_manager: Some("test".into()),
            force: false,
        },
    )
    .unwrap();
    assert!(s.get(&cms, Some("default"), "a").is_err());
}

#[test]
fn owners_take_dependents_with_them_unless_orphaned() {
    let mut s = Store::new();
    let deps = rt(&s, "apps", "deployments");
    let rss = rt(&s, "apps", "replicasets");
    let pods = rt(&s, "", "pods");
    let owned_by = |name: &str, uid: &str, kind: &str, own_kind: &str| {
        let mut body = valid(name, own_kind);
        body["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": uid}]);
        body
    };
    let d = s
        .create(&deps, Some("default"), valid("d", "Deployment"), false)
        .unwrap();
    let rs = s
        .create(
            &rss,
            Some("default"),
            owned_by(
                "rs",
                meta_str(&d, "uid").unwrap(),
                "Deployment",
                "ReplicaSet",
            ),
            false,
        )
        .unwrap();
    s.create(
        &pods,
        Some("default"),
        owned_by("p", meta_str(&rs, "uid").unwrap(), "ReplicaSet", "Pod"),
        false,
    )
    .unwrap();
    s.delete(&deps, Some("default"), "d", &Value::Null, false)
        .unwrap();
    assert!(s.get(&rss, Some("default"), "rs").is_err());
    assert!(
        s.get(&pods, Some("default"), "p").is_err(),
        "grandchildren too"
    );

    let d = s
        .create(&deps, Some("default"), valid("d2", "Deployment"), false)
        .unwrap();
    s.create(
        &rss,
        Some("default"),
        owned_by(
            "rs2",
            meta_str(&d, "uid").unwrap(),
            "Deployment",
            "ReplicaSet",
        ),
        false,
    )
    .unwrap();
    s.delete(
        &deps,
        Some("default"),
        "d2",
        &json!({"propagationPolicy": "Orphan"}),
        false,
    )
    .unwrap();
    let orphan = s.get(&rss, Some("default"), "rs2").unwrap();
    assert_eq!(orphan["metadata"]["ownerReferences"], json!([]));
}

#[test]
fn pods_default_their_service_account_which_must_exist() {
    let mut s = Store::new();
    let pods = rt(&s, "", "pods");
    let pod = |sa: Option<&str>| {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        if let Some(sa) = sa {
            p["spec"]["serviceAccountName"] = json!(sa);
        }
        p
    };
    let out = s.create(&pods, Some("default"), pod(None), true).unwrap();
    assert_eq!(out["spec"]["serviceAccountName"], "default");
    assert_eq!(out["spec"]["serviceAccount"], "default");
    let volume = out["spec"]["volumes"][0]["name"].as_str().unwrap();
    assert!(
        volume.starts_with("kube-api-access-") && volume.len() == 21,
        "{volume}"
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"][0]["name"],
        volume
    );
    assert_eq!(out["spec"]["enableServiceLinks"], true);
    assert_eq!(out["status"]["phase"], "Pending");
    assert_eq!(out["metadata"]["generation"], 1);
    let err = s
        .create(&pods, Some("default"), pod(Some("ml-user")), true)
        .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"p\" is forbidden: error looking up service account default/ml-user: serviceaccount \"ml-user\" not found"
    );
}

#[test]
fn role_binding_role_ref_cannot_change() {
    let mut s = Store::new();
    let rbs = rt_rbac(&s, "rolebindings");
    let body = |role: &str| json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": []});
    s.create(&rbs, Some("default"), body("view"), false)
        .unwrap();
    let err = s
        .replace(&rbs, Some("default"), "b", body("edit"), Part::Main, false)
        .unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.contains("cannot change roleRef"),
        "{}",
        err.message
    );
}

fn rt_rbac(store: &Store, plural: &str) -> ResourceType {
    store
        .resolve("rbac.authorization.k8s.io", "v1", plural)
        .unwrap()
}

#[test]
fn status_is_a_subresource() {
    let mut s = Store::new();
    let deps = rt(&s, "apps", "deployments");
    let mut body = valid("d", "Deployment");
    body["status"] = json!({"readyReplicas": 5});
    let created = s.create(&deps, Some("default"), body, false).unwrap();
    assert_eq!(created["status"], json!({}), "the sent status is dropped");
    let patch = json!({"status": {"readyReplicas": 1}, "spec": {"replicas": 2}});
    let out = s
        .patch(
            &deps,
            Some("default"),
            "d",
            PatchType::Merge,
            &patch,
            Part::Status,
            false,
            &ApplyOptions {
                field_manager: Some("test".into()),
                force: false,
            },
        )
        .unwrap();
    assert_eq!(out["status"]["readyReplicas"], 1);
    assert_eq!(out["spec"]["replicas"], 1);
    let out = s
        .patch(
            &deps,
            Some("default"),
            "d",
            PatchType::Merge,
            &patch,
            Part::Main,
            false,
            &ApplyOptions {
                field_manager: Some("test".into()),
                force: false,
            },
        )
        .unwrap();
    assert_eq!(out["status"]["readyReplicas"], 1);
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(out["metadata"]["generation"], 2);
}

#[test]
fn patch_flavours() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    s.create(&cms, Some("default"), cm("a"), false).unwrap();
    let out = s
        .patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Json,
            &json!([{"op": "add", "path": "/data/b", "value": "2"}]),
            Part::Main,
            false,
            &ApplyOptions {
                field_manager: Some("test".into()),
                force: false,
            },
        )
        .unwrap();
    assert_eq!(out["data"], json!({"a": "1", "b": "2"}));
    let err = s
        .patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Json,
            &json!([{"op": "test", "path": "/data/a", "value": "9"}]),
            Part::Main,
            false,
            &ApplyOptions {
                field_manager: Some("test".into()),
                force: false,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    let out = s
        .patch(&cms, Some("default"), "new", PatchType::Apply, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}, "data": {"x": "y"}}), Part::Main, false, &ApplyOptions { field_manager: Some("test".into()), force: false })
        .unwrap();
    assert_eq!(out["data"]["x"], "y");
    let err = s
        .patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Merge,
            &json!({"metadata": {"resourceVersion": "1"}}),
            Part::Main,
            false,
            &ApplyOptions {
                field_manager: Some("test".into()),
                force: false,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, 409);
}

#[test]
fn apply_needs_a_manager_and_tracks_ownership() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let none = ApplyOptions::default();
    let apply_cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": data});
    let err = s
        .patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Apply,
            &apply_cm(json!({"x": "1"})),
            Part::Main,
            false,
            &none,
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    let me = ApplyOptions {
        field_manager: Some("me".into()),
        force: false,
    };
    let other = ApplyOptions {
        field_manager: Some("other".into()),
        force: false,
    };
    s.patch(
        &cms,
        Some("default"),
        "a",
        PatchType::Apply,
        &apply_cm(json!({"x": "1", "y": "1"})),
        Part::Main,
        false,
        &me,
    )
    .unwrap();
    let err = s
        .patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Apply,
            &apply_cm(json!({"x": "2"})),
            Part::Main,
            false,
            &other,
        )
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            409,
            "Apply failed with 1 conflict: conflict with \"me\": .data.x"
        )
    );
    let forced = ApplyOptions {
        force: true,
        ..other
    };
    s.patch(
        &cms,
        Some("default"),
        "a",
        PatchType::Apply,
        &apply_cm(json!({"x": "2"})),
        Part::Main,
        false,
        &forced,
    )
    .unwrap();
    // "me" drops y (only it owned y) and x (now owned by "other", so it stays).
    let out = s
        .patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Apply,
            &apply_cm(json!({})),
            Part::Main,
            false,
            &me,
        )
        .unwrap();
    assert_eq!(out["data"], json!({"x": "2"}));
}

#[test]
fn invalid_names_and_kind_mismatch() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let err = s
        .create(&cms, Some("default"), cm("Bad_Name"), false)
        .unwrap_err();
    assert_eq!(err.code, 422);
    let mut wrong = cm("a");
    wrong["kind"] = json!("Secret");
    assert_eq!(
        s.create(&cms, Some("default"), wrong, false)
            .unwrap_err()
            .code,
        400
    );
    let generated = s
        .create(
            &cms,
            Some("default"),
            json!({"metadata": {"generateName": "x-"}}),
            false,
        )
        .unwrap();
    let name = meta_str(&generated, "name").unwrap();
    assert!(name.starts_with("x-") && name.len() == 7, "{name}");
}

#[test]
fn watch_history_and_compaction() {
    let mut s = Store::new();
    let cms = rt(&s, "", "configmaps");
    let start = s.current_rv();
    s.create(&cms, Some("default"), cm("a"), false).unwrap();
    s.delete(&cms, Some("default"), "a", &Value::Null, false)
        .unwrap();
    let all = LabelSelector::default();
    let none = FieldSelector::default();
    let w = s
        .watch_start(&cms, Some("default"), Some(start), &all, &none)
        .unwrap();
    let types: Vec<_> = w.initial.iter().map(|e| e.event_type).collect();
    assert_eq!(types, vec![EventType::Added, EventType::Deleted]);
    s.compact_history();
    let err = s
        .watch_start(&cms, Some("default"), Some(start), &all, &none)
        .err()
        .unwrap();
    assert_eq!(err.code, 410);
}

#[test]
fn crds_serve_their_resources() {
    let mut s = Store::new();
    let crds = rt(&s, "apiextensions.k8s.io", "customresourcedefinitions");
    assert!(s.resolve("example.com", "v1", "widgets").is_none());
    s.create(
        &crds,
        None,
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": true, "storage": true}]}}),
        false,
    )
    .unwrap();
    let widgets = s.resolve("example.com", "v1", "widgets").unwrap();
    s.create(
        &widgets,
        Some("default"),
        json!({"metadata": {"name": "w"}}),
        false,
    )
    .unwrap();
    s.delete(&crds, None, "widgets.example.com", &Value::Null, false)
        .unwrap();
    assert!(s.objects_of("example.com", "Widget").is_empty());
}

use serde_json::json;

use super::*;
use crate::kube_double::admission::Operation;
use crate::kube_double::resources::{ResourceType, built_in};

fn rt(plural: &str) -> ResourceType {
    built_in().into_iter().find(|r| r.plural == plural).unwrap()
}

fn pod(namespace: &str, service_account: &str) -> Attributes {
    Attributes {
        operation: Operation::Create,
        rt: rt("pods"),
        subresource: None,
        namespace: Some(namespace.into()),
        name: "p".into(),
        object: Some(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"serviceAccountName": service_account}})),
        old_object: None,
        dry_run: true,
    }
}

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
           "metadata": {"name": name}, "spec": spec})
}

/// Pods must run as the ServiceAccount the namespace's annotation names; namespaces labelled
/// `mode=deny` are denied, `mode=warn` warned.
fn store() -> Store {
    let mut store = Store::new();
    for (ns, mode) in [("strict", "deny"), ("lenient", "warn"), ("free", "none")] {
        store.insert_fixture(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"mode": mode},
                         "annotations": {"sa": "user"}}}));
    }
    store.insert_fixture(object(
        "ValidatingAdmissionPolicy",
        "sa",
        json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pods"]}]},
            "matchConditions": [{"name": "annotated",
                "expression": "has(namespaceObject.metadata.annotations) && 'sa' in namespaceObject.metadata.annotations"}],
            "variables": [{"name": "wanted", "expression": "namespaceObject.metadata.annotations['sa']"}],
            "validations": [{
                "expression": "object.spec.serviceAccountName == variables.wanted",
                "messageExpression": "'run as ' + variables.wanted + ', not ' + object.spec.serviceAccountName",
                "reason": "Forbidden",
            }],
        }),
    ));
    for (binding, mode, action) in [("sa-deny", "deny", "Deny"), ("sa-warn", "warn", "Warn")] {
        store.insert_fixture(object(
            "ValidatingAdmissionPolicyBinding",
            binding,
            json!({"policyName": "sa", "validationActions": [action],
                   "matchResources": {"namespaceSelector": {"matchLabels": {"mode": mode}}}}),
        ));
    }
    store
}

#[test]
fn deny_bindings_refuse_with_the_message_and_code_of_the_validation() {
    let store = store();
    let err = validate(&store, &pod("strict", "default")).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "pods \"p\" is forbidden: ValidatingAdmissionPolicy 'sa' with binding 'sa-deny' denied request: run as user, not default"
    );
    assert_eq!(validate(&store, &pod("strict", "user")), Ok(vec![]));
}

#[test]
fn warn_bindings_warn_and_unselected_namespaces_are_left_alone() {
    let store = store();
    assert_eq!(
        validate(&store, &pod("lenient", "default")).unwrap(),
        vec![
            "Validation failed for ValidatingAdmissionPolicy 'sa' with binding 'sa-warn': run as user, not default"
                .to_owned()
        ]
    );
    assert_eq!(validate(&store, &pod("free", "default")), Ok(vec![]));
    // The matchCondition is false without the annotation: the policy does not apply.
    let mut store = store;
    store.insert_fixture(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "strict", "labels": {"mode": "deny"}}}));
    assert_eq!(validate(&store, &pod("strict", "default")), Ok(vec![]));
    // Other resources do not match the rules.
    let mut sa = pod("strict", "default");
    sa.rt = rt("serviceaccounts");
    assert_eq!(validate(&store, &sa), Ok(vec![]));
}

#[test]
fn mutating_policies_merge_their_apply_configuration() {
    let mut store = store();
    store.insert_fixture(object(
        "MutatingAdmissionPolicy",
        "role",
        json!({
            "reinvocationPolicy": "IfNeeded",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["serviceaccounts"]}]},
            "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                "expression": "Object{metadata: Object.metadata{annotations: {'role': namespaceObject.metadata.name}}}"}}],
        }),
    ));
    store.insert_fixture(object(
        "MutatingAdmissionPolicyBinding",
        "role",
        json!({"policyName": "role"}),
    ));
    let mut sa = pod("strict", "");
    sa.rt = rt("serviceaccounts");
    sa.object = Some(json!({"metadata": {"name": "user", "annotations": {"keep": "me"}}}));
    mutate(&store, &mut sa).unwrap();
    assert_eq!(
        sa.object.unwrap()["metadata"]["annotations"],
        json!({"keep": "me", "role": "strict"})
    );
    // An older server does not serve them: nothing happens.
    store.withdraw(GROUP, "v1", "mutatingadmissionpolicies");
    let mut sa = pod("strict", "");
    sa.rt = rt("serviceaccounts");
    sa.object = Some(json!({"metadata": {"name": "user"}}));
    mutate(&store, &mut sa).unwrap();
    assert_eq!(sa.object.unwrap()["metadata"], json!({"name": "user"}));
}

#[test]
fn definitions_are_validated_like_the_apiserver() {
    let mut causes = Vec::new();
    validate_definition(
        "ValidatingAdmissionPolicy",
        &object(
            "ValidatingAdmissionPolicy",
            "bad",
            json!({"validations": [{"expression": "object.x ==" }]}),
        ),
        &mut causes,
    );
    let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.matchConstraints", "spec.validations[0].expression"]
    );
    let mut causes = Vec::new();
    validate_definition(
        "ValidatingAdmissionPolicyBinding",
        &object(
            "ValidatingAdmissionPolicyBinding",
            "b",
            json!({"policyName": "p", "validationActions": ["Deny", "Deny", "Block"]}),
        ),
        &mut causes,
    );
    assert_eq!(causes.len(), 2, "{causes:?}");
    let mut causes = Vec::new();
    validate_definition(
        "ValidatingAdmissionPolicyBinding",
        &object("ValidatingAdmissionPolicyBinding", "b", json!({})),
        &mut causes,
    );
    assert_eq!(causes.len(), 2, "{causes:?}");
}

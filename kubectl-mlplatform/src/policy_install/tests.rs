use serde_json::json;

use super::*;
use crate::objects::Kind;
use mlplatform_namespace_policy::admission_policy::{
    IRSA_ROLE_POLICY, NAMESPACE_POLICY_CHECK, SERVICE_ACCOUNT_POLICY,
};

const OLD_SERVER: ServedApis = ServedApis {
    validating: true,
    mutating: false,
};

fn live_of(objects: &[Value]) -> BTreeMap<ObjectKey, Value> {
    objects
        .iter()
        .map(|o| {
            let mut live = o.clone();
            live["metadata"]["uid"] = json!("u");
            (key_of(o).unwrap(), live)
        })
        .collect()
}

fn kinds(plan: &PolicyPlan) -> Vec<(Kind, Change)> {
    plan.kube_steps().map(|s| (s.key.kind, s.change)).collect()
}

#[test]
fn install_applies_what_differs_and_nothing_when_everything_is_there() {
    let objects = manifests(ServedApis::all()).unwrap();
    let plan = plan_install(&objects, ServedApis::all(), &BTreeMap::new()).unwrap();
    assert_eq!(plan.kube_steps().count(), 8);
    assert!(
        plan.kube_steps()
            .all(|s| s.change == Change::Created && matches!(s.action, KubeAction::Apply(_)))
    );
    assert!(plan.warnings.is_empty());
    // Policies before their bindings.
    let first_binding = plan
        .kube_steps()
        .position(|s| s.key.kind == Kind::ValidatingAdmissionPolicyBinding)
        .unwrap();
    assert!(
        plan.kube_steps()
            .take(first_binding)
            .all(|s| s.key.kind == Kind::ValidatingAdmissionPolicy)
    );

    let mut live = live_of(&objects);
    let again = plan_install(&objects, ServedApis::all(), &live).unwrap();
    assert!(!again.has_writes());
    let key = ObjectKey {
        kind: Kind::ValidatingAdmissionPolicy,
        namespace: None,
        name: SERVICE_ACCOUNT_POLICY.into(),
    };
    live.get_mut(&key).unwrap()["spec"]["failurePolicy"] = json!("Ignore");
    let drifted = plan_install(&objects, ServedApis::all(), &live).unwrap();
    let updated: Vec<&str> = drifted
        .kube_steps()
        .filter(|s| s.change == Change::Updated)
        .map(|s| s.key.name.as_str())
        .collect();
    assert_eq!(updated, [SERVICE_ACCOUNT_POLICY]);
}

#[test]
fn older_servers_get_the_validating_part_and_a_warning() {
    let objects = manifests(OLD_SERVER).unwrap();
    let plan = plan_install(&objects, OLD_SERVER, &BTreeMap::new()).unwrap();
    assert!(kinds(&plan).iter().all(|(k, _)| matches!(
        k,
        Kind::ValidatingAdmissionPolicy | Kind::ValidatingAdmissionPolicyBinding
    )));
    assert_eq!(plan.kube_steps().count(), 6);
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("MutatingAdmissionPolicy"));
    assert_eq!(plan.outputs.mutating_admission_policy, "not served");
    assert!(matches!(
        manifests(ServedApis::default()),
        Err(PolicyError::NotServed)
    ));
}

#[test]
fn install_refuses_to_adopt_an_object_that_is_not_ours() {
    let objects = manifests(ServedApis::all()).unwrap();
    let mut live = live_of(&objects[..1]);
    for object in live.values_mut() {
        object["metadata"]["labels"] = json!({});
    }
    let err = plan_install(&objects, ServedApis::all(), &live).unwrap_err();
    assert!(
        matches!(&err, PolicyError::NotOurs(o) if o.contains(NAMESPACE_POLICY_CHECK)),
        "{err}"
    );
}

#[test]
fn uninstall_deletes_only_what_is_labelled_ours_bindings_first() {
    let mut live: Vec<Value> = manifests(ServedApis::all()).unwrap();
    // Someone else's object of our name is kept; an unrelated one is not even listed.
    live[0]["metadata"]["labels"] = json!({"team": "x"});
    live.push(json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "theirs"}}));
    let plan = plan_uninstall(ServedApis::all(), &live);
    let rows: Vec<(Kind, &str, Change)> = plan
        .kube_steps()
        .map(|s| (s.key.kind, s.key.name.as_str(), s.change))
        .collect();
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert_eq!(
        rows[0],
        (
            Kind::MutatingAdmissionPolicyBinding,
            IRSA_ROLE_POLICY,
            Change::Deleted
        )
    );
    assert!(rows.contains(&(
        Kind::ValidatingAdmissionPolicy,
        NAMESPACE_POLICY_CHECK,
        Change::Unchanged
    )));
    assert!(!rows.iter().any(|(_, name, _)| *name == "theirs"));
    assert_eq!(plan.warnings.len(), 1);
    let last_binding = rows
        .iter()
        .rposition(|(k, _, _)| *k == Kind::ValidatingAdmissionPolicyBinding)
        .unwrap();
    let first_policy = rows
        .iter()
        .position(|(k, _, _)| *k == Kind::ValidatingAdmissionPolicy)
        .unwrap();
    assert!(last_binding < first_policy, "{rows:?}");

    // Nothing there: every name absent, nothing sent.
    let empty = plan_uninstall(OLD_SERVER, &[]);
    assert!(!empty.has_writes());
    assert!(empty.kube_steps().all(|s| s.change == Change::Absent));
}

#[test]
fn client_dry_run_yaml_is_one_document_per_object() {
    let yaml = crate::output::render_documents(&manifests(ServedApis::all()).unwrap()).unwrap();
    assert_eq!(yaml.matches("---\n").count(), 8);
    assert!(yaml.contains("kind: MutatingAdmissionPolicyBinding"));
}

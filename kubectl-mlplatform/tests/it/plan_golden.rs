//! Pure planning for the Concurrent profile, against golden YAML fixtures of the rendered
//! objects and IAM documents (`tests/fixtures/concurrent/*.yaml`; regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p kubectl-mlplatform --test it plan_golden::` and review the diff).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kubectl_mlplatform::access_entry::AuthMode;
use kubectl_mlplatform::aws::{CallerIdentity, ClusterFacts, RoleFacts};
use kubectl_mlplatform::aws_auth::AwsAuth;
use kubectl_mlplatform::common::Change;
use kubectl_mlplatform::objects::{Kind, ObjectKey};
use kubectl_mlplatform::plan::{
    ConnectInputs, Observed, Plan, PlanError, plan_connect, plan_disconnect, plan_namespace_remove,
    vars_for,
};
use kubectl_mlplatform::profile::load_profile;
use kubectl_mlplatform::steps::{AwsAuthAction, IamAction, KubeAction};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const ACCOUNT: &str = "678901234557";
const VENDOR: &str = "111122223333";
const NS: &str = "parallelsns";

fn cluster() -> ClusterFacts {
    ClusterFacts {
        name: "kubetest32".into(),
        arn: format!("arn:aws:eks:us-east-2:{ACCOUNT}:cluster/kubetest32"),
        account: ACCOUNT.into(),
        region: "us-east-2".into(),
        oidc_issuer: None,
        authentication_mode: None,
        version: Some("1.33".into()),
        endpoint: None,
    }
}

fn inputs() -> ConnectInputs {
    ConnectInputs {
        namespace: NS.into(),
        params: BTreeMap::from([("vendorAccount".to_owned(), VENDOR.to_owned())]),
        external_id: Some("ext-0123456789".into()),
        generated_external_id: "generated-should-not-be-used".into(),
        cluster_admin: false,
        delete_namespace: false,
        auth_mode: AuthMode::Auto,
        identity: kubectl_mlplatform::pod_identity::Identity::Irsa,
        replace_association: false,
    }
}

fn empty_observed() -> Observed {
    Observed {
        caller: CallerIdentity {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/admin"),
        },
        ..Observed::default()
    }
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/concurrent")
        .join(name)
}

/// Compares with the golden file (or rewrites it under UPDATE_GOLDEN=1).
fn golden(name: &str, docs: &[Value]) {
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).unwrap()))
        .collect();
    let path = fixture_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(text, want, "golden file {} differs", path.display());
}

/// The live state after a connect that did `plan`: objects as the server would return them
/// (with server fields added), the role as IAM would describe it, the mapping in aws-auth.
fn observed_after(plan: &Plan) -> Observed {
    let mut observed = empty_observed();
    for step in plan.kube_steps() {
        let mut live = step.desired.clone();
        live["metadata"]["uid"] = json!("uid-1");
        live["metadata"]["resourceVersion"] = json!("7");
        if step.key.kind == Kind::Namespace {
            live["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(NS);
        }
        observed.objects.insert(step.key.clone(), live);
    }
    let mut inline = BTreeMap::new();
    let mut trust = Value::Null;
    let mut tags = BTreeMap::new();
    for step in plan.iam_steps() {
        match &step.action {
            IamAction::CreateRole {
                trust_policy,
                tags: t,
                ..
            } => {
                trust = trust_policy.clone();
                tags = t.iter().cloned().collect();
            }
            IamAction::PutInlinePolicy {
                policy_name,
                document,
                ..
            } => {
                inline.insert(policy_name.clone(), document.clone());
            }
            _ => {}
        }
    }
    let role = "mlplatform-concurrent-kubetest32";
    observed.role = Some(RoleFacts {
        name: role.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
        path: "/".into(),
        trust_policy: trust,
        inline_policies: inline,
        attached_policy_arns: Vec::new(),
        tags,
        description: None,
    });
    let AwsAuthAction::Upsert { mapping, .. } = &plan.aws_auth_step().unwrap().action else {
        panic!("connect should map the role");
    };
    let map_roles = format!(
        "- rolearn: arn:aws:iam::{ACCOUNT}:role/node\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups: [system:bootstrappers, system:nodes]\n- rolearn: {}\n  username: {}\n  groups:\n  - {}\n",
        mapping.arn, mapping.username, mapping.groups[0]
    );
    observed.aws_auth =
        Some(AwsAuth::parse(Some(&BTreeMap::from([("mapRoles".to_owned(), map_roles)]))).unwrap());
    observed.profile_namespaces = vec![NS.into()];
    observed
}

#[test]
fn connect_on_an_empty_cluster_creates_everything_as_in_the_golden_files() {
    let profile = load_profile("concurrent").unwrap();
    let plan = plan_connect(&profile, &inputs(), &cluster(), &empty_observed()).unwrap();
    assert!(
        plan.changes().iter().all(|c| c.change == Change::Created),
        "{:?}",
        plan.changes()
    );
    assert_eq!(
        plan.outputs.role_arn.as_deref(),
        Some("arn:aws:iam::678901234557:role/mlplatform-concurrent-kubetest32")
    );
    assert_eq!(plan.outputs.external_id.as_deref(), Some("ext-0123456789"));
    assert_eq!(
        plan.outputs.user_service_account,
        "k8s-serviceaccount-for-users-parallelsns"
    );
    assert_eq!(
        plan.outputs.system_service_account.as_deref(),
        Some("k8s-serviceaccount-for-parallels-parallelsns")
    );
    let objects: Vec<Value> = plan.kube_steps().map(|s| s.desired.clone()).collect();
    golden("objects.yaml", &objects);
    let rendered = plan.rendered();
    golden(
        "iam.yaml",
        &[rendered["iam"].clone(), rendered["awsAuth"].clone()],
    );
}

#[test]
fn second_connect_plans_no_writes_and_keeps_the_external_id() {
    let profile = load_profile("concurrent").unwrap();
    let first = plan_connect(&profile, &inputs(), &cluster(), &empty_observed()).unwrap();
    let observed = observed_after(&first);
    let again_inputs = ConnectInputs {
        external_id: None,
        ..inputs()
    };
    let second = plan_connect(&profile, &again_inputs, &cluster(), &observed).unwrap();
    let writes: Vec<_> = second
        .changes()
        .into_iter()
        .filter(|c| c.change.is_write())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert!(!second.has_writes());
    assert_eq!(
        second.outputs.external_id.as_deref(),
        Some("ext-0123456789")
    );
}

#[test]
fn drift_is_repaired_by_update_and_a_new_external_id_updates_the_trust() {
    let profile = load_profile("concurrent").unwrap();
    let first = plan_connect(&profile, &inputs(), &cluster(), &empty_observed()).unwrap();
    let mut observed = observed_after(&first);
    let user_role = ObjectKey {
        kind: Kind::Role,
        namespace: Some(NS.into()),
        name: format!("k8s-role-for-users-{NS}"),
    };
    observed.objects.get_mut(&user_role).unwrap()["rules"][0]["verbs"] =
        json!(["get", "list", "watch", "create"]);
    let binding = ObjectKey {
        kind: Kind::RoleBinding,
        namespace: Some(NS.into()),
        name: format!("k8s-service-account-binding-{NS}"),
    };
    observed.objects.remove(&binding);
    let new_id = ConnectInputs {
        external_id: Some("rotated-id".into()),
        ..inputs()
    };
    let plan = plan_connect(&profile, &new_id, &cluster(), &observed).unwrap();
    let changed: BTreeMap<String, Change> = plan
        .changes()
        .into_iter()
        .filter(|c| c.change != Change::Unchanged)
        .map(|c| (format!("{}/{}", c.kind, c.name), c.change))
        .collect();
    assert_eq!(
        changed,
        BTreeMap::from([
            (
                "IAMRole/mlplatform-concurrent-kubetest32".to_owned(),
                Change::Updated
            ),
            (format!("Role/k8s-role-for-users-{NS}"), Change::Updated),
            (
                format!("RoleBinding/k8s-service-account-binding-{NS}"),
                Change::Created
            ),
        ])
    );
    let role_step = plan.kube_steps().find(|s| s.key == user_role).unwrap();
    let KubeAction::MergePatch(patch) = &role_step.action else {
        panic!("{:?}", role_step.action)
    };
    assert_eq!(patch["rules"][0]["verbs"], json!(["get", "list", "watch"]));
}

#[test]
fn connect_refuses_what_it_did_not_make() {
    let profile = load_profile("concurrent").unwrap();
    let first = plan_connect(&profile, &inputs(), &cluster(), &empty_observed()).unwrap();
    let mut observed = observed_after(&first);
    observed.role.as_mut().unwrap().tags.clear();
    let err = plan_connect(&profile, &inputs(), &cluster(), &observed).unwrap_err();
    assert!(matches!(err, PlanError::RoleNotOurs { .. }), "{err}");

    let mut observed = empty_observed();
    let sa = ObjectKey {
        kind: Kind::ServiceAccount,
        namespace: Some(NS.into()),
        name: format!("k8s-serviceaccount-for-users-{NS}"),
    };
    observed.objects.insert(
        sa,
        json!({"metadata": {"name": "x", "labels": {"team": "a"}}}),
    );
    let err = plan_connect(&profile, &inputs(), &cluster(), &observed)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not managed by kubectl-mlplatform"),
        "{err}"
    );

    let mut observed = empty_observed();
    observed.caller.account = "999999999999".into();
    let err = plan_connect(&profile, &inputs(), &cluster(), &observed).unwrap_err();
    assert!(matches!(err, PlanError::AccountMismatch { .. }), "{err}");
}

#[test]
fn cluster_admin_adds_system_masters_with_a_warning() {
    let profile = load_profile("concurrent").unwrap();
    let admin = ConnectInputs {
        cluster_admin: true,
        ..inputs()
    };
    let plan = plan_connect(&profile, &admin, &cluster(), &empty_observed()).unwrap();
    let AwsAuthAction::Upsert { mapping, .. } = &plan.aws_auth_step().unwrap().action else {
        panic!()
    };
    assert_eq!(mapping.groups, ["mlplatform:concurrent", "system:masters"]);
    assert!(plan.warnings.iter().any(|w| w.contains("system:masters")));
}

#[test]
fn disconnect_removes_exactly_what_connect_made_and_only_our_namespace_keys() {
    let profile = load_profile("concurrent").unwrap();
    let first = plan_connect(&profile, &inputs(), &cluster(), &empty_observed()).unwrap();
    let mut observed = observed_after(&first);
    let ns_key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: NS.into(),
    };
    let ns = observed.objects.get_mut(&ns_key).unwrap();
    ns["metadata"]["labels"]["team"] = json!("ml");
    ns["metadata"]["annotations"]["owner"] = json!("alice");
    let plan = plan_disconnect(&profile, &inputs(), &cluster(), &observed).unwrap();
    let ns_step = plan.kube_steps().find(|s| s.key == ns_key).unwrap();
    let KubeAction::MergePatch(patch) = &ns_step.action else {
        panic!("{:?}", ns_step.action)
    };
    golden(
        "disconnect-namespace-patch.yaml",
        std::slice::from_ref(patch),
    );
    assert_eq!(ns_step.desired["metadata"]["labels"]["team"], "ml");
    assert_eq!(ns_step.desired["metadata"]["annotations"]["owner"], "alice");
    let deleted: Vec<String> = plan
        .changes()
        .into_iter()
        .filter(|c| c.change == Change::Deleted)
        .map(|c| format!("{}/{}", c.kind, c.name))
        .collect();
    assert_eq!(
        deleted,
        [
            "IAMRole/mlplatform-concurrent-kubetest32".to_owned(),
            "AwsAuthMapping/arn:aws:iam::678901234557:role/mlplatform-concurrent-kubetest32"
                .to_owned(),
            format!("RoleBinding/k8s-serviceaccount-for-users-{NS}-binding"),
            format!("Role/k8s-role-for-users-{NS}"),
            format!("ServiceAccount/k8s-serviceaccount-for-users-{NS}"),
            format!("RoleBinding/mlplatform-concurrent-vendor-{NS}"),
            format!("RoleBinding/k8s-service-account-binding-{NS}"),
            format!("ServiceAccount/k8s-serviceaccount-for-parallels-{NS}"),
            "ClusterRole/k8s-role-for-parallels".to_owned(),
        ]
    );
}

#[test]
fn shared_objects_stay_while_another_namespace_of_the_profile_remains() {
    let profile = load_profile("concurrent").unwrap();
    let first = plan_connect(&profile, &inputs(), &cluster(), &empty_observed()).unwrap();
    let mut observed = observed_after(&first);
    observed.profile_namespaces.push("second".into());
    let plan = plan_disconnect(&profile, &inputs(), &cluster(), &observed).unwrap();
    for c in plan.changes() {
        if matches!(
            c.kind.as_str(),
            "IAMRole" | "AwsAuthMapping" | "ClusterRole"
        ) {
            assert_eq!(c.change, Change::Unchanged, "{c:?}");
        }
    }
    assert!(plan.warnings.iter().any(|w| w.contains("second")));

    let vars = vars_for(&profile, &cluster(), &inputs().params, NS);
    let remove = plan_namespace_remove(&profile, &vars, NS, false, &observed).unwrap();
    assert!(remove.iam_steps().next().is_none() && remove.aws_auth_step().is_none());
    let err = plan_namespace_remove(&profile, &vars, "elsewhere", false, &observed).unwrap_err();
    assert!(
        matches!(err, PlanError::NamespaceNotManaged { .. }),
        "{err}"
    );
}

#[test]
fn disconnect_refuses_a_role_it_did_not_make() {
    let profile = load_profile("concurrent").unwrap();
    let first = plan_connect(&profile, &inputs(), &cluster(), &empty_observed()).unwrap();
    let mut observed = observed_after(&first);
    observed
        .role
        .as_mut()
        .unwrap()
        .tags
        .insert("mlplatform.io/cluster".into(), "other".into());
    let err = plan_disconnect(&profile, &inputs(), &cluster(), &observed).unwrap_err();
    assert!(matches!(err, PlanError::RoleNotOurs { .. }), "{err}");
}

#[test]
fn clusters_that_ignore_aws_auth_are_refused() {
    let profile = load_profile("concurrent").unwrap();
    let api_only = ClusterFacts {
        authentication_mode: Some("API".into()),
        ..cluster()
    };
    let configmap = ConnectInputs {
        auth_mode: AuthMode::Configmap,
        ..inputs()
    };
    let err = plan_connect(&profile, &configmap, &api_only, &empty_observed()).unwrap_err();
    assert!(
        err.to_string().contains("--auth-mode access-entry"),
        "{err}"
    );
    // auto on an API cluster: an access entry instead of aws-auth.
    let plan = plan_connect(&profile, &inputs(), &api_only, &empty_observed()).unwrap();
    assert!(plan.aws_auth_step().is_none());
    let entry = plan.access_entry_step().unwrap();
    assert_eq!(entry.change, Change::Created);
    assert_eq!(entry.namespaces, [NS]);
    let both = ClusterFacts {
        authentication_mode: Some("API_AND_CONFIG_MAP".into()),
        ..cluster()
    };
    assert!(
        plan_connect(&profile, &configmap, &both, &empty_observed())
            .unwrap()
            .aws_auth_step()
            .is_some()
    );
}

#[test]
fn a_terminating_namespace_is_refused() {
    let profile = load_profile("concurrent").unwrap();
    let mut observed = empty_observed();
    observed.objects.insert(
        ObjectKey {
            kind: Kind::Namespace,
            namespace: None,
            name: NS.into(),
        },
        json!({"metadata": {"name": NS}, "status": {"phase": "Terminating"}}),
    );
    let err = plan_connect(&profile, &inputs(), &cluster(), &observed).unwrap_err();
    assert_eq!(err, PlanError::NamespaceTerminating(NS.into()));
}

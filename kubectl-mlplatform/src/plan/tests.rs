use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::iam::{external_id_from_trust, vendor_trust_policy};
use super::*;
use mlplatform_namespace_policy::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_LABEL, PROFILE_ANNOTATION,
};

use crate::common::{DryRun, OutputFormat};
use crate::objects::{Kind, ObjectKey};
use crate::output::{Report, report_table};
use crate::steps::{KubeAction, MAX_ROLE_NAME};
use crate::vocabulary::PROFILE_LABEL;

#[test]
fn long_role_names_are_shortened_deterministically_with_a_hash() {
    let short = "mlplatform-concurrent-c1";
    assert_eq!(shorten_role_name(short), short);
    let long = format!("mlplatform-concurrent-{}", "x".repeat(80));
    let a = shorten_role_name(&long);
    assert_eq!(a.len(), MAX_ROLE_NAME);
    assert_eq!(a, shorten_role_name(&long));
    let other = shorten_role_name(&format!("{long}y"));
    assert_ne!(a, other);
}

#[test]
fn external_id_is_read_back_from_string_or_single_element_array() {
    let trust = vendor_trust_policy("aws", "111122223333", Some("abc-123"));
    assert_eq!(external_id_from_trust(&trust).as_deref(), Some("abc-123"));
    let arr = json!({"Statement": {"Condition": {"StringEquals": {"sts:ExternalId": ["x1"]}}}});
    assert_eq!(external_id_from_trust(&arr).as_deref(), Some("x1"));
    assert_eq!(external_id_from_trust(&json!({})), None);
}

#[test]
fn parameters_are_checked_by_type_and_name() {
    let concurrent = crate::profile::load_profile("concurrent").unwrap();
    let given = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    assert!(resolve_params(&concurrent, &given("vendorAccount", "111122223333"), true).is_ok());
    assert!(matches!(
        resolve_params(&concurrent, &given("vendorAccount", "abc"), true),
        Err(PlanError::BadAccount { .. })
    ));
    assert!(matches!(
        resolve_params(&concurrent, &given("nope", "1"), true),
        Err(PlanError::UnknownParameter { .. })
    ));
    let missing = resolve_params(&concurrent, &BTreeMap::new(), true).unwrap_err();
    assert!(
        missing.to_string().contains("pass --vendor-account"),
        "{missing}"
    );
    assert!(resolve_params(&concurrent, &BTreeMap::new(), false).is_ok());
    let hopsworks = crate::profile::load_profile("hopsworks").unwrap();
    let user_arn = given("instanceRoleArn", "arn:aws:iam::123456789012:user/bob");
    assert!(matches!(
        resolve_params(&hopsworks, &user_arn, true),
        Err(PlanError::BadRoleArn { .. })
    ));
}

#[test]
fn a_namespace_of_another_profile_is_refused() {
    let profile = crate::profile::load_profile("concurrent").unwrap();
    let mut vars = Vars::new();
    vars.set("profile", "concurrent").set("namespace", "shared");
    let mut objects = BTreeMap::new();
    objects.insert(
        ObjectKey {
            kind: crate::objects::Kind::Namespace,
            namespace: None,
            name: "shared".into(),
        },
        json!({"metadata": {"name": "shared", "annotations": {PROFILE_ANNOTATION: "arthur"}}}),
    );
    let observed = Observed {
        objects,
        ..Observed::default()
    };
    let err = plan_namespace_add(&profile, &vars, "shared", &observed).unwrap_err();
    assert!(
        err.to_string()
            .contains("already managed for profile arthur"),
        "{err}"
    );
}

/// `namespace remove --delete-namespace` on a namespace as found: deleted only when connect
/// created it for this profile; a Terminating one is left to finish.
#[test]
fn only_a_namespace_created_for_the_profile_is_deleted() {
    let profile = crate::profile::load_profile("concurrent").unwrap();
    let mut vars = Vars::new();
    vars.set("profile", "concurrent").set("namespace", "team");
    let key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: "team".into(),
    };
    let managed = |extra: Value| {
        let mut ns = json!({"metadata": {"name": "team",
            "labels": {MANAGED_LABEL: mlplatform_namespace_policy::MANAGED_VALUE},
            "annotations": {PROFILE_ANNOTATION: "concurrent"}}});
        json_patch::merge(&mut ns, &extra);
        ns
    };
    let plan_for = |live: Value| {
        let observed = Observed {
            objects: BTreeMap::from([(key.clone(), live)]),
            profile_namespaces: vec!["team".into()],
            ..Observed::default()
        };
        let plan = plan_namespace_remove(&profile, &vars, "team", true, &observed).unwrap();
        let step = plan.kube_steps().find(|s| s.key == key).unwrap().clone();
        (step, plan.warnings)
    };
    let created = managed(json!({"metadata": {"annotations": {
        crate::vocabulary::CREATED_FOR_ANNOTATION: "concurrent"}}}));
    assert_eq!(plan_for(created.clone()).0.action, KubeAction::Delete);
    // Created by an older version: our ownership labels say so.
    let old = managed(json!({"metadata": {"labels": {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE, PROFILE_LABEL: "concurrent"}}}));
    assert_eq!(plan_for(old).0.action, KubeAction::Delete);
    let (step, warnings) = plan_for(managed(json!({})));
    assert!(matches!(step.action, KubeAction::MergePatch(_)), "{step:?}");
    assert!(
        warnings[0].contains("connect did not create it"),
        "{warnings:?}"
    );
    let other = managed(json!({"metadata": {"annotations": {
        crate::vocabulary::CREATED_FOR_ANNOTATION: "arthur"}}}));
    assert!(matches!(
        plan_for(other).0.action,
        KubeAction::MergePatch(_)
    ));
    let mut terminating = created;
    terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let (step, _) = plan_for(terminating);
    assert_eq!(
        (step.action, step.change),
        (KubeAction::None, Change::Absent)
    );
}

#[test]
fn external_id_validation() {
    assert!(valid_external_id("a1:b/c=d"));
    assert!(!valid_external_id("x"));
    assert!(!valid_external_id("has space"));
}

#[test]
fn report_table_says_when_nothing_changes_and_lists_the_vendor_outputs() {
    let plan = Plan {
        outputs: Outputs {
            role_arn: Some("arn:aws:iam::1:role/r".into()),
            external_id: Some("xid".into()),
            namespace: "ns".into(),
            user_service_account: "u".into(),
            ..Outputs::default()
        },
        ..Plan::default()
    };
    let report = Report::from_plan(&plan, DryRun::None, OutputFormat::Table);
    let text = report_table(&report, "connect");
    assert!(text.contains("connect: nothing to change"), "{text}");
    assert!(text.contains("externalId:         xid"), "{text}");
    assert!(report.rendered.is_none());
    let json =
        serde_json::to_value(Report::from_plan(&plan, DryRun::Client, OutputFormat::Json)).unwrap();
    assert_eq!(json["roleArn"], "arn:aws:iam::1:role/r");
    assert_eq!(json["dryRun"], "client");
    assert!(
        json["changes"].is_array() && json["rendered"].is_object(),
        "{json}"
    );
}

use super::*;
use crate::access_entry::AccessEntryAction;
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, TAG_CLUSTER, TAG_PROFILE};

const ACCOUNT: &str = "123456789012";
const CLUSTER_ARN: &str = "arn:aws:eks:us-east-1:123456789012:cluster/c1";

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

fn cluster(mode: Option<&str>) -> ClusterFacts {
    ClusterFacts {
        name: "c1".into(),
        arn: CLUSTER_ARN.into(),
        account: ACCOUNT.into(),
        region: "us-east-1".into(),
        oidc_issuer: None,
        authentication_mode: mode.map(str::to_owned),
        version: None,
        endpoint: None,
    }
}

fn profiles() -> Vec<ProfileAccess> {
    vec![
        ProfileAccess {
            profile: "concurrent".into(),
            username: "concurrent:{{SessionName}}".into(),
            group: "mlplatform:concurrent".into(),
            namespaced: true,
            namespaces: vec!["parallelsns".into(), "team-b".into()],
        },
        ProfileAccess {
            profile: "hopsworks".into(),
            username: "hopsworks".into(),
            group: "mlplatform:hopsworks".into(),
            namespaced: true,
            namespaces: vec!["hopsworks".into()],
        },
    ]
}

const AWS_AUTH: &str = "- rolearn: arn:aws:iam::123456789012:role/node
  username: system:node:{{EC2PrivateDNSName}}
  groups:
  - system:bootstrappers
  - system:nodes
- rolearn: arn:aws:iam::123456789012:role/mlplatform-concurrent-c1
  username: concurrent:{{SessionName}}
  groups:
  - mlplatform:concurrent
- rolearn: arn:aws:iam::123456789012:role/instance
  username: hopsworks
  groups:
  - mlplatform:hopsworks
- rolearn: arn:aws:iam::123456789012:role/ops
  username: ops
  groups: [ops-team]
";

fn aws_auth(map_roles: &str) -> AwsAuth {
    AwsAuth::parse(Some(&BTreeMap::from([(
        "mapRoles".to_owned(),
        map_roles.to_owned(),
    )])))
    .unwrap()
}

fn ours_tags(profile: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_PROFILE.to_owned(), profile.to_owned()),
        (TAG_CLUSTER.to_owned(), CLUSTER_ARN.to_owned()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
    ])
}

fn facts(mode: Option<&str>) -> MigrationFacts {
    MigrationFacts {
        cluster: cluster(mode),
        aws_auth: Some(aws_auth(AWS_AUTH)),
        profiles: profiles(),
        role_tags: BTreeMap::from([
            (role("mlplatform-concurrent-c1"), ours_tags("concurrent")),
            (role("instance"), BTreeMap::new()),
        ]),
        entries: BTreeMap::new(),
    }
}

fn request(to: MigrateTarget, arns: &[&str]) -> MigrationRequest {
    MigrationRequest {
        to,
        arns: arns.iter().map(|a| (MappingKind::Role, role(a))).collect(),
        update_authentication_mode: false,
    }
}

fn our_entry(username: &str, group: &str) -> ObservedEntry {
    ObservedEntry {
        username: Some(username.into()),
        groups: BTreeSet::from([group.to_owned()]),
        tags: BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned())]),
        policies: BTreeMap::new(),
    }
}

/// (kind, name, change) per step, in order.
fn rows(plan: &Plan<MigrationReport>) -> Vec<(String, String, Change)> {
    plan.changes()
        .into_iter()
        .map(|r| (r.kind, r.name, r.change))
        .collect()
}

#[test]
fn connects_mappings_move_to_entries_before_aws_auth_loses_them() {
    let plan = plan_migration(
        &request(MigrateTarget::AccessEntries, &[]),
        &facts(Some(API_AND_CONFIG_MAP)),
    )
    .unwrap();
    let vendor = role("mlplatform-concurrent-c1");
    assert_eq!(
        rows(&plan),
        [
            ("AccessEntry".into(), vendor.clone(), Change::Created),
            ("AwsAuthMapping".into(), vendor.clone(), Change::Deleted),
        ]
    );
    // One step at a time, the entry first.
    assert_eq!(plan.schedule, vec![vec![vec![0], vec![1]]]);
    let Step::AccessEntry(entry) = &plan.steps[0] else {
        panic!("{:?}", plan.steps[0])
    };
    assert_eq!(
        entry.actions,
        [
            AccessEntryAction::CreateEntry {
                username: "concurrent:{{SessionName}}".into(),
                groups: vec!["mlplatform:concurrent".into()],
            },
            AccessEntryAction::AssociatePolicy {
                policy_arn: DEFAULT_ACCESS_POLICY.into(),
                namespaces: vec!["parallelsns".into(), "team-b".into()],
            },
        ]
    );
    // hopsworks' role existed before connect: not tagged, so only with --arn; nodes and
    // other mappings are never candidates.
    assert!(
        plan.warnings.len() == 1
            && plan.warnings[0].contains(&format!("--arn {}", role("instance"))),
        "{:?}",
        plan.warnings
    );
    assert_eq!(plan.outputs.principals, [vendor]);

    let both = plan_migration(
        &request(MigrateTarget::AccessEntries, &["instance"]),
        &facts(Some(API)),
    )
    .unwrap();
    let names: Vec<_> = rows(&both).into_iter().map(|(k, n, _)| (k, n)).collect();
    assert_eq!(
        names,
        [
            ("AccessEntry".into(), role("instance")),
            ("AwsAuthMapping".into(), role("instance")),
            ("AccessEntry".into(), role("mlplatform-concurrent-c1")),
            ("AwsAuthMapping".into(), role("mlplatform-concurrent-c1")),
        ]
    );
    assert_eq!(both.warnings, Vec::<String>::new());
}

#[test]
fn a_config_map_cluster_stops_with_the_command_unless_migrate_may_switch_it() {
    let err = plan_migration(
        &request(MigrateTarget::AccessEntries, &[]),
        &facts(Some(CONFIG_MAP)),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "`aws eks update-cluster-config --name c1 --access-config authenticationMode=API_AND_CONFIG_MAP`"
        ) && err.to_string().contains("one-way"),
        "{err}"
    );
    // An older cluster that does not say behaves as CONFIG_MAP.
    assert!(matches!(
        plan_migration(&request(MigrateTarget::AccessEntries, &[]), &facts(None)),
        Err(MigrateError::ConfigMapMode { .. })
    ));
    let mut req = request(MigrateTarget::AccessEntries, &[]);
    req.update_authentication_mode = true;
    let plan = plan_migration(&req, &facts(Some(CONFIG_MAP))).unwrap();
    assert_eq!(
        rows(&plan)[0],
        (
            "AuthenticationMode".into(),
            "c1 (CONFIG_MAP -> API_AND_CONFIG_MAP)".into(),
            Change::Updated
        )
    );
    assert_eq!(plan.outputs.authentication_mode, API_AND_CONFIG_MAP);
    assert!(plan.warnings.iter().any(|w| w.contains("one-way")));
    assert!(matches!(plan.steps[1], Step::AccessEntry(_)));
}

#[test]
fn a_re_run_after_the_move_changes_nothing() {
    let mut after = facts(Some(API_AND_CONFIG_MAP));
    let vendor = role("mlplatform-concurrent-c1");
    let instance = role("instance");
    let rest = AWS_AUTH
        .replace(
            "- rolearn: arn:aws:iam::123456789012:role/mlplatform-concurrent-c1\n  username: concurrent:{{SessionName}}\n  groups:\n  - mlplatform:concurrent\n",
            "",
        )
        .replace(
            "- rolearn: arn:aws:iam::123456789012:role/instance\n  username: hopsworks\n  groups:\n  - mlplatform:hopsworks\n",
            "",
        );
    after.aws_auth = Some(aws_auth(&rest));
    let scoped = |ns: &[&str]| {
        crate::access_entry::Scope::Namespace(ns.iter().map(|s| (*s).to_owned()).collect())
    };
    let mut concurrent = our_entry("concurrent:{{SessionName}}", "mlplatform:concurrent");
    concurrent.policies.insert(
        DEFAULT_ACCESS_POLICY.into(),
        scoped(&["parallelsns", "team-b"]),
    );
    let mut hopsworks = our_entry("hopsworks", "mlplatform:hopsworks");
    hopsworks
        .policies
        .insert(DEFAULT_ACCESS_POLICY.into(), scoped(&["hopsworks"]));
    after.entries = BTreeMap::from([(vendor, concurrent), (instance.clone(), hopsworks)]);
    let plan = plan_migration(&request(MigrateTarget::AccessEntries, &[]), &after).unwrap();
    assert_eq!(rows(&plan), []);
    let plan = plan_migration(
        &request(MigrateTarget::AccessEntries, &["instance"]),
        &after,
    )
    .unwrap();
    assert_eq!(
        rows(&plan),
        [
            ("AccessEntry".into(), instance.clone(), Change::Unchanged),
            ("AwsAuthMapping".into(), instance, Change::Absent),
        ]
    );
    assert!(!plan.has_writes());
    let err =
        plan_migration(&request(MigrateTarget::AccessEntries, &["nobody"]), &after).unwrap_err();
    assert!(matches!(err, MigrateError::NothingFor { .. }), "{err}");
}

#[test]
fn cluster_admin_and_node_mappings_stay_in_aws_auth() {
    let mut admin = facts(Some(API_AND_CONFIG_MAP));
    admin.aws_auth = Some(aws_auth(&AWS_AUTH.replace(
        "  - mlplatform:concurrent\n",
        "  - mlplatform:concurrent\n  - system:masters\n",
    )));
    let plan = plan_migration(&request(MigrateTarget::AccessEntries, &[]), &admin).unwrap();
    assert_eq!(rows(&plan), []);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("system:masters") && w.contains("mlplatform-concurrent-c1")),
        "{:?}",
        plan.warnings
    );
    let err = plan_migration(
        &request(MigrateTarget::AccessEntries, &["mlplatform-concurrent-c1"]),
        &admin,
    )
    .unwrap_err();
    assert!(err.to_string().contains("system:masters"), "{err}");
    let err = plan_migration(
        &request(MigrateTarget::AccessEntries, &["node"]),
        &facts(Some(API)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("system:"), "{err}");
}

#[test]
fn back_to_aws_auth_maps_before_the_entry_goes_and_only_our_entries() {
    let vendor = role("mlplatform-concurrent-c1");
    let mut state = facts(Some(API_AND_CONFIG_MAP));
    state.aws_auth = Some(aws_auth(
        "- rolearn: arn:aws:iam::123456789012:role/ops\n  username: ops\n  groups: [ops-team]\n",
    ));
    let mut theirs = our_entry("dev", "devs");
    theirs.tags.clear();
    state.entries = BTreeMap::from([
        (
            vendor.clone(),
            our_entry("concurrent:{{SessionName}}", "mlplatform:concurrent"),
        ),
        (role("dev"), theirs),
    ]);
    let plan = plan_migration(&request(MigrateTarget::AwsAuth, &[]), &state).unwrap();
    assert_eq!(
        rows(&plan),
        [
            ("AwsAuthMapping".into(), vendor.clone(), Change::Created),
            ("AccessEntry".into(), vendor.clone(), Change::Deleted),
        ]
    );
    let Step::AwsAuth(step) = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(
        step.action,
        AwsAuthAction::Upsert {
            kind: MappingKind::Role,
            mapping: Mapping {
                arn: vendor.clone(),
                username: "concurrent:{{SessionName}}".into(),
                groups: vec!["mlplatform:concurrent".into()],
            }
        }
    );
    // Someone else's entry, named: refused before anything is written.
    let err = plan_migration(&request(MigrateTarget::AwsAuth, &["dev"]), &state).unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::AccessEntry(AccessEntryError::NotOurs { .. })
        ),
        "{err}"
    );
    // An API cluster ignores aws-auth, for good.
    let err = plan_migration(&request(MigrateTarget::AwsAuth, &[]), &facts(Some(API))).unwrap_err();
    assert!(matches!(err, MigrateError::ApiMode { .. }), "{err}");
}

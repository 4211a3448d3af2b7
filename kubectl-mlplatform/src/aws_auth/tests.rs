use super::*;
use pretty_assertions::assert_eq;

const NODE_ROLE: &str =
    "arn:aws:iam::111122223333:role/eksctl-prod-nodegroup-ng-NodeInstanceRole-1ABC";

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn eksctl_roles() -> String {
    format!(
        "- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: {NODE_ROLE}\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n"
    )
}

fn mapping(arn: &str, username: &str, groups: &[&str]) -> Mapping {
    Mapping {
        arn: arn.into(),
        username: username.into(),
        groups: groups.iter().map(|g| (*g).to_string()).collect(),
    }
}

#[test]
fn parses_all_three_keys() {
    let d = data(&[
        ("mapRoles", &eksctl_roles()),
        (
            "mapUsers",
            "- userarn: arn:aws:iam::111122223333:user/ops/alice\n  username: alice\n  groups: [ops]\n",
        ),
        ("mapAccounts", "- \"111122223333\"\n- 444455556666\n"),
    ]);
    let auth = AwsAuth::parse(Some(&d)).unwrap();
    assert_eq!(auth.roles().len(), 1);
    assert_eq!(auth.roles()[0].arn, NODE_ROLE);
    assert_eq!(
        auth.users(),
        vec![mapping(
            "arn:aws:iam::111122223333:user/ops/alice",
            "alice",
            &["ops"]
        )]
    );
    assert_eq!(auth.accounts(), vec!["111122223333", "444455556666"]);
}

#[test]
fn map_accounts_as_numbers_keep_leading_zeros() {
    // An unquoted YAML number loses its leading zero; the account ID does not.
    let d = data(&[("mapAccounts", "- 012345678901\n- 12345678901\n")]);
    let auth = AwsAuth::parse(Some(&d)).unwrap();
    assert_eq!(auth.accounts(), vec!["012345678901", "012345678901"]);
    let d = data(&[("mapAccounts", "[111122223333, '444455556666']")]);
    let auth = AwsAuth::parse(Some(&d)).unwrap();
    assert_eq!(auth.accounts(), vec!["111122223333", "444455556666"]);
}

#[test]
fn absent_configmap_and_empty_keys_are_empty_documents() {
    let auth = AwsAuth::parse(None).unwrap();
    assert!(auth.roles().is_empty());
    assert!(auth.render().is_empty());
    let d = data(&[
        ("mapRoles", ""),
        ("mapUsers", "[]\n"),
        ("mapAccounts", "null"),
    ]);
    let auth = AwsAuth::parse(Some(&d)).unwrap();
    assert!(auth.roles().is_empty() && auth.users().is_empty() && auth.accounts().is_empty());
    assert_eq!(auth.render(), d);
}

#[test]
fn sso_entries_unknown_fields_and_keys_survive_an_edit() {
    let roles = format!(
        "{}- sso:\n    permissionSetName: AdministratorAccess\n    accountID: \"111122223333\"\n  username: admin:{{{{SessionName}}}}\n  groups: [admins]\n- rolearn: arn:aws:iam::111122223333:role/tooling\n  username: tooling\n  groups: [view]\n  x-owner: team-a\n",
        eksctl_roles()
    );
    let d = data(&[
        ("mapRoles", &roles),
        (
            "mapUsers",
            "  # hand written\n  - {userarn: 'arn:aws:iam::111122223333:user/bob', username: bob}\n",
        ),
        ("extra-key", "anything: [1, 2]\n"),
    ]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    assert_eq!(
        auth.sso_roles()[0].permission_set_name,
        "AdministratorAccess"
    );
    let before = auth.clone();
    let change = auth
        .upsert(
            MappingKind::Role,
            mapping(
                "arn:aws:iam::111122223333:role/vendor",
                "vendor",
                &["mlplatform:vendor"],
            ),
        )
        .unwrap();
    assert_eq!(change, Change::Created);
    let out = auth.render();
    // Untouched keys: byte for byte.
    assert_eq!(out["mapUsers"], d["mapUsers"]);
    assert_eq!(out["extra-key"], d["extra-key"]);
    // Changed key: the old entries, unknown fields included, then the new one.
    let reparsed = AwsAuth::parse(Some(&out)).unwrap();
    assert_eq!(reparsed.roles[..3], before.roles[..]);
    assert!(out["mapRoles"].contains("x-owner: team-a"));
    assert_eq!(reparsed.sso_roles(), before.sso_roles());
    assert_eq!(reparsed.roles().len(), 3);
}

#[test]
fn refuses_a_document_with_an_entry_that_does_not_parse() {
    let cases = [
        (
            "mapRoles",
            "- rolearn: <YOUR ROLE RoleARN>\n  username: hopsworks\n",
            0usize,
        ),
        (
            "mapRoles",
            &format!("{}- just a string\n", eksctl_roles()),
            1,
        ),
        ("mapRoles", "- username: x\n  groups: [a]\n", 0),
        (
            "mapRoles",
            "- rolearn: arn:aws:iam::111122223333:role/x\n  groups: system:masters\n",
            0,
        ),
        (
            "mapRoles",
            "- rolearn: arn:aws:iam::111122223333:role/x\n  username: [a]\n",
            0,
        ),
        (
            "mapRoles",
            "- sso:\n    permissionSetName: X\n  username: x\n",
            0,
        ),
        (
            "mapUsers",
            "- rolearn: arn:aws:iam::111122223333:role/x\n  username: x\n",
            0,
        ),
        (
            "mapUsers",
            "- userarn: arn:aws:iam::111122223333:role/x\n  username: x\n",
            0,
        ),
        ("mapAccounts", "- \"1234\"\n", 0),
        ("mapAccounts", "- {a: b}\n", 0),
    ];
    for (key, text, index) in cases {
        let err = AwsAuth::parse(Some(&data(&[(key, text)]))).unwrap_err();
        let line = err.to_string();
        assert!(
            matches!(&err, AwsAuthError::MalformedEntry { key: k, index: i, .. } if k == key && *i == index),
            "{key} {text:?}: {line}"
        );
        assert!(
            line.contains(&format!("aws-auth {key} entry {index}")),
            "{line}"
        );
        assert!(
            line.contains("kubectl edit -n kube-system configmap aws-auth"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn refuses_yaml_that_is_not_yaml_or_not_a_list() {
    let err = AwsAuth::parse(Some(&data(&[("mapRoles", "- groups:\n- [unclosed\n")]))).unwrap_err();
    assert!(matches!(err, AwsAuthError::InvalidYaml { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));
    let err = AwsAuth::parse(Some(&data(&[("mapUsers", "userarn: x\n")]))).unwrap_err();
    assert!(matches!(err, AwsAuthError::NotAList { .. }), "{err}");
}

#[test]
fn never_removes_node_entries() {
    let d = data(&[("mapRoles", &eksctl_roles())]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    let err = auth.remove(MappingKind::Role, NODE_ROLE).unwrap_err();
    assert!(
        matches!(err, AwsAuthError::ProtectedEntry { ref group, .. } if group == "system:nodes")
    );
    assert!(err.to_string().contains("lock nodes out"));
    // Nor strip the node groups through an upsert.
    let err = auth
        .upsert(
            MappingKind::Role,
            mapping(NODE_ROLE, "x", &["system:nodes"]),
        )
        .unwrap_err();
    assert!(
        matches!(err, AwsAuthError::ProtectedGroupDropped { ref group, .. } if group == "system:bootstrappers"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("keep system:bootstrappers in --group")
    );
    assert_eq!(auth.render(), d, "a refused edit changes nothing");
    // A Fargate-style entry with only system:nodes is protected too.
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/fargate\n  username: system:node:{{SessionName}}\n  groups: [system:nodes, system:node-proxier]\n",
    )]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    assert!(matches!(
        auth.remove(MappingKind::Role, "arn:aws:iam::111122223333:role/fargate"),
        Err(AwsAuthError::ProtectedEntry { ref group, .. }) if group == "system:nodes"
    ));
}

#[test]
fn strips_role_paths() {
    let mut auth = AwsAuth::parse(None).unwrap();
    auth.upsert(
        MappingKind::Role,
        mapping("arn:aws:iam::111122223333:role/a/b/Name", "vendor", &["g"]),
    )
    .unwrap();
    assert_eq!(auth.roles()[0].arn, "arn:aws:iam::111122223333:role/Name");
    assert!(!auth.render()["mapRoles"].contains("/a/b/"));
    // The same role given with or without path is the same mapping.
    assert_eq!(
        auth.upsert(
            MappingKind::Role,
            mapping("arn:aws:iam::111122223333:role/Name", "vendor", &["g"])
        )
        .unwrap(),
        Change::Unchanged
    );
    // An existing entry written with a path (it never matched) gets fixed on upsert.
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/p/Vendor\n  username: vendor\n  groups: [g]\n",
    )]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    let change = auth
        .upsert(
            MappingKind::Role,
            mapping("arn:aws:iam::111122223333:role/Vendor", "vendor", &["g"]),
        )
        .unwrap();
    assert_eq!(change, Change::Updated);
    assert_eq!(auth.roles()[0].arn, "arn:aws:iam::111122223333:role/Vendor");
    assert_eq!(auth.roles().len(), 1);
}

#[test]
fn assumed_role_sessions_map_their_role() {
    let mut auth = AwsAuth::parse(None).unwrap();
    auth.upsert(
        MappingKind::Role,
        mapping(
            "arn:aws:sts::111122223333:assumed-role/Admin/alice",
            "alice",
            &["g"],
        ),
    )
    .unwrap();
    assert_eq!(auth.roles()[0].arn, "arn:aws:iam::111122223333:role/Admin");
}

#[test]
fn upsert_replaces_the_one_entry_and_keeps_its_unknown_fields() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/Vendor\n  username: old\n  groups: [a]\n  x-note: keep me\n",
    )]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    let change = auth
        .upsert(
            MappingKind::Role,
            mapping("arn:aws:iam::111122223333:role/vendor", "new", &["b"]),
        )
        .unwrap();
    assert_eq!(change, Change::Updated);
    let roles = auth.roles();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].username, "new");
    assert_eq!(roles[0].groups, vec!["b"]);
    assert!(auth.render()["mapRoles"].contains("x-note: keep me"));
}

#[test]
fn upsert_with_same_content_is_unchanged_and_renders_nothing_new() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/Vendor\n  username: v\n  groups: [b, a]\n",
    )]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    let change = auth
        .upsert(
            MappingKind::Role,
            mapping("arn:aws:iam::111122223333:role/Vendor", "v", &["a", "b"]),
        )
        .unwrap();
    assert_eq!(change, Change::Unchanged);
    assert_eq!(auth.render(), d);
}

#[test]
fn refuses_to_edit_duplicated_arns() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/Vendor\n  username: a\n- rolearn: arn:aws:iam::111122223333:role/path/vendor\n  username: b\n",
    )]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    let arn = "arn:aws:iam::111122223333:role/Vendor";
    let err = auth
        .upsert(MappingKind::Role, mapping(arn, "c", &[]))
        .unwrap_err();
    assert!(
        matches!(err, AwsAuthError::DuplicateArn { count: 2, .. }),
        "{err}"
    );
    assert!(matches!(
        auth.remove(MappingKind::Role, arn),
        Err(AwsAuthError::DuplicateArn { .. })
    ));
    assert_eq!(auth.find(MappingKind::Role, arn), None);
    assert_eq!(auth.render(), d);
}

#[test]
fn remove_deletes_exactly_one_entry_and_reports_absent() {
    let roles = format!(
        "{}- rolearn: arn:aws:iam::111122223333:role/Vendor\n  username: v\n",
        eksctl_roles()
    );
    let d = data(&[("mapRoles", &roles)]);
    let mut auth = AwsAuth::parse(Some(&d)).unwrap();
    assert_eq!(
        auth.remove(MappingKind::Role, "arn:aws:iam::111122223333:role/Vendor")
            .unwrap(),
        Change::Deleted
    );
    assert_eq!(auth.roles().len(), 1);
    assert_eq!(auth.roles()[0].arn, NODE_ROLE);
    assert_eq!(
        auth.remove(MappingKind::Role, "arn:aws:iam::111122223333:role/Vendor")
            .unwrap(),
        Change::Absent
    );
}

#[test]
fn previews_decide_like_the_edit_and_change_nothing() {
    let roles = format!(
        "{}- rolearn: arn:aws:iam::111122223333:role/dup\n  username: a\n- rolearn: arn:aws:iam::111122223333:role/dup\n  username: b\n",
        eksctl_roles()
    );
    let d = data(&[("mapRoles", &roles)]);
    let auth = AwsAuth::parse(Some(&d)).unwrap();
    let new = mapping("arn:aws:iam::111122223333:role/p/new", "n", &["g"]);
    assert_eq!(
        auth.preview_upsert(MappingKind::Role, new.clone()).unwrap(),
        Change::Created
    );
    let dup = mapping("arn:aws:iam::111122223333:role/dup", "n", &[]);
    assert!(matches!(
        auth.preview_upsert(MappingKind::Role, dup),
        Err(AwsAuthError::DuplicateArn { .. })
    ));
    assert!(matches!(
        auth.preview_remove(MappingKind::Role, NODE_ROLE),
        Err(AwsAuthError::ProtectedEntry { .. })
    ));
    assert_eq!(
        auth.preview_remove(MappingKind::Role, &new.arn).unwrap(),
        Change::Absent
    );
    assert_eq!(auth.render(), d);
}

#[test]
fn system_masters_only_when_asked() {
    let m = mapping(
        "arn:aws:iam::111122223333:role/Vendor",
        "v",
        &["system:masters"],
    );
    let err = check_system_masters(&m, false).unwrap_err();
    assert!(err.to_string().contains("--allow-system-masters"));
    check_system_masters(&m, true).unwrap();
    check_system_masters(
        &mapping("arn:aws:iam::111122223333:role/Vendor", "v", &["g"]),
        false,
    )
    .unwrap();
}

#[test]
fn kinds_are_checked_and_inferred() {
    assert_eq!(
        kind_of_arn("arn:aws:iam::111122223333:user/x").unwrap(),
        MappingKind::User
    );
    assert_eq!(
        kind_of_arn("arn:aws:iam::111122223333:root").unwrap(),
        MappingKind::User
    );
    assert_eq!(
        kind_of_arn("arn:aws:iam::111122223333:role/x").unwrap(),
        MappingKind::Role
    );
    let mut auth = AwsAuth::parse(None).unwrap();
    let err = auth
        .upsert(
            MappingKind::Role,
            mapping("arn:aws:iam::111122223333:user/x", "x", &[]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("--kind user"), "{err}");
    let err = auth
        .upsert(MappingKind::Role, mapping("not-an-arn", "x", &[]))
        .unwrap_err();
    assert!(err.to_string().starts_with("not an IAM ARN"), "{err}");
}

#[test]
fn rejects_bad_usernames_and_groups() {
    let mut auth = AwsAuth::parse(None).unwrap();
    let arn = "arn:aws:iam::111122223333:role/x";
    for m in [
        mapping(arn, "", &[]),
        mapping(arn, "has space", &[]),
        mapping(arn, "system:admin", &[]),
        mapping(arn, "x", &[""]),
    ] {
        assert!(matches!(
            auth.upsert(MappingKind::Role, m),
            Err(AwsAuthError::InvalidMapping(_))
        ));
    }
    assert!(auth.render().is_empty());
}

#[test]
fn users_keep_their_path() {
    let mut auth = AwsAuth::parse(None).unwrap();
    auth.upsert(
        MappingKind::User,
        mapping(
            "arn:aws:iam::111122223333:user/ops/alice",
            "alice",
            &["ops"],
        ),
    )
    .unwrap();
    assert_eq!(
        auth.users()[0].arn,
        "arn:aws:iam::111122223333:user/ops/alice"
    );
    assert!(auth.render().contains_key("mapUsers"));
    assert!(!auth.render().contains_key("mapRoles"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9_+=,.@-]{0,20}"
    }
    fn account() -> impl Strategy<Value = String> {
        "[0-9]{12}"
    }
    fn group() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("system:masters".to_string()),
            Just("view".to_string()),
            "[a-z][a-z0-9:-]{0,12}",
        ]
    }
    fn extra_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
        proptest::collection::vec(
            (
                "x-[a-z]{1,8}",
                prop_oneof![
                    "[a-z ]{0,10}".prop_map(Value::String),
                    any::<u32>().prop_map(|n| Value::Number(n.into())),
                    any::<bool>().prop_map(Value::Bool),
                ],
            ),
            0..3,
        )
    }
    fn entry(fields: Vec<(&str, Value)>, extra: Vec<(String, Value)>) -> Value {
        let mut m = YamlMapping::new();
        for (k, v) in fields {
            m.insert(k.into(), v);
        }
        for (k, v) in extra {
            m.insert(k.into(), v);
        }
        Value::Mapping(m)
    }
    fn groups_value(gs: Vec<String>) -> Value {
        Value::Sequence(gs.into_iter().map(Value::String).collect())
    }
    fn role_entry() -> impl Strategy<Value = Value> {
        let arn_entry = (
            account(),
            proptest::option::of(name()),
            name(),
            name(),
            proptest::collection::vec(group(), 0..3),
            extra_fields(),
        )
            .prop_map(|(acct, path, role, user, groups, extra)| {
                let arn = match path {
                    Some(p) => format!("arn:aws:iam::{acct}:role/{p}/{role}"),
                    None => format!("arn:aws:iam::{acct}:role/{role}"),
                };
                entry(
                    vec![
                        ("rolearn", Value::String(arn)),
                        ("username", Value::String(user)),
                        ("groups", groups_value(groups)),
                    ],
                    extra,
                )
            });
        let node_entry = (account(), name()).prop_map(|(acct, role)| {
            entry(
                vec![
                    (
                        "groups",
                        groups_value(vec!["system:bootstrappers".into(), "system:nodes".into()]),
                    ),
                    (
                        "rolearn",
                        Value::String(format!("arn:aws:iam::{acct}:role/{role}")),
                    ),
                    (
                        "username",
                        Value::String("system:node:{{EC2PrivateDNSName}}".into()),
                    ),
                ],
                vec![],
            )
        });
        let sso_entry = (
            account(),
            name(),
            proptest::collection::vec(group(), 0..2),
            extra_fields(),
        )
            .prop_map(|(acct, set, groups, extra)| {
                let mut sso = YamlMapping::new();
                sso.insert("permissionSetName".into(), Value::String(set));
                sso.insert("accountID".into(), Value::String(acct));
                entry(
                    vec![
                        ("sso", Value::Mapping(sso)),
                        ("username", Value::String("sso:{{SessionName}}".into())),
                        ("groups", groups_value(groups)),
                    ],
                    extra,
                )
            });
        prop_oneof![3 => arn_entry, 1 => node_entry, 1 => sso_entry]
    }
    fn user_entry() -> impl Strategy<Value = Value> {
        (
            account(),
            name(),
            name(),
            proptest::collection::vec(group(), 0..3),
            extra_fields(),
        )
            .prop_map(|(acct, u, username, groups, extra)| {
                entry(
                    vec![
                        (
                            "userarn",
                            Value::String(format!("arn:aws:iam::{acct}:user/{u}")),
                        ),
                        ("username", Value::String(username)),
                        ("groups", groups_value(groups)),
                    ],
                    extra,
                )
            })
    }
    fn account_entry() -> impl Strategy<Value = Value> {
        prop_oneof![
            account().prop_map(Value::String),
            (100_000_000_000u64..999_999_999_999u64).prop_map(|n| Value::Number(n.into())),
        ]
    }
    /// Block YAML (eksctl, kubectl edit) or JSON flow style (some Terraform and CDK setups).
    fn yaml_list(items: &[Value], json_style: bool) -> String {
        if json_style {
            serde_json::to_string(items).unwrap()
        } else {
            serde_yaml_ng::to_string(items).unwrap()
        }
    }

    /// A random aws-auth `data`: each key present or not, plus unknown keys.
    fn document() -> impl Strategy<Value = BTreeMap<String, String>> {
        (
            proptest::option::of(proptest::collection::vec(role_entry(), 0..6)),
            proptest::option::of(proptest::collection::vec(user_entry(), 0..4)),
            proptest::option::of(proptest::collection::vec(account_entry(), 0..3)),
            proptest::collection::btree_map("[a-z]{1,8}", "[ -~\n]{0,30}", 0..2),
            any::<[bool; 3]>(),
        )
            .prop_map(|(roles, users, accounts, extra, json_style)| {
                let mut d: BTreeMap<String, String> = extra
                    .into_iter()
                    .filter(|(k, _)| ![MAP_ROLES, MAP_USERS, MAP_ACCOUNTS].contains(&k.as_str()))
                    .collect();
                if let Some(r) = roles {
                    d.insert(MAP_ROLES.into(), yaml_list(&r, json_style[0]));
                }
                if let Some(u) = users {
                    d.insert(MAP_USERS.into(), yaml_list(&u, json_style[1]));
                }
                if let Some(a) = accounts {
                    d.insert(MAP_ACCOUNTS.into(), yaml_list(&a, json_style[2]));
                }
                d
            })
    }

    fn new_role_arn() -> impl Strategy<Value = String> {
        // Account 999999999999 never appears in generated documents, so the ARN is new.
        (proptest::option::of(name()), name()).prop_map(|(path, n)| match path {
            Some(p) => format!("arn:aws:iam::999999999999:role/{p}/{n}"),
            None => format!("arn:aws:iam::999999999999:role/{n}"),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn parse_render_round_trips(doc in document()) {
            let auth = AwsAuth::parse(Some(&doc)).unwrap();
            prop_assert_eq!(auth.render(), doc);
        }

        #[test]
        fn re_rendering_every_key_keeps_every_entry(doc in document()) {
            let before = AwsAuth::parse(Some(&doc)).unwrap();
            let mut auth = before.clone();
            // As if every entry had been edited: nothing of the original text is reused.
            auth.role_origins.iter_mut().for_each(|o| *o = None);
            auth.user_origins.iter_mut().for_each(|o| *o = None);
            auth.rerender(MappingKind::Role).unwrap();
            auth.rerender(MappingKind::User).unwrap();
            let again = AwsAuth::parse(Some(&auth.render())).unwrap();
            prop_assert_eq!(&again.roles, &before.roles);
            prop_assert_eq!(&again.users, &before.users);
            prop_assert_eq!(&again.accounts, &before.accounts);
            prop_assert_eq!(again.sso_roles(), before.sso_roles());
        }

        #[test]
        fn user_add_then_remove_touches_only_map_users(doc in document(), user in name(), groups in proptest::collection::vec(group(), 0..3)) {
            let before = AwsAuth::parse(Some(&doc)).unwrap();
            let arn = format!("arn:aws:iam::999999999999:user/{user}");
            let mut auth = before.clone();
            let change = auth.upsert(MappingKind::User, Mapping { arn: arn.clone(), username: user.clone(), groups }).unwrap();
            prop_assert_eq!(change, Change::Created);
            let rendered = auth.render();
            for (k, v) in &doc {
                if k != MAP_USERS {
                    prop_assert_eq!(rendered.get(k), Some(v));
                }
            }
            let added = AwsAuth::parse(Some(&rendered)).unwrap();
            prop_assert_eq!(&added.users[..before.users.len()], &before.users[..]);
            let mut removed = added;
            prop_assert_eq!(removed.remove(MappingKind::User, &arn).unwrap(), Change::Deleted);
            let removed = AwsAuth::parse(Some(&removed.render())).unwrap();
            prop_assert_eq!(&removed.users, &before.users);
            prop_assert_eq!(&removed.roles, &before.roles);
        }

        #[test]
        fn add_then_remove_loses_and_alters_nothing(doc in document(), arn in new_role_arn(), user in name(), groups in proptest::collection::vec(group(), 0..3)) {
            let before = AwsAuth::parse(Some(&doc)).unwrap();
            let mut auth = before.clone();
            let change = auth.upsert(MappingKind::Role, Mapping { arn: arn.clone(), username: user.clone(), groups: groups.clone() }).unwrap();
            prop_assert_eq!(change, Change::Created);

            let added = AwsAuth::parse(Some(&auth.render())).unwrap();
            // Every earlier entry is still there, unchanged, in order; one new one at the end.
            prop_assert_eq!(&added.roles[..before.roles.len()], &before.roles[..]);
            prop_assert_eq!(added.roles.len(), before.roles.len() + 1);
            prop_assert_eq!(&added.users, &before.users);
            prop_assert_eq!(&added.accounts, &before.accounts);
            let found = added.find(MappingKind::Role, &arn).unwrap();
            prop_assert_eq!(&found.username, &user);
            prop_assert_eq!(&found.groups, &groups);
            prop_assert_eq!(found.arn, crate::arn::parse_iam_arn(&arn).unwrap().without_path());
            // Keys other than mapRoles: byte for byte.
            let rendered = auth.render();
            for (k, v) in &doc {
                if k != MAP_ROLES {
                    prop_assert_eq!(rendered.get(k), Some(v));
                }
            }
            // Block-style text is appended to, never rewritten.
            if let Some(old) = doc.get(MAP_ROLES).filter(|t| t.starts_with("- ")) {
                prop_assert!(rendered[MAP_ROLES].starts_with(old.as_str()));
            }

            let mut removed = added.clone();
            prop_assert_eq!(removed.remove(MappingKind::Role, &arn).unwrap(), Change::Deleted);
            let removed = AwsAuth::parse(Some(&removed.render())).unwrap();
            prop_assert_eq!(&removed.roles, &before.roles);
            prop_assert_eq!(&removed.users, &before.users);
            prop_assert_eq!(&removed.accounts, &before.accounts);
        }

        #[test]
        fn removing_any_existing_entry_removes_only_it_or_refuses(doc in document(), pick in any::<prop::sample::Index>()) {
            let before = AwsAuth::parse(Some(&doc)).unwrap();
            let roles = before.roles();
            prop_assume!(!roles.is_empty());
            let target = pick.get(&roles);
            let mut auth = before.clone();
            match auth.remove(MappingKind::Role, &target.arn) {
                Ok(change) => {
                    prop_assert_eq!(change, Change::Deleted);
                    prop_assert!(!target.groups.iter().any(|g| PROTECTED_GROUPS.contains(&g.as_str())));
                    let after = AwsAuth::parse(Some(&auth.render())).unwrap();
                    prop_assert_eq!(after.roles.len(), before.roles.len() - 1);
                    prop_assert!(after.roles.iter().all(|e| before.roles.contains(e)));
                }
                Err(AwsAuthError::ProtectedEntry { .. } | AwsAuthError::DuplicateArn { .. }) => {
                    prop_assert_eq!(auth.render(), doc);
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}

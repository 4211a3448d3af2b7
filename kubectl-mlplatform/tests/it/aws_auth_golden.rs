//! Golden fixtures: real-world aws-auth shapes (eksctl's, the Hopsworks page's, Terraform's)
//! through the edits `connect` and `aws-auth add/remove` make. Expected results live next to
//! the inputs as `<name>.after-add.yaml` / `<name>.after-remove.yaml` (the ConfigMap `data`).
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p kubectl-mlplatform --test it aws_auth_golden::`
//! and review the diff.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kubectl_mlplatform::aws_auth::{AwsAuth, AwsAuthError, Mapping, MappingKind};
use kubectl_mlplatform::common::Change;
use pretty_assertions::assert_eq;
use proptest::strategy::Strategy;

const VENDOR_ROLE_WITH_PATH: &str = "arn:aws:iam::111122223333:role/mlplatform/concurrent-prod";
const VENDOR_ROLE: &str = "arn:aws:iam::111122223333:role/concurrent-prod";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws-auth")
}

fn load_data(name: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    let cm: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    serde_yaml_ng::from_value(cm["data"].clone()).unwrap()
}

fn check_golden(name: &str, actual: &BTreeMap<String, String>) {
    let path = fixtures().join(name);
    let rendered = serde_yaml_ng::to_string(actual).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    let expected: BTreeMap<String, String> = serde_yaml_ng::from_str(&expected).unwrap();
    assert_eq!(&expected, actual, "{name}");
}

fn vendor_mapping() -> Mapping {
    Mapping {
        arn: VENDOR_ROLE_WITH_PATH.into(),
        username: "concurrent".into(),
        groups: vec!["mlplatform:concurrent".into()],
    }
}

fn golden_round(fixture: &str) {
    let stem = fixture.trim_end_matches(".yaml");
    let original = load_data(fixture);
    let before = AwsAuth::parse(Some(&original)).unwrap();

    let mut added = before.clone();
    assert_eq!(
        added.upsert(MappingKind::Role, vendor_mapping()).unwrap(),
        Change::Created
    );
    let after_add = added.render();
    check_golden(&format!("{stem}.after-add.yaml"), &after_add);
    // Keys the edit did not touch are byte for byte the same.
    for (key, text) in &original {
        if key != "mapRoles" {
            assert_eq!(after_add.get(key), Some(text), "{fixture}: {key}");
        }
    }
    // Re-running is a no-op.
    let mut again = AwsAuth::parse(Some(&after_add)).unwrap();
    assert_eq!(
        again.upsert(MappingKind::Role, vendor_mapping()).unwrap(),
        Change::Unchanged
    );
    assert_eq!(again.render(), after_add);

    // Node roles cannot be removed.
    let node = before
        .roles()
        .into_iter()
        .find(|m| m.groups.iter().any(|g| g == "system:nodes"))
        .unwrap();
    let mut refused = again.clone();
    assert!(matches!(
        refused.remove(MappingKind::Role, &node.arn),
        Err(AwsAuthError::ProtectedEntry { .. })
    ));
    assert_eq!(refused.render(), after_add);

    let mut removed = again;
    assert_eq!(
        removed.remove(MappingKind::Role, VENDOR_ROLE).unwrap(),
        Change::Deleted
    );
    let after_remove = removed.render();
    check_golden(&format!("{stem}.after-remove.yaml"), &after_remove);
    // Add then remove gives back the document as it was, byte for byte.
    assert_eq!(after_remove, original, "{fixture}");
    let reparsed = AwsAuth::parse(Some(&after_remove)).unwrap();
    assert_eq!(reparsed.roles(), before.roles());
    assert_eq!(reparsed.sso_roles(), before.sso_roles());
    assert_eq!(reparsed.users(), before.users());
    assert_eq!(reparsed.accounts(), before.accounts());
}

#[test]
fn eksctl() {
    golden_round("eksctl.yaml");
}

#[test]
fn hopsworks() {
    golden_round("hopsworks.yaml");
}

#[test]
fn terraform() {
    golden_round("terraform.yaml");
    let auth = AwsAuth::parse(Some(&load_data("terraform.yaml"))).unwrap();
    assert_eq!(auth.accounts(), vec!["444455556666", "777788889999"]);
    assert_eq!(
        auth.sso_roles()[0].permission_set_name,
        "AdministratorAccess"
    );
}

#[test]
fn malformed_is_refused_with_the_entry_named() {
    let err = AwsAuth::parse(Some(&load_data("malformed.yaml"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "aws-auth mapRoles entry 1 does not parse: not an IAM ARN: \"<YOUR ROLE RoleARN>\" (it does not have the 6 ':'-separated fields of an ARN); expected e.g. arn:aws:iam::123456789012:role/Name; refusing to write; fix it by hand with `kubectl edit -n kube-system configmap aws-auth`"
    );
}

// ------------------------------------------------------------------ YAML 1.1 round trip

/// Strings that YAML 1.1 readers (aws-iam-authenticator's go-yaml v2, PyYAML) take for dates,
/// booleans, nulls, numbers in any base, sexagesimals, `.inf`/`.nan`, merge keys or `=`, and
/// near misses; plus random short strings of the same characters.
fn lookalike() -> impl Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::sample::select(vec![
            "2024-01-01",
            "2001-12-14t21:59:43.10-05:00",
            "2002-12-14 21:59:43.10 -5",
            "yes",
            "Yes",
            "NO",
            "on",
            "Off",
            "y",
            "N",
            "~",
            "null",
            "NULL",
            "",
            "0755",
            "0o17",
            "0b101",
            "1e3",
            "1E-3",
            "0x1F",
            "1:20",
            "190:20:30.15",
            ".inf",
            "-.Inf",
            ".NaN",
            "<<",
            "=",
            "true",
            "False",
            "1_000",
            "+12",
            "-0",
            "3.14",
            ".5",
            "plain words",
            "system:masters",
            "a: b",
            "#not a comment",
            "it's",
            "say \"hi\"",
        ])
        .prop_map(str::to_owned),
        "[-+.~<=0-9a-zA-Z:_ ]{0,10}",
    ]
}

fn entry_strategy(i: usize) -> impl Strategy<Value = Vec<(String, serde_json::Value)>> {
    (
        proptest::collection::vec(lookalike(), 0..3),
        proptest::collection::vec(lookalike(), 1..4),
    )
        .prop_map(move |(groups, extra)| {
            let mut fields = vec![
                (
                    "rolearn".to_owned(),
                    serde_json::json!(format!("arn:aws:iam::111122223333:role/r{i}")),
                ),
                ("username".to_owned(), serde_json::json!(format!("u{i}"))),
                ("groups".to_owned(), serde_json::json!(groups)),
            ];
            for (k, v) in extra.into_iter().enumerate() {
                fields.push((format!("x-{k}"), serde_json::json!(v)));
            }
            fields
        })
}

/// One entry as YAML text with every string double-quoted (JSON strings are valid YAML
/// double-quoted scalars): flow (`{...}`) or block (`- k: v`).
fn entry_text(fields: &[(String, serde_json::Value)], flow: bool) -> String {
    let q = |v: &serde_json::Value| serde_json::to_string(v).unwrap();
    if flow {
        let parts: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}: {}", q(v)))
            .collect();
        return format!("{{{}}}", parts.join(", "));
    }
    let mut out = String::new();
    for (n, (k, v)) in fields.iter().enumerate() {
        out.push_str(if n == 0 { "- " } else { "  " });
        match v {
            serde_json::Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("{k}:\n"));
                for item in items {
                    out.push_str(&format!("  - {}\n", q(item)));
                }
            }
            other => out.push_str(&format!("{k}: {}\n", q(other))),
        }
    }
    out
}

fn entry_json(fields: &[(String, serde_json::Value)]) -> serde_json::Value {
    serde_json::Value::Object(fields.iter().cloned().collect())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Issue 9 §2.3: random entries holding such strings, in flow or block style, through an
    /// add, a remove or a change of another entry: read back by PyYAML (a real YAML 1.1
    /// reader), every entry is exactly what it was (what it became, for the one changed), and
    /// the untouched ones read exactly as before.
    #[test]
    fn entries_round_trip_under_yaml_1_1(
        entries in (1usize..5).prop_flat_map(|n| (0..n).map(entry_strategy).collect::<Vec<_>>()),
        flow in proptest::prelude::any::<bool>(),
        op in 0u8..3,
        pick in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let original = if flow {
            let items: Vec<String> = entries.iter().map(|e| entry_text(e, true)).collect();
            format!("[{}]", items.join(", "))
        } else {
            entries.iter().map(|e| entry_text(e, false)).collect()
        };
        let data = BTreeMap::from([("mapRoles".to_owned(), original.clone())]);
        let mut auth = AwsAuth::parse(Some(&data)).unwrap();
        let j = pick.index(entries.len());
        let mut expected: Vec<serde_json::Value> = entries.iter().map(|e| entry_json(e)).collect();
        let new_arn = "arn:aws:iam::111122223333:role/new";
        match op {
            0 => {
                auth.upsert(MappingKind::Role, Mapping { arn: new_arn.into(), username: "yes".into(), groups: vec!["g".into()] }).unwrap();
                expected.push(serde_json::json!({"rolearn": new_arn, "username": "yes", "groups": ["g"]}));
            }
            1 => {
                auth.remove(MappingKind::Role, &format!("arn:aws:iam::111122223333:role/r{j}")).unwrap();
                expected.remove(j);
            }
            _ => {
                // Another entry's groups and username change; its other fields must survive.
                let change = auth.upsert(MappingKind::Role, Mapping { arn: format!("arn:aws:iam::111122223333:role/r{j}"), username: "on".into(), groups: vec!["g2".into()] }).unwrap();
                proptest::prop_assert_eq!(change, Change::Updated);
                expected[j]["username"] = serde_json::json!("on");
                expected[j]["groups"] = serde_json::json!(["g2"]);
            }
        }
        let after = auth.render()["mapRoles"].clone();
        let expected_json = serde_json::to_string(&expected).unwrap();
        proptest::prop_assert_eq!(
            support::yaml11_reads_as_json(&[(&after, &expected_json)]),
            vec![true],
            "original:\n{}\nafter:\n{}", original, after
        );
        // The untouched entries also read as before, under YAML 1.1 and under 1.2.
        let read = support::yaml11_items(&[&original, &after]);
        let untouched: Vec<(usize, usize)> = match op {
            0 => (0..entries.len()).map(|i| (i, i)).collect(),
            1 => (0..entries.len()).filter(|i| *i != j).enumerate().map(|(a, b)| (b, a)).collect(),
            _ => (0..entries.len()).filter(|i| *i != j).map(|i| (i, i)).collect(),
        };
        let before12: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&original).unwrap();
        let after12: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&after).unwrap();
        for (b, a) in untouched {
            proptest::prop_assert_eq!(&read[1][a], &read[0][b], "after:\n{}", after);
            proptest::prop_assert_eq!(&after12[a], &before12[b]);
        }
    }
}

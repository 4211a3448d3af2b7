//! Golden fixtures: real-world aws-auth shapes (eksctl's, the Hopsworks page's, Terraform's)
//! through the edits `connect` and `aws-auth add/remove` make. Expected results live next to
//! the inputs as `<name>.after-add.yaml` / `<name>.after-remove.yaml` (the ConfigMap `data`).
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p kubectl-mlplatform --test aws_auth_golden`
//! and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kubectl_mlplatform::aws_auth::{AwsAuth, AwsAuthError, Mapping, MappingKind};
use kubectl_mlplatform::common::Change;
use pretty_assertions::assert_eq;

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

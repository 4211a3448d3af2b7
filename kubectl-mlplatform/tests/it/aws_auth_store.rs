//! `modify_aws_auth` / `read_aws_auth` through kube's real client against the in-process
//! Kubernetes API double: create when absent, no write when unchanged, 409 retried on a fresh
//! read, dry runs, refusals that write nothing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kubectl_mlplatform::aws_auth::store::{
    RetryPolicy, modify_aws_auth, modify_aws_auth_detailed, modify_aws_auth_with, read_aws_auth,
};
use kubectl_mlplatform::aws_auth::{AwsAuthError, Mapping, MappingKind};
use kubectl_mlplatform::common::{Change, DryRun};
use mlplatform_testkit::kube_double::KubeDouble;
use serde_json::{Value, json};

const CM_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/aws-auth";
const VENDOR: &str = "arn:aws:iam::111122223333:role/mlplatform/concurrent-prod";
const VENDOR_NO_PATH: &str = "arn:aws:iam::111122223333:role/concurrent-prod";

fn vendor() -> Mapping {
    Mapping {
        arn: VENDOR.into(),
        username: "concurrent".into(),
        groups: vec!["mlplatform:concurrent".into()],
    }
}

fn load(double: &KubeDouble, fixture: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/aws-auth")
        .join(fixture);
    double.load_fixtures_file(&path).unwrap();
}

fn stored(double: &KubeDouble) -> Option<Value> {
    double.object("v1", "ConfigMap", Some("kube-system"), "aws-auth")
}

fn stored_map_roles(double: &KubeDouble) -> String {
    stored(double).unwrap()["data"]["mapRoles"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn creates_aws_auth_when_absent() {
    let double = KubeDouble::start().await;
    let client = double.client();
    assert!(read_aws_auth(&client).await.unwrap().is_none());

    let change = modify_aws_auth(&client, DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    assert_eq!(change, Change::Created);
    let writes = double.mutating_requests();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "POST");
    assert_eq!(writes[0].path, "/api/v1/namespaces/kube-system/configmaps");

    let auth = read_aws_auth(&client).await.unwrap().unwrap();
    assert_eq!(auth.roles()[0].arn, VENDOR_NO_PATH);
    assert!(stored_map_roles(&double).contains("username: concurrent"));
}

#[tokio::test]
async fn no_write_when_nothing_changes() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    let client = double.client();
    modify_aws_auth(&client, DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    double.clear_requests();

    let change = modify_aws_auth(&client, DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    assert_eq!(change, Change::Unchanged);
    assert!(
        double.mutating_requests().is_empty(),
        "{:?}",
        double.mutating_requests()
    );

    // Removing something absent writes nothing either, and creates no ConfigMap.
    let empty = KubeDouble::start().await;
    let change = modify_aws_auth(&empty.client(), DryRun::None, |a| {
        a.remove(MappingKind::Role, VENDOR)
    })
    .await
    .unwrap();
    assert_eq!(change, Change::Absent);
    assert!(empty.mutating_requests().is_empty());
    assert!(stored(&empty).is_none());
}

#[tokio::test]
async fn update_keeps_the_rest_of_the_configmap_and_sends_the_read_resource_version() {
    let double = KubeDouble::start().await;
    load(&double, "terraform.yaml");
    let before = stored(&double).unwrap();
    let client = double.client();

    let change = modify_aws_auth(&client, DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    assert_eq!(change, Change::Created);
    let writes = double.mutating_requests();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].method, "PUT");
    let body = writes[0].body.as_ref().unwrap();
    assert_eq!(
        body["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "optimistic concurrency: the write carries the version that was read"
    );
    let after = stored(&double).unwrap();
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    for key in ["mapUsers", "mapAccounts", "extraConfig"] {
        assert_eq!(after["data"][key], before["data"][key], "{key} untouched");
    }
}

#[tokio::test]
async fn injected_conflict_is_retried_with_a_fresh_read() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    double.inject_failure("PUT", CM_PATH, 409, 1);
    let client = double.client();

    let change = modify_aws_auth(&client, DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    assert_eq!(change, Change::Created);
    let requests = double.requests();
    let gets = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == CM_PATH)
        .count();
    let puts = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path == CM_PATH)
        .count();
    assert_eq!((gets, puts), (2, 2), "{requests:?}");
    assert!(stored_map_roles(&double).contains(VENDOR_NO_PATH));
}

#[tokio::test]
async fn transient_failures_and_a_vanished_configmap_are_retried() {
    for status in [503, 429, 404] {
        let double = KubeDouble::start().await;
        load(&double, "eksctl.yaml");
        double.inject_failure("PUT", CM_PATH, status, 1);
        let change = modify_aws_auth(&double.client(), DryRun::None, |a| {
            a.upsert(MappingKind::Role, vendor())
        })
        .await
        .unwrap();
        assert_eq!(change, Change::Created, "after HTTP {status}");
        let puts = double
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count();
        assert_eq!(puts, 2, "after HTTP {status}");
        assert!(stored_map_roles(&double).contains(VENDOR_NO_PATH));
    }
}

#[tokio::test]
async fn other_failures_are_not_retried() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    double.inject_failure("PUT", CM_PATH, 422, 1);
    let err = modify_aws_auth(&double.client(), DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, AwsAuthError::Kube { .. }), "{err}");
    assert!(err.to_string().contains("(HTTP 422)"), "{err}");
    assert_eq!(
        double
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_real_concurrent_writer_is_not_overwritten() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    let client = double.client();
    let calls = AtomicUsize::new(0);
    let other_writer = double.clone();

    let change = modify_aws_auth(&client, DryRun::None, |a| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // Between our read and our write, someone else maps a user.
            let mut cm = stored(&other_writer).unwrap();
            cm["data"]["mapUsers"] =
                json!("- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob\n");
            other_writer.apply_fixture(cm);
        }
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();

    assert_eq!(change, Change::Created);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the edit ran again on a fresh read"
    );
    let auth = read_aws_auth(&client).await.unwrap().unwrap();
    assert_eq!(
        auth.users()[0].username,
        "bob",
        "the other writer's change survived"
    );
    assert!(auth.find(MappingKind::Role, VENDOR).is_some());
}

#[tokio::test]
async fn endless_conflicts_give_up_with_a_clear_line_when_the_time_is_up() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    double.inject_failure("PUT", CM_PATH, 409, 10_000);
    let policy = RetryPolicy {
        budget: Duration::from_millis(1500),
        ..RetryPolicy::default()
    };
    let started = Instant::now();
    let err = modify_aws_auth_with(&double.client(), DryRun::None, policy, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap_err();
    let took = started.elapsed();
    let AwsAuthError::RetriesExhausted { attempts, .. } = err else {
        panic!("{err}")
    };
    // Bounded by time, not by a small count: the whole budget is used, and not much more.
    assert!(attempts > 5, "{attempts} attempts");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let line = err.to_string();
    assert!(
        line.starts_with(&format!("could not write aws-auth after {attempts} attempts in 1s (last: HTTP 409: aws-auth changed since it was read)")),
        "{line}"
    );
    assert!(
        line.ends_with("re-run the command") && !line.contains('\n'),
        "{line}"
    );
    assert!(stored_map_roles(&double).contains("NodeInstanceRole"));
    assert!(!stored_map_roles(&double).contains(VENDOR_NO_PATH));
}

#[test]
fn backoff_pauses_are_jittered_and_grow_up_to_the_cap() {
    let policy = RetryPolicy::default();
    // The window doubles per attempt from 25 ms, capped at 2 s; the pause is anywhere in it.
    assert_eq!(
        policy.pause(1, u64::MAX),
        Duration::from_micros(u64::MAX % 25_001)
    );
    for attempt in 1..40 {
        let window =
            Duration::from_millis(25 * (1u64 << (attempt - 1).min(20))).min(Duration::from_secs(2));
        for random in [0, 1, 12_345, 999_999_937, u64::MAX] {
            assert!(policy.pause(attempt, random) <= window, "attempt {attempt}");
        }
    }
    assert_eq!(policy.pause(3, 0), Duration::ZERO);
    assert!(policy.pause(10, 1_999_999) > Duration::from_secs(1));
}

#[tokio::test]
async fn server_dry_run_sends_dry_run_all_and_stores_nothing() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    let before = stored(&double).unwrap();
    let write = modify_aws_auth_detailed(&double.client(), DryRun::Server, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    assert_eq!(write.change, Change::Created);
    assert!(write.sent);
    let writes = double.mutating_requests();
    assert_eq!(writes.len(), 1);
    assert!(writes.iter().all(|r| r.is_dry_run()), "{writes:?}");
    assert_eq!(stored(&double).unwrap(), before);

    // And when absent: a dry-run create, nothing stored.
    let empty = KubeDouble::start().await;
    modify_aws_auth(&empty.client(), DryRun::Server, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    assert!(empty.mutating_requests().iter().all(|r| r.is_dry_run()));
    assert!(stored(&empty).is_none());
}

#[tokio::test]
async fn client_dry_run_writes_nothing_but_reports_the_result() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    let write = modify_aws_auth_detailed(&double.client(), DryRun::Client, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap();
    assert_eq!(write.change, Change::Created);
    assert!(!write.sent);
    assert!(write.after["mapRoles"].contains(VENDOR_NO_PATH));
    assert!(!write.before["mapRoles"].contains(VENDOR_NO_PATH));
    assert!(double.mutating_requests().is_empty());
}

#[tokio::test]
async fn malformed_aws_auth_is_refused_and_nothing_is_written() {
    let double = KubeDouble::start().await;
    load(&double, "malformed.yaml");
    let before = stored(&double).unwrap();
    let err = modify_aws_auth(&double.client(), DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap_err();
    let line = err.to_string();
    assert!(line.contains("mapRoles entry 1"), "{line}");
    assert!(
        line.contains("kubectl edit -n kube-system configmap aws-auth"),
        "{line}"
    );
    assert!(double.mutating_requests().is_empty());
    assert_eq!(stored(&double).unwrap(), before);
}

#[tokio::test]
async fn node_role_removal_is_refused_and_nothing_is_written() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    let node =
        "arn:aws:iam::111122223333:role/eksctl-prod-nodegroup-ng-1-NodeInstanceRole-1HYP9X0Z7Q8L";
    let err = modify_aws_auth(&double.client(), DryRun::None, |a| {
        a.remove(MappingKind::Role, node)
    })
    .await
    .unwrap_err();
    assert!(matches!(err, AwsAuthError::ProtectedEntry { .. }), "{err}");
    assert!(double.mutating_requests().is_empty());
}

#[tokio::test]
async fn forbidden_says_what_permission_is_missing() {
    let double = KubeDouble::start().await;
    load(&double, "eksctl.yaml");
    double.inject_failure("PUT", CM_PATH, 403, 1);
    let err = modify_aws_auth(&double.client(), DryRun::None, |a| {
        a.upsert(MappingKind::Role, vendor())
    })
    .await
    .unwrap_err();
    let line = err.to_string();
    assert!(
        line.starts_with("updating configmap kube-system/aws-auth: forbidden"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

//! Namespaces through the real binary against moto_server and the Kubernetes API double:
//! `namespace add|list|remove`, `--delete-namespace`, and a namespace still Terminating.

use mlplatform_namespace_policy::MANAGED_LABEL;
use serde_json::json;

use crate::support::{Env, NS, changes_of, gone_or_terminating};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_add_list_remove() {
    let env = Env::new().await;
    let add = env
        .run(&[
            "namespace",
            "add",
            "--profile",
            "concurrent",
            "-n",
            "team-a",
            "-o",
            "json",
        ])
        .await;
    add.assert_ok();
    assert_eq!(
        add.json()["userServiceAccount"],
        "k8s-serviceaccount-for-users-team-a"
    );
    let list = env.run(&["namespace", "list", "-o", "json"]).await;
    list.assert_ok();
    let rows = list.json();
    assert_eq!(rows[0]["name"], "team-a");
    assert_eq!(rows[0]["enforcement"], "enforce");
    env.run(&[
        "namespace",
        "remove",
        "--profile",
        "concurrent",
        "-n",
        "team-a",
    ])
    .await
    .assert_ok();
    assert!(
        env.object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "k8s-role-for-parallels"
        )
        .is_none()
    );
    let missing = env
        .run(&[
            "namespace",
            "remove",
            "--profile",
            "concurrent",
            "-n",
            "team-a",
        ])
        .await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("not managed"), "{}", missing.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_add_twice_writes_nothing_the_second_time() {
    let env = Env::new().await;
    let args = [
        "namespace",
        "add",
        "--profile",
        "concurrent",
        "-n",
        "team-b",
    ];
    env.run(&args).await.assert_ok();
    env.double.clear_requests();
    let again = env.run(&args).await;
    again.assert_ok();
    assert!(
        again.stdout.contains("nothing to change"),
        "{}",
        again.stdout
    );
    assert_eq!(env.double.mutating_requests(), vec![]);
}

/// Issue 9 §2.2: `--delete-namespace` removes the namespace connect created whenever it is
/// given, also on a disconnect after one without it; a namespace that existed before connect
/// is never deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_namespace_removes_only_a_namespace_connect_created_whenever_given() {
    let env = Env::new().await;
    env.connect(&[]).await.assert_ok();
    let plain = env.run(&["disconnect", "--profile", "concurrent"]).await;
    plain.assert_ok();
    assert!(
        plain
            .stderr
            .contains(&format!("kept namespace {NS} that connect created"))
            && plain.stderr.contains("pass --delete-namespace"),
        "{}",
        plain.stderr
    );
    let kept = env.object("v1", "Namespace", None, NS).expect("kept");
    assert!(
        kept["metadata"]["labels"].get(MANAGED_LABEL).is_none(),
        "{kept}"
    );

    env.double.clear_requests();
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "concurrent",
            "--delete-namespace",
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    let changes: std::collections::BTreeMap<String, String> =
        changes_of(&run.json()).into_iter().collect();
    assert_eq!(
        changes[&format!("Namespace/{NS}")],
        "deleted",
        "{changes:?}"
    );
    let writes = env.double.mutating_requests();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        ("DELETE", format!("/api/v1/namespaces/{NS}").as_str())
    );
    assert!(gone_or_terminating(env.object("v1", "Namespace", None, NS)));
    // Once more: the namespace is gone or going; nothing is written.
    env.double.clear_requests();
    env.run(&[
        "disconnect",
        "--profile",
        "concurrent",
        "--delete-namespace",
    ])
    .await
    .assert_ok();
    assert_eq!(env.double.mutating_requests(), vec![]);

    // A namespace that existed before connect stays; only our marks go.
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-pre", "labels": {"team": "ml"}},
    }));
    env.connect(&["-n", "team-pre"]).await.assert_ok();
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "concurrent",
            "-n",
            "team-pre",
            "--delete-namespace",
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stderr
            .contains("kept namespace team-pre: connect did not create it"),
        "{}",
        run.stderr
    );
    let ns = env
        .object("v1", "Namespace", None, "team-pre")
        .expect("a namespace connect did not create is never deleted");
    assert!(ns["metadata"]["deletionTimestamp"].is_null(), "{ns}");
    assert_eq!(ns["metadata"]["labels"]["team"], "ml");
    assert!(
        ns["metadata"]["labels"].get(MANAGED_LABEL).is_none(),
        "{ns}"
    );
}

async fn delete_namespace_now(env: &Env) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(env.double.client());
    api.delete(NS, &Default::default()).await.unwrap();
    let ns = env
        .object("v1", "Namespace", None, NS)
        .expect("Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");
}

/// Issue 9 §2.7: the namespace is deleted and connect runs into it at once, while it is still
/// Terminating (a real server refuses every create into it): connect waits for it to go, says
/// so on stderr, and creates it fresh with everything in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waits_for_a_terminating_namespace_then_creates_it_fresh() {
    let env = Env::new().await;
    env.double
        .set_namespace_termination_delay(std::time::Duration::from_secs(3));
    env.connect(&[]).await.assert_ok();
    delete_namespace_now(&env).await;

    let run = env.connect(&["-o", "json"]).await;
    run.assert_ok();
    assert!(
        run.stderr.contains(&format!(
            "namespace {NS} is being deleted; waiting up to 60s for it to go"
        )),
        "{}",
        run.stderr
    );
    let changes: std::collections::BTreeMap<String, String> =
        changes_of(&run.json()).into_iter().collect();
    assert_eq!(
        changes[&format!("Namespace/{NS}")],
        "created",
        "{changes:?}"
    );
    let ns = env.object("v1", "Namespace", None, NS).expect("namespace");
    assert!(ns["metadata"]["deletionTimestamp"].is_null(), "{ns}");
    assert_eq!(ns["metadata"]["labels"][MANAGED_LABEL], "true");
    for sa in [
        format!("k8s-serviceaccount-for-users-{NS}"),
        format!("k8s-serviceaccount-for-parallels-{NS}"),
    ] {
        assert!(
            env.object("v1", "ServiceAccount", Some(NS), &sa).is_some(),
            "{sa}"
        );
    }
    // Complete: a re-run has nothing to do.
    env.double.clear_requests();
    let again = env.connect(&["-o", "json"]).await;
    again.assert_ok();
    assert!(
        changes_of(&again.json())
            .iter()
            .all(|(_, c)| c == "unchanged"),
        "{}",
        again.stdout
    );
    assert_eq!(env.double.mutating_requests(), vec![]);
}

/// Issue 9 §2.7: when the namespace does not go within `--wait-timeout` (or 0: no waiting),
/// connect stops with one line before writing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_stops_before_writing_when_a_terminating_namespace_stays() {
    let env = Env::new().await;
    env.double
        .set_namespace_termination_delay(std::time::Duration::from_secs(60));
    env.connect(&[]).await.assert_ok();
    delete_namespace_now(&env).await;
    for timeout in ["1s", "0"] {
        env.double.clear_requests();
        let run = env.connect(&["--wait-timeout", timeout]).await;
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!(
                "error: namespace {NS} is still being deleted (Terminating) after"
            )) && last.contains("nothing was written")
                && last.contains("--wait-timeout"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
        assert_eq!(env.double.mutating_requests(), vec![], "{timeout}");
    }
}

//! connect / disconnect through the real binary against moto_server (IAM, STS, EKS) and the
//! Kubernetes API double (doctor: `doctor_cli`; namespaces: `namespace_cli`).

use mlplatform_namespace_policy::{MANAGED_LABEL, USER_SERVICE_ACCOUNT_ANNOTATION};
use serde_json::json;

use crate::support::{self, Env, NS, VENDOR, changes_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_creates_everything_and_a_second_run_writes_nothing() {
    let env = Env::new().await;
    env.seed_aws_auth();
    let run = env.connect(&["-o", "json"]).await;
    run.assert_ok();
    let report = run.json();
    let role_arn = format!("arn:aws:iam::123456789012:role/{}", env.role_name());
    assert_eq!(report["roleArn"], role_arn);
    assert_eq!(report["namespace"], NS);
    assert_eq!(
        report["userServiceAccount"],
        format!("k8s-serviceaccount-for-users-{NS}")
    );
    assert_eq!(
        report["systemServiceAccount"],
        format!("k8s-serviceaccount-for-parallels-{NS}")
    );
    let external_id = report["externalId"].as_str().unwrap().to_owned();
    assert_eq!(external_id.len(), 32, "{external_id}");
    assert!(
        changes_of(&report).iter().all(|(_, c)| c == "created"),
        "{report}"
    );

    // IAM, read back through the SDK from moto.
    let role = env.role().await.expect("role exists");
    assert_eq!(
        role.tags.get("mlplatform.io/profile").map(String::as_str),
        Some("concurrent")
    );
    assert_eq!(
        role.tags.get("mlplatform.io/cluster"),
        Some(&Env::arn_of(&env.cluster))
    );
    let trust = role.trust_policy.to_string();
    assert!(
        trust.contains(&format!("arn:aws:iam::{VENDOR}:root")),
        "{trust}"
    );
    assert!(trust.contains(&external_id), "{trust}");
    let inline = &role.inline_policies["concurrent-eks-ecr-ses"];
    assert!(
        inline.to_string().contains(&Env::arn_of(&env.cluster)),
        "{inline}"
    );

    // Kubernetes, read from the double.
    let ns = env.object("v1", "Namespace", None, NS).expect("namespace");
    assert_eq!(ns["metadata"]["labels"][MANAGED_LABEL], "true");
    assert_eq!(
        ns["metadata"]["annotations"][USER_SERVICE_ACCOUNT_ANNOTATION],
        format!("k8s-serviceaccount-for-users-{NS}")
    );
    for (api, kind, ns, name) in [
        (
            "v1",
            "ServiceAccount",
            Some(NS),
            format!("k8s-serviceaccount-for-users-{NS}"),
        ),
        (
            "v1",
            "ServiceAccount",
            Some(NS),
            format!("k8s-serviceaccount-for-parallels-{NS}"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            Some(NS),
            format!("k8s-role-for-users-{NS}"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some(NS),
            format!("k8s-serviceaccount-for-users-{NS}-binding"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some(NS),
            format!("k8s-service-account-binding-{NS}"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "k8s-role-for-parallels".to_owned(),
        ),
    ] {
        let obj = env
            .object(api, kind, ns, &name)
            .unwrap_or_else(|| panic!("{kind} {name} missing"));
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kubectl-mlplatform",
            "{obj}"
        );
        assert_eq!(
            obj["metadata"]["labels"]["mlplatform.io/profile"], "concurrent",
            "{obj}"
        );
    }
    let map_roles = env.aws_auth_data().unwrap()["mapRoles"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        map_roles.contains(&role_arn) && map_roles.contains("mlplatform:concurrent"),
        "{map_roles}"
    );
    assert!(
        map_roles.contains("role/node") && map_roles.contains("role/ops"),
        "{map_roles}"
    );
    assert!(!map_roles.contains("system:masters"), "{map_roles}");

    // Second run: nothing written anywhere, and it says so.
    env.double.clear_requests();
    let again = env.connect(&["-o", "json"]).await;
    again.assert_ok();
    let report2 = again.json();
    assert!(
        changes_of(&report2).iter().all(|(_, c)| c == "unchanged"),
        "{report2}"
    );
    assert_eq!(report2["externalId"], external_id.as_str());
    assert_eq!(
        env.double.mutating_requests(),
        vec![],
        "second connect wrote to the cluster"
    );
    assert_eq!(
        env.role().await.unwrap(),
        role,
        "second connect changed IAM"
    );
    let table = env.connect(&[]).await;
    table.assert_ok();
    assert!(
        table.stdout.contains("nothing to change"),
        "{}",
        table.stdout
    );
    assert_eq!(env.double.mutating_requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_client_writes_nothing_and_renders_objects() {
    let env = Env::new().await;
    let run = env.connect(&["--dry-run=client", "-o", "yaml"]).await;
    run.assert_ok();
    for needle in [
        "kind: RoleBinding",
        "kind: ClusterRole",
        "sts:ExternalId",
        "eks:*",
        "mapping:",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle} missing in:\n{}",
            run.stdout
        );
    }
    assert_eq!(env.double.mutating_requests(), vec![]);
    assert!(env.role().await.is_none());
    assert!(env.object("v1", "Namespace", None, NS).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_server_sends_kubernetes_writes_as_dry_runs_and_only_reads_iam() {
    let env = Env::new().await;
    // Namespace absent: it is sent as a dry run; what would live in it cannot be (warned).
    let run = env.connect(&["--dry-run=server", "-o", "json"]).await;
    run.assert_ok();
    assert!(
        run.stderr
            .contains("not sent, as the namespace does not exist yet"),
        "{}",
        run.stderr
    );
    let writes = env.double.mutating_requests();
    assert!(writes.len() >= 3, "{writes:?}");
    assert!(writes.iter().all(|r| r.is_dry_run()), "{writes:?}");
    assert!(env.role().await.is_none());
    assert!(env.object("v1", "Namespace", None, NS).is_none());
    assert!(env.aws_auth_data().is_none());

    // Namespace present: every Kubernetes write goes out, each with dryRun=All.
    env.double
        .apply_fixture(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    env.double.clear_requests();
    let run = env.connect(&["--dry-run=server"]).await;
    run.assert_ok();
    assert!(run.stdout.contains("server dry run"), "{}", run.stdout);
    let writes = env.double.mutating_requests();
    assert_eq!(
        writes.len(),
        9,
        "namespace, aws-auth, ClusterRole, 2 SAs, Role, 3 RoleBindings: {writes:?}"
    );
    assert!(writes.iter().all(|r| r.is_dry_run()), "{writes:?}");
    assert!(env.role().await.is_none());
    assert!(
        env.object(
            "v1",
            "ServiceAccount",
            Some(NS),
            &format!("k8s-serviceaccount-for-users-{NS}")
        )
        .is_none()
    );
}

/// Runs a failing connect and checks: one `error:` line, non-zero exit, nothing written.
async fn assert_fails_without_writes(env: &Env, args: &[&str], code: i32, needle: &str) {
    env.double.clear_requests();
    let run = env.connect(args).await;
    assert_eq!(
        run.code, code,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
    assert_eq!(env.double.mutating_requests(), vec![]);
    assert!(env.role().await.is_none(), "IAM role was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_failures_write_nothing() {
    let env = Env::new().await;
    assert_fails_without_writes(
        &env,
        &["--cluster", "no-such-cluster"],
        1,
        "EKS cluster \"no-such-cluster\" not found",
    )
    .await;
    assert_fails_without_writes(&env, &["--external-id", "bad id!"], 2, "--external-id").await;
    let run = env
        .run(&[
            "connect",
            "--profile",
            "concurrent",
            "--vendor-account",
            "12345",
        ])
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(
            "error: parameter vendorAccount=\"12345\" is not a 12-digit AWS account ID"
        ),
        "{}",
        run.stderr
    );
    let run = env.run(&["connect", "--profile", "concurrent"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--vendor-account"), "{}", run.stderr);

    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": "- rolearn: [not, a, string\n"},
    }));
    assert_fails_without_writes(&env, &[], 1, "aws-auth").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cluster_access_writes_nothing() {
    let env = Env::new().await;
    // Forbidden to read aws-auth: the kubeconfig's identity lacks access.
    env.double.inject_failure(
        "*",
        "/api/v1/namespaces/kube-system/configmaps/aws-auth",
        403,
        1,
    );
    assert_fails_without_writes(&env, &[], 1, "forbidden").await;
    // Unauthorized everywhere: expired cluster credentials.
    env.double.inject_failure("*", "/api*", 401, 100);
    assert_fails_without_writes(&env, &[], 1, "").await;
    env.double.clear_requests();
    // No API server at all.
    let dead = env.dir.path().join("dead-kubeconfig");
    std::fs::write(
        &dead,
        std::fs::read_to_string(&env.kubeconfig)
            .unwrap()
            .replace(&env.double.url(), "http://127.0.0.1:9"),
    )
    .unwrap();
    let run = env
        .run(&[
            "connect",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR,
            "--kubeconfig",
            dead.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(env.role().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_removes_exactly_what_connect_made() {
    let env = Env::new().await;
    env.seed_aws_auth();
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"team": "ml"}, "annotations": {"owner": "alice"}},
    }));
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "unrelated", "namespace": NS},
    }));
    let before = env.aws_auth_data().unwrap();
    env.connect(&[]).await.assert_ok();
    let run = env
        .run(&["disconnect", "--profile", "concurrent", "-o", "json"])
        .await;
    run.assert_ok();
    let report = run.json();
    let deleted: Vec<String> = changes_of(&report)
        .into_iter()
        .filter(|(_, c)| c == "deleted")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(deleted.len(), 9, "{report}");

    assert!(env.role().await.is_none(), "IAM role left behind");
    assert_eq!(
        env.aws_auth_data().unwrap(),
        before,
        "aws-auth not restored exactly"
    );
    let ns = env
        .object("v1", "Namespace", None, NS)
        .expect("namespace kept without --delete-namespace");
    assert_eq!(ns["metadata"]["labels"]["team"], "ml");
    assert_eq!(ns["metadata"]["annotations"]["owner"], "alice");
    assert!(
        ns["metadata"]["labels"].get(MANAGED_LABEL).is_none(),
        "{ns}"
    );
    let annotations = ns["metadata"]["annotations"].as_object().unwrap();
    assert!(
        annotations.keys().all(|k| !k.starts_with("mlplatform.io/")),
        "{ns}"
    );
    assert!(
        env.object("v1", "ServiceAccount", Some(NS), "unrelated")
            .is_some()
    );
    for (api, kind, ns, name) in [
        (
            "v1",
            "ServiceAccount",
            Some(NS),
            format!("k8s-serviceaccount-for-users-{NS}"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some(NS),
            format!("k8s-service-account-binding-{NS}"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "k8s-role-for-parallels".to_owned(),
        ),
    ] {
        assert!(
            env.object(api, kind, ns, &name).is_none(),
            "{kind} {name} left behind"
        );
    }

    // A second disconnect has nothing left to do and writes nothing.
    env.double.clear_requests();
    env.run(&["disconnect", "--profile", "concurrent"])
        .await
        .assert_ok();
    assert_eq!(env.double.mutating_requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_admin_maps_system_masters_with_a_warning() {
    let env = Env::new().await;
    let run = env.connect(&["--cluster-admin"]).await;
    run.assert_ok();
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("system:masters"),
        "{}",
        run.stderr
    );
    let map_roles = env.aws_auth_data().unwrap()["mapRoles"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(map_roles.contains("system:masters"), "{map_roles}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_file_with_unknown_key_reports_its_path() {
    let env = Env::new().await;
    let yaml = env
        .run(&["profiles", "show", "concurrent", "-o", "yaml"])
        .await;
    yaml.assert_ok();
    let good = env.dir.path().join("good.yaml");
    std::fs::write(&good, &yaml.stdout).unwrap();
    let again = env
        .run(&["profiles", "show", good.to_str().unwrap(), "-o", "yaml"])
        .await;
    again.assert_ok();
    assert_eq!(again.stdout, yaml.stdout, "show -o yaml does not load back");

    let bad = env.dir.path().join("x.yaml");
    // An unknown key inside the first rule, at the indentation of its `verbs:`.
    let mut lines: Vec<String> = yaml.stdout.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("verbs:"))
        .unwrap();
    let indent = lines[at].len() - lines[at].trim_start().len();
    lines.insert(at, format!("{}rulez: []", " ".repeat(indent)));
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let run = env
        .run(&[
            "connect",
            "--profile",
            bad.to_str().unwrap(),
            "--vendor-account",
            VENDOR,
        ])
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("spec.namespace.systemClusterRole.rules[0].rulez: unknown field"),
        "{}",
        run.stderr
    );
    assert_eq!(env.double.mutating_requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_profile_parameter_is_refused_up_front() {
    let env = Env::new().await;
    let run = env.run(&["connect", "--profile", "arthur"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: missing s3Bucket") && run.stderr.contains("--s3-bucket"),
        "{}",
        run.stderr
    );
    assert!(env.double.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_on_a_terminal_and_not_in_pipes() {
    if !std::path::Path::new("/usr/bin/script").exists() {
        panic!("/usr/bin/script (util-linux) is needed to give the binary a terminal");
    }
    let env = Env::new().await;
    // In a pipe: no progress lines, just the report.
    let piped = env.connect(&[]).await;
    piped.assert_ok();
    assert_eq!(piped.stderr, "", "progress leaked into a pipe");
    env.run(&["disconnect", "--profile", "concurrent"])
        .await
        .assert_ok();
    // On a terminal (script(1) allocates a pty): one line per step.
    let command = format!(
        "{} connect --profile concurrent --vendor-account {VENDOR}",
        support::BIN
    );
    let tty = env
        .run_program("/usr/bin/script", &["-qec", &command, "/dev/null"], None)
        .await;
    tty.assert_ok();
    assert!(
        tty.stdout.contains("reading the current state"),
        "{}",
        tty.stdout
    );
    assert!(
        tty.stdout.contains("✓ created RoleBinding"),
        "{}",
        tty.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_auth_conflict_is_retried_on_a_fresh_read() {
    let env = Env::new().await;
    env.seed_aws_auth();
    env.double.inject_failure(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/aws-auth",
        409,
        1,
    );
    env.connect(&[]).await.assert_ok();
    let puts: Vec<_> = env
        .double
        .mutating_requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/aws-auth"))
        .collect();
    assert_eq!(puts.len(), 2, "{puts:?}");
    let map_roles = env.aws_auth_data().unwrap()["mapRoles"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        map_roles.contains("mlplatform:concurrent") && map_roles.contains("role/ops"),
        "{map_roles}"
    );
}

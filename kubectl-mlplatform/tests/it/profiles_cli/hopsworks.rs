//! The hopsworks profile: policies on roles that already exist, never the roles themselves.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopsworks_connect_rerun_doctor_disconnect_touch_only_our_policies() {
    let env = Env::new().await;
    let aws = env.aws().await;
    env.seed_aws_auth();
    let before_auth = env.aws_auth_data().unwrap();
    let instance_name = format!("hopsworks-instance-{}", env.cluster);
    let cross_name = format!("hopsworks-cross-{}", env.cluster);
    let instance = existing_role(&aws, &instance_name).await;
    let cross = existing_role(&aws, &cross_name).await;
    aws.put_inline_policy(
        &instance_name,
        "theirs",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}),
    )
    .await
    .unwrap();
    let connect = [
        "connect",
        "--profile",
        "hopsworks",
        "--instance-role-arn",
        &instance,
        "--cross-account-role-arn",
        &cross,
    ];

    // Dry runs: client writes nothing; server sends Kubernetes writes as dry runs only.
    env.double.clear_requests();
    let dry = env
        .run(&[&connect[..], &["--dry-run=client", "-o", "yaml"]].concat())
        .await;
    dry.assert_ok();
    assert!(
        dry.stdout.contains("mlplatform-hopsworks-eks-ecr"),
        "{}",
        dry.stdout
    );
    assert_eq!(env.double.mutating_requests(), vec![]);
    let dry = env
        .run(&[&connect[..], &["--dry-run=server"]].concat())
        .await;
    dry.assert_ok();
    assert!(
        env.double
            .mutating_requests()
            .iter()
            .all(|r| r.is_dry_run()),
        "{:?}",
        env.double.mutating_requests()
    );
    assert_eq!(env.aws_auth_data().unwrap(), before_auth);
    let untouched = aws.get_role(&instance_name).await.unwrap().unwrap();
    assert_eq!(
        untouched.inline_policies.keys().collect::<Vec<_>>(),
        ["theirs"]
    );

    let run = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    let report = run.json();
    assert_eq!(report["roleArn"], instance);
    let manual = &report["manualSteps"][0];
    let command = manual["command"].as_str().unwrap();
    assert!(
        command.starts_with("aws ec2 authorize-security-group-ingress --region us-east-1 --group-id $(aws eks describe-cluster --name ")
            && command.contains("FromPort=80")
            && command.contains("FromPort=443"),
        "{manual}"
    );
    let role = aws.get_role(&instance_name).await.unwrap().unwrap();
    assert!(
        role.inline_policies["mlplatform-hopsworks-eks-ecr"]
            .to_string()
            .contains(&Env::arn_of(&env.cluster))
    );
    assert!(role.inline_policies.contains_key("theirs"));
    let cross_role = aws.get_role(&cross_name).await.unwrap().unwrap();
    assert!(
        cross_role.inline_policies["mlplatform-hopsworks-ecr-delete"]
            .to_string()
            .contains("ecr:DeleteRepository")
    );
    let map_roles = env.aws_auth_data().unwrap()["mapRoles"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        map_roles.contains(&instance)
            && map_roles.contains("username: hopsworks")
            && map_roles.contains("mlplatform:hopsworks")
            && !map_roles.contains("system:masters"),
        "{map_roles}"
    );
    let binding = env
        .object(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("hopsworks"),
            "mlplatform-hopsworks-hopsworks",
        )
        .expect("group bound in its namespace");
    assert_eq!(binding["subjects"][0]["name"], "mlplatform:hopsworks");
    // The table says the manual step clearly.
    env.double.clear_requests();
    let table = env.run(&connect).await;
    table.assert_ok();
    assert!(
        table.stdout.contains("nothing to change"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("MANUAL STEP (security-group-ports)"),
        "{}",
        table.stdout
    );
    assert_eq!(env.double.mutating_requests(), vec![]);

    // doctor passes (the manual step is repeated as a warning), then fails after sabotage.
    env.seed_webhook_configurations();
    let doctor = [
        "doctor",
        "--profile",
        "hopsworks",
        "--instance-role-arn",
        &instance,
        "--cross-account-role-arn",
        &cross,
    ];
    let ok = env.run(&doctor).await;
    ok.assert_ok();
    assert!(
        ok.stdout.contains("manual step: security-group-ports")
            && ok.stdout.contains("authorize-security-group-ingress"),
        "{}",
        ok.stdout
    );
    aws.delete_inline_policy(&cross_name, "mlplatform-hopsworks-ecr-delete")
        .await
        .unwrap();
    let bad = env.run(&doctor).await;
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stdout
            .contains(&format!("{cross_name}/mlplatform-hopsworks-ecr-delete"))
            && bad
                .stdout
                .contains("kubectl mlplatform connect --profile hopsworks"),
        "{}",
        bad.stdout
    );
    env.run(&connect).await.assert_ok();

    // disconnect: our policies and mapping go; the roles and their own policies stay.
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &instance,
            "--cross-account-role-arn",
            &cross,
        ])
        .await;
    run.assert_ok();
    let role = aws.get_role(&instance_name).await.unwrap().expect("kept");
    assert_eq!(role.inline_policies.keys().collect::<Vec<_>>(), ["theirs"]);
    let cross_role = aws.get_role(&cross_name).await.unwrap().expect("kept");
    assert!(cross_role.inline_policies.is_empty());
    assert_eq!(env.aws_auth_data().unwrap(), before_auth);
    assert!(
        env.object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "mlplatform-hopsworks-workloads"
        )
        .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopsworks_refuses_before_any_write() {
    let env = Env::new().await;
    let aws = env.aws().await;
    // A role that does not exist: never created.
    let missing = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/nope-{}", env.cluster);
    let run = env
        .run(&[
            "connect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &missing,
        ])
        .await;
    assert_refused(&run, 1, "does not exist");
    assert_eq!(env.double.mutating_requests(), vec![]);

    // Duplicate aws-auth entries for the role: refused in preflight, before IAM is written.
    let name = format!("hopsworks-dup-{}", env.cluster);
    let arn = existing_role(&aws, &name).await;
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": format!("- rolearn: {arn}\n  username: a\n  groups: [g]\n- rolearn: {arn}\n  username: b\n  groups: [g]\n")},
    }));
    env.double.clear_requests();
    let run = env
        .run(&[
            "connect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &arn,
        ])
        .await;
    assert_refused(&run, 1, "aws-auth");
    assert_eq!(env.double.mutating_requests(), vec![]);
    let role = aws.get_role(&name).await.unwrap().unwrap();
    assert!(role.inline_policies.is_empty(), "IAM was written");
}

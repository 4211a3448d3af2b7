//! hopsworks: connect → doctor → connect again → disconnect with the real plugin binary against
//! a real cluster (`MLPLATFORM_E2E_KUBECONFIG`) and moto_server, where the instance role and the
//! cross-account role are made first (the profile never creates them).

mod profile_e2e_support;

use kubectl_mlplatform::aws::Aws;
use mlplatform_testkit::unique_name;
use profile_e2e_support::{Cleanup, Plugin, assert_healthy_apart_from_webhook, with, writes};
use serde_json::json;

const PROFILE: &str = "hopsworks";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopsworks_connect_doctor_reconnect_disconnect() {
    let Some(plugin) = Plugin::for_test(PROFILE) else {
        return;
    };
    let aws = Aws::from_conf(profile_e2e_support::REGION, Some(&plugin.moto.endpoint()))
        .await
        .expect("moto clients");
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let instance_name = unique_name("hw-instance");
    let cross_name = unique_name("hw-cross");
    let instance = aws
        .create_role(&instance_name, "/", &trust, "e2e", &[])
        .await
        .unwrap();
    let cross = aws
        .create_role(&cross_name, "/", &trust, "e2e", &[])
        .await
        .unwrap();
    let namespace = unique_name("hops");
    let common = [
        "-n",
        namespace.as_str(),
        "--instance-role-arn",
        instance.as_str(),
        "--cross-account-role-arn",
        cross.as_str(),
    ];
    let _cleanup = Cleanup {
        plugin: &plugin,
        args: plugin.args(
            "disconnect",
            PROFILE,
            &with(&common, &["--delete-namespace"]),
        ),
    };
    let connect = plugin.args("connect", PROFILE, &with(&common, &["-o", "json"]));
    let first = tokio::task::block_in_place(|| plugin.ok_json(&connect));
    assert_eq!(first["roleArn"], instance.as_str());
    assert!(
        first["manualSteps"][0]["command"]
            .as_str()
            .is_some_and(|c| c.contains("authorize-security-group-ingress")),
        "{first}"
    );

    let doctor = plugin.args("doctor", PROFILE, &with(&common, &["-o", "json"]));
    let report = tokio::task::block_in_place(|| plugin.doctor_json(&doctor));
    assert_healthy_apart_from_webhook(&report);

    let second = tokio::task::block_in_place(|| plugin.ok_json(&connect));
    assert!(writes(&second).is_empty(), "{second}");

    let disconnect = plugin.args(
        "disconnect",
        PROFILE,
        &with(&common, &["--delete-namespace", "-o", "json"]),
    );
    tokio::task::block_in_place(|| plugin.ok_json(&disconnect));
    let role = aws
        .get_role(&instance_name)
        .await
        .unwrap()
        .expect("role kept");
    assert!(
        role.inline_policies.is_empty(),
        "{:?}",
        role.inline_policies
    );
    assert!(aws.get_role(&cross_name).await.unwrap().is_some());
}

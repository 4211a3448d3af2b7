//! sagemaker-operator: connect → doctor → connect again → disconnect with the real plugin
//! binary against a real cluster (`MLPLATFORM_E2E_KUBECONFIG`) and moto_server.

mod profile_e2e_support;

use profile_e2e_support::{
    Cleanup, Plugin, assert_healthy_apart_from_webhook, failed_checks, writes,
};

const PROFILE: &str = "sagemaker-operator";

#[test]
fn sagemaker_operator_connect_doctor_reconnect_disconnect() {
    let Some(plugin) = Plugin::for_test(PROFILE) else {
        return;
    };
    let _cleanup = Cleanup {
        plugin: &plugin,
        args: plugin.args("disconnect", PROFILE, &[]),
    };
    let connect = plugin.args("connect", PROFILE, &["-o", "json"]);
    let first = plugin.ok_json(&connect);
    assert_eq!(first["namespace"], "sagemaker-k8s-operator-system");
    let role_arn = first["roleArn"].as_str().unwrap_or_default().to_owned();
    assert!(role_arn.contains(&plugin.cluster), "{first}");

    let doctor = plugin.args("doctor", PROFILE, &["-o", "json"]);
    let report = plugin.doctor_json(&doctor);
    assert_healthy_apart_from_webhook(&report);

    let second = plugin.ok_json(&connect);
    assert!(writes(&second).is_empty(), "{second}");

    // The namespace stays (the operator may live in it); only what connect made goes.
    let gone = plugin.ok_json(&plugin.args("disconnect", PROFILE, &["-o", "json"]));
    assert!(
        writes(&gone)
            .iter()
            .any(|c| c["kind"] == "IRSARole" && c["change"] == "deleted"),
        "{gone}"
    );
    let (code, stdout, _) = plugin.run(&doctor);
    assert_eq!(code, 1, "doctor must fail after disconnect: {stdout}");
    assert!(
        !failed_checks(&serde_json::from_str(&stdout).unwrap_or_default()).is_empty(),
        "{stdout}"
    );
}

//! arthur: connect → doctor → connect again → disconnect with the real plugin binary against a
//! real cluster (`MLPLATFORM_E2E_KUBECONFIG`) and moto_server. The cluster's default
//! StorageClass is demoted while the test runs and restored by disconnect.

mod profile_e2e_support;

use mlplatform_testkit::unique_name;
use profile_e2e_support::{Cleanup, Plugin, with, writes};

const PROFILE: &str = "arthur";

#[test]
fn arthur_connect_doctor_reconnect_disconnect() {
    let Some(plugin) = Plugin::for_test(PROFILE) else {
        return;
    };
    let namespace = unique_name("arthur");
    let common = [
        "-n",
        namespace.as_str(),
        "--s3-bucket",
        "mlplatform-e2e-arthur",
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
    let first = plugin.ok_json(&connect);
    assert_eq!(first["namespace"], namespace.as_str());
    assert!(
        first["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "StorageClass" && c["name"] == "gp3"),
        "{first}"
    );

    // doctor: the only acceptable failure on a real cluster is a missing EBS CSI driver,
    // which connect does not install (it says how).
    let doctor = plugin.args("doctor", PROFILE, &with(&common, &["-o", "json"]));
    let (_, stdout, _) = plugin.run(&doctor);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("doctor JSON");
    // The webhook is not installed either (no published image; webhook_e2e covers it).
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "fail")
        .filter(|c| c["name"] != "CSIDriver ebs.csi.aws.com")
        .filter(|c| c["fix"] != "kubectl mlplatform webhook install")
        .collect();
    assert!(failed.is_empty(), "{failed:?}\n{report}");

    let second = plugin.ok_json(&connect);
    assert!(writes(&second).is_empty(), "{second}");

    let gone = plugin.ok_json(&plugin.args(
        "disconnect",
        PROFILE,
        &with(&common, &["--delete-namespace", "-o", "json"]),
    ));
    assert!(
        writes(&gone)
            .iter()
            .any(|c| c["kind"] == "StorageClass" && c["change"] == "deleted"),
        "{gone}"
    );
}

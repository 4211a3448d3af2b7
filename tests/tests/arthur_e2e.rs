//! arthur: connect → doctor → connect again → disconnect with the real plugin binary against a
//! real cluster (`MLPLATFORM_E2E_KUBECONFIG`) and moto_server. The cluster's default
//! StorageClass is demoted while the test runs and restored by disconnect.

mod profile_e2e_support;

use mlplatform_testkit::unique_name;
use profile_e2e_support::{Cleanup, Plugin, failed_checks, with, writes};

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
    let failed = failed_checks(&report);
    assert!(
        failed.iter().all(|c| c == "CSIDriver ebs.csi.aws.com"),
        "{report}"
    );

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

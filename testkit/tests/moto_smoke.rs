//! moto_server through the real AWS SDK (in-process) and through a child process's env.

use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use mlplatform_testkit::{Moto, unique_name};

#[tokio::test]
async fn shared_moto_serves_sts_eks_and_iam_through_the_sdk() {
    let moto = Moto::shared();
    let name = unique_name("demo");
    let cluster = moto.create_eks_cluster(&name, "us-east-1").unwrap();
    assert_eq!(
        cluster["arn"],
        format!("arn:aws:eks:us-east-1:{MOTO_ACCOUNT_ID}:cluster/{name}")
    );
    let issuer = cluster["identity"]["oidc"]["issuer"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        issuer.starts_with("https://oidc.eks.us-east-1.amazonaws.com/id/"),
        "{issuer}"
    );
    let again = moto.create_eks_cluster(&name, "us-east-1").unwrap_err();
    assert!(again.to_string().contains("HTTP 409"), "{again}");

    let config = moto.sdk_config().await;
    let me = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(MOTO_ACCOUNT_ID));

    let described = aws_sdk_eks::Client::new(&config)
        .describe_cluster()
        .name(&name)
        .send()
        .await
        .unwrap();
    let described = described.cluster().unwrap();
    assert_eq!(
        described
            .identity()
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer()),
        Some(issuer.as_str())
    );

    let iam = aws_sdk_iam::Client::new(&config);
    let provider = iam
        .create_open_id_connect_provider()
        .url(&issuer)
        .client_id_list("sts.amazonaws.com")
        .send()
        .await
        .unwrap();
    let arn = provider.open_id_connect_provider_arn().unwrap();
    assert_eq!(
        arn,
        format!(
            "arn:aws:iam::{MOTO_ACCOUNT_ID}:oidc-provider/{}",
            issuer.trim_start_matches("https://")
        )
    );
    let managed = iam
        .get_policy()
        .policy_arn("arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
        .send()
        .await
        .unwrap();
    assert!(managed.policy().is_some(), "managed policies are loaded");
}

#[test]
fn env_points_a_child_process_at_moto_only() {
    let moto = Moto::shared();
    let script = "import boto3; print(boto3.client('sts').get_caller_identity()['Account'])";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), MOTO_ACCOUNT_ID);
}

#[test]
fn private_moto_is_isolated_and_stops_on_drop() {
    let private = Moto::start();
    let endpoint = private.endpoint();
    assert_ne!(endpoint, Moto::shared().endpoint());
    private
        .create_eks_cluster(&unique_name("p"), "eu-west-1")
        .unwrap();
    private.reset();
    let name = unique_name("p");
    private.create_eks_cluster(&name, "eu-west-1").unwrap();
    drop(private);
    let addr = endpoint.trim_start_matches("http://").parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500)).is_err(),
        "moto stopped with its handle"
    );
}

/// Run by `missing_moto_is_one_clear_line` in a child process with an empty PATH.
#[test]
#[ignore = "run by missing_moto_is_one_clear_line with PATH emptied"]
fn start_without_moto_on_path() {
    let _ = Moto::start();
}

#[test]
fn missing_moto_is_one_clear_line() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "start_without_moto_on_path",
            "--ignored",
            "--nocapture",
        ])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("moto_server not found: pip install 'moto[server]'"),
        "{stderr}"
    );
}

/// The EKS stand-in (`mlplatform_testkit::eks_standin`) in front of moto.
#[path = "moto_smoke/standin.rs"]
mod standin;
#[path = "moto_smoke/standin_access.rs"]
mod standin_access;

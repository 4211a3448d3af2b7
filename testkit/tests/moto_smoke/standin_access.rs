//! The EKS stand-in in front of moto: access entries, the authentication mode, requests
//! forwarded to moto, and malformed requests (part of the `moto_smoke` test binary).

use std::time::Duration;

use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AuthenticationMode, UpdateAccessConfigRequest, UpdateStatus,
};
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use mlplatform_testkit::{EksStandIn, Moto, unique_name};

use crate::standin::{POD_IDENTITY_TRUST, clients, code, create_cluster, create_role};

const EDIT_POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy";

#[tokio::test]
async fn access_entries_and_the_authentication_mode() {
    let standin = EksStandIn::shared();
    let (eks, iam) = clients(standin).await;
    let cluster = create_cluster(&eks, None).await;
    let principal = create_role(&iam, POD_IDENTITY_TRUST).await;
    let mode = |eks: aws_sdk_eks::Client, name: String| async move {
        let out = eks.describe_cluster().name(name).send().await.unwrap();
        out.cluster()
            .and_then(|c| c.access_config())
            .and_then(|a| a.authentication_mode())
            .cloned()
    };
    assert_eq!(
        mode(eks.clone(), cluster.clone()).await,
        Some(AuthenticationMode::ConfigMap)
    );

    let refused = eks
        .create_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&refused),
        ("InvalidRequestException".into(), "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.".into())
    );

    let switch = |to: AuthenticationMode| {
        eks.update_cluster_config()
            .name(&cluster)
            .access_config(
                UpdateAccessConfigRequest::builder()
                    .authentication_mode(to)
                    .build(),
            )
            .send()
    };
    let skip = switch(AuthenticationMode::Api).await.unwrap_err();
    assert_eq!(
        code(&skip),
        (
            "InvalidParameterException".into(),
            "Unsupported authentication mode update from CONFIG_MAP to API".into()
        )
    );
    let update = switch(AuthenticationMode::ApiAndConfigMap).await.unwrap();
    let update = update.update().unwrap();
    assert_eq!(update.status(), Some(&UpdateStatus::InProgress));
    let done = eks
        .describe_update()
        .name(&cluster)
        .update_id(update.id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.update().and_then(|u| u.status()),
        Some(&UpdateStatus::Successful)
    );
    assert_eq!(
        mode(eks.clone(), cluster.clone()).await,
        Some(AuthenticationMode::ApiAndConfigMap)
    );
    let back = switch(AuthenticationMode::ConfigMap).await.unwrap_err();
    assert_eq!(
        code(&back).1,
        "Unsupported authentication mode update from API_AND_CONFIG_MAP to CONFIG_MAP"
    );

    // Entry lifecycle with a namespace-scoped policy.
    let made = eks
        .create_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .kubernetes_groups("ml-team-editors")
        .tags("app.kubernetes.io/managed-by", "kubectl-mlplatform")
        .send()
        .await
        .unwrap();
    let entry = made.access_entry().unwrap();
    assert_eq!(entry.r#type(), Some("STANDARD"));
    assert!(
        entry
            .username()
            .is_some_and(|u| u.contains(":assumed-role/")),
        "{entry:?}"
    );
    assert_eq!(entry.kubernetes_groups(), ["ml-team-editors"]);
    let dup = eks
        .create_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&dup),
        (
            "ResourceInUseException".into(),
            "The specified access entry resource is already in use on this cluster.".into()
        )
    );
    let scope = AccessScope::builder()
        .r#type(AccessScopeType::Namespace)
        .namespaces("ml-team")
        .build();
    let associated = eks
        .associate_access_policy()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .policy_arn(EDIT_POLICY)
        .access_scope(scope)
        .send()
        .await
        .unwrap();
    let policy = associated.associated_access_policy().unwrap();
    assert_eq!(
        policy.access_scope().and_then(|s| s.r#type()),
        Some(&AccessScopeType::Namespace)
    );
    let listed = eks
        .list_associated_access_policies()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .send()
        .await
        .unwrap();
    let policies = listed.associated_access_policies();
    assert_eq!(policies.len(), 1);
    assert_eq!(
        policies[0].access_scope().map(|s| s.namespaces()),
        Some(&["ml-team".to_string()][..])
    );
    let with_policy = eks
        .list_access_entries()
        .cluster_name(&cluster)
        .associated_policy_arn(EDIT_POLICY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_policy.access_entries(),
        std::slice::from_ref(&principal)
    );
    let offered = eks.list_access_policies().send().await.unwrap();
    assert!(
        offered
            .access_policies()
            .iter()
            .any(|p| p.arn() == Some(EDIT_POLICY))
    );

    let updated = eks
        .update_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .kubernetes_groups("ml-team-viewers")
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.access_entry().map(|e| e.kubernetes_groups()),
        Some(&["ml-team-viewers".to_string()][..])
    );
    let masters = eks
        .update_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .kubernetes_groups("system:masters")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&masters).0, "InvalidParameterException");
    eks.disassociate_access_policy()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .policy_arn(EDIT_POLICY)
        .send()
        .await
        .unwrap();
    eks.delete_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .send()
        .await
        .unwrap();
    let gone = eks
        .describe_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .send()
        .await
        .unwrap_err();
    assert!(gone.into_service_error().is_resource_not_found_exception());

    switch(AuthenticationMode::Api).await.unwrap();
    assert_eq!(
        mode(eks.clone(), cluster.clone()).await,
        Some(AuthenticationMode::Api)
    );
    assert!(switch(AuthenticationMode::ApiAndConfigMap).await.is_err());

    // CreateCluster's own accessConfig is honoured; presets and hooks too.
    let api_cluster = create_cluster(&eks, Some(AuthenticationMode::ApiAndConfigMap)).await;
    assert_eq!(
        standin.authentication_mode(&api_cluster),
        "API_AND_CONFIG_MAP"
    );
    standin.preset_access_entry(
        &api_cluster,
        "arn:aws:iam::123456789012:role/nodes",
        &[],
        &[],
    );
    let entries = eks
        .list_access_entries()
        .cluster_name(&api_cluster)
        .send()
        .await
        .unwrap();
    assert_eq!(
        entries.access_entries(),
        ["arn:aws:iam::123456789012:role/nodes"]
    );
}

#[tokio::test]
async fn other_services_pass_through_to_moto_unchanged() {
    let moto = Moto::start();
    let standin = EksStandIn::start(&moto);
    let (eks, iam) = clients(&standin).await;
    let direct = moto.sdk_config().await;

    let role = create_role(&iam, POD_IDENTITY_TRUST).await;
    let name = role.rsplit('/').next().unwrap();
    let via_moto = aws_sdk_iam::Client::new(&direct)
        .get_role()
        .role_name(name)
        .send()
        .await
        .unwrap();
    assert_eq!(via_moto.role().map(|r| r.arn()), Some(role.as_str()));
    let me = aws_sdk_sts::Client::new(&standin.sdk_config().await)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(MOTO_ACCOUNT_ID));

    // moto's own EKS answers come through, errors included.
    let cluster = standin.create_eks_cluster(&unique_name("p")).unwrap();
    assert_eq!(cluster["accessConfig"]["authenticationMode"], "CONFIG_MAP");
    let listed = eks.list_clusters().send().await.unwrap();
    assert_eq!(listed.clusters().len(), 1);
    let missing = eks
        .describe_cluster()
        .name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing).0, "ResourceNotFoundException");

    let calls = standin.calls();
    let forwarded: Vec<_> = calls.iter().filter(|c| c.operation.is_none()).collect();
    assert!(
        forwarded
            .iter()
            .any(|c| c.method == "POST" && c.path == "/"),
        "{calls:?}"
    );
    assert!(
        forwarded
            .iter()
            .any(|c| c.path.starts_with("/clusters/nope") && c.status == 404)
    );

    // Another SDK (boto3, in a child process) parses the same wire format.
    let cluster_name = cluster["name"].as_str().unwrap().to_string();
    standin.preset_pod_identity_association(&cluster_name, "ml", "sa", &role, &[]);
    let script = format!(
        "import boto3; e = boto3.client('eks'); \
         print(e.list_pod_identity_associations(clusterName='{cluster_name}')['associations'][0]['serviceAccount']); \
         print(e.describe_cluster(name='{cluster_name}')['cluster']['accessConfig']['authenticationMode'])"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .envs(standin.env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sa\nCONFIG_MAP"
    );

    let endpoint = standin.endpoint();
    drop(standin);
    let addr = endpoint.trim_start_matches("http://").parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "the stand-in stopped with its handle"
    );
}

/// A raw HTTP/1.0 exchange: (status, x-amzn-ErrorType, body).
fn raw(endpoint: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/eks/aws4_request, SignedHeaders=host, Signature=0";
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let error_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-amzn-errortype: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, error_type, body.to_string())
}

#[tokio::test]
async fn malformed_requests_get_the_services_errors() {
    let standin = EksStandIn::shared();
    let (eks, _) = clients(standin).await;
    let cluster = create_cluster(&eks, None).await;
    let endpoint = standin.endpoint();
    let associations = format!("/clusters/{cluster}/pod-identity-associations");
    let cases = [
        (
            "POST",
            associations.clone(),
            "not json",
            400,
            "serializationexception",
        ),
        (
            "POST",
            associations.clone(),
            r#"{"namespace": 7}"#,
            400,
            "invalidparameterexception",
        ),
        (
            "POST",
            associations.clone(),
            r#"{"namespace": "a", "serviceAccount": "b", "roleArn": "arn:aws:iam::123456789012:role/x", "tags": {"aws:x": "y"}}"#,
            400,
            "invalidparameterexception",
        ),
        (
            "GET",
            format!("{associations}?maxResults=1000"),
            "",
            400,
            "invalidparameterexception",
        ),
        (
            "GET",
            format!("{associations}?nextToken=%zz"),
            "",
            400,
            "invalidparameterexception",
        ),
        (
            "GET",
            format!("/clusters/{cluster}/addons/%ff%fe"),
            "",
            400,
            "invalidparameterexception",
        ),
        ("PUT", associations.clone(), "", 501, "notimplemented"),
        (
            "POST",
            format!("/clusters/{cluster}/addons/vpc-cni/update"),
            "{}",
            501,
            "notimplemented",
        ),
        (
            "POST",
            format!("/clusters/{cluster}/update-config"),
            r#"{"accessConfig": "API"}"#,
            400,
            "invalidparameterexception",
        ),
        (
            "GET",
            "/tags/arn%3Aaws%3Aeks%3Aus-east-1%3A123456789012%3Aaddon%2Fnope%2Fx%2Fy".to_string(),
            "",
            404,
            "notfoundexception",
        ),
    ];
    for (method, path, body, status, error_type) in cases {
        let (got, kind, answer) = raw(&endpoint, method, &path, body);
        assert_eq!(
            (got, kind.as_str()),
            (status, error_type),
            "{method} {path}: {answer}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(parsed["message"].is_string(), "{answer}");
    }
    assert!(
        standin
            .eks_writes_for(&cluster)
            .iter()
            .all(|c| c.status >= 400)
    );
}

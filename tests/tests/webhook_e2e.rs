//! End to end against a real cluster (issue 2 §7): the locally started webhook binary is
//! registered with the API server through the manifests/ webhook configurations (with a
//! `url:` clientConfig and the test CA as caBundle), then pods and workloads are created
//! through the API server and the mutations and denials checked.
//!
//! Skipped (passes, says why) unless `MLPLATFORM_E2E_KUBECONFIG` names a kubeconfig; fails
//! when unset and `MLPLATFORM_E2E_REQUIRED=1`. The API server must reach this machine:
//! `MLPLATFORM_E2E_WEBHOOK_HOST` (an IP or DNS name the API server can dial, e.g. the
//! docker bridge gateway for kind) overrides the default, this machine's address on the
//! route to the API server. Everything created is named `mlp-e2e-<random>` and deleted at
//! the end, also when a check fails.
mod webhook_support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, IRSA_ROLE_ARN_ANNOTATION, MANAGED_LABEL, MANAGED_VALUE,
    SYSTEM_SERVICE_ACCOUNTS_ANNOTATION, USER_SERVICE_ACCOUNT_ANNOTATION, eks,
};
use serde_json::{Value, json};
use webhook_support::manifests::Manifests;
use webhook_support::process::{free_port, start_webhook};

/// What the environment asks this test to do.
#[derive(Debug, PartialEq, Eq)]
enum E2eMode {
    Run(PathBuf),
    Skip(String),
    Fail(String),
}

fn e2e_mode(kubeconfig: Option<&str>, required: Option<&str>) -> E2eMode {
    match kubeconfig.map(str::trim).filter(|k| !k.is_empty()) {
        Some(path) => E2eMode::Run(PathBuf::from(path)),
        None if required == Some("1") => E2eMode::Fail(
            "MLPLATFORM_E2E_REQUIRED=1 but MLPLATFORM_E2E_KUBECONFIG is not set; point it at a real cluster's kubeconfig".into(),
        ),
        None => E2eMode::Skip(
            "MLPLATFORM_E2E_KUBECONFIG is not set; set it to a real cluster's kubeconfig to run the webhook e2e test".into(),
        ),
    }
}

#[test]
fn e2e_mode_follows_the_environment() {
    assert_eq!(e2e_mode(Some("/k"), None), E2eMode::Run("/k".into()));
    assert_eq!(e2e_mode(Some("/k"), Some("1")), E2eMode::Run("/k".into()));
    assert!(matches!(e2e_mode(None, None), E2eMode::Skip(_)));
    assert!(matches!(e2e_mode(Some(" "), Some("0")), E2eMode::Skip(_)));
    assert!(matches!(e2e_mode(None, Some("1")), E2eMode::Fail(_)));
}

#[tokio::test]
async fn webhook_mutates_and_enforces_through_a_real_api_server() {
    let kubeconfig = std::env::var("MLPLATFORM_E2E_KUBECONFIG").ok();
    let required = std::env::var("MLPLATFORM_E2E_REQUIRED").ok();
    let path = match e2e_mode(kubeconfig.as_deref(), required.as_deref()) {
        E2eMode::Run(path) => path,
        E2eMode::Skip(why) => {
            eprintln!("skipping webhook e2e: {why}");
            return;
        }
        E2eMode::Fail(why) => panic!("{why}"),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let webhook_bin = webhook_binary().expect("webhook e2e");
    let (client, server) = connect(&path)
        .await
        .expect("cluster from MLPLATFORM_E2E_KUBECONFIG");
    let host = webhook_host(&server).await.expect("webhook host");
    run_scenario(&client, &path, &host, &webhook_bin).await;
}

/// The same scenario with the testkit's API double as the API server: it calls admission
/// webhooks the way kube-apiserver does (rules, namespaceSelector, caBundle-verified HTTPS
/// to the `url:`, patches, denials), so the scenario runs on every machine.
#[tokio::test]
async fn webhook_mutates_and_enforces_through_the_kube_double() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let webhook_bin = match webhook_binary() {
        Ok(bin) => bin,
        Err(e) if std::env::var("MLPLATFORM_E2E_REQUIRED").as_deref() != Ok("1") => {
            eprintln!("skipping webhook e2e against the double: {e:#}");
            return;
        }
        Err(e) => panic!("{e:#}"),
    };
    let double = mlplatform_testkit::KubeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig, "kube-double").unwrap();
    run_scenario(&double.client(), &kubeconfig, "127.0.0.1", &webhook_bin).await;
}

fn webhook_binary() -> anyhow::Result<PathBuf> {
    webhook_support::workspace_binary("mlplatform-webhook", "MLPLATFORM_WEBHOOK_BIN").context(
        "mlplatform-webhook is not built: run `cargo build -p mlplatform-webhook` or set MLPLATFORM_WEBHOOK_BIN",
    )
}

/// Runs the scenario, always cleans up, then fails with the first problem.
async fn run_scenario(
    client: &Client,
    kubeconfig: &std::path::Path,
    host: &str,
    bin: &std::path::Path,
) {
    let names = Names::random();
    let mut webhook = None;
    let outcome = run(client, kubeconfig, host, bin, &names, &mut webhook).await;
    let cleanup = cleanup(client, &names).await;
    if let Some(child) = webhook.as_mut() {
        let _ = child.kill().await;
    }
    outcome.expect("webhook e2e");
    cleanup.expect("webhook e2e cleanup");
}

/// Names of everything this run creates.
struct Names {
    suffix: String,
    namespace: String,
    user_sa: String,
    system_sa: String,
    configuration: String,
    role_arn: String,
}

impl Names {
    fn random() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or_default();
        let suffix = format!("{:08x}", nanos ^ std::process::id().rotate_left(16));
        Self {
            namespace: format!("mlp-e2e-{suffix}"),
            user_sa: "e2e-user".into(),
            system_sa: "e2e-system".into(),
            configuration: format!("mlp-e2e-{suffix}"),
            role_arn: format!("arn:aws:iam::111122223333:role/mlp-e2e-{suffix}"),
            suffix,
        }
    }
}

async fn connect(path: &std::path::Path) -> anyhow::Result<(Client, http::Uri)> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let server = config.cluster_url.clone();
    Ok((Client::try_from(config)?, server))
}

/// The address the API server should dial for the webhook.
async fn webhook_host(server: &http::Uri) -> anyhow::Result<String> {
    if let Ok(host) = std::env::var("MLPLATFORM_E2E_WEBHOOK_HOST")
        && !host.trim().is_empty()
    {
        return Ok(host.trim().to_owned());
    }
    let host = server
        .host()
        .ok_or_else(|| anyhow!("API server URL has no host"))?;
    let port = server.port_u16().unwrap_or(443);
    let api = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve API server {host}"))?;
    // A connected UDP socket sends nothing; its local address is the one on the route.
    let probe = std::net::UdpSocket::bind(if api.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    probe.connect(api)?;
    let local = probe.local_addr()?.ip();
    if local.is_loopback() {
        // A kube-apiserver process on this machine dials loopback fine; one in a container
        // (kind, k3d) cannot, and needs MLPLATFORM_E2E_WEBHOOK_HOST.
        eprintln!(
            "webhook e2e: the API server is on loopback ({api}); serving the webhook on {local}. \
             If the API server runs in a container, set MLPLATFORM_E2E_WEBHOOK_HOST to this \
             machine's address as the cluster sees it"
        );
    }
    Ok(local.to_string())
}

async fn cleanup(client: &Client, names: &Names) -> anyhow::Result<()> {
    let dp = DeleteParams::background();
    let mut errors = Vec::new();
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let vwc: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let ns: Api<Namespace> = Api::all(client.clone());
    // Configurations first: a namespace being deleted must not wait on the webhook.
    if let Err(e) = ignore_not_found(mwc.delete(&names.configuration, &dp).await.map(drop)) {
        errors.push(format!("MutatingWebhookConfiguration: {e}"));
    }
    if let Err(e) = ignore_not_found(vwc.delete(&names.configuration, &dp).await.map(drop)) {
        errors.push(format!("ValidatingWebhookConfiguration: {e}"));
    }
    if let Err(e) = ignore_not_found(ns.delete(&names.namespace, &dp).await.map(drop)) {
        errors.push(format!("namespace: {e}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("cleanup failed: {}", errors.join("; "))
    }
}

fn ignore_not_found(result: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}

/// CA and serving certificate for `host` (IP or DNS name).
fn certificates(host: &str) -> anyhow::Result<(String, String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "mlplatform e2e CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name.push(DnType::CommonName, host);
    for name in [host, "127.0.0.1", "localhost"] {
        leaf.subject_alt_names.push(match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.try_into()?),
        });
    }
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// The manifests/ configurations, renamed for this run, pointed at `base_url` with the CA,
/// and narrowed to this run's namespace so other namespaces on the cluster are untouched.
fn configurations(
    names: &Names,
    base_url: &str,
    ca_pem: &str,
) -> (MutatingWebhookConfiguration, ValidatingWebhookConfiguration) {
    let m = Manifests::load();
    let client_config = |old: &WebhookClientConfig| {
        let path = old
            .service
            .as_ref()
            .and_then(|s| s.path.clone())
            .unwrap_or_default();
        WebhookClientConfig {
            url: Some(format!("{base_url}{path}")),
            service: None,
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        }
    };
    let only_this_namespace = LabelSelectorRequirement {
        key: "kubernetes.io/metadata.name".into(),
        operator: "In".into(),
        values: Some(vec![names.namespace.clone()]),
    };
    let meta = || ObjectMeta {
        name: Some(names.configuration.clone()),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/part-of".to_owned(),
            "mlplatform-e2e".to_owned(),
        )])),
        ..ObjectMeta::default()
    };
    let mut mutating = m.mutating;
    mutating.metadata = meta();
    for w in mutating.webhooks.iter_mut().flatten() {
        w.name = format!("{}.{}", names.suffix, w.name);
        w.client_config = client_config(&w.client_config);
        if let Some(sel) = w.namespace_selector.as_mut() {
            sel.match_expressions
                .get_or_insert_with(Vec::new)
                .push(only_this_namespace.clone());
        }
    }
    let mut validating = m.validating;
    validating.metadata = meta();
    for w in validating.webhooks.iter_mut().flatten() {
        w.name = format!("{}.{}", names.suffix, w.name);
        w.client_config = client_config(&w.client_config);
        if let Some(sel) = w.namespace_selector.as_mut() {
            sel.match_expressions
                .get_or_insert_with(Vec::new)
                .push(only_this_namespace.clone());
        }
    }
    (mutating, validating)
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("test object matches its k8s-openapi type")
}

fn pod(name: &str, service_account: Option<&str>) -> Pod {
    let mut spec = json!({
        "containers": [
            {"name": "main", "image": "registry.k8s.io/pause:3.10",
             "env": [{"name": "USER_SET", "value": "kept"}]},
            {"name": "sidecar", "image": "registry.k8s.io/pause:3.10"},
        ],
        "initContainers": [{"name": "init", "image": "registry.k8s.io/pause:3.10"}],
    });
    if let Some(sa) = service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    from_json(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
}

fn pod_template(service_account: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "e2e"}},
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
        },
    })
}

fn deployment(name: &str, service_account: &str) -> Deployment {
    let mut template = pod_template(service_account);
    template["spec"]["restartPolicy"] = json!("Always");
    from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "e2e"}}, "template": template},
    }))
}

fn cron_job(name: &str, service_account: &str) -> CronJob {
    from_json(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": "0 0 1 1 *", "suspend": true,
                 "jobTemplate": {"spec": {"template": pod_template(service_account)}}},
    }))
}

fn job(name: &str, service_account: &str) -> Job {
    from_json(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"suspend": true, "template": pod_template(service_account)},
    }))
}

/// The create must be denied by the webhook with 403, naming the workload and both SAs.
fn expect_denied<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, kube::Error>,
    asked: &str,
    must: &str,
) -> anyhow::Result<()> {
    match result {
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 403, "{what}: expected 403, got {status:?}");
            for needle in [what, asked, must] {
                ensure!(
                    status.message.contains(needle),
                    "{what}: denial message does not name {needle:?}: {}",
                    status.message
                );
            }
            Ok(())
        }
        Err(other) => bail!("{what}: expected a 403 denial, got {other}"),
        Ok(created) => bail!("{what}: expected a denial, but it was created: {created:?}"),
    }
}

fn env_value<'a>(
    container: &'a k8s_openapi::api::core::v1::Container,
    name: &str,
) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

async fn run(
    client: &Client,
    kubeconfig: &std::path::Path,
    host: &str,
    bin: &std::path::Path,
    names: &Names,
    webhook: &mut Option<tokio::process::Child>,
) -> anyhow::Result<()> {
    let client = client.clone();
    let dir = tempfile::tempdir()?;
    let (ca_pem, cert_pem, key_pem) = certificates(host)?;
    std::fs::write(dir.path().join("tls.crt"), &cert_pem)?;
    std::fs::write(dir.path().join("tls.key"), &key_pem)?;
    let port = free_port()?;
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    *webhook = Some(start_webhook(bin, kubeconfig, dir.path(), port, health).await?);
    let host_in_url = if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let base_url = format!("https://{host_in_url}:{port}");
    eprintln!(
        "webhook e2e: webhook at {base_url}, namespace {}",
        names.namespace
    );

    // The managed namespace, then the webhook configurations.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = from_json(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": names.namespace,
            "labels": {MANAGED_LABEL: MANAGED_VALUE},
            "annotations": {
                USER_SERVICE_ACCOUNT_ANNOTATION: names.user_sa,
                SYSTEM_SERVICE_ACCOUNTS_ANNOTATION: names.system_sa,
                IRSA_ROLE_ARN_ANNOTATION: names.role_arn,
                ENFORCEMENT_ANNOTATION: "enforce",
            },
        },
    }));
    namespaces.create(&PostParams::default(), &ns).await?;
    let (mutating, validating) = configurations(names, &base_url, &ca_pem);
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mutating)
        .await?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating)
        .await?;

    // Configurations reach the API server's webhook informer after a moment: wait until a
    // server-side dry-run pod with the wrong SA is denied.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let started = Instant::now();
    loop {
        match pods.create(&dry_run, &pod("probe", Some("default"))).await {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("default") => break,
            other if started.elapsed() > Duration::from_secs(30) => {
                bail!("the webhook never took effect in the API server (last: {other:?})")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }

    // ServiceAccounts: the user SA gets the namespace's role ARN.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &names.namespace);
    // `other` exists but is not allowed: a missing SA would be refused by the API server's
    // ServiceAccount admission before the webhook is asked.
    for name in [&names.user_sa, &names.system_sa, &"other".to_owned()] {
        let sa: ServiceAccount = from_json(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        );
        sas.create(&PostParams::default(), &sa).await?;
    }
    let user_sa = sas.get(&names.user_sa).await?;
    let annotated = user_sa
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(eks::ROLE_ARN));
    ensure!(
        annotated == Some(&names.role_arn),
        "user SA not annotated with the role: {:?}",
        user_sa.metadata.annotations
    );
    // The webhook's SA cache learns the annotation from its watch; give it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Pods as the user SA get IRSA, everywhere, without losing user env.
    let created = pods
        .create(&PostParams::default(), &pod("irsa", Some(&names.user_sa)))
        .await?;
    let spec = created.spec.as_ref().context("created pod has a spec")?;
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        ensure!(
            env_value(c, "AWS_ROLE_ARN") == Some(names.role_arn.as_str()),
            "container {}: AWS_ROLE_ARN missing: {:?}",
            c.name,
            c.env
        );
        ensure!(
            env_value(c, "AWS_WEB_IDENTITY_TOKEN_FILE")
                == Some("/var/run/secrets/eks.amazonaws.com/serviceaccount/token"),
            "container {}: token file env missing",
            c.name
        );
        ensure!(
            env_value(c, "AWS_REGION") == Some("us-east-1"),
            "container {}: AWS_REGION",
            c.name
        );
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "aws-iam-token")
            .with_context(|| format!("container {}: no aws-iam-token mount", c.name))?;
        ensure!(mount.read_only == Some(true));
        ensure!(mount.mount_path == "/var/run/secrets/eks.amazonaws.com/serviceaccount");
    }
    ensure!(
        env_value(&spec.containers[0], "USER_SET") == Some("kept"),
        "user env lost"
    );
    let token = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "aws-iam-token")
        .and_then(|v| v.projected.as_ref())
        .and_then(|p| p.sources.as_ref())
        .and_then(|s| s.iter().find_map(|src| src.service_account_token.as_ref()))
        .context("no projected aws-iam-token volume")?;
    ensure!(token.audience.as_deref() == Some(eks::DEFAULT_AUDIENCE));

    // Allowed: the system SA. Denied: default (explicit or empty) and unknown SAs.
    pods.create(
        &PostParams::default(),
        &pod("system", Some(&names.system_sa)),
    )
    .await
    .context("pod as the system SA must be admitted")?;
    expect_denied(
        "pod-default",
        pods.create(&PostParams::default(), &pod("pod-default", None))
            .await,
        "default",
        &names.user_sa,
    )?;
    expect_denied(
        "pod-other",
        pods.create(&PostParams::default(), &pod("pod-other", Some("other")))
            .await,
        "other",
        &names.user_sa,
    )?;

    // Workloads: checked on their pod templates.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &names.namespace);
    deployments
        .create(
            &PostParams::default(),
            &deployment("deploy-ok", &names.user_sa),
        )
        .await
        .context("deployment as the user SA must be admitted")?;
    expect_denied(
        "deploy-bad",
        deployments
            .create(&PostParams::default(), &deployment("deploy-bad", "default"))
            .await,
        "default",
        &names.user_sa,
    )?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &names.namespace);
    jobs.create(&PostParams::default(), &job("job-ok", &names.user_sa))
        .await
        .context("job as the user SA must be admitted")?;
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &names.namespace);
    expect_denied(
        "cron-bad",
        cron_jobs
            .create(&PostParams::default(), &cron_job("cron-bad", "builder"))
            .await,
        "builder",
        &names.user_sa,
    )?;
    Ok(())
}

//! manifests/ (issue 2 §6): every object parses strictly as its k8s-openapi type, follows the
//! deployment and admission rules, and is accepted by kubectl (`apply --dry-run=client -f`,
//! `apply --dry-run=client -k`, `kustomize`).
mod webhook_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{RuleWithOperations, WebhookClientConfig};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mlplatform_namespace_policy::{MANAGED_LABEL, MANAGED_VALUE};
use webhook_support::discovery::Discovery;
use webhook_support::manifests::{Manifests, manifests_dir, parse_documents, unknown_fields};
use webhook_support::selector::{namespace_labels, selects};

const WEBHOOK_NAMESPACE: &str = "mlplatform-system";
const SERVICE_NAME: &str = "mlplatform-webhook";
const TLS_SECRET: &str = "mlplatform-webhook-tls";
/// The webhook binary's flags (issue 2 §2).
const WEBHOOK_FLAGS: &[&str] = &[
    "--listen",
    "--health-listen",
    "--tls-cert-file",
    "--tls-key-file",
    "--kubeconfig",
    "--aws-region",
    "--sts-regional-endpoints",
    "--token-audience",
    "--token-expiration",
    "--log-format",
    "--log-level",
    "--max-body-bytes",
    "--shutdown-grace-seconds",
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn pod_spec(m: &Manifests) -> &PodSpec {
    m.deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("deployment has a pod template spec")
}

fn webhook_container(m: &Manifests) -> &Container {
    let containers = &pod_spec(m).containers;
    assert_eq!(containers.len(), 1, "one container, the webhook");
    &containers[0]
}

fn pod_labels(m: &Manifests) -> BTreeMap<String, String> {
    m.deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|meta| meta.labels.clone())
        .unwrap_or_default()
}

/// `--flag=value` from the container args.
fn arg_value<'a>(container: &'a Container, flag: &str) -> Option<&'a str> {
    container
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix(flag)?.strip_prefix('='))
}

/// A named or numbered container port resolved to its number.
fn container_port(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("container has no port named {name}"))
                .container_port
        }
    }
}

fn assert_points_at_service(config: &WebhookClientConfig, path: &str, webhook: &str) {
    assert!(config.url.is_none(), "{webhook}: service, not url");
    let service = config.service.as_ref().expect("service clientConfig");
    assert_eq!(service.name, SERVICE_NAME, "{webhook}");
    assert_eq!(service.namespace, WEBHOOK_NAMESPACE, "{webhook}");
    assert_eq!(service.path.as_deref(), Some(path), "{webhook}");
    assert_eq!(service.port.unwrap_or(443), 443, "{webhook}");
    assert!(
        config.ca_bundle.as_ref().is_none_or(|b| b.0.is_empty()),
        "{webhook}: caBundle is filled by `webhook install`, not shipped"
    );
}

/// (group, resource, operations) triples of a webhook's rules, all v1 and Namespaced.
fn rule_set(rules: Option<&Vec<RuleWithOperations>>) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.expect("webhook has rules") {
        assert_eq!(rule.api_versions.as_deref(), Some(&strings(&["v1"])[..]));
        assert_eq!(rule.scope.as_deref(), Some("Namespaced"));
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for op in rule.operations.iter().flatten() {
                    out.insert((group.clone(), resource.clone(), op.clone()));
                }
            }
        }
    }
    out
}

fn triples(list: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    list.iter()
        .map(|(g, r, o)| ((*g).to_owned(), (*r).to_owned(), (*o).to_owned()))
        .collect()
}

/// Managed tenant namespaces are selected; unmanaged ones and the webhook's own namespace
/// (even if someone labels it) are not.
fn assert_selects_only_managed_namespaces(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    webhook: &str,
) {
    let managed = [(MANAGED_LABEL, MANAGED_VALUE)];
    assert!(
        selects(selector, &namespace_labels("team-a", &managed)),
        "{webhook}"
    );
    assert!(
        !selects(selector, &namespace_labels("team-a", &[])),
        "{webhook}"
    );
    assert!(
        !selects(
            selector,
            &namespace_labels("team-a", &[(MANAGED_LABEL, "false")])
        ),
        "{webhook}"
    );
    for own in [WEBHOOK_NAMESPACE, "kube-system"] {
        assert!(
            !selects(selector, &namespace_labels(own, &managed)),
            "{webhook} must never select {own}"
        );
    }
}

#[test]
fn unknown_fields_are_detected() {
    // The strict loader is what the other tests rely on; show that it catches a typo.
    let docs = parse_documents(
        "typo.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 443, targetPrt: https}]\n",
    );
    let typed: k8s_openapi::api::core::v1::Service =
        serde_json::from_value(docs[0].value.clone()).unwrap();
    let back = serde_json::to_value(typed).unwrap();
    assert_eq!(
        unknown_fields(&docs[0].value, &back),
        vec![".spec.ports[0].targetPrt"]
    );
}

#[test]
fn every_manifest_parses_strictly_and_the_kustomization_lists_them_all() {
    Manifests::load();
    let dir = manifests_dir();
    let kustomization: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir.join("Kustomization")).expect("manifests/Kustomization"),
    )
    .unwrap();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources list")
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let on_disk: BTreeSet<String> = webhook_support::manifests::manifest_files(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, on_disk, "-k and -f must apply the same files");
    // A kustomization.yaml would be read by `kubectl apply -f manifests/` as an object.
    assert!(!dir.join("kustomization.yaml").exists());
    assert!(!dir.join("kustomization.yml").exists());
}

#[test]
fn namespaced_objects_live_in_the_webhook_namespace_which_is_not_managed() {
    let m = Manifests::load();
    assert_eq!(
        m.namespace.metadata.name.as_deref(),
        Some(WEBHOOK_NAMESPACE)
    );
    let labels = m.namespace.metadata.labels.clone().unwrap_or_default();
    assert_ne!(
        labels.get(MANAGED_LABEL).map(String::as_str),
        Some(MANAGED_VALUE)
    );
    for (kind, ns) in [
        ("ServiceAccount", &m.service_account.metadata.namespace),
        ("Deployment", &m.deployment.metadata.namespace),
        (
            "PodDisruptionBudget",
            &m.pod_disruption_budget.metadata.namespace,
        ),
        ("Service", &m.service.metadata.namespace),
    ] {
        assert_eq!(ns.as_deref(), Some(WEBHOOK_NAMESPACE), "{kind}");
    }
}

#[test]
fn rbac_is_read_only_on_namespaces_and_serviceaccounts_for_the_webhook_sa() {
    let m = Manifests::load();
    let rules = m.cluster_role.rules.as_ref().expect("rules");
    let mut granted = BTreeSet::new();
    for rule in rules {
        assert!(rule.non_resource_urls.is_none());
        assert!(rule.resource_names.is_none());
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let expected: BTreeSet<_> = ["namespaces", "serviceaccounts"]
        .into_iter()
        .flat_map(|r| ["get", "list", "watch"].map(|v| (String::new(), r.to_owned(), v.to_owned())))
        .collect();
    assert_eq!(granted, expected);

    let binding = &m.cluster_role_binding;
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&binding.role_ref.name),
        m.cluster_role.metadata.name.as_ref()
    );
    let subjects = binding.subjects.as_ref().expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(
        Some(&subjects[0].name),
        m.service_account.metadata.name.as_ref()
    );
    assert_eq!(subjects[0].namespace.as_deref(), Some(WEBHOOK_NAMESPACE));
    assert_eq!(
        pod_spec(&m).service_account_name,
        m.service_account.metadata.name
    );
}

#[test]
fn deployment_runs_two_spread_replicas() {
    let m = Manifests::load();
    let spec = m.deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let labels = pod_labels(&m);
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));

    let pod = pod_spec(&m);
    let spread = pod.topology_spread_constraints.as_ref().expect("spread");
    let keys: BTreeSet<&str> = spread.iter().map(|c| c.topology_key.as_str()).collect();
    assert!(keys.contains("topology.kubernetes.io/zone"), "{keys:?}");
    assert!(keys.contains("kubernetes.io/hostname"), "{keys:?}");
    for constraint in spread {
        assert!(constraint.max_skew >= 1);
        let sel = constraint.label_selector.as_ref().unwrap();
        assert!(
            selects(Some(sel), &labels),
            "spread selects the webhook pods"
        );
    }
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .expect("podAntiAffinity");
    let terms = anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .expect("preferred anti-affinity");
    assert!(terms.iter().any(|t| {
        t.pod_affinity_term.topology_key == "kubernetes.io/hostname"
            && selects(t.pod_affinity_term.label_selector.as_ref(), &labels)
    }));
}

#[test]
fn deployment_is_locked_down() {
    let m = Manifests::load();
    let pod = pod_spec(&m);
    let pod_sc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    assert_ne!(pod_sc.run_as_user, Some(0));
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(pod.host_pid, Some(true));

    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for c in containers {
        let sc = c
            .security_context
            .as_ref()
            .expect("container securityContext");
        assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_ne!(sc.privileged, Some(true), "{}", c.name);
        assert_ne!(sc.run_as_user, Some(0), "{}", c.name);
        let caps = sc.capabilities.as_ref().expect("capabilities");
        assert_eq!(
            caps.drop.as_deref(),
            Some(&strings(&["ALL"])[..]),
            "{}",
            c.name
        );
        assert!(caps.add.as_ref().is_none_or(Vec::is_empty), "{}", c.name);
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault"),
            "{}",
            c.name
        );
        let resources = c.resources.as_ref().expect("resources");
        let requests = resources.requests.as_ref().expect("requests");
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
        let limits = resources.limits.as_ref().expect("limits");
        assert!(limits.contains_key("memory"), "{}: memory limit", c.name);
    }
}

#[test]
fn deployment_probes_tls_and_args_match_the_webhook_binary() {
    let m = Manifests::load();
    let c = webhook_container(&m);

    // Every arg is `--flag=value` with a flag the binary has.
    for arg in c.args.iter().flatten() {
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(arg.contains('='), "{arg}: use --flag=value");
        assert!(WEBHOOK_FLAGS.contains(&flag), "{arg}: not a webhook flag");
    }
    assert!(c.command.is_none(), "the image's entrypoint is the binary");

    let listen = arg_value(c, "--listen").expect("--listen");
    let health = arg_value(c, "--health-listen").expect("--health-listen");
    let port_of = |addr: &str| addr.rsplit(':').next().unwrap().parse::<i32>().unwrap();
    assert_eq!(port_of(listen), 8443);
    assert_eq!(port_of(health), 8080);
    assert_eq!(
        container_port(c, &IntOrString::String("https".into())),
        8443
    );

    for (probe, path) in [
        (c.liveness_probe.as_ref(), "/healthz"),
        (c.readiness_probe.as_ref(), "/readyz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{path} httpGet probe"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            container_port(c, &get.port),
            8080,
            "{path} on the health port"
        );
        assert_eq!(get.scheme.as_deref().unwrap_or("HTTP"), "HTTP");
    }

    // The TLS Secret is mounted read-only where --tls-cert-file/--tls-key-file point.
    let pod = pod_spec(&m);
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| {
            v.secret
                .as_ref()
                .is_some_and(|s| s.secret_name.as_deref() == Some(TLS_SECRET))
        })
        .expect("a volume from the TLS secret");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|vm| vm.name == volume.name)
        .expect("TLS volume mounted");
    assert_eq!(mount.read_only, Some(true));
    assert!(
        mount.sub_path.is_none(),
        "subPath mounts never see renewals"
    );
    for (flag, file) in [
        ("--tls-cert-file", "tls.crt"),
        ("--tls-key-file", "tls.key"),
    ] {
        let path = arg_value(c, flag).unwrap_or_else(|| panic!("{flag}"));
        assert_eq!(path, format!("{}/{file}", mount.mount_path), "{flag}");
    }
}

#[test]
fn the_webhook_binary_accepts_every_flag_the_deployment_passes() {
    // Only when cargo has built the binary (e.g. `cargo test --workspace`); the flag list
    // above is checked regardless.
    let Some(bin) =
        webhook_support::workspace_binary("mlplatform-webhook", "MLPLATFORM_WEBHOOK_BIN")
    else {
        eprintln!("mlplatform-webhook not built; skipping its --help check");
        return;
    };
    let out = Command::new(&bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !help.contains("--listen") {
        eprintln!("{} --help has no flags yet; skipping", bin.display());
        return;
    }
    let m = Manifests::load();
    for arg in webhook_container(&m).args.iter().flatten() {
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(help.contains(flag), "{} --help lacks {flag}", bin.display());
    }
}

#[test]
fn pdb_and_service_reach_the_webhook_pods() {
    let m = Manifests::load();
    let labels = pod_labels(&m);
    let pdb = m.pod_disruption_budget.spec.as_ref().unwrap();
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    assert!(pdb.max_unavailable.is_none());
    assert!(selects(pdb.selector.as_ref(), &labels));

    assert_eq!(m.service.metadata.name.as_deref(), Some(SERVICE_NAME));
    let spec = m.service.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref().unwrap_or("ClusterIP"), "ClusterIP");
    let selector = spec.selector.clone().unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let ports = spec.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 443);
    let target = ports[0].target_port.as_ref().expect("targetPort");
    assert_eq!(container_port(webhook_container(&m), target), 8443);
}

#[test]
fn mutating_webhooks_follow_the_rules() {
    let m = Manifests::load();
    let webhooks = m.mutating.webhooks.as_ref().expect("webhooks");
    let mut covered = BTreeSet::new();
    for w in webhooks {
        assert!(w.name.ends_with(".mlplatform.io"), "{}", w.name);
        assert_eq!(w.admission_review_versions, strings(&["v1"]), "{}", w.name);
        assert_eq!(w.side_effects, "None", "{}", w.name);
        assert_eq!(
            w.reinvocation_policy.as_deref(),
            Some("IfNeeded"),
            "{}",
            w.name
        );
        let timeout = w.timeout_seconds.expect("timeoutSeconds set explicitly");
        assert!((1..=5).contains(&timeout), "{}: timeout {timeout}", w.name);
        let policy = w
            .failure_policy
            .as_deref()
            .expect("failurePolicy set explicitly");
        assert!(matches!(policy, "Fail" | "Ignore"), "{}", w.name);
        assert_points_at_service(&w.client_config, "/mutate", &w.name);
        assert_selects_only_managed_namespaces(w.namespace_selector.as_ref(), &w.name);
        assert!(w.object_selector.is_none(), "{}", w.name);
        covered.extend(rule_set(w.rules.as_ref()));
    }
    assert_eq!(
        covered,
        triples(&[
            ("", "pods", "CREATE"),
            ("", "serviceaccounts", "CREATE"),
            ("", "serviceaccounts", "UPDATE"),
        ])
    );
    let pods = webhooks
        .iter()
        .find(|w| {
            rule_set(w.rules.as_ref())
                .iter()
                .any(|(_, r, _)| r == "pods")
        })
        .unwrap();
    assert_eq!(
        pods.failure_policy.as_deref(),
        Some("Fail"),
        "pods fail closed (see the comment in the manifest)"
    );
}

#[test]
fn validating_webhook_covers_pods_and_the_six_workload_kinds() {
    let m = Manifests::load();
    let webhooks = m.validating.webhooks.as_ref().expect("webhooks");
    let mut covered = BTreeSet::new();
    for w in webhooks {
        assert!(w.name.ends_with(".mlplatform.io"), "{}", w.name);
        assert_eq!(w.admission_review_versions, strings(&["v1"]), "{}", w.name);
        assert_eq!(w.side_effects, "None", "{}", w.name);
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"), "{}", w.name);
        let timeout = w.timeout_seconds.expect("timeoutSeconds set explicitly");
        assert!((1..=5).contains(&timeout), "{}: timeout {timeout}", w.name);
        assert_points_at_service(&w.client_config, "/validate", &w.name);
        assert_selects_only_managed_namespaces(w.namespace_selector.as_ref(), &w.name);
        covered.extend(rule_set(w.rules.as_ref()));
    }
    let mut expected = Vec::new();
    for (group, resource) in [
        ("", "pods"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ] {
        for op in ["CREATE", "UPDATE"] {
            expected.push((group, resource, op));
        }
    }
    assert_eq!(covered, triples(&expected));
}

fn kubectl(args: &[&str], kubeconfig: Option<&std::path::Path>) -> (bool, String, String) {
    let mut cmd = Command::new("kubectl");
    cmd.args(args)
        .current_dir(webhook_support::workspace_root());
    match kubeconfig {
        Some(path) => cmd.env("KUBECONFIG", path),
        None => cmd.env_remove("KUBECONFIG"),
    };
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("kubectl (install it: `make deps`): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kind/name` of every object, as kubectl names them in "created (dry run)" lines.
fn expected_objects() -> BTreeSet<String> {
    webhook_support::manifests::load_documents(&manifests_dir())
        .iter()
        .map(|d| format!("{}/{}", d.kind().to_lowercase(), d.name()))
        .collect()
}

#[test]
fn kubectl_kustomize_renders_the_same_objects() {
    let (ok, stdout, stderr) = kubectl(&["kustomize", "manifests/"], None);
    assert!(ok, "kubectl kustomize manifests/: {stderr}");
    let rendered = Manifests::from_documents(&parse_documents("kustomize output", &stdout));
    let from_files = Manifests::load();
    assert_eq!(
        serde_json::to_value(&rendered.deployment).unwrap(),
        serde_json::to_value(&from_files.deployment).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&rendered.mutating).unwrap(),
        serde_json::to_value(&from_files.mutating).unwrap()
    );
}

/// kubectl's client-side dry run needs API discovery (no server: "connection refused"), so
/// it runs against a discovery-only endpoint. Validation against the server's OpenAPI is off
/// (the endpoint has none); the strict k8s-openapi parse above covers field names.
#[tokio::test]
async fn kubectl_apply_dry_run_client_accepts_dir_and_kustomization() {
    let discovery = Discovery::start().await;
    let kubeconfig = discovery.kubeconfig.clone();
    let expected = expected_objects();
    for source in [["-f", "manifests/"], ["-k", "manifests/"]] {
        let mut args = vec!["apply", "--dry-run=client", "--validate=false"];
        args.extend(source);
        let kc = kubeconfig.clone();
        let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.to_vec();
            kubectl(&args, Some(&kc))
        })
        .await
        .unwrap();
        assert!(ok, "kubectl apply {source:?}: {stderr}");
        let created: BTreeSet<String> = stdout
            .lines()
            .filter_map(|l| l.strip_suffix(" created (dry run)"))
            // kubectl writes `kind.group/name`; keep `kind/name`.
            .map(|l| {
                let (kind, name) = l.split_once('/').unwrap();
                format!("{}/{name}", kind.split('.').next().unwrap())
            })
            .collect();
        assert_eq!(
            created, expected,
            "kubectl apply {source:?}:\n{stdout}{stderr}"
        );
    }
}

/// No Docker engine runs here, so the Dockerfile is checked by reading: a static musl build
/// and a final stage that holds the binary alone and runs as the manifests' user.
#[test]
fn dockerfile_builds_a_static_non_root_image_the_deployment_can_run() {
    let text = std::fs::read_to_string(webhook_support::workspace_root().join("Dockerfile"))
        .expect("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage build");
    // One static musl build per image architecture (the release builds amd64 and arm64 on
    // native runners): the target is the build machine's arch with musl.
    assert!(text.contains(r#"target="$(uname -m)-unknown-linux-musl""#));
    assert!(text.contains(r#"--target "$target""#));
    assert!(text.contains("-p mlplatform-webhook"));
    let last = &lines[*stages.last().unwrap()..];
    let base = last[0];
    assert!(
        base.contains("distroless/static") || base.trim_end() == "FROM scratch",
        "final stage is {base}"
    );
    let copies: Vec<&&str> = last.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 1, "only the binary: {copies:?}");
    assert!(copies[0].contains("--from=") && copies[0].contains("mlplatform-webhook"));
    assert!(last.contains(&"USER 65532:65532"), "non-root user");
    assert!(
        last.iter()
            .any(|l| l.starts_with("ENTRYPOINT [\"/mlplatform-webhook\"]"))
    );
    assert!(
        !last.iter().any(|l| l.starts_with("RUN ")),
        "nothing runs in the final stage"
    );

    // The Deployment runs as that user and passes only args (the entrypoint is the binary).
    let m = Manifests::load();
    let sc = pod_spec(&m).security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.run_as_group, Some(65532));
}

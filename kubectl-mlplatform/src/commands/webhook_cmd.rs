//! `kubectl mlplatform webhook install|uninstall|status`: thin I/O around
//! [`crate::webhook_install`] (pure plan, async apply) plus the reports users see.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::CommandError;
use super::io::{client, print};
use crate::cli::webhook::{WebhookCommand, WebhookInstallArgs};
use crate::common::{Change, DryRun, GlobalArgs, OutputFormat};
use crate::execute::{Clients, execute};
use crate::output::{Progress, Report, Summary, render_data, render_report, table};
use crate::policy_install::{PolicyEnforcement, enforcement_in};
use crate::steps::Plan;
use crate::webhook_install::{
    self, InstallOptions, InstallOutputs, InstallPlan, ObjectRow, Observed, Reachability,
    WebhookStatus, rfc3339, tls,
};

/// Renew within this many seconds of expiry; `status` fails inside that window too.
const RENEW_WINDOW: i64 = tls::RENEW_BEFORE;
const FIX: &str = "kubectl mlplatform webhook install";

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Summary for InstallOutputs {
    fn fields(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    fn rendered(plan: &Plan<Self>) -> Value {
        json!({"apiVersion": "v1", "kind": "List", "items": rendered_objects(plan)})
    }
    /// OBJECT / RESULT, then the certificates (install only).
    fn table(report: &Report<Self>, _verb: &str) -> String {
        let mut out = objects_table(&report.outputs.objects, report.dry_run);
        if report.outputs.uninstall {
            return out;
        }
        let c = &report.outputs.certificates;
        out.push_str(&format!("\ncertificates: {}", c.action));
        if let Some(reason) = &c.reason {
            out.push_str(&format!(" ({reason})"));
        }
        if let Some(t) = &c.not_after {
            out.push_str(&format!("; serving certificate valid until {t}"));
        }
        out.push('\n');
        out
    }
}

fn rendered_objects(plan: &InstallPlan) -> Vec<Value> {
    plan.kube_steps().map(|s| s.desired.clone()).collect()
}

/// The OBJECT / RESULT table, each result marked when it was a dry run.
fn objects_table(objects: &[ObjectRow], dry_run: DryRun) -> String {
    let suffix = match dry_run {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    let mut rows = vec![vec!["OBJECT".to_owned(), "RESULT".to_owned()]];
    rows.extend(
        objects
            .iter()
            .map(|r| vec![r.object.clone(), format!("{}{suffix}", r.result)]),
    );
    table(&rows)
}

/// `--dry-run=client`: every object, nothing sent. YAML documents or a JSON `List` (what
/// `kubectl apply -f -` takes); the table marks every object `apply (dry run)`.
pub(crate) fn render_client_dry_run(
    plan: &InstallPlan,
    format: OutputFormat,
) -> Result<String, String> {
    match format {
        OutputFormat::Yaml => crate::output::render_documents(&rendered_objects(plan)),
        OutputFormat::Json => render_data(&InstallOutputs::rendered(plan), format),
        OutputFormat::Table => {
            let report = Report::from_plan(plan, DryRun::Client, format);
            Ok(InstallOutputs::table(&report, "webhook install"))
        }
    }
}

pub(crate) async fn run(
    global: &GlobalArgs,
    cmd: &WebhookCommand,
) -> Result<ExitCode, CommandError> {
    match cmd {
        WebhookCommand::Install(args) => install(global, args).await,
        WebhookCommand::Uninstall => uninstall(global).await,
        WebhookCommand::Status => status(global).await,
    }
}

/// Validates the flags, reads the TLS Secrets and the live objects, plans, executes, reports.
pub(crate) async fn install(
    global: &GlobalArgs,
    args: &WebhookInstallArgs,
) -> Result<ExitCode, CommandError> {
    let options = args.options();
    // Bad flags fail before any cluster access.
    webhook_install::manifests(&options, &Default::default(), now_unix())?;
    let client = client(global).await?;
    let progress = Progress::for_stderr();
    let plan = install_with(&client, &options, args, global.dry_run, &progress).await?;
    let text = if global.dry_run == DryRun::Client {
        render_client_dry_run(&plan, global.output)
    } else {
        render_report(
            &Report::from_plan(&plan, global.dry_run, global.output),
            global.output,
            "webhook install",
        )
    }
    .map_err(CommandError::Output)?;
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads, plans and executes the install (with `--dry-run=client`, only reads and plans).
pub(crate) async fn install_with(
    client: &kube::Client,
    options: &InstallOptions,
    args: &WebhookInstallArgs,
    dry_run: DryRun,
    progress: &Progress,
) -> Result<InstallPlan, CommandError> {
    progress.phase("reading the webhook's certificates and objects (no writes)");
    let mut observed = webhook_install::observe_secrets(client, options).await?;
    let manifests = webhook_install::manifests(options, &observed, now_unix())?;
    let keys = manifests
        .objects
        .iter()
        .filter_map(|o| webhook_install::key_of(o).ok());
    webhook_install::observe_objects(client, keys, &mut observed).await?;
    let wait = args.wait.then_some(args.timeout);
    let plan = webhook_install::plan_install(&manifests, &observed, wait)?;
    if plan.has_writes() && dry_run != DryRun::Client {
        progress.phase("applying the webhook");
    }
    let clients = Clients {
        aws: None,
        kube: Some(client),
    };
    execute(&plan, clients, dry_run, progress).await?;
    Ok(plan)
}

/// `connect --with-webhook`: install or update the webhook with the manifests' defaults.
/// Its report goes to stderr so `connect -o json` stays one JSON document.
pub(crate) async fn install_for_connect(
    global: &GlobalArgs,
    client: &kube::Client,
    progress: &Progress,
) -> Result<(), CommandError> {
    let args = WebhookInstallArgs {
        image: None,
        replicas: None,
        failure_policy: None,
        cert_manager: false,
        wait: true,
        timeout: Duration::from_secs(180),
    };
    let plan = install_with(client, &args.options(), &args, global.dry_run, progress).await?;
    if global.dry_run == DryRun::Client {
        eprintln!(
            "webhook: would apply {} objects (`kubectl mlplatform webhook install --dry-run=client -o yaml` shows them)",
            plan.kube_steps().count()
        );
    } else {
        let count = |c: Change| {
            plan.outputs
                .objects
                .iter()
                .filter(|r| r.result == c)
                .count()
        };
        eprintln!(
            "webhook: {} created, {} updated, {} unchanged; certificates {}",
            count(Change::Created),
            count(Change::Updated),
            count(Change::Unchanged),
            plan.outputs.certificates.action
        );
    }
    Ok(())
}

/// Reads what is there (nothing under `--dry-run=client`: everything is listed as deleted),
/// plans the deletions, executes, reports.
async fn uninstall(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let plan = if global.dry_run == DryRun::Client {
        webhook_install::plan_uninstall(None)?
    } else {
        let client = client(global).await?;
        let mut observed = Observed::default();
        let targets = webhook_install::uninstall_targets()?;
        webhook_install::observe_objects(&client, targets, &mut observed).await?;
        let plan = webhook_install::plan_uninstall(Some(&observed.live))?;
        let clients = Clients {
            aws: None,
            kube: Some(&client),
        };
        execute(&plan, clients, global.dry_run, &Progress::for_stderr()).await?;
        plan
    };
    let report = Report::from_plan(&plan, global.dry_run, global.output);
    print(
        &render_report(&report, global.output, "webhook uninstall")
            .map_err(CommandError::Output)?,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The serving certificate's notAfter (Unix seconds) from PEM, parsed, not trusted from an
/// annotation: cert-manager's Secrets carry none, and annotations can drift.
pub(crate) fn certificate_not_after(pem: &[u8]) -> Result<i64, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    let certificate = pem
        .parse_x509()
        .map_err(|e| format!("tls.crt is not an X.509 certificate: {e}"))?;
    Ok(certificate.validity().not_after.timestamp())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckState {
    Pass,
    Fail,
    /// Could not be tried (e.g. no managed namespace to probe in).
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusCheck {
    pub(crate) name: String,
    pub(crate) state: CheckState,
    pub(crate) detail: String,
}

/// The certificate as `status` sees it: parsed expiry, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertificateState {
    Missing,
    Unreadable(String),
    NotAfter(i64),
}

/// Pure: one check per thing that must hold for the webhook to enforce policy.
pub(crate) fn status_checks(
    status: &WebhookStatus,
    certificate: &CertificateState,
    now: i64,
) -> Vec<StatusCheck> {
    let check = |name: &str, state, detail: String| StatusCheck {
        name: name.to_owned(),
        state,
        detail,
    };
    let mut checks = Vec::new();
    let deployment = format!(
        "Deployment {}/{}",
        webhook_install::NAMESPACE,
        webhook_install::DEPLOYMENT
    );
    checks.push(match status.replicas {
        None => check(&deployment, CheckState::Fail, "not installed".into()),
        Some((ready, desired)) if ready >= 1 => check(
            &deployment,
            CheckState::Pass,
            format!("{ready}/{desired} ready"),
        ),
        Some((ready, desired)) => check(
            &deployment,
            CheckState::Fail,
            format!(
                "{ready}/{desired} ready; see `kubectl -n {} describe deployment {}`",
                webhook_install::NAMESPACE,
                webhook_install::DEPLOYMENT
            ),
        ),
    });
    for (kind, present) in [
        ("MutatingWebhookConfiguration", status.mutating_configured),
        (
            "ValidatingWebhookConfiguration",
            status.validating_configured,
        ),
    ] {
        checks.push(if present {
            check(kind, CheckState::Pass, "registered".into())
        } else {
            check(kind, CheckState::Fail, "not registered".into())
        });
    }
    let days = |t: i64| (t - now).div_euclid(86_400);
    checks.push(match certificate {
        CertificateState::Missing => check(
            "serving certificate",
            CheckState::Fail,
            format!(
                "Secret {}/{} not found",
                webhook_install::NAMESPACE,
                webhook_install::TLS_SECRET
            ),
        ),
        CertificateState::Unreadable(why) => {
            check("serving certificate", CheckState::Fail, why.clone())
        }
        CertificateState::NotAfter(t) if *t <= now => check(
            "serving certificate",
            CheckState::Fail,
            format!("expired {}", rfc3339(*t)),
        ),
        CertificateState::NotAfter(t) if t - now < RENEW_WINDOW => check(
            "serving certificate",
            CheckState::Fail,
            format!(
                "expires {} (in {} days); re-run install to renew",
                rfc3339(*t),
                days(*t)
            ),
        ),
        CertificateState::NotAfter(t) => check(
            "serving certificate",
            CheckState::Pass,
            format!("expires {} (in {} days)", rfc3339(*t), days(*t)),
        ),
    });
    let name = "API server reaches the webhook";
    let registered = status.mutating_configured || status.validating_configured;
    checks.push(match &status.reachability {
        // Without a webhook configuration a dry-run pod goes through admission without calling
        // anything: that says nothing about the webhook.
        _ if !registered => check(
            name,
            CheckState::Skip,
            "no webhook configuration is registered, so the API server calls nothing".to_owned(),
        ),
        Reachability::Reached { namespace } => check(
            name,
            CheckState::Pass,
            format!("dry-run pod in {namespace} went through admission"),
        ),
        Reachability::Unreachable { namespace, error } => check(
            name,
            CheckState::Fail,
            format!(
                "dry-run pod in {namespace}: {}",
                crate::kube_io::one_line(error)
            ),
        ),
        Reachability::Inconclusive { namespace, error } => check(
            name,
            CheckState::Skip,
            format!(
                "dry-run pod in {namespace} refused for another reason: {}",
                crate::kube_io::one_line(error)
            ),
        ),
        Reachability::NoManagedNamespace => check(
            name,
            CheckState::Skip,
            "no managed namespace to probe in (`kubectl mlplatform namespace add`)".into(),
        ),
    });
    checks
}

fn probed_namespace(reachability: &Reachability) -> Option<&str> {
    match reachability {
        Reachability::Reached { namespace }
        | Reachability::Unreachable { namespace, .. }
        | Reachability::Inconclusive { namespace, .. } => Some(namespace),
        Reachability::NoManagedNamespace => None,
    }
}

/// Pure: which engine enforces the probed namespace's policy, as one more check. Either engine
/// will do: with no trace of the webhook (no Deployment, no configuration) and the admission
/// policies enforcing, the webhook's own checks are skipped, not failed.
pub(crate) fn engine_checks(
    status: &WebhookStatus,
    mut checks: Vec<StatusCheck>,
    policy: Option<PolicyEnforcement>,
) -> Vec<StatusCheck> {
    let Some(namespace) = probed_namespace(&status.reachability) else {
        return checks;
    };
    let absent =
        status.replicas.is_none() && !status.mutating_configured && !status.validating_configured;
    // A dry-run pod admitted with no validating webhook configured did not meet the webhook.
    let webhook =
        status.validating_configured && matches!(status.reachability, Reachability::Reached { .. });
    let (state, detail) = match (webhook, policy) {
        (true, None) => (CheckState::Pass, "by the webhook".to_owned()),
        (true, Some(p)) => (CheckState::Pass, format!("by the webhook and by {p}")),
        (false, Some(p)) => {
            if absent {
                for c in checks.iter_mut() {
                    // Admission without any webhook registered says nothing about one.
                    if c.state == CheckState::Pass {
                        c.detail = "no webhook is registered".to_owned();
                    }
                    c.state = CheckState::Skip;
                    c.detail = format!("{}; the admission policies enforce instead", c.detail);
                }
            }
            (CheckState::Pass, format!("by {p}, not by the webhook"))
        }
        (false, None) => (
            CheckState::Fail,
            "neither by the webhook nor by an admission policy (`kubectl mlplatform policy install`)"
                .to_owned(),
        ),
    };
    checks.push(StatusCheck {
        name: format!("namespace policy of {namespace} enforced"),
        state,
        detail,
    });
    checks
}

#[derive(Debug, Serialize)]
struct StatusReport<'a> {
    healthy: bool,
    checks: &'a [StatusCheck],
}

pub(crate) fn render_status(
    checks: &[StatusCheck],
    format: OutputFormat,
) -> Result<String, String> {
    let healthy = checks.iter().all(|c| c.state != CheckState::Fail);
    if format != OutputFormat::Table {
        return render_data(&StatusReport { healthy, checks }, format);
    }
    let mut rows = vec![vec![
        "CHECK".to_owned(),
        "STATUS".to_owned(),
        "DETAIL".to_owned(),
    ]];
    rows.extend(checks.iter().map(|c| {
        let state = match c.state {
            CheckState::Pass => "ok",
            CheckState::Fail => "FAIL",
            CheckState::Skip => "skipped",
        };
        vec![c.name.clone(), state.to_owned(), c.detail.clone()]
    }));
    Ok(table(&rows))
}

async fn read_certificate(client: &kube::Client) -> Result<CertificateState, CommandError> {
    let secret = Api::<Secret>::namespaced(client.clone(), webhook_install::NAMESPACE)
        .get_opt(webhook_install::TLS_SECRET)
        .await
        .map_err(|e| {
            crate::kube_io::kube_error(
                "read",
                format!(
                    "Secret {}/{}",
                    webhook_install::NAMESPACE,
                    webhook_install::TLS_SECRET
                ),
                e,
            )
        })?;
    let Some(secret) = secret else {
        return Ok(CertificateState::Missing);
    };
    let Some(pem) = secret.data.as_ref().and_then(|d| d.get("tls.crt")) else {
        return Ok(CertificateState::Unreadable(
            "the Secret has no tls.crt".into(),
        ));
    };
    Ok(match certificate_not_after(&pem.0) {
        Ok(t) => CertificateState::NotAfter(t),
        Err(why) => CertificateState::Unreadable(why),
    })
}

async fn status(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let client = client(global).await?;
    let (status, certificate) = futures::try_join!(
        async {
            webhook_install::status(&client)
                .await
                .map_err(CommandError::from)
        },
        read_certificate(&client),
    )?;
    let policy = match probed_namespace(&status.reachability) {
        // Unreadable admission policies enforce nothing we can vouch for.
        Some(ns) => enforcement_in(&client, ns).await.ok().flatten(),
        None => None,
    };
    let checks = engine_checks(
        &status,
        status_checks(&status, &certificate, now_unix()),
        policy,
    );
    finish_status(
        &checks,
        global.output,
        "the webhook is not healthy",
        FIX,
        "webhook",
    )
}

/// Prints `status` checks; any failing one makes one error line that names them, the fix and
/// the command to check again (`kubectl mlplatform SUBCOMMAND status`), and exit code 1.
pub(crate) fn finish_status(
    checks: &[StatusCheck],
    output: OutputFormat,
    problem: &str,
    fix: &str,
    subcommand: &str,
) -> Result<ExitCode, CommandError> {
    print(&render_status(checks, output).map_err(CommandError::Output)?)?;
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.state == CheckState::Fail)
        .map(|c| c.name.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: {problem} ({}); run `{fix}`, then `kubectl mlplatform {subcommand} status` again",
        failed.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse::parse_timeout;

    const NOW: i64 = 1_800_000_000;

    fn healthy_status() -> WebhookStatus {
        WebhookStatus {
            replicas: Some((2, 2)),
            certificate_not_after: None,
            mutating_configured: true,
            validating_configured: true,
            reachability: Reachability::Reached {
                namespace: "team".into(),
            },
        }
    }

    fn states(checks: &[StatusCheck]) -> Vec<CheckState> {
        checks.iter().map(|c| c.state).collect()
    }

    #[test]
    fn timeouts_parse_with_units() {
        assert_eq!(parse_timeout("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3_600)));
        assert!(parse_timeout("5 minutes").is_err());
        assert!(parse_timeout("").is_err());
        assert!(parse_timeout("-1s").is_err());
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(NOW), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn healthy_webhook_passes_every_check() {
        let cert = CertificateState::NotAfter(NOW + 365 * 86_400);
        let checks = status_checks(&healthy_status(), &cert, NOW);
        assert_eq!(states(&checks), [CheckState::Pass; 5]);
        assert!(checks[3].detail.contains("in 365 days"), "{:?}", checks[3]);
    }

    #[test]
    fn each_problem_is_its_own_failure() {
        let mut status = healthy_status();
        status.replicas = Some((0, 2));
        status.validating_configured = false;
        status.reachability = Reachability::Unreachable {
            namespace: "team".into(),
            error: "failed calling webhook \"x\": connection refused".into(),
        };
        let cert = CertificateState::NotAfter(NOW + 10 * 86_400);
        let checks = status_checks(&status, &cert, NOW);
        assert_eq!(
            states(&checks),
            [
                CheckState::Fail,
                CheckState::Pass,
                CheckState::Fail,
                CheckState::Fail,
                CheckState::Fail
            ]
        );
        assert!(checks[3].detail.contains("in 10 days"));
        let expired = status_checks(&status, &CertificateState::NotAfter(NOW - 1), NOW);
        assert!(expired[3].detail.starts_with("expired"));
    }

    #[test]
    fn no_managed_namespace_is_skipped_not_failed() {
        let mut status = healthy_status();
        status.reachability = Reachability::NoManagedNamespace;
        let cert = CertificateState::NotAfter(NOW + 100 * 86_400);
        let checks = status_checks(&status, &cert, NOW);
        assert_eq!(checks[4].state, CheckState::Skip);
        let json: Value =
            serde_json::from_str(&render_status(&checks, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(json["healthy"], true);
        assert_eq!(json["checks"][4]["state"], "skip");
    }

    #[test]
    fn a_pod_admitted_without_any_webhook_configuration_does_not_count_as_reached() {
        let mut status = healthy_status();
        status.mutating_configured = false;
        status.validating_configured = false;
        let cert = CertificateState::NotAfter(NOW + 100 * 86_400);
        let checks = status_checks(&status, &cert, NOW);
        let reach = checks
            .iter()
            .find(|c| c.name == "API server reaches the webhook")
            .unwrap();
        assert_eq!(reach.state, CheckState::Skip, "{reach:?}");
        assert!(
            reach.detail.contains("no webhook configuration"),
            "{reach:?}"
        );
    }

    #[test]
    fn either_engine_enforces_and_the_status_says_which() {
        use mlplatform_namespace_policy::EnforcementMode;
        let policy = Some(PolicyEnforcement {
            mode: EnforcementMode::Enforce,
        });
        let cert = CertificateState::NotAfter(NOW + 100 * 86_400);
        let healthy = healthy_status();
        let checks = engine_checks(&healthy, status_checks(&healthy, &cert, NOW), policy);
        assert_eq!(checks[5].name, "namespace policy of team enforced");
        assert!(checks[5].detail.starts_with("by the webhook and by ValidatingAdmissionPolicy mlplatform-service-accounts (binding mlplatform-service-accounts-enforce"), "{:?}", checks[5]);

        // No webhook at all, the admission policies in place: nothing fails.
        let absent = WebhookStatus {
            replicas: None,
            certificate_not_after: None,
            mutating_configured: false,
            validating_configured: false,
            // Admitted, but no webhook was there to admit it.
            reachability: Reachability::Reached {
                namespace: "team".into(),
            },
        };
        let checks = engine_checks(
            &absent,
            status_checks(&absent, &CertificateState::Missing, NOW),
            policy,
        );
        assert_eq!(states(&checks[..5]), [CheckState::Skip; 5], "{checks:?}");
        assert_eq!(checks[5].state, CheckState::Pass);
        assert!(
            checks
                .last()
                .unwrap()
                .detail
                .ends_with("not by the webhook")
        );
        // Neither engine: one more failure.
        let checks = engine_checks(
            &absent,
            status_checks(&absent, &CertificateState::Missing, NOW),
            None,
        );
        assert_eq!(checks.last().unwrap().state, CheckState::Fail);
    }

    #[test]
    fn certificate_expiry_is_parsed_from_pem() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x.svc".to_owned()]).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(certificate_not_after(cert.pem().as_bytes()), Ok(NOW));
        assert!(certificate_not_after(b"not a certificate").is_err());
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(certificate_not_after(garbage.as_bytes()).is_err());
    }

    #[test]
    fn client_dry_run_uninstall_lists_configurations_first_and_the_namespace_last() {
        let plan = webhook_install::plan_uninstall(None).unwrap();
        let targets: Vec<&str> = plan
            .outputs
            .objects
            .iter()
            .map(|r| r.object.as_str())
            .collect();
        assert!(targets[0].contains("WebhookConfiguration"), "{targets:?}");
        assert!(targets[1].contains("WebhookConfiguration"), "{targets:?}");
        assert_eq!(*targets.last().unwrap(), "Namespace mlplatform-system");
        assert!(targets.contains(&"Secret mlplatform-system/mlplatform-webhook-tls"));
        assert!(
            plan.outputs
                .objects
                .iter()
                .all(|r| r.result == Change::Deleted)
        );
    }

    #[test]
    fn bad_flags_are_rejected_by_the_plan() {
        let options = InstallOptions {
            replicas: Some(0),
            ..Default::default()
        };
        assert!(webhook_install::manifests(&options, &Default::default(), NOW).is_err());
    }
}

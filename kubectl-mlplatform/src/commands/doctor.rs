//! `doctor`: the same preflight as connect, a connect plan as the list of what is missing or
//! drifted, SubjectAccessReviews for the RBAC outcome, and which engine enforces the namespace
//! policy: the webhook (its presence and reachability) or the admission policies (`policy
//! install`). Neither: fixed by `kubectl mlplatform webhook install`; warnings unless
//! `--with-webhook` asks for enforcement.

use std::process::ExitCode;

use futures::future::join_all;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::json;

use super::connect::inputs;
use super::error::CommandError;
use super::preflight::{Purpose, params_for, read_state, session, set_enforcement};
use crate::aws::ClusterFacts;
use crate::cli::ConnectArgs;
use crate::common::{GlobalArgs, OutputFormat};
use crate::doctor::{
    Check, CheckStatus, checks_from_plan, crd_checks, failed_count, manual_step_checks,
    rbac_expectations, storage_checks,
};
use crate::kube_io::{can_i, get_object, list_objects, one_line};
use crate::objects::{Kind, ObjectKey};
use crate::output::{render_data, table};
use crate::plan::{Observed, Plan, check_implemented, default_storage_classes, plan_connect};
use crate::policy_install::enforcement_in;
use crate::profile::{Profile, load_profile};
use crate::webhook_install::CONFIGURATION as WEBHOOK_CONFIGURATION;

const WEBHOOK_FIX: &str = "kubectl mlplatform webhook install";

/// The connect command line that repairs what doctor found, with the user's own flags.
fn fix_command(
    global: &GlobalArgs,
    args: &ConnectArgs,
    cluster: &str,
    region: &str,
    namespace: &str,
) -> String {
    let mut cmd = format!("kubectl mlplatform connect --profile {}", args.profile);
    if let Some(ctx) = &global.context {
        cmd.push_str(&format!(" --context {ctx}"));
    }
    cmd.push_str(&format!(
        " --cluster {cluster} --region {region} -n {namespace}"
    ));
    if let Some(a) = &args.vendor_account {
        cmd.push_str(&format!(" --vendor-account {a}"));
    }
    for (flag, value) in args.parameter_flags() {
        if let Some(v) = value {
            cmd.push_str(&format!(" --{flag} {v}"));
        }
    }
    if args.auth_mode != crate::access_entry::AuthMode::Auto {
        let mode = match args.auth_mode {
            crate::access_entry::AuthMode::Configmap => "configmap",
            _ => "access-entry",
        };
        cmd.push_str(&format!(" --auth-mode {mode}"));
    }
    for (k, v) in &args.params {
        cmd.push_str(&format!(" --param {k}={v}"));
    }
    if args.cluster_admin {
        cmd.push_str(" --cluster-admin");
    }
    if args.identity == crate::pod_identity::Identity::PodIdentity {
        cmd.push_str(" --identity pod-identity");
    }
    if let Some(mode) = args.enforcement {
        let mode = mlplatform_namespace_policy::EnforcementMode::from(mode);
        cmd.push_str(&format!(" --enforcement {mode}"));
    }
    cmd
}

#[derive(Serialize)]
struct DoctorReport<'a> {
    passed: bool,
    checks: &'a [Check],
}

pub(crate) async fn doctor(
    global: &GlobalArgs,
    args: &ConnectArgs,
) -> Result<ExitCode, CommandError> {
    let mut profile = load_profile(&args.profile)?;
    set_enforcement(&mut profile, args.enforcement)?;
    check_implemented(&profile)?;
    let params = params_for(&profile, args, true)?;
    let session = session(global, args, &profile).await?;
    let mut connect_inputs = inputs(args, &session.namespace, params, false)?;
    // An association of another role is drift to report (with its fix), not a refusal.
    connect_inputs.replace_association = true;
    let (cluster, observed) = read_state(
        &session,
        &profile,
        &connect_inputs.params,
        &connect_inputs,
        Purpose::Doctor,
    )
    .await?;
    let fix = fix_command(
        global,
        args,
        &cluster.name,
        &cluster.region,
        &session.namespace,
    );
    let mut checks = Vec::new();
    let plan = match plan_connect(&profile, &connect_inputs, &cluster, &observed) {
        Ok(plan) => {
            let live_trust = observed.role.as_ref().map(|r| &r.trust_policy);
            checks.extend(checks_from_plan(&plan, live_trust, &fix));
            Some(plan)
        }
        Err(e) => {
            checks.push(Check::fail("connect plan", one_line(&e.to_string()), &fix));
            None
        }
    };
    if args.identity == crate::pod_identity::Identity::PodIdentity {
        checks.push(crate::doctor::pod_identity_agent_check(
            observed.pod_identity.agent_addon.as_ref(),
            &cluster.name,
            &cluster.region,
        ));
    }
    checks.extend(
        cluster_checks(
            &session.kube,
            &profile,
            &observed,
            &cluster,
            plan.as_ref(),
            &fix,
        )
        .await,
    );
    if let Some(plan) = &plan
        && profile.spec.namespace.is_some()
    {
        checks.extend(rbac_checks(&session.kube, &profile, plan, &fix).await);
        checks.extend(
            webhook_checks(&session.kube, &session.namespace, plan, args.with_webhook).await,
        );
    }
    let failed = failed_count(&checks);
    let text = match global.output {
        OutputFormat::Table => checks_table(&checks),
        format => render_data(
            &DoctorReport {
                passed: failed == 0,
                checks: &checks,
            },
            format,
        )
        .map_err(CommandError::Output)?,
    };
    print!("{text}");
    if failed > 0 {
        return Err(CommandError::ChecksFailed { failed });
    }
    Ok(ExitCode::SUCCESS)
}

/// What the profile needs from the cluster beyond its own objects: the CSI driver and one
/// default StorageClass, the vendor operator's CRDs, and the manual steps (repeated).
async fn cluster_checks(
    kube: &kube::Client,
    profile: &Profile,
    observed: &Observed,
    cluster: &ClusterFacts,
    plan: Option<&Plan>,
    fix: &str,
) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(sc) = &profile.spec.storage_class {
        let key = ObjectKey {
            kind: Kind::CSIDriver,
            namespace: None,
            name: sc.provisioner.clone(),
        };
        match get_object(kube, &key).await {
            Ok(found) => checks.extend(storage_checks(
                &sc.provisioner,
                found.is_some(),
                &default_storage_classes(&observed.storage_classes),
                &cluster.name,
                &cluster.region,
                fix,
            )),
            Err(e) => checks.push(Check::fail(
                format!("CSIDriver {}", sc.provisioner),
                one_line(&e.to_string()),
                fix,
            )),
        }
    }
    if let Some(crds) = &profile.spec.operator_crds {
        let mut vars = crate::profile::Vars::new();
        vars.set(
            "roleArn",
            plan.and_then(|p| p.outputs.role_arn.clone())
                .unwrap_or_else(|| "<role ARN from connect>".to_owned()),
        );
        let hint = vars
            .render("spec.operatorCrds.installHint", &crds.install_hint)
            .unwrap_or_else(|_| crds.install_hint.clone());
        match list_objects(kube, Kind::CustomResourceDefinition).await {
            Ok(all) => {
                let names: Vec<String> = all
                    .iter()
                    .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
                    .collect();
                checks.push(crd_checks(&crds.group, &names, &hint));
            }
            Err(e) => checks.push(Check::warn(
                format!("operator CRDs *.{}", crds.group),
                one_line(&e.to_string()),
                Some(&hint),
            )),
        }
    }
    if let Some(plan) = plan {
        checks.extend(manual_step_checks(&plan.manual_steps));
    }
    checks
}

fn checks_table(checks: &[Check]) -> String {
    let mut rows = vec![vec!["".to_owned(), "CHECK".to_owned(), "DETAIL".to_owned()]];
    for c in checks {
        rows.push(vec![
            c.status.symbol().to_owned(),
            c.name.clone(),
            c.detail.clone().unwrap_or_default(),
        ]);
    }
    let mut out = table(&rows);
    let mut fixes: Vec<&str> = checks
        .iter()
        .filter(|c| c.status != CheckStatus::Pass)
        .filter_map(|c| c.fix.as_deref())
        .collect();
    fixes.dedup();
    fixes.sort_unstable();
    fixes.dedup();
    if !fixes.is_empty() {
        out.push_str("\nto fix:\n");
        for f in fixes {
            out.push_str(&format!("  {f}\n"));
        }
    }
    let failed = failed_count(checks);
    let warned = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Warn)
        .count();
    let passed = checks.len() - failed - warned;
    out.push_str(&format!(
        "\n{passed} passed, {failed} failed, {warned} warning(s)\n"
    ));
    out
}

async fn rbac_checks(kube: &kube::Client, profile: &Profile, plan: &Plan, fix: &str) -> Vec<Check> {
    // The vendor as the authorizer sees it through the mapping: its username and named group.
    let wanted = plan.aws_auth_step().and_then(|step| step.wanted.as_ref());
    let vendor_pair = wanted
        .and_then(|m| Some((m.username.as_str(), m.groups.first()?.as_str())))
        .or_else(|| {
            let entry = plan.access_entry_step()?;
            Some((entry.username.as_str(), entry.groups.first()?.as_str()))
        });
    let expectations = rbac_expectations(
        profile,
        &plan.outputs.namespace,
        &plan.outputs.user_service_account,
        plan.outputs.system_service_account.as_deref(),
        vendor_pair,
    );
    let answers = join_all(expectations.iter().map(|e| can_i(kube, &e.question))).await;
    expectations
        .iter()
        .zip(answers)
        .map(|(e, answer)| {
            let name = format!("RBAC: {}", e.description);
            match answer {
                Ok(allowed) if allowed == e.allowed => Check::pass(name),
                Ok(allowed) => Check::fail(
                    name,
                    if allowed {
                        "allowed, but must not be"
                    } else {
                        "denied, but must be allowed"
                    },
                    fix,
                ),
                Err(err) => Check::fail(name, one_line(&err.to_string()), fix),
            }
        })
        .collect()
}

fn webhook_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "admissionregistration.k8s.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "admissionregistration.k8s.io/v1".to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// The webhook configurations, then (when both exist) a probe through admission. Absent or
/// unreadable is a warning with the command that installs it, because a default connect does
/// not install the webhook; a failure only when enforcement was asked for (`--with-webhook`).
async fn webhook_checks(
    kube: &kube::Client,
    namespace: &str,
    plan: &Plan,
    enforcement_asked: bool,
) -> Vec<Check> {
    let kinds = [
        (
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
        ),
        (
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
        ),
    ];
    let (lookups, policy) = futures::join!(
        join_all(kinds.iter().map(|(kind, plural)| async move {
            let api: Api<DynamicObject> =
                Api::all_with(kube.clone(), &webhook_resource(kind, plural));
            (*kind, api.get_opt(WEBHOOK_CONFIGURATION).await)
        })),
        enforcement_in(kube, namespace),
    );
    // An admission policy that cannot be read enforces nothing we can vouch for.
    let policy = policy.ok().flatten();
    let mut checks = Vec::new();
    let mut present = true;
    for (kind, result) in lookups {
        let name = format!("{kind} {WEBHOOK_CONFIGURATION}");
        let missing = match result {
            Ok(Some(_)) => {
                checks.push(Check::pass(name));
                continue;
            }
            Ok(None) => "not installed, nor the admission policies (`kubectl mlplatform policy install`): namespace policy is not enforced".to_owned(),
            Err(e) => one_line(&e.to_string()),
        };
        present = false;
        // Either engine enforces the namespace policy: with the admission policies in place,
        // a missing webhook is no problem of doctor's.
        if policy.is_none() {
            checks.push(webhook_missing(name, missing, enforcement_asked));
        }
    }
    if present {
        checks.push(probe_pod(kube, namespace, &plan.outputs.user_service_account).await);
    }
    let by = match (present, policy) {
        (true, None) => "by the webhook".to_owned(),
        (true, Some(p)) => format!("by the webhook and by {p}"),
        (false, Some(p)) => format!("by {p}; the webhook is not installed"),
        (false, None) => return checks,
    };
    checks.push(Check {
        detail: Some(by),
        ..Check::pass(format!("namespace policy of {namespace} enforced"))
    });
    checks
}

fn webhook_missing(name: String, detail: String, enforcement_asked: bool) -> Check {
    if enforcement_asked {
        Check::fail(name, detail, WEBHOOK_FIX)
    } else {
        Check::warn(name, detail, Some(WEBHOOK_FIX))
    }
}

/// A server-side dry-run create of a pod as the user SA: goes through admission (and so
/// through the webhook) without creating anything.
async fn probe_pod(kube: &kube::Client, namespace: &str, user_sa: &str) -> Check {
    let name = format!("webhook reachable (dry-run pod in {namespace})");
    let ar = ApiResource {
        group: String::new(),
        version: "v1".to_owned(),
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        plural: "pods".to_owned(),
    };
    let pod: DynamicObject = match serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mlplatform-doctor-probe", "namespace": namespace},
        "spec": {
            "serviceAccountName": user_sa,
            "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}],
        },
    })) {
        Ok(p) => p,
        Err(e) => return Check::warn(name, e.to_string(), None),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), namespace, &ar);
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    match api.create(&params, &pod).await {
        Ok(_) => Check::pass(name),
        // The API server could not call the webhook: policy is not enforced. Other refusals
        // (quota, a missing ServiceAccount) say nothing about the webhook.
        Err(kube::Error::Api(s)) if s.message.contains("failed calling webhook") => {
            Check::fail(name, one_line(&s.message), WEBHOOK_FIX)
        }
        Err(e) => Check::warn(name, one_line(&e.to_string()), Some(WEBHOOK_FIX)),
    }
}

//! `kubectl mlplatform policy install|uninstall|status`: thin I/O around
//! [`crate::policy_install`] (facts, pure plan) through the one executor and report.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::error::CommandError;
use super::io::{client, print};
use super::webhook_cmd::{CheckState, StatusCheck, finish_status};
use crate::cli::policy::PolicyCommand;
use crate::common::{DryRun, GlobalArgs, OutputFormat};
use crate::execute::{Clients, execute};
use crate::output::{Progress, Report, Summary, render_data, render_report, warn};
use crate::policy_install::{
    self, ObjectState, PolicyOutputs, PolicyPlan, PolicyStatus, Probe, ServedApis,
};
use crate::steps::Plan;

const FIX: &str = "kubectl mlplatform policy install";

impl Summary for PolicyOutputs {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![(
            "mutatingAdmissionPolicy",
            self.mutating_admission_policy.to_owned(),
        )]
    }
    fn rendered(plan: &Plan<Self>) -> Value {
        json!({"apiVersion": "v1", "kind": "List", "items": rendered_objects(plan)})
    }
}

fn rendered_objects(plan: &PolicyPlan) -> Vec<Value> {
    plan.kube_steps().map(|s| s.desired.clone()).collect()
}

pub(crate) async fn run(
    global: &GlobalArgs,
    cmd: &PolicyCommand,
) -> Result<ExitCode, CommandError> {
    match cmd {
        PolicyCommand::Install => install(global).await,
        PolicyCommand::Uninstall => uninstall(global).await,
        PolicyCommand::Status => status(global).await,
    }
}

/// Prints the plan's warnings, carries it out and prints the report; a client dry run with
/// `-o yaml` prints the objects as documents `kubectl apply -f -` takes.
async fn carry_out(
    global: &GlobalArgs,
    client: &kube::Client,
    plan: &PolicyPlan,
    progress: &Progress,
    verb: &str,
) -> Result<(), CommandError> {
    for w in &plan.warnings {
        warn(w);
    }
    if plan.has_writes() && global.dry_run != DryRun::Client {
        progress.phase(verb);
    }
    let clients = Clients {
        aws: None,
        kube: Some(client),
    };
    execute(plan, clients, global.dry_run, progress).await?;
    let text = match (global.dry_run, global.output) {
        (DryRun::Client, OutputFormat::Yaml) => {
            crate::output::render_documents(&rendered_objects(plan))
                .map_err(CommandError::Output)?
        }
        (DryRun::Client, OutputFormat::Json) => {
            render_data(&PolicyOutputs::rendered(plan), OutputFormat::Json)
                .map_err(CommandError::Output)?
        }
        _ => render_report(
            &Report::from_plan(plan, global.dry_run, global.output),
            global.output,
            verb,
        )
        .map_err(CommandError::Output)?,
    };
    print(&text)
}

/// Reads the served APIs and the live objects, plans, executes, reports.
async fn install(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let client = client(global).await?;
    let progress = Progress::for_stderr();
    progress.phase("reading the served admission APIs and the admission policies (no writes)");
    let served = policy_install::served_apis(&client).await?;
    let objects = policy_install::manifests(served)?;
    let keys = objects
        .iter()
        .map(policy_install::key_of)
        .collect::<Result<Vec<_>, _>>()?;
    let live = policy_install::observe_objects(&client, keys).await?;
    let plan = policy_install::plan_install(&objects, served, &live)?;
    carry_out(global, &client, &plan, &progress, "policy install").await?;
    Ok(ExitCode::SUCCESS)
}

/// Reads every admission policy object of the served kinds, deletes those labelled ours.
async fn uninstall(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let client = client(global).await?;
    let progress = Progress::for_stderr();
    progress.phase("reading the admission policies (no writes)");
    let served = policy_install::served_apis(&client).await?;
    let live = policy_install::observe_all(&client, served).await?;
    let plan = policy_install::plan_uninstall(served, &live);
    carry_out(global, &client, &plan, &progress, "policy uninstall").await?;
    Ok(ExitCode::SUCCESS)
}

fn served_checks(served: ServedApis) -> Vec<StatusCheck> {
    let check = |name: &str, state, detail: &str| StatusCheck {
        name: name.to_owned(),
        state,
        detail: detail.to_owned(),
    };
    vec![
        if served.validating {
            check(
                "API validatingadmissionpolicies",
                CheckState::Pass,
                "served (admissionregistration.k8s.io/v1)",
            )
        } else {
            check(
                "API validatingadmissionpolicies",
                CheckState::Fail,
                "not served: this server predates Kubernetes 1.30; use `kubectl mlplatform webhook install`",
            )
        },
        if served.mutating {
            check(
                "API mutatingadmissionpolicies",
                CheckState::Pass,
                "served (admissionregistration.k8s.io/v1)",
            )
        } else {
            check(
                "API mutatingadmissionpolicies",
                CheckState::Skip,
                "not served (Kubernetes 1.36+): the IRSA role ARN is not set by an admission policy",
            )
        },
    ]
}

/// Pure: one check per thing that must hold for the admission policies to enforce policy.
pub(crate) fn status_checks(status: &PolicyStatus) -> Vec<StatusCheck> {
    let mut checks = served_checks(status.served);
    for (key, state) in &status.objects {
        let (state, detail) = match state {
            ObjectState::Matches => (CheckState::Pass, "installed".to_owned()),
            ObjectState::Missing => (CheckState::Fail, "not installed".to_owned()),
            ObjectState::Differs => (
                CheckState::Fail,
                "differs from what `policy install` writes".to_owned(),
            ),
            ObjectState::NotOurs => (
                CheckState::Fail,
                "exists but is not labelled as made by kubectl-mlplatform".to_owned(),
            ),
        };
        checks.push(StatusCheck {
            name: key.to_string(),
            state,
            detail,
        });
    }
    let name = "API server refuses a disallowed ServiceAccount";
    let (state, detail) = match &status.probe {
        Probe::Refused {
            namespace,
            service_account,
            message,
        } => (
            CheckState::Pass,
            format!(
                "dry-run pod as ServiceAccount {service_account} in {namespace}: {}",
                crate::kube_io::one_line(message)
            ),
        ),
        Probe::Admitted {
            namespace,
            service_account,
        } => (
            CheckState::Fail,
            format!(
                "dry-run pod as ServiceAccount {service_account} in {namespace} was admitted"
            ),
        ),
        Probe::RefusedByWebhook {
            namespace,
            service_account,
            message,
        } => (
            CheckState::Fail,
            format!(
                "dry-run pod as ServiceAccount {service_account} in {namespace} passed the admission policies and was refused by the webhook: {}",
                crate::kube_io::one_line(message)
            ),
        ),
        Probe::Inconclusive {
            namespace,
            service_account,
            message,
        } => (
            CheckState::Skip,
            format!(
                "dry-run pod as ServiceAccount {service_account} in {namespace} refused for another reason: {}",
                crate::kube_io::one_line(message)
            ),
        ),
        Probe::NoEnforcedNamespace => (
            CheckState::Skip,
            "no managed namespace with enforcement `enforce` to probe in (`kubectl mlplatform namespace add --enforcement enforce`)".to_owned(),
        ),
        Probe::NoDisallowedServiceAccount { namespace } => (
            CheckState::Skip,
            format!("every ServiceAccount of {namespace} is allowed there; nothing to probe with"),
        ),
        Probe::NotServed => (
            CheckState::Skip,
            "ValidatingAdmissionPolicy is not served".to_owned(),
        ),
    };
    checks.push(StatusCheck {
        name: name.to_owned(),
        state,
        detail,
    });
    checks
}

async fn status(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let client = client(global).await?;
    let status = policy_install::read_status(&client).await?;
    finish_status(
        &status_checks(&status),
        global.output,
        "the admission policies do not enforce the namespace policy",
        FIX,
        "policy",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::webhook_cmd::render_status;
    use crate::objects::{Kind, ObjectKey};

    fn status(probe: Probe, state: ObjectState) -> PolicyStatus {
        PolicyStatus {
            served: ServedApis {
                validating: true,
                mutating: false,
            },
            objects: vec![(
                ObjectKey {
                    kind: Kind::ValidatingAdmissionPolicy,
                    namespace: None,
                    name: "mlplatform-service-accounts".into(),
                },
                state,
            )],
            probe,
        }
    }

    fn states(checks: &[StatusCheck]) -> Vec<CheckState> {
        checks.iter().map(|c| c.state).collect()
    }

    #[test]
    fn refused_probe_and_installed_objects_pass_and_an_older_server_skips_the_mutating_part() {
        let refused = Probe::Refused {
            namespace: "team".into(),
            service_account: "default".into(),
            message:
                "pods is forbidden: ValidatingAdmissionPolicy 'mlplatform-service-accounts' ..."
                    .into(),
        };
        let checks = status_checks(&status(refused, ObjectState::Matches));
        assert_eq!(
            states(&checks),
            [
                CheckState::Pass,
                CheckState::Skip,
                CheckState::Pass,
                CheckState::Pass
            ]
        );
        assert_eq!(
            checks[2].name,
            "ValidatingAdmissionPolicy mlplatform-service-accounts"
        );
    }

    #[test]
    fn an_admitted_probe_or_a_missing_object_fails() {
        let admitted = Probe::Admitted {
            namespace: "team".into(),
            service_account: "default".into(),
        };
        let checks = status_checks(&status(admitted, ObjectState::Missing));
        assert_eq!(checks[2].state, CheckState::Fail);
        assert_eq!(checks[3].state, CheckState::Fail);
        let json: Value =
            serde_json::from_str(&render_status(&checks, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(json["healthy"], false);
        let nothing = status_checks(&PolicyStatus {
            served: ServedApis::default(),
            objects: Vec::new(),
            probe: Probe::NotServed,
        });
        assert_eq!(
            states(&nothing),
            [CheckState::Fail, CheckState::Skip, CheckState::Skip]
        );
    }
}

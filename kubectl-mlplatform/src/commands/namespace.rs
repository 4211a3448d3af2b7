//! `namespace add|remove|list`: the per-namespace bundle alone (no AWS involved).

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::vocabulary::PROFILE_ANNOTATION;
use mlplatform_namespace_policy::NamespacePolicy;
use serde::Serialize;

use super::error::CommandError;
use super::preflight::{read_bundle_state, resolve_namespace, set_enforcement};
use crate::cli::{NamespaceArgs, NamespaceCommand};
use crate::common::{GlobalArgs, OutputFormat};
use crate::execute::{Clients, execute};
use crate::kube_io::{KubeTarget, list_managed_namespaces, load_target};
use crate::output::{Progress, print_report, render_data, table, warn};
use crate::plan::{plan_namespace_add, plan_namespace_remove, resolve_params};
use crate::profile::{Profile, Vars, load_profile};

pub(crate) async fn run(
    global: &GlobalArgs,
    cmd: &NamespaceCommand,
) -> Result<ExitCode, CommandError> {
    match cmd {
        NamespaceCommand::Add(args) => add_or_remove(global, args, None).await,
        NamespaceCommand::Remove(args) => {
            add_or_remove(global, &args.namespace, Some(args.delete_namespace)).await
        }
        NamespaceCommand::List => list(global).await,
    }
}

fn vars(
    profile: &Profile,
    target: &KubeTarget,
    params: &BTreeMap<String, String>,
    namespace: &str,
) -> Vars {
    let mut vars = Vars::new();
    vars.set("profile", profile.name())
        .set("namespace", namespace);
    if let Some(hint) = target.cluster_hint() {
        vars.set("cluster", hint.name);
        if let Some(region) = hint.region {
            vars.set("region", region);
        }
    }
    for (k, v) in params {
        vars.set(k, v.as_str());
    }
    vars
}

/// `remove`: Some(delete_namespace).
async fn add_or_remove(
    global: &GlobalArgs,
    args: &NamespaceArgs,
    remove: Option<bool>,
) -> Result<ExitCode, CommandError> {
    let mut profile = load_profile(&args.profile)?;
    if remove.is_none() {
        set_enforcement(&mut profile, args.enforcement)?;
    }
    let given: BTreeMap<String, String> = args.params.iter().cloned().collect();
    let params = resolve_params(&profile, &given, false)?;
    let target = load_target(global)?;
    let namespace = resolve_namespace(global, Some(&target), &profile)?;
    let vars = vars(&profile, &target, &params, &namespace);
    let progress = Progress::for_stderr();
    let kube = target.client().await?;
    let observed = read_bundle_state(&kube, &profile, &vars, &namespace).await?;
    let (plan, verb) = match remove {
        None => (
            plan_namespace_add(&profile, &vars, &namespace, &observed)?,
            "namespace add",
        ),
        Some(delete_namespace) => (
            plan_namespace_remove(&profile, &vars, &namespace, delete_namespace, &observed)?,
            "namespace remove",
        ),
    };
    for w in &plan.warnings {
        warn(w);
    }
    let clients = Clients {
        aws: None,
        kube: Some(&kube),
    };
    execute(&plan, clients, global.dry_run, &progress).await?;
    print_report(&plan, global.dry_run, global.output, verb).map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ManagedNamespace {
    name: String,
    profile: Option<String>,
    user_service_account: Option<String>,
    system_service_accounts: Vec<String>,
    irsa_role_arn: Option<String>,
    enforcement: Option<String>,
    /// Set when the annotations are unusable (the webhook fails closed on these).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn list(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let target = load_target(global)?;
    let kube = target.client().await?;
    let namespaces = list_managed_namespaces(&kube).await?;
    let rows: Vec<ManagedNamespace> = namespaces
        .into_iter()
        .map(|(name, ns)| {
            let labels: Option<BTreeMap<String, String>> =
                serde_json::from_value(ns["metadata"]["labels"].clone()).ok();
            let annotations: Option<BTreeMap<String, String>> =
                serde_json::from_value(ns["metadata"]["annotations"].clone()).ok();
            let profile = annotations
                .as_ref()
                .and_then(|a| a.get(PROFILE_ANNOTATION).cloned());
            match NamespacePolicy::from_metadata(labels.as_ref(), annotations.as_ref()) {
                Ok(policy) => ManagedNamespace {
                    name,
                    profile,
                    user_service_account: policy.as_ref().map(|p| p.user_service_account.clone()),
                    system_service_accounts: policy
                        .as_ref()
                        .map(|p| p.system_service_accounts.clone())
                        .unwrap_or_default(),
                    irsa_role_arn: policy.as_ref().and_then(|p| p.irsa_role_arn.clone()),
                    enforcement: policy.map(|p| p.enforcement.to_string()),
                    error: None,
                },
                Err(e) => ManagedNamespace {
                    name,
                    profile,
                    user_service_account: None,
                    system_service_accounts: Vec::new(),
                    irsa_role_arn: None,
                    enforcement: None,
                    error: Some(e.to_string()),
                },
            }
        })
        .collect();
    let text = match global.output {
        OutputFormat::Table => {
            let mut table_rows = vec![
                [
                    "NAME",
                    "PROFILE",
                    "USER-SA",
                    "SYSTEM-SAS",
                    "ENFORCEMENT",
                    "IRSA-ROLE",
                ]
                .map(str::to_owned)
                .to_vec(),
            ];
            for r in &rows {
                let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_owned());
                table_rows.push(vec![
                    r.name.clone(),
                    dash(&r.profile),
                    dash(&r.user_service_account),
                    if r.system_service_accounts.is_empty() {
                        "-".to_owned()
                    } else {
                        r.system_service_accounts.join(",")
                    },
                    r.error
                        .as_ref()
                        .map_or_else(|| dash(&r.enforcement), |_| "INVALID".to_owned()),
                    dash(&r.irsa_role_arn),
                ]);
            }
            let mut text = table(&table_rows);
            for r in rows.iter().filter(|r| r.error.is_some()) {
                text.push_str(&format!(
                    "{}: {}\n",
                    r.name,
                    r.error.clone().unwrap_or_default()
                ));
            }
            text
        }
        format => render_data(&rows, format).map_err(CommandError::Output)?,
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

//! `kubectl mlplatform irsa migrate --to pod-identity|irsa`: flags checked without I/O, then
//! preflight reads (the role, the cluster's OIDC provider, the ServiceAccounts its trust names
//! and their EKS Pod Identity associations; no writes), the pure plan of
//! [`crate::irsa::plan_migrate`] (one step at a time, in order), exactly its writes, the report.

use std::collections::BTreeMap;
use std::process::ExitCode;

use super::error::CommandError;
use super::oidc_cmd::resolve_cluster;
use super::preflight::read_service_accounts;
use crate::arn::parse_iam_arn;
use crate::aws::{Aws, issuer_host_path};
use crate::cli::irsa::IrsaMigrateArgs;
use crate::common::GlobalArgs;
use crate::eks_pod_identity::read_associations;
use crate::execute::{Clients, execute};
use crate::facts::PodIdentityFacts;
use crate::irsa::{
    IrsaError, MigrateObserved, MigrateRequest, default_role_name, parse_role_name, plan_migrate,
    service_accounts_in, split_service_account, trusted_service_accounts,
};
use crate::kube_io::load_target;
use crate::output::{Progress, print_report, warn};
use crate::pod_identity::{Identity, same_role};

fn usage(e: IrsaError) -> CommandError {
    CommandError::Usage(e.to_string())
}

/// Which role: by ARN (any role), by name, or the name `irsa create` gives the ServiceAccounts.
enum RoleChoice {
    Arn(String),
    Name(String),
    Default,
}

/// Everything checkable before any I/O.
fn role_choice(args: &IrsaMigrateArgs) -> Result<RoleChoice, CommandError> {
    if args.remove_oidc_trust && args.to == Identity::Irsa {
        return Err(CommandError::Usage(
            "--remove-oidc-trust goes with --to pod-identity (--to irsa puts the OIDC trust back)"
                .to_owned(),
        ));
    }
    if let Some(bad) = args
        .service_accounts
        .iter()
        .find(|sa| !crate::irsa::is_service_account_name(split_service_account(sa).1))
    {
        return Err(usage(IrsaError::BadServiceAccount(bad.clone())));
    }
    if let Some(arn) = &args.role_arn {
        let bad = |reason: String| {
            usage(IrsaError::BadRoleArn {
                input: arn.clone(),
                reason,
            })
        };
        return match parse_iam_arn(arn) {
            Ok(parsed) if parsed.resource_type == "role" => Ok(RoleChoice::Arn(arn.clone())),
            Ok(parsed) => Err(bad(format!("it names a {}", parsed.resource_type))),
            Err(e) => Err(bad(e.to_string())),
        };
    }
    if let Some(name) = &args.role_name {
        return Ok(RoleChoice::Name(parse_role_name(name).map_err(usage)?.name));
    }
    if args.service_accounts.is_empty() {
        return Err(CommandError::Usage(
            "name the role to migrate: --role-name NAME, --role-arn ARN, or --service-account NAME (the role `irsa create` made for it)"
                .to_owned(),
        ));
    }
    Ok(RoleChoice::Default)
}

pub(crate) async fn run(
    global: &GlobalArgs,
    args: &IrsaMigrateArgs,
) -> Result<ExitCode, CommandError> {
    let choice = role_choice(args)?;
    let (cluster_name, region) = resolve_cluster(global, &args.cluster)?;
    let kube_target = load_target(global)?;
    let namespace = global
        .namespace
        .clone()
        .or_else(|| kube_target.context_namespace())
        .unwrap_or_else(|| "default".to_owned());
    let service_accounts =
        service_accounts_in(&args.service_accounts, &namespace).map_err(usage)?;
    // Annotations change only when the OIDC side goes or comes back.
    let kube = if args.remove_oidc_trust || args.to == Identity::Irsa {
        Some(kube_target.client().await?)
    } else {
        None
    };
    let aws = Aws::from_env(region.as_deref()).await?;
    let progress = Progress::for_stderr();
    progress.phase("reading the current state (no writes)");
    let cluster = aws.describe_cluster(&cluster_name).await?;
    let issuer = cluster
        .oidc_issuer
        .clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| IrsaError::NoIssuer {
            cluster: cluster.name.clone(),
        })?;
    let host_path = issuer_host_path(&issuer);
    let role_name = match &choice {
        RoleChoice::Arn(arn) => arn.rsplit('/').next().unwrap_or_default().to_owned(),
        RoleChoice::Name(name) => name.clone(),
        RoleChoice::Default => default_role_name(&cluster.name, &namespace, &service_accounts),
    };
    let (role, oidc_provider) =
        tokio::try_join!(aws.get_role(&role_name), aws.find_oidc_provider(&issuer))?;
    if let (RoleChoice::Arn(given), Some(role)) = (&choice, &role)
        && !same_role(given, &role.arn)
    {
        return Err(IrsaError::RoleArnMismatch {
            given: given.clone(),
            actual: role.arn.clone(),
        }
        .into());
    }
    let subjects = role
        .as_ref()
        .map(|r| trusted_service_accounts(&r.trust_policy, &host_path, &cluster.arn))
        .unwrap_or_default();
    let (objects, associations) = tokio::try_join!(
        async {
            match &kube {
                Some(kube) => Ok(read_service_accounts(kube, subjects.clone()).await?),
                None => Ok::<_, CommandError>(BTreeMap::new()),
            }
        },
        async { Ok(read_associations(&aws, &cluster.name, subjects.clone()).await?) },
    )?;
    let request = MigrateRequest {
        cluster_name: cluster.name.clone(),
        cluster_arn: cluster.arn.clone(),
        issuer_host_path: host_path,
        to: args.to,
        role: args.role_arn.clone().unwrap_or(role_name),
        named_by_arn: matches!(choice, RoleChoice::Arn(_)),
        service_accounts: service_accounts
            .into_iter()
            .map(|sa| (namespace.clone(), sa))
            .collect(),
        remove_oidc_trust: args.remove_oidc_trust,
        replace_association: args.replace_association,
    };
    let observed = MigrateObserved {
        role,
        oidc_provider,
        service_accounts: objects,
        pod_identity: PodIdentityFacts {
            associations: Some(associations),
            agent_addon: None,
        },
    };
    let plan = plan_migrate(&request, &observed)?;
    for w in &plan.warnings {
        warn(w);
    }
    if plan.has_writes() {
        progress.phase("migrating");
    }
    let clients = Clients {
        aws: Some(&aws),
        kube: kube.as_ref(),
    };
    execute(&plan, clients, global.dry_run, &progress).await?;
    print_report(&plan, global.dry_run, global.output, "irsa migrate")
        .map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

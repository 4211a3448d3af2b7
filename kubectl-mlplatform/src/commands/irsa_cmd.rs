//! `kubectl mlplatform irsa create|delete`: flags in, preflight reads (no writes), the pure
//! plan of [`crate::irsa`], then exactly its writes, then the report. `irsa migrate`:
//! `super::irsa_migrate`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use serde_json::Value;

use super::error::CommandError;
use super::oidc_cmd::resolve_cluster;
use super::preflight::read_service_accounts;
use crate::arn::parse_eks_cluster_arn;
use crate::aws::{Aws, ClusterFacts, issuer_host_path};
use crate::cli::irsa::{IrsaCommand, IrsaCreateArgs, IrsaTargetArgs};
use crate::common::GlobalArgs;
use crate::execute::{Clients, execute};
use crate::irsa::{
    IrsaError, IrsaObserved, IrsaRequest, check_policy_arn, default_role_name, parse_inline_policy,
    parse_role_name, plan_irsa_create, plan_irsa_delete, service_accounts_in,
    split_service_account, trusted_service_accounts,
};
use crate::kube_io::{get_object, load_target};
use crate::objects::{Kind, ObjectKey};
use crate::output::{Progress, print_report, warn};
use crate::pod_identity::{Identity, trusts_pod_identity};

/// Everything known before any I/O: flags checked, files read.
struct Inputs {
    /// As given (`NAME` or `NAMESPACE/NAME`); checked against the namespace once it is known.
    service_accounts: Vec<String>,
    role_name: Option<crate::irsa::RoleName>,
    attach_policy_arns: Vec<String>,
    inline_policy: Option<Value>,
    role_only: bool,
}

fn usage(e: IrsaError) -> CommandError {
    CommandError::Usage(e.to_string())
}

fn inputs(
    target: &IrsaTargetArgs,
    create: Option<&IrsaCreateArgs>,
) -> Result<Inputs, CommandError> {
    let service_accounts = target.service_accounts.clone();
    if let Some(bad) = service_accounts
        .iter()
        .find(|sa| !crate::irsa::is_service_account_name(split_service_account(sa).1))
    {
        return Err(usage(IrsaError::BadServiceAccount(bad.clone())));
    }
    let role_name = target
        .role_name
        .as_deref()
        .map(parse_role_name)
        .transpose()
        .map_err(usage)?;
    let mut attach_policy_arns = Vec::new();
    let mut inline_policy = None;
    if let Some(create) = create {
        for arn in &create.attach_policy_arns {
            attach_policy_arns.push(check_policy_arn(arn).map_err(usage)?);
        }
        if let Some(path) = &create.inline_policy {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                usage(IrsaError::BadInlinePolicy {
                    file: file.clone(),
                    reason: format!("cannot read it ({e})"),
                })
            })?;
            inline_policy = Some(parse_inline_policy(&file, &text).map_err(usage)?);
        }
    }
    Ok(Inputs {
        service_accounts,
        role_name,
        attach_policy_arns,
        inline_policy,
        role_only: target.role_only,
    })
}

/// Resolves the request from the inputs and what EKS said about the cluster.
pub(crate) fn request_for(
    cluster: &ClusterFacts,
    namespace: &str,
    service_accounts: Vec<String>,
    role_name: Option<crate::irsa::RoleName>,
    attach_policy_arns: Vec<String>,
    inline_policy: Option<Value>,
    role_only: bool,
) -> Result<IrsaRequest, IrsaError> {
    let issuer = cluster
        .oidc_issuer
        .as_deref()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| IrsaError::NoIssuer {
            cluster: cluster.name.clone(),
        })?;
    let partition = parse_eks_cluster_arn(&cluster.arn)
        .map(|a| a.partition)
        .unwrap_or_else(|_| "aws".to_owned());
    let role = match role_name {
        Some(r) => r,
        None => parse_role_name(&default_role_name(
            &cluster.name,
            namespace,
            &service_accounts,
        ))?,
    };
    Ok(IrsaRequest {
        cluster_name: cluster.name.clone(),
        cluster_arn: cluster.arn.clone(),
        partition,
        account: cluster.account.clone(),
        issuer_host_path: issuer_host_path(issuer),
        namespace: namespace.to_owned(),
        service_accounts,
        role,
        attach_policy_arns,
        inline_policy,
        role_only,
        extra_tags: Vec::new(),
        identity: crate::pod_identity::Identity::Irsa,
        replace_association: false,
    })
}

/// Preflight for `irsa create|delete`: cluster, role, OIDC provider, namespace and every
/// ServiceAccount the plan looks at, in parallel where independent; the EKS Pod Identity
/// associations of those ServiceAccounts with `--identity pod-identity` or when the role's
/// trust has a Pod Identity statement. Writes nothing.
pub(crate) async fn read_irsa_state(
    aws: &Aws,
    kube: Option<&kube::Client>,
    cluster_name: &str,
    namespace: &str,
    role_name: Option<&str>,
    service_accounts: &[String],
    identity: Identity,
) -> Result<(ClusterFacts, IrsaObserved), CommandError> {
    let cluster = aws.describe_cluster(cluster_name).await?;
    let role_name = match role_name {
        Some(r) => r.to_owned(),
        None => default_role_name(&cluster.name, namespace, service_accounts),
    };
    let issuer = cluster.oidc_issuer.clone().unwrap_or_default();
    let wanted: Vec<(String, String)> = service_accounts
        .iter()
        .map(|sa| (namespace.to_owned(), sa.clone()))
        .collect();
    let (role, provider, namespace_exists, mut service_account_objects) = tokio::try_join!(
        async { Ok::<_, CommandError>(aws.get_role(&role_name).await?) },
        async {
            if issuer.is_empty() {
                Ok(None)
            } else {
                Ok(aws.find_oidc_provider(&issuer).await?)
            }
        },
        async {
            match kube {
                Some(kube) => {
                    let key = ObjectKey {
                        kind: Kind::Namespace,
                        namespace: None,
                        name: namespace.to_owned(),
                    };
                    Ok(Some(get_object(kube, &key).await?.is_some()))
                }
                None => Ok(None),
            }
        },
        async {
            match kube {
                Some(kube) => Ok(read_service_accounts(kube, wanted.clone()).await?),
                None => Ok(BTreeMap::new()),
            }
        },
    )?;
    // ServiceAccounts the existing trust admits (to reconcile or remove their annotation).
    if let (Some(kube), Some(role)) = (kube, &role) {
        let host_path = issuer_host_path(&issuer);
        let extra: BTreeSet<(String, String)> =
            crate::irsa::subjects_in_trust(&role.trust_policy, &host_path)
                .into_iter()
                .filter(|k| !service_account_objects.contains_key(k))
                .collect();
        service_account_objects.extend(read_service_accounts(kube, extra).await?);
    }
    let mut pod_identity = crate::facts::PodIdentityFacts::default();
    if identity == Identity::PodIdentity
        || role
            .as_ref()
            .is_some_and(|r| trusts_pod_identity(&r.trust_policy))
    {
        let mut keys: BTreeSet<(String, String)> = wanted.into_iter().collect();
        if let Some(role) = &role {
            keys.extend(trusted_service_accounts(
                &role.trust_policy,
                &issuer_host_path(&issuer),
                &cluster.arn,
            ));
        }
        pod_identity.associations =
            Some(crate::eks_pod_identity::read_associations(aws, &cluster.name, keys).await?);
    }
    Ok((
        cluster,
        IrsaObserved {
            oidc_provider: provider,
            role,
            namespace_exists,
            service_accounts: service_account_objects,
            pod_identity,
        },
    ))
}

pub(crate) async fn run(global: &GlobalArgs, cmd: &IrsaCommand) -> Result<ExitCode, CommandError> {
    let (target, create) = match cmd {
        IrsaCommand::Create(args) => (&args.target, Some(args)),
        IrsaCommand::Delete(args) => (args, None),
        IrsaCommand::Migrate(args) => return super::irsa_migrate::run(global, args).await,
    };
    // Everything checkable without I/O first.
    let inputs = inputs(target, create)?;
    let (cluster_name, region) = resolve_cluster(global, &target.cluster)?;
    let kube_target = if inputs.role_only {
        load_target(global).ok()
    } else {
        Some(load_target(global)?)
    };
    let namespace = global
        .namespace
        .clone()
        .or_else(|| kube_target.as_ref().and_then(|t| t.context_namespace()))
        .unwrap_or_else(|| "default".to_owned());
    let service_accounts =
        service_accounts_in(&inputs.service_accounts, &namespace).map_err(usage)?;
    let kube = match (&kube_target, inputs.role_only) {
        (Some(t), false) => Some(t.client().await?),
        _ => None,
    };
    let aws = Aws::from_env(region.as_deref()).await?;
    let progress = Progress::for_stderr();
    progress.phase("reading the current state (no writes)");
    let (cluster, observed) = read_irsa_state(
        &aws,
        kube.as_ref(),
        &cluster_name,
        &namespace,
        inputs.role_name.as_ref().map(|r| r.name.as_str()),
        &service_accounts,
        target.identity,
    )
    .await?;
    let mut request = request_for(
        &cluster,
        &namespace,
        service_accounts,
        inputs.role_name,
        inputs.attach_policy_arns,
        inputs.inline_policy,
        inputs.role_only,
    )?;
    request.identity = target.identity;
    request.replace_association = create.is_some_and(|c| c.replace_association);
    let (plan, verb) = match create {
        Some(_) => (plan_irsa_create(&request, &observed)?, "irsa create"),
        None => (plan_irsa_delete(&request, &observed)?, "irsa delete"),
    };
    for w in &plan.warnings {
        warn(w);
    }
    if plan.has_writes() {
        progress.phase("applying");
    }
    let clients = Clients {
        aws: Some(&aws),
        kube: kube.as_ref(),
    };
    execute(&plan, clients, global.dry_run, &progress).await?;
    print_report(&plan, global.dry_run, global.output, verb).map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{Change, DryRun, OutputFormat};
    use crate::irsa::IrsaPlan;
    use crate::output::{Report, report_table};
    use crate::steps::{Direction, IamAction, IamStep, Step};
    use serde_json::json;

    fn cluster(issuer: Option<&str>) -> ClusterFacts {
        ClusterFacts {
            name: "c1".into(),
            arn: "arn:aws-cn:eks:cn-north-1:123456789012:cluster/c1".into(),
            account: "123456789012".into(),
            region: "cn-north-1".into(),
            oidc_issuer: issuer.map(str::to_owned),
            authentication_mode: None,
            version: None,
            endpoint: None,
        }
    }

    #[test]
    fn requests_take_partition_issuer_and_default_name_from_the_cluster() {
        let req = request_for(
            &cluster(Some("https://oidc.eks.cn-north-1.amazonaws.com.cn/id/X/")),
            "ml",
            vec!["sa".into()],
            None,
            Vec::new(),
            None,
            false,
        )
        .unwrap();
        assert_eq!(req.partition, "aws-cn");
        assert_eq!(
            req.issuer_host_path,
            "oidc.eks.cn-north-1.amazonaws.com.cn/id/X"
        );
        assert_eq!(req.role.name, "mlplatform-irsa-c1-ml-sa");
        assert_eq!(
            req.role_arn(),
            "arn:aws-cn:iam::123456789012:role/mlplatform-irsa-c1-ml-sa"
        );
        let err = request_for(
            &cluster(None),
            "ml",
            vec!["sa".into()],
            None,
            Vec::new(),
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err,
            IrsaError::NoIssuer {
                cluster: "c1".into()
            }
        );
    }

    #[test]
    fn reports_show_documents_only_when_asked_and_say_what_changes() {
        let outputs = crate::irsa::IrsaOutputs {
            role_name: "r".into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            namespace: "ml".into(),
            service_accounts: vec!["sa".into()],
            trust_policy: json!({"Statement": []}),
            ..Default::default()
        };
        let step = Step::Iam(IamStep {
            kind: "IAMRole",
            name: "r".into(),
            change: Change::Created,
            action: IamAction::DeleteRole { role: "r".into() },
        });
        let plan = IrsaPlan::new(outputs, vec![step], Direction::Create);
        let table_report = Report::from_plan(&plan, DryRun::Client, OutputFormat::Table);
        assert!(table_report.rendered.is_none());
        let text = report_table(&table_report, "irsa create");
        assert!(text.contains("irsa create: 1 created, 0 updated, 0 deleted, 0 unchanged (dry run: nothing was written)"), "{text}");
        assert!(
            text.contains("roleArn:         arn:aws:iam::123456789012:role/r"),
            "{text}"
        );
        assert!(text.contains("serviceAccounts: ml/sa"), "{text}");
        let json =
            serde_json::to_value(Report::from_plan(&plan, DryRun::Client, OutputFormat::Json))
                .unwrap();
        assert_eq!(json["rendered"]["trustPolicy"], json!({"Statement": []}));
        assert_eq!(
            json["rendered"]["writes"][0]["action"]["action"],
            "deleteRole"
        );
        assert_eq!(json["rendered"]["writes"][0]["kind"], "IAMRole");
        let applied = Report::from_plan(&plan, DryRun::None, OutputFormat::Json);
        assert!(applied.rendered.is_none());
    }
}

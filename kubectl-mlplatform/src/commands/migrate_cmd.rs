//! `aws-auth migrate --to access-entries|aws-auth`: flags checked first (no I/O); then the
//! reads (the cluster and its authentication mode, aws-auth, the built-in profiles' connect
//! mappings and managed namespaces, the tags of the roles those mappings name, our access
//! entries); a pure plan (`crate::access_migration`); the one executor, one step at a time in
//! plan order; one report.

use std::collections::BTreeMap;
use std::process::ExitCode;

use futures::{StreamExt, TryStreamExt};

use super::error::CommandError;
use super::preflight::cluster_and_region;
use crate::access_migration::{
    MigrationFacts, MigrationRequest, ProfileAccess, plan_migration, profile_of,
};
use crate::aws::Aws;
use crate::aws_auth::store::read_aws_auth;
use crate::aws_auth::{AwsAuth, kind_of_arn, normalize_arn};
use crate::cli::aws_auth::MigrateArgs;
use crate::common::GlobalArgs;
use crate::eks_access::{list_access_entries, read_access_entry};
use crate::execute::{Clients, execute};
use crate::facts::ClusterFacts;
use crate::kube_io::{list_profile_namespaces, load_target};
use crate::output::{Progress, print_report, warn};
use crate::plan::{existing_role_name, vars_for};
use crate::profile::builtin_profiles;

/// How many EKS or IAM reads go out at once (a cluster may have many access entries).
const READS_AT_ONCE: usize = 8;

pub(super) async fn run(global: &GlobalArgs, args: &MigrateArgs) -> Result<ExitCode, CommandError> {
    let arns = args
        .arns
        .iter()
        .map(|arn| {
            let kind = kind_of_arn(arn)?;
            Ok((kind, normalize_arn(kind, arn)?))
        })
        .collect::<Result<Vec<_>, crate::aws_auth::AwsAuthError>>()
        .map_err(|e| CommandError::Usage(format!("--arn: {e}")))?;
    let request = MigrationRequest {
        to: args.to,
        arns,
        update_authentication_mode: args.update_authentication_mode,
    };
    let progress = Progress::for_stderr();
    progress.phase("reading the current state (no writes)");
    let target = load_target(global)?;
    let (cluster, region) = cluster_and_region(
        args.cluster.as_ref(),
        args.region.as_ref(),
        target.cluster_hint(),
    )?;
    let (kube, aws) = tokio::join!(target.client(), Aws::from_env(region.as_deref()));
    let (kube, aws) = (kube?, aws?);
    let facts = read_facts(&aws, &kube, &cluster).await?;
    let plan = plan_migration(&request, &facts)?;
    for w in &plan.warnings {
        warn(w);
    }
    if plan.has_writes() {
        progress.phase("moving");
    }
    let clients = Clients {
        aws: Some(&aws),
        kube: Some(&kube),
    };
    execute(&plan, clients, global.dry_run, &progress).await?;
    print_report(&plan, global.dry_run, global.output, "aws-auth migrate")
        .map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

async fn read_facts(
    aws: &Aws,
    kube: &kube::Client,
    name: &str,
) -> Result<MigrationFacts, CommandError> {
    let (cluster, aws_auth) = tokio::try_join!(
        async { Ok::<_, CommandError>(aws.describe_cluster(name).await?) },
        async { Ok(read_aws_auth(kube).await?) },
    )?;
    let profiles = profile_accesses(kube, &cluster).await?;
    let entries_exist = matches!(
        cluster.authentication_mode.as_deref(),
        Some("API" | "API_AND_CONFIG_MAP")
    );
    let (role_tags, entries) =
        tokio::try_join!(role_tags(aws, aws_auth.as_ref(), &profiles), async {
            if entries_exist {
                access_entries(aws, &cluster.name).await
            } else {
                Ok(BTreeMap::new())
            }
        },)?;
    Ok(MigrationFacts {
        cluster,
        aws_auth,
        profiles,
        role_tags,
        entries,
    })
}

/// Every built-in profile's connect mapping (username, group) for this cluster, with the
/// namespaces managed for it.
async fn profile_accesses(
    kube: &kube::Client,
    cluster: &ClusterFacts,
) -> Result<Vec<ProfileAccess>, CommandError> {
    let mut out = Vec::new();
    for profile in builtin_profiles()? {
        let Some(access) = &profile.spec.cluster_access else {
            continue;
        };
        let vars = vars_for(&profile, cluster, &BTreeMap::new(), "");
        let (Ok(username), Ok(group)) = (
            vars.render("spec.clusterAccess.username", &access.username),
            vars.render("spec.clusterAccess.group", &access.group),
        ) else {
            continue;
        };
        let namespaces = list_profile_namespaces(kube, profile.name())
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        out.push(ProfileAccess {
            profile: profile.name().to_owned(),
            username,
            group,
            namespaced: profile.spec.namespace.is_some(),
            namespaces,
        });
    }
    Ok(out)
}

/// Tags of the roles of the aws-auth mappings that look like a profile's (by mapping ARN);
/// roles that do not exist are left out.
async fn role_tags(
    aws: &Aws,
    aws_auth: Option<&AwsAuth>,
    profiles: &[ProfileAccess],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, CommandError> {
    let arns: Vec<String> = aws_auth
        .map(AwsAuth::roles)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| profile_of(profiles, &m.username, &m.groups).is_some())
        .map(|m| m.arn)
        .collect();
    let found: Vec<Option<(String, BTreeMap<String, String>)>> = futures::stream::iter(arns)
        .map(|arn| async move {
            let Some(name) = existing_role_name(&arn) else {
                return Ok(None);
            };
            let role = aws.get_role(&name).await?;
            Ok::<_, CommandError>(role.map(|r| (arn, r.tags)))
        })
        .buffer_unordered(READS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The cluster's access entries (ours and others', which the plan refuses to touch), by
/// principal ARN.
async fn access_entries(
    aws: &Aws,
    cluster: &str,
) -> Result<BTreeMap<String, crate::access_entry::ObservedEntry>, CommandError> {
    let principals = list_access_entries(aws, cluster).await?;
    let found: Vec<_> = futures::stream::iter(principals)
        .map(|arn| async move {
            let entry = read_access_entry(aws, cluster, &arn).await?;
            Ok::<_, CommandError>(entry.map(|e| (arn, e)))
        })
        .buffer_unordered(READS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

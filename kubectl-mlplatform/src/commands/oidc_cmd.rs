//! `kubectl mlplatform oidc associate`: the cluster's IAM OIDC provider, created only if missing.

use std::process::ExitCode;
use std::time::Duration;

use super::error::CommandError;
use super::preflight::cluster_and_region;
use crate::aws::Aws;
use crate::cli::oidc::{ClusterArgs, OidcCommand};
use crate::common::{Change, DryRun, GlobalArgs};
use crate::execute::{Clients, execute};
use crate::kube_io::load_target;
use crate::oidc::{OidcOutputs, ThumbprintOptions, plan_oidc, read_oidc_facts};
use crate::output::{Progress, Report, Summary, print_report, table};
use crate::steps::Plan;

/// Cluster and region from the flags, else from the kubeconfig context (an EKS ARN or an
/// `aws eks get-token --cluster-name` exec entry). The kubeconfig is only read when needed.
pub(crate) fn resolve_cluster(
    global: &GlobalArgs,
    args: &ClusterArgs,
) -> Result<(String, Option<String>), CommandError> {
    if let (Some(cluster), Some(region)) = (&args.cluster, &args.region) {
        return Ok((cluster.clone(), Some(region.clone())));
    }
    let hint = load_target(global).ok().and_then(|t| t.cluster_hint());
    cluster_and_region(args.cluster.as_ref(), args.region.as_ref(), hint)
}

impl Summary for OidcOutputs {
    fn fields(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    fn rendered(plan: &Plan<Self>) -> serde_json::Value {
        serde_json::to_value(plan.oidc_step()).unwrap_or_default()
    }
    /// Not the change table: one provider, and what the vendor pages ask to check.
    fn table(report: &Report<Self>, _verb: &str) -> String {
        oidc_table(&report.outputs, report.dry_run)
    }
}

fn oidc_table(plan: &OidcOutputs, dry_run: DryRun) -> String {
    let status = match (plan.change, dry_run) {
        (Change::Created, DryRun::None) => "created",
        (Change::Created, _) => "missing: would be created (dry run: nothing was written)",
        _ => "already there: nothing to change",
    };
    let mut rows = vec![vec!["IAM OIDC PROVIDER".to_owned(), "CHANGE".to_owned()]];
    rows.push(vec![plan.provider_arn.clone(), plan.change.to_string()]);
    let mut out = table(&rows);
    out.push_str(&format!(
        "\noidc associate: the IAM OIDC provider for cluster {} is {status}\nissuer:      {}\nclientIds:   {}\n",
        plan.cluster,
        plan.issuer,
        plan.client_ids.join(",")
    ));
    if plan.change == Change::Created {
        let thumbprint = match (plan.thumbprints.first(), &plan.thumbprint_skipped) {
            (Some(t), _) => t.clone(),
            (None, Some(why)) => format!("(none: {why})"),
            (None, None) => "(none)".to_owned(),
        };
        out.push_str(&format!("thumbprint:  {thumbprint}\n"));
    }
    out
}

pub(crate) async fn run(global: &GlobalArgs, cmd: &OidcCommand) -> Result<ExitCode, CommandError> {
    let OidcCommand::Associate(args) = cmd;
    let (cluster, region) = resolve_cluster(global, &args.cluster)?;
    let aws = Aws::from_env(region.as_deref()).await?;
    let options = ThumbprintOptions {
        fetch: !args.skip_thumbprint,
        timeout: Duration::from_secs(args.thumbprint_timeout.max(1)),
        roots: None,
    };
    let facts = read_oidc_facts(&aws, &cluster, &options).await?;
    let plan = plan_oidc(&facts.cluster, facts.existing, facts.thumbprint)?;
    let clients = Clients {
        aws: Some(&aws),
        kube: None,
    };
    execute(&plan, clients, global.dry_run, &Progress::for_stderr()).await?;
    print_report(&plan, global.dry_run, global.output, "oidc associate")
        .map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::OutputFormat;
    use crate::output::render_report;

    fn render(plan: &OidcOutputs, dry_run: DryRun, format: OutputFormat) -> Result<String, String> {
        let plan = Plan::new(plan.clone(), Vec::new(), crate::steps::Direction::Create);
        render_report(
            &Report::from_plan(&plan, dry_run, format),
            format,
            "oidc associate",
        )
    }

    fn plan(change: Change) -> OidcOutputs {
        OidcOutputs {
            cluster: "c1".into(),
            issuer: "https://oidc.example/id/X".into(),
            provider_arn: "arn:aws:iam::123456789012:oidc-provider/oidc.example/id/X".into(),
            change,
            client_ids: vec!["sts.amazonaws.com".into()],
            thumbprints: Vec::new(),
            thumbprint_skipped: Some("issuer not verifiable".into()),
        }
    }

    #[test]
    fn the_table_says_created_planned_or_already_there() {
        let created = render(&plan(Change::Created), DryRun::None, OutputFormat::Table).unwrap();
        assert!(created.contains("is created"), "{created}");
        assert!(
            created.contains("thumbprint:  (none: issuer not verifiable)"),
            "{created}"
        );
        let planned = render(&plan(Change::Created), DryRun::Client, OutputFormat::Table).unwrap();
        assert!(
            planned.contains("would be created (dry run: nothing was written)"),
            "{planned}"
        );
        let there = render(&plan(Change::Unchanged), DryRun::None, OutputFormat::Table).unwrap();
        assert!(
            there.contains("already there: nothing to change"),
            "{there}"
        );
        assert!(!there.contains("thumbprint:"), "{there}");
        let json: serde_json::Value = serde_json::from_str(
            &render(&plan(Change::Unchanged), DryRun::None, OutputFormat::Json).unwrap(),
        )
        .unwrap();
        assert_eq!(json["change"], "unchanged");
        assert_eq!(json["dryRun"], "none");
        assert_eq!(json["providerArn"], plan(Change::Unchanged).provider_arn);
    }

    #[test]
    fn explicit_cluster_and_region_need_no_kubeconfig() {
        let global = GlobalArgs {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            ..GlobalArgs::default()
        };
        let args = ClusterArgs {
            cluster: Some("c1".into()),
            region: Some("eu-west-1".into()),
        };
        assert_eq!(
            resolve_cluster(&global, &args).unwrap(),
            ("c1".to_owned(), Some("eu-west-1".to_owned()))
        );
        let err = resolve_cluster(
            &global,
            &ClusterArgs {
                cluster: None,
                region: None,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("pass --cluster NAME"), "{err}");
    }
}

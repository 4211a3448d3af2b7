//! `kubectl mlplatform aws-auth get|add|remove`: safe editing of kube-system/aws-auth.
//!
//! All safety rules live in [`crate::aws_auth`]; this is flags in, report out.
//! `aws-auth migrate` (to and from EKS access entries) is `super::migrate_cmd`.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

use crate::arn::parse_iam_arn;
use crate::aws_auth::store;
use crate::aws_auth::{
    self, AwsAuth, AwsAuthError, Mapping, MappingKind, SsoMapping, check_system_masters,
    kind_of_arn, normalize_arn,
};
use crate::aws_auth_edit::plan_edit;
use crate::cli::aws_auth::{AddArgs, AwsAuthAction, AwsAuthCommand};
use crate::common::{GlobalArgs, OutputFormat};
use crate::execute::{Clients, execute};
use crate::output::{Progress, Report, render_report};
use crate::steps::AwsAuthAction as AwsAuthStepAction;

/// What `get` prints with `-o json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AwsAuthListing {
    pub(crate) exists: bool,
    pub(crate) roles: Vec<Mapping>,
    pub(crate) sso_roles: Vec<SsoMapping>,
    pub(crate) users: Vec<Mapping>,
    pub(crate) accounts: Vec<String>,
}

pub(crate) async fn run(
    cmd: &AwsAuthCommand,
    client: kube::Client,
    global: &GlobalArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let action = match &cmd.action {
        AwsAuthAction::Get => {
            let auth = store::read_aws_auth(&client).await?;
            let listing = listing(auth.as_ref());
            return print_listing(&listing, global.output, out);
        }
        AwsAuthAction::Add(args) => {
            let (kind, mapping) = mapping_from_args(args)?;
            if args.allow_system_masters
                && mapping.groups.iter().any(|g| g == aws_auth::SYSTEM_MASTERS)
            {
                tracing::warn!(arn = %mapping.arn, "mapping to system:masters: full cluster admin");
            }
            AwsAuthStepAction::Upsert { kind, mapping }
        }
        AwsAuthAction::Remove(args) => {
            let kind = match args.kind {
                Some(kind) => kind,
                None => kind_of_arn(&args.arn)?,
            };
            let arn = normalize_arn(kind, &args.arn)?;
            AwsAuthStepAction::Remove { kind, arn }
        }
        // Run by `commands::migrate_cmd` (it needs AWS too); never routed here.
        AwsAuthAction::Migrate(_) => {
            anyhow::bail!(
                "aws-auth migrate is not an aws-auth edit; this is a bug, please report it"
            )
        }
    };
    let data = store::read_aws_auth_data(&client).await?;
    let mut plan = plan_edit(data.as_ref(), action)?;
    let clients = Clients {
        aws: None,
        kube: Some(&client),
    };
    let executed = execute(&plan, clients, global.dry_run, &Progress::for_stderr()).await?;
    if let Some(write) = &executed.aws_auth {
        plan.outputs.record(write);
    }
    let report = Report::from_plan(&plan, global.dry_run, global.output);
    let text = render_report(&report, global.output, "aws-auth").map_err(anyhow::Error::msg)?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Checks the flags without any I/O, so bad input is reported before kubeconfig or cluster
/// problems (callers may run this before building the kube client).
#[cfg(test)]
pub(crate) fn validate(cmd: &AwsAuthCommand) -> Result<(), AwsAuthError> {
    match &cmd.action {
        AwsAuthAction::Get | AwsAuthAction::Migrate(_) => Ok(()),
        AwsAuthAction::Add(args) => mapping_from_args(args).map(|_| ()),
        AwsAuthAction::Remove(args) => {
            let kind = match args.kind {
                Some(kind) => kind,
                None => kind_of_arn(&args.arn)?,
            };
            normalize_arn(kind, &args.arn).map(|_| ())
        }
    }
}

/// Flags → the mapping to write, with the ARN normalized and system:masters checked.
pub(crate) fn mapping_from_args(args: &AddArgs) -> Result<(MappingKind, Mapping), AwsAuthError> {
    let kind = match args.kind {
        Some(kind) => kind,
        None => kind_of_arn(&args.arn)?,
    };
    let arn = normalize_arn(kind, &args.arn)?;
    let username = match &args.username {
        Some(name) => name.clone(),
        None => {
            let parsed = parse_iam_arn(&arn)?;
            if parsed.name.is_empty() {
                return Err(AwsAuthError::InvalidMapping(format!(
                    "{arn} has no name to use as username: pass --username"
                )));
            }
            parsed.name
        }
    };
    let mapping = Mapping {
        arn,
        username,
        groups: args.groups.clone(),
    };
    check_system_masters(&mapping, args.allow_system_masters)?;
    Ok((kind, mapping))
}

pub(crate) fn listing(auth: Option<&AwsAuth>) -> AwsAuthListing {
    AwsAuthListing {
        exists: auth.is_some(),
        roles: auth.map(AwsAuth::roles).unwrap_or_default(),
        sso_roles: auth.map(AwsAuth::sso_roles).unwrap_or_default(),
        users: auth.map(AwsAuth::users).unwrap_or_default(),
        accounts: auth.map(AwsAuth::accounts).unwrap_or_default(),
    }
}

fn print_structured<T: Serialize>(
    value: &T,
    format: OutputFormat,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, value).context("writing JSON output")?;
            writeln!(out)?;
            Ok(true)
        }
        OutputFormat::Yaml => {
            let text = serde_yaml_ng::to_string(value).context("rendering YAML output")?;
            out.write_all(text.as_bytes())?;
            Ok(true)
        }
        OutputFormat::Table => Ok(false),
    }
}

fn print_listing(
    listing: &AwsAuthListing,
    format: OutputFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if print_structured(listing, format, out)? {
        return Ok(());
    }
    if !listing.exists {
        writeln!(
            out,
            "no aws-auth ConfigMap in kube-system (nothing mapped yet, or the cluster uses EKS access entries only)"
        )?;
        return Ok(());
    }
    let mut rows: Vec<[String; 4]> = vec![[
        "KIND".into(),
        "ARN".into(),
        "USERNAME".into(),
        "GROUPS".into(),
    ]];
    let groups = |g: &[String]| {
        if g.is_empty() {
            "-".to_string()
        } else {
            g.join(",")
        }
    };
    for m in &listing.roles {
        rows.push([
            "role".into(),
            m.arn.clone(),
            m.username.clone(),
            groups(&m.groups),
        ]);
    }
    for s in &listing.sso_roles {
        rows.push([
            "sso".into(),
            format!("{} in {}", s.permission_set_name, s.account_id),
            s.username.clone(),
            groups(&s.groups),
        ]);
    }
    for m in &listing.users {
        rows.push([
            "user".into(),
            m.arn.clone(),
            m.username.clone(),
            groups(&m.groups),
        ]);
    }
    for a in &listing.accounts {
        rows.push(["account".into(), a.clone(), "-".into(), "-".into()]);
    }
    write_table(&rows, out)
}

fn write_table(rows: &[[String; 4]], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut widths = [0usize; 4];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("   ");
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        cmd: Top,
    }
    #[derive(Debug, clap::Subcommand)]
    enum Top {
        AwsAuth(AwsAuthCommand),
    }

    fn add_args(argv: &[&str]) -> AddArgs {
        let mut full = vec!["kubectl-mlplatform", "aws-auth", "add"];
        full.extend_from_slice(argv);
        let Top::AwsAuth(cmd) = Cli::try_parse_from(full).unwrap().cmd;
        match cmd.action {
            AwsAuthAction::Add(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validate_needs_no_cluster() {
        let parse = |argv: &[&str]| {
            let mut full = vec!["kubectl-mlplatform", "aws-auth"];
            full.extend_from_slice(argv);
            let Top::AwsAuth(cmd) = Cli::try_parse_from(full).unwrap().cmd;
            cmd
        };
        assert!(validate(&parse(&["get"])).is_ok());
        assert!(
            validate(&parse(&[
                "remove",
                "--arn",
                "arn:aws:iam::111122223333:role/x"
            ]))
            .is_ok()
        );
        let err = validate(&parse(&["remove", "--arn", "arn:aws:iam::1:role/x"])).unwrap_err();
        assert!(err.to_string().contains("12-digit"), "{err}");
        assert!(validate(&parse(&["add", "--arn", "x"])).is_err());
    }

    #[test]
    fn system_masters_needs_the_flag_and_says_so() {
        let args = add_args(&[
            "--arn",
            "arn:aws:iam::111122223333:role/Vendor",
            "--group",
            "system:masters",
        ]);
        let err = mapping_from_args(&args).unwrap_err().to_string();
        assert!(err.contains("--allow-system-masters"), "{err}");
        let args = add_args(&[
            "--arn",
            "arn:aws:iam::111122223333:role/Vendor",
            "--group",
            "system:masters",
            "--allow-system-masters",
        ]);
        assert!(mapping_from_args(&args).is_ok());
    }

    #[test]
    fn kind_and_username_default_from_the_arn() {
        let args = add_args(&[
            "--arn",
            "arn:aws:iam::111122223333:role/team/Vendor",
            "--group",
            "a",
            "--group",
            "b",
        ]);
        let (kind, m) = mapping_from_args(&args).unwrap();
        assert_eq!(kind, MappingKind::Role);
        assert_eq!(m.arn, "arn:aws:iam::111122223333:role/Vendor");
        assert_eq!(m.username, "Vendor");
        assert_eq!(m.groups, vec!["a", "b"]);

        let args = add_args(&["--arn", "arn:aws:iam::111122223333:user/ops/alice"]);
        let (kind, m) = mapping_from_args(&args).unwrap();
        assert_eq!((kind, m.username.as_str()), (MappingKind::User, "alice"));

        let args = add_args(&["--arn", "arn:aws:iam::111122223333:root"]);
        assert!(
            mapping_from_args(&args)
                .unwrap_err()
                .to_string()
                .contains("--username")
        );

        let args = add_args(&[
            "--arn",
            "arn:aws:iam::111122223333:user/alice",
            "--kind",
            "role",
        ]);
        assert!(
            mapping_from_args(&args)
                .unwrap_err()
                .to_string()
                .contains("--kind user")
        );
    }
}

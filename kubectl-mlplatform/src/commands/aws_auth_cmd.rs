//! `kubectl mlplatform aws-auth get|add|remove`: safe editing of kube-system/aws-auth.
//!
//! All safety rules live in [`crate::aws_auth`]; this is flags in, report out.
//! EKS access entries (`--auth-mode`) will be a second backend chosen in [`run`].

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde::Serialize;

use crate::arn::parse_iam_arn;
use crate::aws_auth::store::{self, AwsAuthWrite};
use crate::aws_auth::{
    self, AwsAuth, AwsAuthError, Mapping, MappingKind, SsoMapping, check_system_masters,
    kind_of_arn, normalize_arn,
};
use crate::cli::aws_auth::{AddArgs, AwsAuthAction, AwsAuthCommand};
use crate::common::{Change, DryRun, GlobalArgs, OutputFormat};
use crate::execute::{Clients, execute};
use crate::output::{Progress, Report, Summary, render_report};
use crate::steps::{AwsAuthAction as AwsAuthStepAction, AwsAuthStep, Direction, Plan, Step};

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

/// What `add` / `remove` print (flattened into the report).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AwsAuthEditReport {
    pub(crate) change: Change,
    pub(crate) kind: MappingKind,
    pub(crate) arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) groups: Option<Vec<String>>,
    /// A write request was sent to the API server (dryRun=All under --dry-run=server).
    pub(crate) sent: bool,
    /// Line diff of the changed aws-auth keys (empty when nothing changes).
    pub(crate) diff: String,
}

impl AwsAuthEditReport {
    /// What the executor did, which wins over the plan: the ConfigMap is re-read under
    /// conflict retry, so the change may differ from what was planned.
    fn record(&mut self, write: &AwsAuthWrite) {
        self.change = write.change;
        self.sent = write.sent;
        self.diff = data_diff(&write.before, &write.after);
    }
}

impl Summary for AwsAuthEditReport {
    fn fields(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    fn rendered(plan: &Plan<Self>) -> serde_json::Value {
        serde_json::to_value(plan.aws_auth_step()).unwrap_or_default()
    }
    /// One line per edit, and the diff under a client dry run.
    fn table(report: &Report<Self>, _verb: &str) -> String {
        edit_line(&report.outputs, report.dry_run)
    }
}

/// Pure: the edit, given the aws-auth data as read (None: no ConfigMap).
pub(crate) fn plan_edit(
    data: Option<&BTreeMap<String, String>>,
    action: AwsAuthStepAction,
) -> Result<Plan<AwsAuthEditReport>, AwsAuthError> {
    let before = data.cloned().unwrap_or_default();
    let mut model = AwsAuth::parse(Some(&before))?;
    let (kind, arn, mapping, change) = match &action {
        AwsAuthStepAction::Upsert { kind, mapping } => {
            let change = model.upsert(*kind, mapping.clone())?;
            (*kind, mapping.arn.clone(), Some(mapping.clone()), change)
        }
        AwsAuthStepAction::Remove { kind, arn } => {
            let change = model.remove(*kind, arn)?;
            (*kind, arn.clone(), None, change)
        }
        AwsAuthStepAction::None => (MappingKind::Role, String::new(), None, Change::Unchanged),
    };
    let after = model.render();
    let outputs = AwsAuthEditReport {
        change,
        kind,
        arn: arn.clone(),
        username: mapping.as_ref().map(|m| m.username.clone()),
        groups: mapping.as_ref().map(|m| m.groups.clone()),
        sent: false,
        diff: data_diff(&before, &after),
    };
    let step = Step::AwsAuth(AwsAuthStep {
        arn,
        change,
        action: if after == before {
            AwsAuthStepAction::None
        } else {
            action
        },
        wanted: mapping,
    });
    Ok(Plan::new(outputs, vec![step], Direction::Create))
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
        AwsAuthAction::Get => Ok(()),
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

fn edit_line(report: &AwsAuthEditReport, dry_run: DryRun) -> String {
    let suffix = match dry_run {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    let detail = match (&report.username, &report.groups) {
        (Some(user), Some(groups)) if groups.is_empty() => format!(" as {user}"),
        (Some(user), Some(groups)) => format!(" as {user} in {}", groups.join(",")),
        _ => String::new(),
    };
    let mut out = format!(
        "aws-auth {} {}{detail}: {}{suffix}\n",
        report.kind, report.arn, report.change
    );
    if dry_run == DryRun::Client && !report.diff.is_empty() {
        out.push_str(&report.diff);
    }
    out
}

/// A line diff of every data key whose text changed (`-` removed, `+` added, two-space context).
pub(crate) fn data_diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> String {
    let mut diff = String::new();
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let old = before.get(key).map(String::as_str).unwrap_or_default();
        let new = after.get(key).map(String::as_str).unwrap_or_default();
        if old == new {
            continue;
        }
        diff.push_str(&format!("--- aws-auth {key}\n+++ aws-auth {key}\n"));
        for line in line_diff(old, new) {
            diff.push_str(&line);
            diff.push('\n');
        }
    }
    diff
}

/// Line diff: common head and tail as context, longest common subsequence in between. The
/// middle is bounded (a ConfigMap holds up to 1 MiB); past the bound it is shown as replaced.
fn line_diff(old: &str, new: &str) -> Vec<String> {
    const MAX_LCS_CELLS: usize = 4_000_000;
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);

    let mut lines: Vec<String> = a[..head].iter().map(|l| format!("  {l}")).collect();
    if (mid_a.len() + 1).saturating_mul(mid_b.len() + 1) > MAX_LCS_CELLS {
        lines.extend(mid_a.iter().map(|l| format!("- {l}")));
        lines.extend(mid_b.iter().map(|l| format!("+ {l}")));
    } else {
        lines.extend(lcs_diff(mid_a, mid_b));
    }
    lines.extend(a[a.len() - tail..].iter().map(|l| format!("  {l}")));
    lines
}

fn lcs_diff(a: &[&str], b: &[&str]) -> Vec<String> {
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut lines) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removed lines first, as diff(1) prints them.
            lines.push(format!("- {}", a[i]));
            i += 1;
        } else {
            lines.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    lines
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

    #[test]
    fn diff_shows_only_changed_keys() {
        let before: BTreeMap<String, String> = [
            ("mapRoles".to_string(), "- a\n- b\n".to_string()),
            ("mapUsers".to_string(), "[]\n".to_string()),
        ]
        .into();
        let mut after = before.clone();
        after.insert("mapRoles".into(), "- a\n- c\n- b\n".into());
        assert_eq!(
            data_diff(&before, &after),
            "--- aws-auth mapRoles\n+++ aws-auth mapRoles\n  - a\n+ - c\n  - b\n"
        );
        assert_eq!(data_diff(&before, &before), "");
        // A huge change stays bounded: shown as replaced, no quadratic table.
        let big_old: String = (0..5000).map(|i| format!("- old{i}\n")).collect();
        let big_new: String = (0..5000).map(|i| format!("- new{i}\n")).collect();
        let lines = line_diff(&big_old, &big_new);
        assert_eq!(lines.len(), 10_000);
        assert_eq!(lines[0], "- - old0");
        assert_eq!(lines[5000], "+ - new0");
        after.insert("mapRoles".into(), "- a\n- d\n".into());
        assert_eq!(
            data_diff(&before, &after),
            "--- aws-auth mapRoles\n+++ aws-auth mapRoles\n  - a\n- - b\n+ - d\n"
        );
    }
}

//! One aws-auth edit (add or remove one mapping), planned purely from the ConfigMap's data:
//! the change, the step the executor carries out (re-reading under conflict retry), and the
//! line diff users see. Used by `aws-auth add|remove` and [`crate::cluster_access`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws_auth::store::AwsAuthWrite;
use crate::aws_auth::{AwsAuth, AwsAuthError, MappingKind};
use crate::common::{Change, DryRun};
use crate::output::{Report, Summary};
use crate::steps::{AwsAuthAction as AwsAuthStepAction, AwsAuthStep, Direction, Plan, Step};

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
    pub(crate) fn record(&mut self, write: &AwsAuthWrite) {
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

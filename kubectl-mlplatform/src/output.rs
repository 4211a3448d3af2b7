//! What the user sees: progress on a terminal (stderr, quiet in pipes), the change report as a
//! table, JSON or YAML on stdout (JSON output stays pure JSON), warnings on stderr.

use std::fmt::Write as _;
use std::io::IsTerminal;

use serde::Serialize;
use serde_json::Value;

use crate::common::{Change, DryRun, OutputFormat};
use crate::steps::{ChangeRow, ManualStepOut, Plan};

/// Per-step progress lines on stderr, only when stderr is a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    pub(crate) fn for_stderr() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
        }
    }
    pub fn disabled() -> Self {
        Self { enabled: false }
    }
    pub(crate) fn phase(&self, what: &str) {
        if self.enabled {
            eprintln!("… {what}");
        }
    }
    pub(crate) fn step(&self, change: Change, kind: &str, name: &str) {
        tracing::debug!(%change, kind, name, "applied");
        if self.enabled {
            eprintln!("  ✓ {change} {kind} {name}");
        }
    }
}

pub(crate) fn warn(message: &str) {
    eprintln!("warning: {message}");
}

/// Whether a report carries the rendered documents: client dry runs with `-o json|yaml`, and
/// every `-o yaml`.
pub(crate) fn shows_rendered(dry_run: DryRun, format: OutputFormat) -> bool {
    dry_run == DryRun::Client && format != OutputFormat::Table || format == OutputFormat::Yaml
}

/// What a command prints besides the change rows: its own fields (flattened into JSON/YAML,
/// `key: value` lines under the table) and the documents a dry run shows.
pub(crate) trait Summary: Serialize + Clone {
    /// The `key: value` lines under the table, in order (empty values left out).
    fn fields(&self) -> Vec<(&'static str, String)>;
    /// Rendered objects and documents (client dry runs with `-o json|yaml`, every `-o yaml`).
    fn rendered(plan: &Plan<Self>) -> Value;
    /// The human report; the change table unless a command shows something else.
    fn table(report: &Report<Self>, verb: &str) -> String {
        report_table(report, verb)
    }
}

/// Every command's report: its summary, then the change rows, manual steps and documents.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report<O> {
    #[serde(flatten)]
    pub(crate) outputs: O,
    pub(crate) dry_run: DryRun,
    pub(crate) changes: Vec<ChangeRow>,
    /// What the user must still do by hand (the exact commands).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) manual_steps: Vec<ManualStepOut>,
    /// Rendered objects and IAM documents (dry runs, `-o yaml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rendered: Option<Value>,
}

impl<O: Summary> Report<O> {
    pub(crate) fn from_plan(plan: &Plan<O>, dry_run: DryRun, format: OutputFormat) -> Self {
        Self {
            outputs: plan.outputs.clone(),
            dry_run,
            changes: plan.changes(),
            manual_steps: plan.manual_steps.clone(),
            rendered: shows_rendered(dry_run, format).then(|| O::rendered(plan)),
        }
    }
}

/// Renders a serializable value as JSON or YAML (pretty, newline-terminated).
pub(crate) fn render_data<T: Serialize>(value: &T, format: OutputFormat) -> Result<String, String> {
    match format {
        OutputFormat::Yaml => serde_yaml_ng::to_string(value).map_err(|e| e.to_string()),
        _ => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
    }
}

/// Multi-document YAML of `objects` (`--dry-run=client -o yaml`: what `kubectl apply -f -`
/// takes).
pub(crate) fn render_documents(objects: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(object).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// A plain aligned table; the first row is the header.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                let _ = write!(line, "{cell}{}   ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One row per object: kind, namespace, name, change.
pub(crate) fn changes_table(changes: &[ChangeRow]) -> String {
    let mut rows = vec![vec![
        "KIND".to_owned(),
        "NAMESPACE".to_owned(),
        "NAME".to_owned(),
        "CHANGE".to_owned(),
    ]];
    for c in changes {
        rows.push(vec![
            c.kind.clone(),
            c.namespace.clone().unwrap_or_default(),
            c.name.clone(),
            c.change.to_string(),
        ]);
    }
    table(&rows)
}

/// The human report: one row per object, then the values the vendor asks for.
pub(crate) fn report_table<O: Summary>(report: &Report<O>, verb: &str) -> String {
    let mut out = changes_table(&report.changes);
    let writes = report
        .changes
        .iter()
        .filter(|c| c.change.is_write())
        .count();
    let count = |k: Change| report.changes.iter().filter(|c| c.change == k).count();
    out.push('\n');
    let summary = if writes == 0 {
        format!("{verb}: nothing to change, everything is already as wanted")
    } else {
        format!(
            "{verb}: {} created, {} updated, {} deleted, {} unchanged",
            count(Change::Created),
            count(Change::Updated),
            count(Change::Deleted),
            count(Change::Unchanged)
        )
    };
    out.push_str(&summary);
    match report.dry_run {
        DryRun::Client => out.push_str(" (dry run: nothing was written)"),
        DryRun::Server => {
            out.push_str(" (server dry run: Kubernetes writes sent with dryRun=All, IAM only read)")
        }
        DryRun::None => {}
    }
    out.push('\n');
    let fields = report.outputs.fields();
    if !fields.is_empty() {
        out.push('\n');
        let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        for (k, v) in fields {
            let _ = writeln!(out, "{:<width$} {v}", format!("{k}:"));
        }
    }
    for step in &report.manual_steps {
        let _ = write!(
            out,
            "\nMANUAL STEP ({}): {}\n  {}\n",
            step.name, step.description, step.command
        );
    }
    out
}

/// Prints the report in the chosen format to stdout.
pub(crate) fn print_report<O: Summary>(
    plan: &Plan<O>,
    dry_run: DryRun,
    format: OutputFormat,
    verb: &str,
) -> Result<(), String> {
    let report = Report::from_plan(plan, dry_run, format);
    print!("{}", render_report(&report, format, verb)?);
    Ok(())
}

/// The report as text in the chosen format.
pub(crate) fn render_report<O: Summary>(
    report: &Report<O>,
    format: OutputFormat,
    verb: &str,
) -> Result<String, String> {
    match format {
        OutputFormat::Table => Ok(O::table(report, verb)),
        other => render_data(report, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_trailing_space() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["long".into(), "".into(), "x".into()],
        ]);
        assert_eq!(t, "A      BB   C\nlong        x\n");
    }
}

//! Vocabulary shared by every subcommand: global kubectl-style flags, dry-run and output modes,
//! and the per-object change kinds that plans and reports are made of.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

/// kubectl's conventions. `global = true` so they are accepted after the subcommand too
/// (kubectl passes everything after the plugin name through).
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use.
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// Must be "none", "server", or "client". client: print what would change, write nothing.
    /// server: send Kubernetes writes with dryRun=All, only read AWS.
    #[arg(long, global = true, value_enum, default_value_t = DryRun::None,
          num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub(crate) dry_run: DryRun,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
    /// The namespace to work on (default: the kubeconfig context's, else the profile's).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// Log verbosity for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    pub(crate) log_level: String,
    /// Log format for diagnostics on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    pub(crate) log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// What happened (or, in a plan, would happen) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    Deleted,
    /// Asked to remove something that was not there.
    Absent,
}

impl Change {
    pub fn is_write(self) -> bool {
        matches!(self, Self::Created | Self::Updated | Self::Deleted)
    }
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Deleted => "deleted",
            Self::Absent => "absent",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

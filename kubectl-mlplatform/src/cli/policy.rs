//! `policy install|uninstall|status` flags.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Enforce namespace policy with API-server admission policies instead of (or beside) the
    /// webhook: the ValidatingAdmissionPolicies and their bindings (Deny in `enforce`
    /// namespaces, Warn + Audit in `warn`, Audit in `audit`, by the mlplatform.io/enforcement
    /// label) and, where the server serves it (Kubernetes 1.36+), the MutatingAdmissionPolicy
    /// that sets the user ServiceAccount's IAM role. Re-running changes only what differs.
    Install,
    /// Remove exactly what install made (objects labelled as made by kubectl-mlplatform).
    Uninstall,
    /// The served APIs, the installed objects, and whether a server-side dry-run pod as a
    /// disallowed ServiceAccount in a managed `enforce` namespace is refused. Exit 1 when not.
    Status,
}

/// `--enforcement` of `connect` and `namespace add`: what happens to a workload that runs as a
/// ServiceAccount its namespace does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EnforcementArg {
    /// Refuse it.
    Enforce,
    /// Admit it with a warning (and an audit record).
    Warn,
    /// Admit it; only record it (audit log, webhook metric).
    Audit,
}

impl From<EnforcementArg> for mlplatform_namespace_policy::EnforcementMode {
    fn from(arg: EnforcementArg) -> Self {
        match arg {
            EnforcementArg::Enforce => Self::Enforce,
            EnforcementArg::Warn => Self::Warn,
            EnforcementArg::Audit => Self::Audit,
        }
    }
}

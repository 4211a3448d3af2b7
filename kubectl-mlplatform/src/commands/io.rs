//! What several commands share at the edge: writing the report, building the kube client.

use super::error::CommandError;
use crate::common::GlobalArgs;

/// Writes a report to stdout.
pub(super) fn print(text: &str) -> Result<(), CommandError> {
    use std::io::Write as _;
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| CommandError::Output(e.to_string()))
}

/// The Kubernetes client of the kubeconfig context the global flags name.
pub(super) async fn client(global: &GlobalArgs) -> Result<kube::Client, CommandError> {
    Ok(crate::kube_io::load_target(global)?.client().await?)
}

//! `kubectl mlplatform version [-o json|yaml]`: version, git commit and target triple, fixed
//! at build time (build.rs).

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::error::CommandError;
use crate::common::{GlobalArgs, OutputFormat};
use crate::output::render_data;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct VersionInfo {
    pub(crate) version: &'static str,
    pub(crate) commit: &'static str,
    pub(crate) target: &'static str,
}

/// This binary's version, commit and target.
pub(crate) const BUILD: VersionInfo = VersionInfo {
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("MLPLATFORM_GIT_COMMIT"),
    target: env!("MLPLATFORM_TARGET"),
};

/// Pure: the text `version` prints in `format`.
pub(crate) fn render(info: &VersionInfo, format: OutputFormat) -> Result<String, CommandError> {
    match format {
        OutputFormat::Table => Ok(format!(
            "kubectl-mlplatform {} (commit {}, {})\n",
            info.version, info.commit, info.target
        )),
        OutputFormat::Json | OutputFormat::Yaml => {
            render_data(info, format).map_err(CommandError::Output)
        }
    }
}

pub(crate) fn run(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let text = render(&BUILD, global.output)?;
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| CommandError::Output(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: VersionInfo = VersionInfo {
        version: "1.2.3",
        commit: "abc1234",
        target: "x86_64-unknown-linux-musl",
    };

    #[test]
    fn renders_each_format() {
        assert_eq!(
            render(&INFO, OutputFormat::Table).unwrap(),
            "kubectl-mlplatform 1.2.3 (commit abc1234, x86_64-unknown-linux-musl)\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&INFO, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"version": "1.2.3", "commit": "abc1234", "target": "x86_64-unknown-linux-musl"})
        );
        let yaml = render(&INFO, OutputFormat::Yaml).unwrap();
        assert!(yaml.contains("commit: abc1234"), "{yaml}");
    }

    #[test]
    fn build_info_is_filled_in() {
        assert_eq!(BUILD.version, env!("CARGO_PKG_VERSION"));
        assert!(!BUILD.target.is_empty() && BUILD.target != "unknown");
    }
}

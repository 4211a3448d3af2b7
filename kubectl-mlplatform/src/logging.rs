//! Diagnostics go to stderr through tracing; stdout is reserved for command output.

use tracing_subscriber::EnvFilter;

use crate::common::{GlobalArgs, LogFormat};

/// Installs the subscriber; `--log-level` accepts a level or a full filter directive.
pub fn init(global: &GlobalArgs) {
    let filter = EnvFilter::try_new(directives(&global.log_level))
        .unwrap_or_else(|_| EnvFilter::new(directives("warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match global.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.with_ansi(false).try_init(),
    };
}

/// At the quiet levels, library errors (kube's client logs every failed request) stay out of
/// stderr: the command reports the failure itself, as one line.
fn directives(level: &str) -> String {
    let level = level.trim();
    if level.contains('=') || !matches!(level, "warn" | "error" | "off") {
        return level.to_owned();
    }
    format!("{level},kube_client=off,kube_runtime=off,aws_smithy_runtime=off,aws_config=off")
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn quiet_levels_silence_library_error_logs_but_explicit_filters_win() {
        assert!(directives("warn").contains("kube_client=off"));
        assert_eq!(directives("debug"), "debug");
        assert_eq!(directives("kube_client=trace"), "kube_client=trace");
    }
}

//! Command-line flags (each also an environment variable `MLPLATFORM_WEBHOOK_<NAME>`) and
//! logging setup.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mlplatform_namespace_policy::eks;

use crate::mutate::InjectionConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Plain,
}

/// mlplatform admission webhook: IRSA injection and ServiceAccount enforcement for namespaces
/// managed by `kubectl mlplatform`.
#[derive(Debug, Clone, Parser)]
#[command(name = "mlplatform-webhook", version)]
pub struct Args {
    /// HTTPS address for /mutate and /validate.
    #[arg(
        long,
        env = "MLPLATFORM_WEBHOOK_LISTEN",
        default_value = "0.0.0.0:8443"
    )]
    pub listen: SocketAddr,

    /// Plain-HTTP address for /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "MLPLATFORM_WEBHOOK_HEALTH_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub health_listen: SocketAddr,

    /// PEM certificate chain served on --listen; re-read when the file changes.
    #[arg(long, env = "MLPLATFORM_WEBHOOK_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,

    /// PEM private key for --tls-cert-file; re-read when the file changes.
    #[arg(long, env = "MLPLATFORM_WEBHOOK_TLS_KEY_FILE")]
    pub tls_key_file: PathBuf,

    /// Kubeconfig file. Default: in-cluster config, else KUBECONFIG or ~/.kube/config.
    #[arg(long, env = "MLPLATFORM_WEBHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Inject AWS_REGION and AWS_DEFAULT_REGION with this value.
    #[arg(long, env = "MLPLATFORM_WEBHOOK_AWS_REGION")]
    pub aws_region: Option<String>,

    /// Inject AWS_STS_REGIONAL_ENDPOINTS=regional unless the ServiceAccount annotation
    /// eks.amazonaws.com/sts-regional-endpoints says otherwise.
    #[arg(long, env = "MLPLATFORM_WEBHOOK_STS_REGIONAL_ENDPOINTS")]
    pub sts_regional_endpoints: bool,

    /// Audience of the projected token unless the ServiceAccount annotation
    /// eks.amazonaws.com/audience sets one.
    #[arg(long, env = "MLPLATFORM_WEBHOOK_TOKEN_AUDIENCE", default_value = eks::DEFAULT_AUDIENCE)]
    pub token_audience: String,

    /// Token lifetime in seconds unless the pod or ServiceAccount annotation
    /// eks.amazonaws.com/token-expiration sets one (minimum 600).
    #[arg(long, env = "MLPLATFORM_WEBHOOK_TOKEN_EXPIRATION", default_value_t = eks::DEFAULT_TOKEN_EXPIRATION,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub token_expiration: i64,

    #[arg(
        long,
        env = "MLPLATFORM_WEBHOOK_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    pub log_format: LogFormat,

    /// Log filter: a level (info, debug, ...) or tracing directives (mlplatform_webhook=debug).
    #[arg(long, env = "MLPLATFORM_WEBHOOK_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Largest AdmissionReview body accepted; larger ones get HTTP 413.
    #[arg(long, env = "MLPLATFORM_WEBHOOK_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long a client may take for the TLS handshake, to send its first request on a new
    /// connection, and to send a request body; a connection that does not is closed.
    #[arg(
        long,
        env = "MLPLATFORM_WEBHOOK_CLIENT_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub client_timeout_seconds: u64,

    /// How long a keep-alive connection may wait for its next request before it is closed
    /// (longer than the API server's own 90 s, so the API server closes first).
    #[arg(
        long,
        env = "MLPLATFORM_WEBHOOK_IDLE_TIMEOUT_SECONDS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub idle_timeout_seconds: u64,

    /// How long a pod's review may wait for a live GET of its ServiceAccount when the cache
    /// has not seen it (created just before the pod); the result is cached. 0 turns the GET
    /// off. Without the ServiceAccount the pod is admitted without IRSA, with a warning.
    #[arg(
        long,
        env = "MLPLATFORM_WEBHOOK_SERVICE_ACCOUNT_LOOKUP_TIMEOUT_MS",
        default_value_t = 2000,
        // The API server waits at most 30 s for a webhook.
        value_parser = clap::value_parser!(u64).range(0..=30_000)
    )]
    pub service_account_lookup_timeout_ms: u64,

    /// How long SIGTERM waits for in-flight requests before exiting.
    #[arg(
        long,
        env = "MLPLATFORM_WEBHOOK_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 15
    )]
    pub shutdown_grace_seconds: u64,
}

impl Args {
    pub fn injection_config(&self) -> InjectionConfig {
        InjectionConfig {
            aws_region: self.aws_region.clone().filter(|r| !r.trim().is_empty()),
            sts_regional_endpoints: self.sts_regional_endpoints,
            token_audience: self.token_audience.clone(),
            token_expiration: self.token_expiration,
        }
    }

    pub fn service_account_lookup_timeout(&self) -> Duration {
        Duration::from_millis(self.service_account_lookup_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn connection_timeouts(&self) -> ConnectionTimeouts {
        ConnectionTimeouts {
            client: Duration::from_secs(self.client_timeout_seconds),
            idle: Duration::from_secs(self.idle_timeout_seconds),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "--log-level {value:?} is not a valid filter ({reason}); use e.g. info or mlplatform_webhook=debug"
)]
pub struct LogLevelError {
    value: String,
    reason: String,
}

/// Installs the global tracing subscriber. Logs go to stderr.
pub fn init_tracing(format: LogFormat, level: &str) -> Result<(), LogLevelError> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| LogLevelError {
        value: level.to_owned(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Plain => builder.with_ansi(false).try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_issue() {
        let args = Args::try_parse_from([
            "mlplatform-webhook",
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
        ])
        .unwrap();
        assert_eq!(args.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(args.health_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(args.max_body_bytes, 4 << 20);
        let cfg = args.injection_config();
        assert_eq!(cfg, InjectionConfig::default());
        assert_eq!(args.connection_timeouts(), ConnectionTimeouts::default());
        assert_eq!(args.connection_timeouts().client, Duration::from_secs(10));
        assert_eq!(
            args.service_account_lookup_timeout(),
            crate::cache::FETCH_TIMEOUT
        );
    }

    #[test]
    fn every_flag_is_also_an_environment_variable() {
        use clap::CommandFactory as _;
        let command = Args::command();
        let mut flags = 0;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            flags += 1;
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
            let expected = format!("MLPLATFORM_WEBHOOK_{}", id.to_uppercase());
            assert_eq!(env, expected, "--{id}");
        }
        assert!(flags >= 16, "{flags}");
    }

    #[test]
    fn service_account_lookup_timeout_is_milliseconds_and_can_be_off() {
        let parse = |value: &str| {
            Args::try_parse_from([
                "mlplatform-webhook",
                "--tls-cert-file=c",
                "--tls-key-file=k",
                &format!("--service-account-lookup-timeout-ms={value}"),
            ])
        };
        let timeout = |value| parse(value).unwrap().service_account_lookup_timeout();
        assert_eq!(timeout("250"), Duration::from_millis(250));
        assert_eq!(timeout("0"), Duration::ZERO);
        assert!(parse("30001").is_err());
        assert!(parse("-1").is_err());
    }

    #[test]
    fn flags_override_defaults() {
        let args = Args::try_parse_from([
            "mlplatform-webhook",
            "--tls-cert-file=c",
            "--tls-key-file=k",
            "--aws-region=eu-west-1",
            "--sts-regional-endpoints",
            "--token-audience=aud",
            "--token-expiration=3600",
            "--log-format=json",
            "--client-timeout-seconds=3",
            "--idle-timeout-seconds=30",
        ])
        .unwrap();
        assert_eq!(
            args.connection_timeouts(),
            ConnectionTimeouts {
                client: Duration::from_secs(3),
                idle: Duration::from_secs(30),
            }
        );
        let cfg = args.injection_config();
        assert_eq!(cfg.aws_region.as_deref(), Some("eu-west-1"));
        assert!(cfg.sts_regional_endpoints);
        assert_eq!(cfg.token_audience, "aud");
        assert_eq!(cfg.token_expiration, 3600);
        assert_eq!(args.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_log_level_is_one_clear_line() {
        let err = init_tracing(LogFormat::Plain, "info,==bad").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--log-level"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}

/// Default of `--client-timeout-seconds`: how long a client may take for the TLS handshake,
/// to send a request head on a new connection, and to send a request body.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection time bounds (`--client-timeout-seconds`, `--idle-timeout-seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// For the TLS handshake, for the first request head on a new connection, and for one
    /// request's body: a client that takes longer is disconnected.
    pub client: Duration,
    /// How long a connection that has served requests may wait for the next one.
    pub idle: Duration,
}

/// Longer than the API server's own idle-connection timeout (Go's 90 s), so it is the API
/// server that closes a quiet keep-alive connection, never we while it sends a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl Default for ConnectionTimeouts {
    fn default() -> Self {
        Self {
            client: CLIENT_TIMEOUT,
            idle: IDLE_TIMEOUT,
        }
    }
}

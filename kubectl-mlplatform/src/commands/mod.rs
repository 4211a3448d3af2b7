//! Subcommands: each resolves its inputs, reads (preflight), plans purely, then writes only
//! what the plan lists. Errors are one line: what is wrong; what to do.

pub mod aws_auth_cmd;
pub mod completion;
mod connect;
mod doctor;
pub mod irsa_cmd;
mod namespace;
pub mod oidc_cmd;
mod preflight;
mod profiles;
pub mod version;
pub mod webhook_cmd;

use std::process::ExitCode;

use crate::apply::ApplyError;
use crate::aws::AwsError;
use crate::aws_auth::AwsAuthError;
use crate::cli::{Cli, Command};
use crate::kube_io::{KubeIoError, one_line};
use crate::plan::PlanError;
use crate::profile::ProfileError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad flags or input the user can fix (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Profile(#[from] ProfileError),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{0}")]
    AwsAuth(#[from] AwsAuthError),
    #[error("{0}")]
    Kube(#[from] KubeIoError),
    #[error("{0}")]
    Apply(#[from] ApplyError),
    #[error("{0}")]
    Oidc(#[from] crate::oidc::OidcError),
    #[error("{0}")]
    Irsa(#[from] crate::irsa::IrsaError),
    #[error("{0}")]
    AccessEntry(#[from] crate::access_entry::AccessEntryError),
    #[error(
        "namespace {namespaces} is still being deleted (Terminating) after {waited_seconds}s; nothing was written; wait until it is gone (`kubectl get namespace {namespaces}`) and re-run, or pass a longer --wait-timeout"
    )]
    NamespaceStillTerminating {
        namespaces: String,
        waited_seconds: u64,
    },
    #[error(
        "{failed} check(s) failed; run the fix command(s) shown above, then `kubectl mlplatform doctor` again"
    )]
    ChecksFailed { failed: usize },
    /// `aws-auth` reports its errors as text already shaped for the user.
    #[error("{0}")]
    AwsAuthCommand(String),
    #[error("{0}")]
    Webhook(#[from] crate::webhook_install::InstallError),
    #[error("cannot write output: {0}")]
    Output(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

impl CommandError {
    /// 2 for usage errors, 1 for everything else that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Profile(_) => 2,
            Self::Webhook(
                crate::webhook_install::InstallError::BadReplicas(_)
                | crate::webhook_install::InstallError::BadImage(_),
            ) => 2,
            Self::Plan(
                PlanError::MissingParameter { .. }
                | PlanError::BadAccount { .. }
                | PlanError::BadRoleArn { .. }
                | PlanError::BadBucket { .. }
                | PlanError::BadKmsKey { .. }
                | PlanError::UnknownParameter { .. }
                | PlanError::BadExternalId(_),
            ) => 2,
            _ => 1,
        }
    }

    /// The single line printed on stderr.
    pub fn line(&self) -> String {
        format!("error: {}", one_line(&self.to_string()))
    }
}

/// Runs a parsed command line. Synchronous commands do not start a runtime.
pub fn run(cli: Cli) -> Result<ExitCode, CommandError> {
    match &cli.command {
        Command::Profiles(cmd) => profiles::run(&cli.global, cmd),
        Command::Version => version::run(&cli.global),
        Command::Completion(args) => completion::run(args),
        _ => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CommandError::Runtime(e.to_string()))?;
            runtime.block_on(run_async(cli))
        }
    }
}

async fn run_async(cli: Cli) -> Result<ExitCode, CommandError> {
    let global = &cli.global;
    match &cli.command {
        Command::Connect(args) => connect::connect(global, args).await,
        Command::Disconnect(args) => connect::disconnect(global, args).await,
        Command::Doctor(args) => doctor::doctor(global, args).await,
        Command::Namespace(cmd) => namespace::run(global, cmd).await,
        Command::Oidc(cmd) => oidc_cmd::run(global, cmd).await,
        Command::Irsa(cmd) => irsa_cmd::run(global, cmd).await,
        Command::AwsAuth(cmd) => {
            let client = crate::kube_io::load_target(global)?.client().await?;
            let mut stdout = std::io::stdout();
            aws_auth_cmd::run(cmd, client, global, &mut stdout)
                .await
                .map_err(|e| CommandError::AwsAuthCommand(format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhook(cmd) => webhook_cmd::run(global, cmd).await,
        Command::Profiles(_) | Command::Version | Command::Completion(_) => Ok(ExitCode::SUCCESS),
    }
}

//! Subcommands: each resolves its inputs, reads (preflight), plans purely, then writes only
//! what the plan lists. Errors are one line: what is wrong; what to do.

mod aws_auth_cmd;
pub mod completion;
mod connect;
mod doctor;
mod error;
mod io;
mod irsa_cmd;
mod irsa_migrate;
mod migrate_cmd;
mod namespace;
mod oidc_cmd;
mod policy_cmd;
mod preflight;
mod profiles;
mod version;
mod webhook_cmd;

use std::process::ExitCode;

pub(crate) use error::CommandError;

use crate::cli::{Cli, Command};

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
            // migrate reads EKS and IAM too: its own session.
            if let crate::cli::aws_auth::AwsAuthAction::Migrate(args) = &cmd.action {
                return migrate_cmd::run(global, args).await;
            }
            let client = crate::kube_io::load_target(global)?.client().await?;
            let mut stdout = std::io::stdout();
            aws_auth_cmd::run(cmd, client, global, &mut stdout)
                .await
                .map_err(|e| CommandError::AwsAuthCommand(format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhook(cmd) => webhook_cmd::run(global, cmd).await,
        Command::Policy(cmd) => policy_cmd::run(global, cmd).await,
        Command::Profiles(_) | Command::Version | Command::Completion(_) => Ok(ExitCode::SUCCESS),
    }
}

//! `connect` and `disconnect`: preflight (reads only) → pure plan → apply the writes it lists.

use std::process::ExitCode;

use super::CommandError;
use super::preflight::{Purpose, params_for, read_state, session};
use crate::apply::{Direction, apply};
use crate::cli::{ConnectArgs, DisconnectArgs};
use crate::common::GlobalArgs;
use crate::output::{Progress, print_report, warn};
use crate::plan::{
    ConnectInputs, PlanError, check_implemented, plan_connect, plan_disconnect, valid_external_id,
};
use crate::profile::load_profile;

/// 16 random bytes, hex: what `--external-id` defaults to for a new role.
pub fn random_external_id() -> Result<String, CommandError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| CommandError::Runtime(format!("cannot generate an external ID: {e}")))?;
    Ok(hex::encode(bytes))
}

pub(super) fn inputs(
    args: &ConnectArgs,
    namespace: &str,
    params: std::collections::BTreeMap<String, String>,
    delete_namespace: bool,
) -> Result<ConnectInputs, CommandError> {
    Ok(ConnectInputs {
        namespace: namespace.to_owned(),
        params,
        external_id: args.external_id.clone(),
        generated_external_id: random_external_id()?,
        cluster_admin: args.cluster_admin,
        delete_namespace,
        auth_mode: args.auth_mode,
    })
}

pub async fn connect(global: &GlobalArgs, args: &ConnectArgs) -> Result<ExitCode, CommandError> {
    // Everything that can be checked without I/O is checked first.
    let profile = load_profile(&args.profile)?;
    check_implemented(&profile)?;
    let params = params_for(&profile, args, true)?;
    if let Some(id) = &args.external_id
        && !valid_external_id(id)
    {
        return Err(PlanError::BadExternalId(id.clone()).into());
    }
    let progress = Progress::for_stderr();
    progress.phase("reading the current state (no writes)");
    let session = session(global, args, &profile).await?;
    let inputs = inputs(args, &session.namespace, params, false)?;
    let (cluster, observed) = read_state(
        &session,
        &profile,
        &inputs.params,
        &inputs,
        Purpose::Connect,
    )
    .await?;
    let plan = plan_connect(&profile, &inputs, &cluster, &observed)?;
    for w in &plan.warnings {
        warn(w);
    }
    if plan.has_writes() {
        progress.phase("applying");
    }
    apply(
        &plan,
        Some(&session.aws),
        &session.kube,
        global.dry_run,
        Direction::Create,
        &progress,
    )
    .await?;
    if args.with_webhook {
        super::webhook_cmd::install_for_connect(global, &session.kube, &progress).await?;
    }
    print_report(&plan, global.dry_run, global.output, "connect").map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn disconnect(
    global: &GlobalArgs,
    args: &DisconnectArgs,
) -> Result<ExitCode, CommandError> {
    let profile = load_profile(&args.connect.profile)?;
    check_implemented(&profile)?;
    let params = params_for(&profile, &args.connect, false)?;
    let progress = Progress::for_stderr();
    progress.phase("reading the current state (no writes)");
    let session = session(global, &args.connect, &profile).await?;
    let inputs = inputs(
        &args.connect,
        &session.namespace,
        params,
        args.delete_namespace,
    )?;
    let (cluster, observed) = read_state(
        &session,
        &profile,
        &inputs.params,
        &inputs,
        Purpose::Disconnect,
    )
    .await?;
    let plan = plan_disconnect(&profile, &inputs, &cluster, &observed)?;
    for w in &plan.warnings {
        warn(w);
    }
    if plan.has_writes() {
        progress.phase("removing");
    }
    apply(
        &plan,
        Some(&session.aws),
        &session.kube,
        global.dry_run,
        Direction::Teardown,
        &progress,
    )
    .await?;
    print_report(&plan, global.dry_run, global.output, "disconnect")
        .map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

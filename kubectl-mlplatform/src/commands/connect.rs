//! `connect` and `disconnect`: preflight (reads only) → pure plan → apply the writes it lists.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::error::CommandError;
use super::preflight::{Purpose, Session, params_for, read_state, session, set_enforcement};
use crate::cli::{ConnectArgs, ConnectCommandArgs, DisconnectArgs};
use crate::common::{DryRun, GlobalArgs};
use crate::execute::{Clients, execute};
use crate::kube_io::get_object;
use crate::objects::{Kind, ObjectKey, is_terminating};
use crate::output::{Progress, print_report, warn};
use crate::plan::{
    ConnectInputs, Observed, Plan, PlanError, check_implemented, plan_connect, plan_disconnect,
    valid_external_id,
};
use crate::profile::load_profile;

/// The plan's warnings, then its writes (announced as `phase` when there are any).
async fn apply_plan(
    plan: &Plan,
    session: &Session,
    dry_run: DryRun,
    phase: &str,
    progress: &Progress,
) -> Result<(), CommandError> {
    for w in &plan.warnings {
        warn(w);
    }
    if plan.has_writes() {
        progress.phase(phase);
    }
    let clients = Clients {
        aws: Some(&session.aws),
        kube: Some(&session.kube),
    };
    execute(plan, clients, dry_run, progress).await?;
    Ok(())
}

/// How often a Terminating namespace is looked at while connect waits for it to go.
const NAMESPACE_POLL: Duration = Duration::from_millis(500);

/// 16 random bytes, hex: what `--external-id` defaults to for a new role.
pub(crate) fn random_external_id() -> Result<String, CommandError> {
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
        identity: args.identity,
        replace_association: false,
    })
}

pub(crate) async fn connect(
    global: &GlobalArgs,
    command: &ConnectCommandArgs,
) -> Result<ExitCode, CommandError> {
    let args = &command.connect;
    // Everything that can be checked without I/O is checked first.
    let mut profile = load_profile(&args.profile)?;
    set_enforcement(&mut profile, args.enforcement)?;
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
    let mut inputs = inputs(args, &session.namespace, params, false)?;
    inputs.replace_association = command.replace_association;
    let mut state = read_state(
        &session,
        &profile,
        &inputs.params,
        &inputs,
        Purpose::Connect,
    )
    .await?;
    // A namespace still being deleted refuses every create into it (403 NamespaceTerminating):
    // wait for it to go, before anything is written, then read everything afresh.
    let terminating = terminating_namespaces(&state.1);
    if !terminating.is_empty() && global.dry_run != DryRun::Client {
        wait_until_gone(&session.kube, &terminating, command.wait_timeout, &progress).await?;
        state = read_state(
            &session,
            &profile,
            &inputs.params,
            &inputs,
            Purpose::Connect,
        )
        .await?;
    }
    let (cluster, observed) = state;
    let plan = plan_connect(&profile, &inputs, &cluster, &observed)?;
    apply_plan(&plan, &session, global.dry_run, "applying", &progress).await?;
    if args.with_webhook {
        super::webhook_cmd::install_for_connect(global, &session.kube, &progress).await?;
    }
    print_report(&plan, global.dry_run, global.output, "connect").map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

/// Namespaces among the objects read that are being deleted.
fn terminating_namespaces(observed: &Observed) -> Vec<String> {
    observed
        .objects
        .iter()
        .filter(|(key, live)| key.kind == Kind::Namespace && is_terminating(live))
        .map(|(key, _)| key.name.clone())
        .collect()
}

/// Polls until every one of `namespaces` is gone; at most `timeout`, saying so on stderr.
async fn wait_until_gone(
    kube: &kube::Client,
    namespaces: &[String],
    timeout: Duration,
    progress: &Progress,
) -> Result<(), CommandError> {
    let names = namespaces.join(", ");
    let still_there = |waited: Duration| CommandError::NamespaceStillTerminating {
        namespaces: names.clone(),
        waited_seconds: waited.as_secs(),
    };
    if timeout.is_zero() {
        return Err(still_there(Duration::ZERO));
    }
    eprintln!(
        "namespace {names} is being deleted; waiting up to {}s for it to go before creating it again (--wait-timeout)",
        timeout.as_secs()
    );
    let started = Instant::now();
    let mut last_report = Duration::ZERO;
    loop {
        let mut remaining = Vec::new();
        for name in namespaces {
            let key = ObjectKey {
                kind: Kind::Namespace,
                namespace: None,
                name: name.clone(),
            };
            if get_object(kube, &key).await?.is_some() {
                remaining.push(name.as_str());
            }
        }
        let waited = started.elapsed();
        if remaining.is_empty() {
            progress.phase(&format!(
                "namespace {names} is gone ({}s)",
                waited.as_secs()
            ));
            return Ok(());
        }
        if waited >= timeout {
            return Err(still_there(waited));
        }
        if waited - last_report >= Duration::from_secs(5) {
            last_report = waited;
            progress.phase(&format!(
                "still waiting for namespace {} to go ({}s)",
                remaining.join(", "),
                waited.as_secs()
            ));
        }
        tokio::time::sleep(NAMESPACE_POLL.min(timeout - waited)).await;
    }
}

pub(crate) async fn disconnect(
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
    apply_plan(&plan, &session, global.dry_run, "removing", &progress).await?;
    print_report(&plan, global.dry_run, global.output, "disconnect")
        .map_err(CommandError::Output)?;
    Ok(ExitCode::SUCCESS)
}

//! Reading and writing `kube-system/aws-auth`: optimistic concurrency (the resourceVersion that
//! was read), retry on 409 with jittered exponential backoff bounded by time, no write when
//! nothing changed, dry runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;

use super::{AwsAuth, AwsAuthError, CONFIGMAP_NAME, NAMESPACE};
use crate::common::{Change, DryRun};
use crate::vocabulary::FIELD_MANAGER;

/// Answers worth another attempt: throttled or a temporarily unavailable API server.
const RETRIABLE_CODES: [u16; 5] = [429, 500, 502, 503, 504];

/// How long a writer keeps trying while others keep winning the race for aws-auth (nodegroup
/// and addon controllers, other admins, parallel runs of this tool). Bounded by time, not by a
/// count: with many writers a fixed handful of attempts runs out while the cluster is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first read (the last pause is cut
    /// short so that one more attempt falls within it).
    pub budget: Duration,
    /// The first pause's upper bound; it doubles with every attempt up to `max_pause`.
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(30),
            first_pause: Duration::from_millis(25),
            max_pause: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1-based): "full jitter", uniformly in
    /// [0, min(max_pause, first_pause * 2^(attempt-1))], so writers that collided spread out
    /// instead of colliding again. `random` is any random number.
    pub fn pause(&self, attempt: u32, random: u64) -> Duration {
        let doubling = 1u32 << attempt.saturating_sub(1).min(16);
        let window = self
            .first_pause
            .saturating_mul(doubling)
            .min(self.max_pause);
        let window_micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(random % window_micros.saturating_add(1))
    }
}

fn random_u64() -> u64 {
    // A clock fallback is good enough for jitter.
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
    })
}

/// What [`modify_aws_auth_detailed`] did: the edit's change and the data before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsAuthWrite {
    pub change: Change,
    /// Whether the ConfigMap existed when read.
    pub(crate) existed: bool,
    pub before: BTreeMap<String, String>,
    pub after: BTreeMap<String, String>,
    /// A write request was sent (with dryRun=All under `--dry-run=server`).
    pub sent: bool,
}

fn api(client: &kube::Client) -> Api<ConfigMap> {
    Api::namespaced(client.clone(), NAMESPACE)
}

fn kube_error(action: &'static str, e: kube::Error) -> AwsAuthError {
    match e {
        kube::Error::Api(status) if status.code == 403 => AwsAuthError::Forbidden {
            action,
            message: status.message.clone(),
        },
        kube::Error::Api(status) => AwsAuthError::Kube {
            action,
            message: format!(
                "{} (HTTP {})",
                status.message.replace('\n', " "),
                status.code
            ),
        },
        other => AwsAuthError::Kube {
            action,
            message: other.to_string().replace('\n', " "),
        },
    }
}

/// The parsed aws-auth, or None when the ConfigMap does not exist.
pub async fn read_aws_auth(client: &kube::Client) -> Result<Option<AwsAuth>, AwsAuthError> {
    let current = api(client)
        .get_opt(CONFIGMAP_NAME)
        .await
        .map_err(|e| kube_error("reading", e))?;
    current
        .map(|cm| AwsAuth::parse(Some(&cm.data.unwrap_or_default())))
        .transpose()
}

/// The aws-auth data as stored, or None when the ConfigMap does not exist.
pub async fn read_aws_auth_data(
    client: &kube::Client,
) -> Result<Option<BTreeMap<String, String>>, AwsAuthError> {
    let current = api(client)
        .get_opt(CONFIGMAP_NAME)
        .await
        .map_err(|e| kube_error("reading", e))?;
    Ok(current.map(|cm| cm.data.unwrap_or_default()))
}

/// Read kube-system/aws-auth, apply `edit` to the parsed model, write back with the
/// resourceVersion it read (create when absent), retry on 409 with a fresh read (bounded);
/// no write when the rendered data is unchanged; dry_run Server → dryRun=All, Client → no write.
pub async fn modify_aws_auth<F>(
    client: &kube::Client,
    dry_run: DryRun,
    edit: F,
) -> Result<Change, AwsAuthError>
where
    F: Fn(&mut AwsAuth) -> Result<Change, AwsAuthError>,
{
    modify_aws_auth_detailed(client, dry_run, edit)
        .await
        .map(|w| w.change)
}

/// [`modify_aws_auth`], returning the data before and after (for diffs and plans).
pub async fn modify_aws_auth_detailed<F>(
    client: &kube::Client,
    dry_run: DryRun,
    edit: F,
) -> Result<AwsAuthWrite, AwsAuthError>
where
    F: Fn(&mut AwsAuth) -> Result<Change, AwsAuthError>,
{
    modify_aws_auth_with(client, dry_run, RetryPolicy::default(), edit).await
}

/// [`modify_aws_auth_detailed`] with an explicit retry policy.
pub async fn modify_aws_auth_with<F>(
    client: &kube::Client,
    dry_run: DryRun,
    policy: RetryPolicy,
    edit: F,
) -> Result<AwsAuthWrite, AwsAuthError>
where
    F: Fn(&mut AwsAuth) -> Result<Change, AwsAuthError>,
{
    let api = api(client);
    let started = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let current = api
            .get_opt(CONFIGMAP_NAME)
            .await
            .map_err(|e| kube_error("reading", e))?;
        let before = current
            .as_ref()
            .and_then(|cm| cm.data.clone())
            .unwrap_or_default();
        let mut model = AwsAuth::parse(Some(&before))?;
        let change = edit(&mut model)?;
        let after = model.render();
        let mut outcome = AwsAuthWrite {
            change,
            existed: current.is_some(),
            before,
            after,
            sent: false,
        };
        if outcome.after == outcome.before || dry_run == DryRun::Client {
            return Ok(outcome);
        }
        let params = PostParams {
            dry_run: dry_run == DryRun::Server,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let result = match current {
            Some(mut cm) => {
                // Everything else (labels, annotations, binaryData, resourceVersion) as read.
                cm.data = Some(outcome.after.clone());
                api.replace(CONFIGMAP_NAME, &params, &cm).await
            }
            None => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(CONFIGMAP_NAME.to_string()),
                        namespace: Some(NAMESPACE.to_string()),
                        ..ObjectMeta::default()
                    },
                    data: Some(outcome.after.clone()),
                    ..ConfigMap::default()
                };
                api.create(&params, &cm).await
            }
        };
        match result {
            Ok(_) => {
                outcome.sent = true;
                return Ok(outcome);
            }
            // Someone wrote, created or deleted aws-auth since we read it: start over from
            // theirs.
            Err(kube::Error::Api(status))
                if status.code == 409 || (status.code == 404 && outcome.existed) =>
            {
                tracing::info!(
                    attempt,
                    code = status.code,
                    "aws-auth changed since it was read; re-reading"
                );
                let last = format!("HTTP {}: aws-auth changed since it was read", status.code);
                pause_or_give_up(&policy, started, attempt, last).await?;
            }
            // A transient API server failure. Retrying is safe: the write is conditional on the
            // version read, so if it did land, the next attempt sees it and writes nothing.
            Err(kube::Error::Api(status)) if RETRIABLE_CODES.contains(&status.code) => {
                tracing::info!(
                    attempt,
                    code = status.code,
                    "API server busy; retrying aws-auth write"
                );
                let last = format!("HTTP {}: {}", status.code, status.message);
                pause_or_give_up(&policy, started, attempt, last).await?;
            }
            Err(e) => {
                let action = if outcome.existed {
                    "updating"
                } else {
                    "creating"
                };
                return Err(kube_error(action, e));
            }
        }
    }
}

/// Sleeps the jittered pause before the next attempt (cut short so that one last attempt
/// falls within the budget), or gives up once the policy's time budget is spent.
async fn pause_or_give_up(
    policy: &RetryPolicy,
    started: Instant,
    attempt: u32,
    last: String,
) -> Result<(), AwsAuthError> {
    let remaining = policy.budget.saturating_sub(started.elapsed());
    if remaining.is_zero() {
        return Err(AwsAuthError::RetriesExhausted {
            attempts: attempt as usize,
            seconds: started.elapsed().as_secs(),
            last,
        });
    }
    tokio::time::sleep(policy.pause(attempt, random_u64()).min(remaining)).await;
    Ok(())
}

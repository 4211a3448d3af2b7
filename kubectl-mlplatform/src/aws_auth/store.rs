//! Reading and writing `kube-system/aws-auth`: optimistic concurrency (the resourceVersion that
//! was read), bounded retry on 409, no write when nothing changed, dry runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;

use super::{AwsAuth, AwsAuthError, CONFIGMAP_NAME, NAMESPACE};
use crate::common::{Change, DryRun};

/// Attempts before giving up when someone else keeps writing aws-auth between our read and write.
const MAX_ATTEMPTS: usize = 5;
const FIELD_MANAGER: &str = "kubectl-mlplatform";
/// Answers worth another attempt: throttled or a temporarily unavailable API server.
const RETRIABLE_CODES: [u16; 5] = [429, 500, 502, 503, 504];
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// What [`modify_aws_auth_detailed`] did: the edit's change and the data before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsAuthWrite {
    pub change: Change,
    /// Whether the ConfigMap existed when read.
    pub existed: bool,
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
    let api = api(client);
    let mut last = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
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
                last = format!("HTTP {}: aws-auth changed since it was read", status.code);
            }
            // A transient API server failure. Retrying is safe: the write is conditional on the
            // version read, so if it did land, the next attempt sees it and writes nothing.
            Err(kube::Error::Api(status)) if RETRIABLE_CODES.contains(&status.code) => {
                tracing::info!(
                    attempt,
                    code = status.code,
                    "API server busy; retrying aws-auth write"
                );
                last = format!("HTTP {}: {}", status.code, status.message);
                tokio::time::sleep(RETRY_PAUSE * attempt as u32).await;
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
    Err(AwsAuthError::RetriesExhausted {
        attempts: MAX_ATTEMPTS,
        last,
    })
}

//! Reading the facts `policy install|uninstall|status` plan with: the admission policy APIs
//! the server serves, and the live objects.

use std::collections::BTreeMap;

use futures::future::try_join_all;
use serde_json::Value;

use super::model::{PolicyError, ServedApis, kinds_served};
use crate::kube_io::{get_objects, list_objects};
use crate::objects::ObjectKey;

const GROUP_VERSION: &str = "admissionregistration.k8s.io/v1";

/// Reads which admission policy APIs the server serves. A server that does not serve the
/// group version at all (404) serves neither.
pub(crate) async fn served_apis(client: &kube::Client) -> Result<ServedApis, PolicyError> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => {
            let served = |plural: &str| list.resources.iter().any(|r| r.name == plural);
            Ok(ServedApis {
                validating: served("validatingadmissionpolicies")
                    && served("validatingadmissionpolicybindings"),
                mutating: served("mutatingadmissionpolicies")
                    && served("mutatingadmissionpolicybindings"),
            })
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(ServedApis::default()),
        Err(e) => Err(PolicyError::Read {
            what: format!("the API resources of {GROUP_VERSION}"),
            message: crate::kube_io::one_line(&e.to_string()),
        }),
    }
}

/// Reads the live objects of `keys` (in parallel); absent ones are left out.
pub(crate) async fn observe_objects(
    client: &kube::Client,
    keys: impl IntoIterator<Item = ObjectKey>,
) -> Result<BTreeMap<ObjectKey, Value>, PolicyError> {
    get_objects(client, keys)
        .await
        .map_err(|(key, e)| PolicyError::Read {
            what: key.to_string(),
            message: e.to_string(),
        })
}

/// Every live object of the admission policy kinds `served` serves.
pub(crate) async fn observe_all(
    client: &kube::Client,
    served: ServedApis,
) -> Result<Vec<Value>, PolicyError> {
    let lists = try_join_all(kinds_served(served).into_iter().map(|kind| async move {
        list_objects(client, kind)
            .await
            .map_err(|e| PolicyError::Read {
                what: format!("{kind} objects"),
                message: e.to_string(),
            })
    }))
    .await?;
    Ok(lists.into_iter().flatten().collect())
}

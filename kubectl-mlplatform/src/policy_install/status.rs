//! `policy status`'s facts (served APIs, the installed objects, a server-side dry-run pod
//! that must be refused), and which admission policy enforces a namespace (for `doctor` and
//! `webhook status`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use mlplatform_namespace_policy::admission_policy::{
    EXCLUDED_NAMESPACES, SERVICE_ACCOUNT_POLICY, service_account_binding, validating_objects,
};
use mlplatform_namespace_policy::{EnforcementMode, NamespacePolicy, enforcement_from_labels};
use serde_json::{Value, json};

use super::facts::{observe_objects, served_apis};
use super::model::{PolicyError, ServedApis};
use super::model::{is_ours, key_of, manifests};
use crate::kube_io::{get_object, list_managed_namespaces};
use crate::objects::{Kind, ObjectKey, covers};

/// How long the dry-run probe pod may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// One object `install` makes, as the cluster holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectState {
    Matches,
    Missing,
    /// Present, but not what `install` writes.
    Differs,
    /// Present under our name, without our labels.
    NotOurs,
}

/// What a server-side dry-run pod as a ServiceAccount the namespace does not allow met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Refused by one of our ValidatingAdmissionPolicies (the message says which).
    Refused {
        namespace: String,
        service_account: String,
        message: String,
    },
    /// Admitted: nothing enforces the namespace's policy with Deny.
    Admitted {
        namespace: String,
        service_account: String,
    },
    /// Refused by the webhook: the admission policies, which run before it, admitted it.
    RefusedByWebhook {
        namespace: String,
        service_account: String,
        message: String,
    },
    /// Refused for another reason (or no answer); says nothing about the policies.
    Inconclusive {
        namespace: String,
        service_account: String,
        message: String,
    },
    /// No managed namespace whose labels select the Deny binding.
    NoEnforcedNamespace,
    /// Every ServiceAccount of the namespace is allowed there.
    NoDisallowedServiceAccount { namespace: String },
    /// The server does not serve ValidatingAdmissionPolicy.
    NotServed,
}

/// Everything `policy status` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyStatus {
    pub(crate) served: ServedApis,
    /// Every object `install` makes on this server, with its state.
    pub(crate) objects: Vec<(ObjectKey, ObjectState)>,
    pub(crate) probe: Probe,
}

fn read_error(what: &str) -> impl FnOnce(kube::Error) -> PolicyError + '_ {
    move |e| PolicyError::Read {
        what: what.to_owned(),
        message: crate::kube_io::one_line(&e.to_string()),
    }
}

/// Reads the served APIs, the installed objects, and probes admission.
pub(crate) async fn read_status(client: &kube::Client) -> Result<PolicyStatus, PolicyError> {
    let served = served_apis(client).await?;
    if !served.validating {
        return Ok(PolicyStatus {
            served,
            objects: Vec::new(),
            probe: Probe::NotServed,
        });
    }
    let wanted = manifests(served)?;
    let keys = wanted.iter().map(key_of).collect::<Result<Vec<_>, _>>()?;
    let (live, probe) = futures::try_join!(observe_objects(client, keys.clone()), probe(client))?;
    let objects = wanted
        .iter()
        .zip(keys)
        .map(|(object, key)| {
            let state = match live.get(&key) {
                None => ObjectState::Missing,
                Some(l) if !is_ours(l) => ObjectState::NotOurs,
                Some(l) if covers(l, object) => ObjectState::Matches,
                Some(_) => ObjectState::Differs,
            };
            (key, state)
        })
        .collect();
    Ok(PolicyStatus {
        served,
        objects,
        probe,
    })
}

fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
    serde_json::from_value(v.clone()).ok()
}

/// The first managed namespace (not excluded) whose policy parses and whose labels select the
/// Deny binding.
fn enforced_namespace(namespaces: &[(String, Value)]) -> Option<(String, NamespacePolicy)> {
    namespaces.iter().find_map(|(name, ns)| {
        if EXCLUDED_NAMESPACES.contains(&name.as_str()) {
            return None;
        }
        let labels = string_map(&ns["metadata"]["labels"]);
        let annotations = string_map(&ns["metadata"]["annotations"]);
        let policy = NamespacePolicy::from_metadata(labels.as_ref(), annotations.as_ref())
            .ok()
            .flatten()?;
        (enforcement_from_labels(labels.as_ref()) == EnforcementMode::Enforce)
            .then(|| (name.clone(), policy))
    })
}

/// A server-side dry-run pod (dryRun=All: admission runs, nothing is stored) in a managed
/// `enforce` namespace, as an existing ServiceAccount the namespace does not allow
/// (`default` when it is not allowed): the ServiceAccount policy must refuse it. The pod meets
/// the `restricted` Pod Security Standard, so Pod Security admission does not refuse it first.
async fn probe(client: &kube::Client) -> Result<Probe, PolicyError> {
    let namespaces = list_managed_namespaces(client)
        .await
        .map_err(|e| PolicyError::Read {
            what: "managed namespaces".into(),
            message: e.to_string(),
        })?;
    let Some((namespace, policy)) = enforced_namespace(&namespaces) else {
        return Ok(Probe::NoEnforcedNamespace);
    };
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(read_error("ServiceAccounts"))?;
    let mut names: Vec<String> = accounts
        .items
        .into_iter()
        .filter_map(|sa| sa.metadata.name)
        .collect();
    names.sort_by_key(|n| (n != "default", n.clone()));
    let Some(service_account) = names.into_iter().find(|n| !policy.allows(n)) else {
        return Ok(Probe::NoDisallowedServiceAccount { namespace });
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "mlplatform-policy-probe-"},
        "spec": {
            "serviceAccountName": service_account,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65535,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe",
                "image": "registry.k8s.io/pause:3.10",
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))
    .map_err(|e| PolicyError::Render(e.to_string()))?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let result = tokio::time::timeout(PROBE_TIMEOUT, pods.create(&params, &pod)).await;
    let ours = format!("ValidatingAdmissionPolicy '{SERVICE_ACCOUNT_POLICY}'");
    Ok(match result {
        Ok(Ok(_)) => Probe::Admitted {
            namespace,
            service_account,
        },
        Ok(Err(kube::Error::Api(s))) if s.message.contains(&ours) => Probe::Refused {
            namespace,
            service_account,
            message: s.message,
        },
        Ok(Err(kube::Error::Api(s)))
            if s.message.contains("admission webhook") && s.message.contains("denied") =>
        {
            Probe::RefusedByWebhook {
                namespace,
                service_account,
                message: s.message,
            }
        }
        Ok(Err(kube::Error::Api(s))) => Probe::Inconclusive {
            namespace,
            service_account,
            message: s.message,
        },
        Ok(Err(e)) => return Err(read_error("a dry-run probe pod")(e)),
        Err(_) => Probe::Inconclusive {
            namespace,
            service_account,
            message: format!(
                "the dry-run probe pod took longer than {}s",
                PROBE_TIMEOUT.as_secs()
            ),
        },
    })
}

/// The admission policy that enforces a namespace's policy: the ServiceAccount policy and the
/// binding the namespace's labels select, both installed as `policy install` makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PolicyEnforcement {
    pub(crate) mode: EnforcementMode,
}

impl PolicyEnforcement {
    pub(crate) fn binding(self) -> &'static str {
        service_account_binding(self.mode)
    }
}

impl fmt::Display for PolicyEnforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions = match self.mode {
            EnforcementMode::Enforce => "Deny",
            EnforcementMode::Warn => "Warn, Audit",
            EnforcementMode::Audit => "Audit",
        };
        write!(
            f,
            "ValidatingAdmissionPolicy {SERVICE_ACCOUNT_POLICY} (binding {}: {actions})",
            self.binding()
        )
    }
}

/// Which admission policy enforces `namespace`, if any: None for a namespace that is not
/// managed, is excluded, or whose binding or policy is missing or not as installed.
pub(crate) async fn enforcement_in(
    client: &kube::Client,
    namespace: &str,
) -> Result<Option<PolicyEnforcement>, PolicyError> {
    let key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: namespace.to_owned(),
    };
    let live = get_object(client, &key)
        .await
        .map_err(|e| PolicyError::Read {
            what: key.to_string(),
            message: e.to_string(),
        })?;
    let Some(live) = live else { return Ok(None) };
    let labels = string_map(&live["metadata"]["labels"]);
    let managed = labels
        .as_ref()
        .is_some_and(|l| mlplatform_namespace_policy::is_managed(l.iter()));
    if !managed || EXCLUDED_NAMESPACES.contains(&namespace) {
        return Ok(None);
    }
    let enforcement = PolicyEnforcement {
        mode: enforcement_from_labels(labels.as_ref()),
    };
    let wanted: Vec<Value> = validating_objects()
        .into_iter()
        .filter(|o| {
            let name = o["metadata"]["name"].as_str();
            name == Some(SERVICE_ACCOUNT_POLICY) || name == Some(enforcement.binding())
        })
        .collect();
    let keys = wanted.iter().map(key_of).collect::<Result<Vec<_>, _>>()?;
    let live = observe_objects(client, keys.clone()).await?;
    let installed = wanted.iter().zip(&keys).all(|(object, key)| {
        live.get(key)
            .is_some_and(|l| is_ours(l) && covers(l, object))
    });
    Ok(installed.then_some(enforcement))
}

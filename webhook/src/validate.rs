//! `/validate`: in managed namespaces, Pods and the pod templates of workloads must run as the
//! namespace's user ServiceAccount or one of its listed system ServiceAccounts.

use mlplatform_namespace_policy::{EnforcementMode, NamespacePolicy};
use tracing::{info, warn};

use crate::Endpoint;
use crate::admission::{AdmissionResponse, Violation};
use crate::cluster::{ClusterView, Lookup, Missing};
use crate::objects::{ObjectMeta, PodForValidation, Workload};
pub use crate::review::WorkloadKind;
use crate::review::{AdmissionRequest, Operation};

/// `auditAnnotations` key (the API server prefixes it with the webhook name).
pub const AUDIT_ANNOTATION: &str = "service-account-violation";

/// Decides a `/validate` review.
pub fn decide(
    req: &AdmissionRequest<'_>,
    view: &impl ClusterView,
) -> Result<AdmissionResponse, Missing> {
    let uid = req.uid.as_ref();
    if req.is_subresource() || !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(AdmissionResponse::allow(uid));
    }
    let Some(kind) = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind) else {
        return Ok(crate::unhandled_kind(
            uid,
            Endpoint::Validate,
            &req.kind.group,
            &req.kind.kind,
        ));
    };
    let namespace = req.namespace();
    let entry = match view.namespace(namespace) {
        Lookup::Found(entry) => entry,
        // The API server rejects objects in a namespace that does not exist; nothing to enforce.
        Lookup::NotFound => return Ok(AdmissionResponse::allow(uid)),
        Lookup::Missing => return Err(Missing::Namespace(namespace.to_owned())),
        Lookup::Unavailable => {
            return Ok(AdmissionResponse::deny(
                uid,
                503,
                "ServiceUnavailable",
                format!(
                    "mlplatform-webhook cannot read the policy of namespace {namespace} from the API server; retry shortly"
                ),
            ));
        }
    };
    let policy = match &entry.policy {
        Ok(Some(policy)) => policy,
        Ok(None) => return Ok(AdmissionResponse::allow(uid)),
        Err(err) => {
            warn!(namespace, error = %err, "denying: managed namespace policy does not parse");
            let mut denied = AdmissionResponse::deny(
                uid,
                403,
                "Forbidden",
                format!("namespace {namespace}: {err}"),
            );
            denied.violation = Some(Violation::InvalidPolicy);
            return Ok(denied);
        }
    };
    // Bound here so the metadata and ServiceAccount name can borrow from them.
    let (pod, workload);
    let (metadata, service_account): (&ObjectMeta<'_>, &str) = match kind {
        WorkloadKind::Pod => {
            pod = match crate::parse_object::<PodForValidation<'_>>(req) {
                Ok(pod) => pod,
                Err(message) => return Ok(crate::bad_object(uid, message)),
            };
            (&pod.metadata, pod.spec.effective())
        }
        _ => {
            workload = match crate::parse_object::<Workload<'_>>(req) {
                Ok(workload) => workload,
                Err(message) => return Ok(crate::bad_object(uid, message)),
            };
            let service_account = if kind == WorkloadKind::CronJob {
                workload
                    .spec
                    .job_template
                    .as_ref()
                    .map_or("default", |jt| jt.spec.template.spec.effective())
            } else {
                workload.spec.template.spec.effective()
            };
            (&workload.metadata, service_account)
        }
    };
    // Never block an object on its way out (finalizer removal is an UPDATE), and allow
    // what the namespace allows.
    if metadata.deletion_timestamp.is_some() || policy.allows(service_account) {
        return Ok(AdmissionResponse::allow(uid));
    }
    let workload = workload_name(kind, namespace, metadata, req.name.as_deref());
    let message = violation_message(kind, &workload, service_account, namespace, policy);
    let mut response = match policy.enforcement {
        EnforcementMode::Enforce => {
            info!(%workload, service_account, "denied: ServiceAccount not allowed");
            AdmissionResponse::deny(uid, 403, "Forbidden", message)
        }
        EnforcementMode::Warn => AdmissionResponse::allow(uid).with_warning(message),
        EnforcementMode::Audit => {
            info!(%workload, service_account, %message, "audit: ServiceAccount not allowed");
            let mut response = AdmissionResponse::allow(uid);
            response
                .audit_annotations
                .insert(AUDIT_ANNOTATION.to_owned(), message);
            response
        }
    };
    response.violation = Some(Violation::ServiceAccount(policy.enforcement));
    Ok(response)
}

/// `Kind namespace/name`, or `Kind namespace/prefix*` for objects named by `generateName`.
fn workload_name(
    kind: WorkloadKind,
    namespace: &str,
    metadata: &ObjectMeta<'_>,
    request_name: Option<&str>,
) -> String {
    let name = metadata
        .name
        .as_deref()
        .or(request_name)
        .filter(|n| !n.is_empty());
    match (name, metadata.generate_name.as_deref()) {
        (Some(name), _) => format!("{} {namespace}/{name}", kind.as_str()),
        (None, Some(prefix)) => format!("{} {namespace}/{prefix}* (generateName)", kind.as_str()),
        (None, None) => format!("{} in namespace {namespace}", kind.as_str()),
    }
}

fn violation_message(
    kind: WorkloadKind,
    workload: &str,
    service_account: &str,
    namespace: &str,
    policy: &NamespacePolicy,
) -> String {
    let mut message = format!(
        "{workload} runs as ServiceAccount \"{service_account}\", which namespace {namespace} does not allow: set {} to \"{}\"",
        kind.service_account_field(),
        policy.user_service_account
    );
    if !policy.system_service_accounts.is_empty() {
        message.push_str(" (system ServiceAccounts also allowed: ");
        message.push_str(&policy.system_service_accounts.join(", "));
        message.push(')');
    }
    message
}

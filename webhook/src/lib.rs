//! mlplatform admission webhook.
//!
//! - [`mutate`]: IRSA injection into pods (amazon-eks-pod-identity-webhook parity) and the
//!   role annotation on a managed namespace's user ServiceAccount.
//! - [`validate`]: managed namespaces' workloads must run as the allowed ServiceAccounts.
//! - [`review`]: the AdmissionReview request the readers ([`admission`], `scan`) produce and
//!   the decisions read; [`admission`]: reading and writing the wire format.
//! - [`cache`]: namespaces and ServiceAccounts from metadata-only watches, stripped.
//! - [`server`]: axum router, HTTPS with certificate hot reload ([`tls`]), health and metrics.
//!
//! Decisions are pure functions over [`cluster::ClusterView`]; I/O stays in `cache`/`server`.

pub mod admission;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod mutate;
pub mod objects;
pub mod patch;
pub mod review;
mod scan;
pub mod server;
pub mod tls;
pub mod validate;

use admission::AdmissionResponse;
use cluster::{ClusterView, Missing};
use mutate::InjectionConfig;
use review::{AdmissionRequest, Held, Object, ObjectView};

/// The two admission endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Mutate,
    Validate,
}

impl Endpoint {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mutate => "mutate",
            Self::Validate => "validate",
        }
    }
}

/// Decides one review for `endpoint`.
pub fn decide(
    endpoint: Endpoint,
    req: &AdmissionRequest<'_>,
    view: &impl ClusterView,
    cfg: &InjectionConfig,
) -> Result<AdmissionResponse, Missing> {
    match endpoint {
        Endpoint::Mutate => mutate::decide(req, view, cfg),
        Endpoint::Validate => validate::decide(req, view),
    }
}

/// Longest group/kind shown in a message: the API server only sends registered kinds, but
/// anyone who reaches the port can send a review.
const MAX_SHOWN_KIND: usize = 100;

/// A valid response for a kind the endpoint does not handle (a rule in the webhook
/// configuration that should not be there), marked so the server counts it and logs it once.
///
/// `/mutate` admits it unchanged with a warning: it is not the gate, and denying there would
/// make one mis-registered rule block every object of that kind in the cluster. `/validate`
/// denies it with 400 and the reason (SPEC §7: the wrong kind gets a denied review).
pub(crate) fn unhandled_kind(
    uid: &str,
    endpoint: Endpoint,
    group: &str,
    kind: &str,
) -> AdmissionResponse {
    let gk = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let gk = cluster::shorten(&gk, MAX_SHOWN_KIND);
    let mut response = match endpoint {
        Endpoint::Mutate => AdmissionResponse::allow(uid).with_warning(format!(
            "mlplatform-webhook /mutate does not handle kind {gk:?} and admitted it unchanged; remove it from the MutatingWebhookConfiguration's rules"
        )),
        Endpoint::Validate => AdmissionResponse::deny(
            uid,
            400,
            "BadRequest",
            format!(
                "mlplatform-webhook /validate does not handle kind {gk:?}; remove it from the webhook configuration's rules"
            ),
        ),
    };
    response.unhandled_kind = true;
    response
}

/// `request.object` as the view `T` a decision reads: the one the reader already produced, or
/// parsed from the raw object now. A missing or malformed object gives the message for a
/// denied (400) response.
pub(crate) fn parse_object<'r, 'a, T: ObjectView<'a>>(
    req: &'r AdmissionRequest<'a>,
) -> Result<Held<'r, T>, String> {
    let kind = req.kind.kind.as_ref();
    match &req.object {
        Object::Absent => Err(format!("AdmissionReview for {kind} has no request.object")),
        Object::Raw(raw) => serde_json::from_str(raw.get())
            .map(Held::Owned)
            .map_err(|err| format!("request.object is not a valid {kind}: {err}")),
        read => T::from_object(read).map(Held::Borrowed).ok_or_else(|| {
            // Only if the one-pass reader and the decisions disagree on what is read.
            format!("mlplatform-webhook did not read request.object of {kind} for this decision")
        }),
    }
}

/// A denied response for an object that cannot be read.
pub(crate) fn bad_object(uid: &str, message: String) -> AdmissionResponse {
    AdmissionResponse::deny(uid, 400, "BadRequest", message)
}

//! Kubernetes `Status` errors, shaped like the apiserver's so kube's client parses them
//! into `kube::Error::Api`.

use serde_json::{Value, json};

/// An API error the double answers with (a `Status` object and its HTTP code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Box<Value>>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    /// `details` as the apiserver fills them: empty group and name are left out.
    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(Box::new(details(group, kind, name)));
        self
    }

    /// `configmaps "x" not found`; `qualified` is `plural[.group]`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// 409: the uid a write names is not the stored object's.
    pub fn uid_precondition(asked: &str, stored: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {asked}, UID in object meta: {stored}"
            ),
        )
    }

    /// 422 Invalid with one cause per problem, like the apiserver's field validation.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[(String, String)]) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        // `Kind.group "name"`, as the apiserver qualifies the kind.
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: {}",
                qualified(group, kind),
                text.join(", ")
            ),
        )
        .with_details(group, kind, name);
        if let Some(details) = err.details.as_mut() {
            details["causes"] = causes
                .iter()
                .map(|(field, message)| {
                    json!({"reason": cause_reason(message), "message": message, "field": field})
                })
                .collect();
        }
        err
    }

    /// 403 from an admission plugin: `pods "p" is forbidden: <why>` (no name: `pods is
    /// forbidden`), with the resource in `details.kind`.
    pub fn forbidden(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let subject = if name.is_empty() {
            qualified(group, plural)
        } else {
            format!("{} \"{name}\"", qualified(group, plural))
        };
        ApiError::new(403, "Forbidden", format!("{subject} is forbidden: {why}"))
            .with_details(group, plural, name)
    }

    /// The NamespaceLifecycle refusal of a create into a namespace being deleted.
    pub fn namespace_terminating(group: &str, plural: &str, name: &str, namespace: &str) -> Self {
        let mut err = ApiError::forbidden(
            group,
            plural,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        );
        if let Some(details) = err.details.as_mut() {
            details["causes"] = json!([{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {namespace} is being terminated"),
                "field": "metadata.namespace",
            }]);
        }
        err
    }

    /// Server-side apply conflicts: `(manager, .dotted.path)` pairs.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let text: Vec<String> = conflicts
            .iter()
            .map(|(manager, path)| format!("conflict with \"{manager}\": {path}"))
            .collect();
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                text.join(", ")
            ),
        );
        err.details = Some(Box::new(json!({"causes": conflicts
            .iter()
            .map(|(manager, path)| json!({"reason": "FieldManagerConflict",
                "message": format!("conflict with \"{manager}\""), "field": path}))
            .collect::<Vec<_>>()})));
        err
    }

    /// A JSON patch that cannot be applied: the apiserver's generic 422.
    pub fn patch_not_applicable() -> Self {
        let mut err = ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        );
        err.details = Some(Box::new(json!({})));
        err
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// What the apiserver says for an unknown path or plural.
    pub fn no_such_resource() -> Self {
        let mut err = ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        err.details = Some(Box::new(json!({})));
        err
    }

    pub fn method_not_allowed(method: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// A failure injected by a test: the reason the apiserver uses for that code.
    pub fn injected(code: u16, method: &str, path: &str) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        ApiError::new(
            code,
            reason,
            format!("injected failure for {method} {path} ({reason})"),
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = Value::clone(details);
        }
        status
    }
}

/// `StatusDetails`: kind (a plural for resource errors, a Kind for validation), plus group
/// and name when they are not empty.
pub fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut details = json!({"kind": kind});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    details
}

/// The `reason` of a validation cause, from its message as field.Error renders it.
fn cause_reason(message: &str) -> &'static str {
    const REASONS: &[(&str, &str)] = &[
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
    ];
    REASONS
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, reason)| reason)
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_shaped_like_the_apiserver() {
        let s = ApiError::not_found("apps", "deployments", "web").to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn details_and_causes_are_shaped_like_the_apiserver() {
        let err = ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[("fieldManager".into(), "Required value: is required".into())],
        );
        let details = err.to_status()["details"].clone();
        assert!(details.get("name").is_none());
        assert_eq!(details["causes"][0]["reason"], "FieldValueRequired");
        let err = ApiError::namespace_terminating("", "configmaps", "late", "team");
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "configmaps \"late\" is forbidden: unable to create new content in namespace team because it is being terminated"
        );
        let status = err.to_status();
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "NamespaceTerminating"
        );
        assert_eq!(
            ApiError::forbidden("", "pods", "", "x").message,
            "pods is forbidden: x"
        );
        assert_eq!(
            ApiError::no_such_resource().to_status()["details"],
            json!({})
        );
    }

    #[test]
    fn injected_codes_get_apiserver_reasons() {
        assert_eq!(ApiError::injected(409, "PUT", "/x").reason, "Conflict");
        assert_eq!(ApiError::injected(403, "GET", "/x").reason, "Forbidden");
        assert_eq!(ApiError::injected(500, "GET", "/x").reason, "InternalError");
    }
}

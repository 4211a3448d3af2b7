//! Who may do what: impersonated requests authorized by RBAC with the apiserver's 403s,
//! and the review resources (SubjectAccessReview and friends).

use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::managed::{self, Manager};
use super::rbac::{self, Decision, RbacObjects, UserInfo};
use super::request::{ADMIN_USER, ApiRequest, Shared, Target, lock};
use super::resources::ResourceType;
use super::status::{self, ApiError};
use super::store::Store;

/// The impersonated user, if the request names one.
pub fn impersonation(headers: &HeaderMap) -> Result<Option<UserInfo>, ApiError> {
    let text = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let users = text("impersonate-user");
    let groups = text("impersonate-group");
    match users.first() {
        Some(user) => Ok(Some(UserInfo {
            user: user.clone(),
            groups,
        })),
        None if groups.is_empty() => Ok(None),
        None => Err(ApiError::bad_request(
            "requested impersonation of groups without a user: add Impersonate-User",
        )),
    }
}

pub fn rbac_objects(store: &Store) -> RbacObjects {
    RbacObjects {
        roles: store.objects_of("rbac.authorization.k8s.io", "Role"),
        cluster_roles: store.objects_of("rbac.authorization.k8s.io", "ClusterRole"),
        role_bindings: store.objects_of("rbac.authorization.k8s.io", "RoleBinding"),
        cluster_role_bindings: store.objects_of("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    }
}

/// The RBAC verb of a resource request.
pub fn verb_of(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match (method, has_name) {
        (&Method::GET, _) if watch => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

/// For impersonated requests, what RBAC says, like the apiserver's authorizer: a denial is
/// 403 with the apiserver's message. Self-reviews are open to every authenticated user.
pub fn authorize_impersonated(
    shared: &Shared,
    request: &ApiRequest,
    target: &Target,
    watch_path: bool,
) -> Result<(), ApiError> {
    let Some(who) = &request.impersonate else {
        return Ok(());
    };
    let rt = &target.rt;
    if rt.review_only && rt.kind.starts_with("SelfSubject") {
        return Ok(());
    }
    let watch = watch_path || request.query.flag("watch");
    let verb = verb_of(&request.method, target.name.is_some(), watch);
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let attributes = rbac::Request::Resource {
        namespace: namespace.clone(),
        verb: verb.to_string(),
        group: rt.group.clone(),
        resource: rt.plural.clone(),
        subresource: target.subresource.clone().unwrap_or_default(),
        name: name.clone(),
    };
    let decision = rbac::authorize(&rbac_objects(&lock(&shared.store)), who, &attributes);
    if decision.allowed {
        return Ok(());
    }
    let qualified = if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    };
    let subject = if name.is_empty() {
        format!("{qualified} is forbidden")
    } else {
        format!("{qualified} \"{name}\" is forbidden")
    };
    let resource = match &target.subresource {
        Some(sub) => format!("{}/{sub}", rt.plural),
        None => rt.plural.clone(),
    };
    let scope = if namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{namespace}\"")
    };
    let mut err = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{subject}: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
            who.user, rt.group
        ),
    );
    err.details = Some(Box::new(status::details(&rt.group, &rt.plural, &name)));
    Err(err)
}

/// An access review's status: the apiserver gives a reason only for what RBAC allowed
/// (not for denials, nor for system:masters).
fn access_status(decision: &Decision) -> Value {
    if decision.allowed && decision.reason.starts_with("RBAC:") {
        json!({"allowed": true, "reason": decision.reason})
    } else {
        json!({"allowed": decision.allowed})
    }
}

/// SubjectAccessReview and friends: evaluated, echoed back with a status, never stored.
/// Like any create, the answer carries the writer's managedFields.
pub fn review(
    shared: &Shared,
    rt: &ResourceType,
    namespace: Option<&str>,
    request: &ApiRequest,
) -> Result<Value, ApiError> {
    let impersonated = request.impersonate.as_ref();
    let mut out = request.json_body()?;
    if !out.is_object() {
        return Err(ApiError::bad_request("the review must be a JSON object"));
    }
    out["apiVersion"] = json!(rt.api_version());
    out["kind"] = json!(rt.kind);
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
    let who = Manager::Update(request.manager());
    managed::record(&mut out, None, &who, &rt.api_version(), false);
    let spec = out.get("spec").cloned().unwrap_or(json!({}));
    match rt.kind.as_str() {
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            if let Some(ns) = namespace {
                let asked = spec
                    .pointer("/resourceAttributes/namespace")
                    .and_then(Value::as_str);
                if asked.is_some_and(|a| a != ns) {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match the namespace of the request ({ns})"
                    )));
                }
            }
            let who = UserInfo {
                user: spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                groups: spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|g| {
                        g.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            if who.user.is_empty() && who.groups.is_empty() {
                return Err(ApiError::invalid(
                    "authorization.k8s.io",
                    &rt.kind,
                    "",
                    &[(
                        "spec.user".to_string(),
                        "Invalid value: \"\": at least one of user or group must be specified"
                            .to_string(),
                    )],
                ));
            }
            let attributes = rbac::Request::from_sar_spec(&spec, namespace).ok_or_else(|| {
                ApiError::bad_request("exactly one of spec.resourceAttributes and spec.nonResourceAttributes must be set")
            })?;
            let objects = rbac_objects(&lock(&shared.store));
            let decision = rbac::authorize(&objects, &who, &attributes);
            out["status"] = access_status(&decision);
        }
        "SelfSubjectAccessReview" => match impersonated {
            // The kubeconfig user is in system:masters: allowed, with no reason given.
            None => out["status"] = json!({"allowed": true}),
            Some(who) => {
                let attributes = rbac::Request::from_sar_spec(&spec, None).ok_or_else(|| {
                    ApiError::bad_request("exactly one of spec.resourceAttributes and spec.nonResourceAttributes must be set")
                })?;
                let decision =
                    rbac::authorize(&rbac_objects(&lock(&shared.store)), who, &attributes);
                out["status"] = access_status(&decision);
            }
        },
        "SelfSubjectReview" => {
            out["status"] = match impersonated {
                None => {
                    json!({"userInfo": {"username": ADMIN_USER, "groups": ["system:masters", "system:authenticated"]}})
                }
                Some(who) => {
                    json!({"userInfo": {"username": who.user, "groups": who.effective_groups()}})
                }
            };
        }
        _ => {
            out["status"] = json!({"authenticated": false, "error": "the kube double does not authenticate tokens"});
        }
    }
    Ok(out)
}

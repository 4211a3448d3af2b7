//! The stand-in's HTTP side: which paths it answers itself, and everything else forwarded to
//! moto and streamed back.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::State as AxumState;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};

use super::access;
use super::model::{
    ClusterState, Ctx, EksCall, EksError, Query, State, parse_body, parse_iam_principal,
    percent_decode, uuid,
};
use super::pod_identity;
use super::upstream::{Upstream, strip_hop_by_hop, trusts_pod_identity};

/// Request bodies above this are refused (EKS requests are small).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub(super) struct Shared {
    pub state: Mutex<State>,
    pub upstream: Upstream,
}

/// The state, even if a panicking test thread poisoned the lock.
pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// An operation the stand-in answers from its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    CreatePodIdentityAssociation,
    ListPodIdentityAssociations,
    DescribePodIdentityAssociation(String),
    UpdatePodIdentityAssociation(String),
    DeletePodIdentityAssociation(String),
    CreateAddon,
    ListAddons,
    DescribeAddon(String),
    DeleteAddon(String),
    CreateAccessEntry,
    ListAccessEntries,
    DescribeAccessEntry(String),
    UpdateAccessEntry(String),
    DeleteAccessEntry(String),
    AssociateAccessPolicy(String),
    ListAssociatedAccessPolicies(String),
    DisassociateAccessPolicy(String, String),
    UpdateClusterConfig,
    NotImplemented(&'static str),
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::CreatePodIdentityAssociation => "CreatePodIdentityAssociation",
            Op::ListPodIdentityAssociations => "ListPodIdentityAssociations",
            Op::DescribePodIdentityAssociation(_) => "DescribePodIdentityAssociation",
            Op::UpdatePodIdentityAssociation(_) => "UpdatePodIdentityAssociation",
            Op::DeletePodIdentityAssociation(_) => "DeletePodIdentityAssociation",
            Op::CreateAddon => "CreateAddon",
            Op::ListAddons => "ListAddons",
            Op::DescribeAddon(_) => "DescribeAddon",
            Op::DeleteAddon(_) => "DeleteAddon",
            Op::CreateAccessEntry => "CreateAccessEntry",
            Op::ListAccessEntries => "ListAccessEntries",
            Op::DescribeAccessEntry(_) => "DescribeAccessEntry",
            Op::UpdateAccessEntry(_) => "UpdateAccessEntry",
            Op::DeleteAccessEntry(_) => "DeleteAccessEntry",
            Op::AssociateAccessPolicy(_) => "AssociateAccessPolicy",
            Op::ListAssociatedAccessPolicies(_) => "ListAssociatedAccessPolicies",
            Op::DisassociateAccessPolicy(..) => "DisassociateAccessPolicy",
            Op::UpdateClusterConfig => "UpdateClusterConfig",
            Op::NotImplemented(_) => "NotImplemented",
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    Forward,
    /// Forwarded; the stand-in remembers `accessConfig` and adds it to the answer.
    CreateCluster,
    /// Forwarded; `accessConfig.authenticationMode` added to the answer.
    DescribeCluster(String),
    /// Forwarded; the stand-in forgets the cluster when moto deleted it.
    DeleteCluster(String),
    /// Answered here with `accessConfig`, forwarded otherwise.
    UpdateClusterConfig(String),
    /// Answered here for the stand-in's own updates, forwarded otherwise.
    DescribeUpdate(String, String),
    /// Answered here for the ARNs the stand-in made, forwarded otherwise.
    Tags(String),
    ListAccessPolicies,
    Local(String, Op),
}

/// Routes `method path` (path percent-encoded, without the query).
pub(super) fn route(method: &Method, raw_path: &str) -> Result<Route, EksError> {
    if let Some(arn) = raw_path.strip_prefix("/tags/") {
        let arn = percent_decode(arn)
            .ok_or_else(|| EksError::new(400, "BadRequestException", "The ARN is not valid."))?;
        return Ok(Route::Tags(arn));
    }
    let raw: Vec<&str> = raw_path.trim_start_matches('/').split('/').collect();
    if !matches!(raw.first(), Some(&"clusters") | Some(&"access-policies")) {
        return Ok(Route::Forward);
    }
    let segments = raw
        .iter()
        .map(|s| percent_decode(s))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| EksError::invalid_parameter("The request path is not validly encoded."))?;
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let unknown = || Op::NotImplemented("this method on this path");
    let local = |cluster: &str, op: Op| Ok(Route::Local(cluster.to_string(), op));
    let m = method.clone();
    match s.as_slice() {
        ["access-policies"] if m == Method::GET => Ok(Route::ListAccessPolicies),
        ["clusters"] if m == Method::POST => Ok(Route::CreateCluster),
        ["clusters", name] if m == Method::GET => Ok(Route::DescribeCluster(name.to_string())),
        ["clusters", name] if m == Method::DELETE => Ok(Route::DeleteCluster(name.to_string())),
        ["clusters", name, "update-config"] if m == Method::POST => {
            Ok(Route::UpdateClusterConfig(name.to_string()))
        }
        ["clusters", name, "updates", id] if m == Method::GET => {
            Ok(Route::DescribeUpdate(name.to_string(), id.to_string()))
        }
        ["clusters", c, "pod-identity-associations"] => match m {
            Method::POST => local(c, Op::CreatePodIdentityAssociation),
            Method::GET => local(c, Op::ListPodIdentityAssociations),
            _ => local(c, unknown()),
        },
        ["clusters", c, "pod-identity-associations", id] => {
            let id = id.to_string();
            match m {
                Method::GET => local(c, Op::DescribePodIdentityAssociation(id)),
                Method::POST => local(c, Op::UpdatePodIdentityAssociation(id)),
                Method::DELETE => local(c, Op::DeletePodIdentityAssociation(id)),
                _ => local(c, unknown()),
            }
        }
        ["clusters", c, "addons"] => match m {
            Method::POST => local(c, Op::CreateAddon),
            Method::GET => local(c, Op::ListAddons),
            _ => local(c, unknown()),
        },
        ["clusters", c, "addons", addon] => match m {
            Method::GET => local(c, Op::DescribeAddon(addon.to_string())),
            Method::DELETE => local(c, Op::DeleteAddon(addon.to_string())),
            _ => local(c, unknown()),
        },
        ["clusters", c, "addons", _, "update"] => local(c, Op::NotImplemented("UpdateAddon")),
        ["clusters", c, "access-entries"] => match m {
            Method::POST => local(c, Op::CreateAccessEntry),
            Method::GET => local(c, Op::ListAccessEntries),
            _ => local(c, unknown()),
        },
        ["clusters", c, "access-entries", p] => {
            let p = p.to_string();
            match m {
                Method::GET => local(c, Op::DescribeAccessEntry(p)),
                Method::POST => local(c, Op::UpdateAccessEntry(p)),
                Method::DELETE => local(c, Op::DeleteAccessEntry(p)),
                _ => local(c, unknown()),
            }
        }
        ["clusters", c, "access-entries", p, "access-policies"] => match m {
            Method::POST => local(c, Op::AssociateAccessPolicy(p.to_string())),
            Method::GET => local(c, Op::ListAssociatedAccessPolicies(p.to_string())),
            _ => local(c, unknown()),
        },
        [
            "clusters",
            c,
            "access-entries",
            p,
            "access-policies",
            policy,
        ] if m == Method::DELETE => local(
            c,
            Op::DisassociateAccessPolicy(p.to_string(), policy.to_string()),
        ),
        _ => Ok(Route::Forward),
    }
}

fn json_response(status: u16, body: &Value, error_type: Option<&str>) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-amzn-RequestId", uuid());
    if let Some(kind) = error_type {
        builder = builder.header("x-amzn-ErrorType", kind);
    }
    builder
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn answer(result: Result<Value, EksError>) -> (u16, Response) {
    match result {
        Ok(body) => (200, json_response(200, &body, None)),
        Err(e) => (e.status, json_response(e.status, &e.body(), Some(e.kind))),
    }
}

fn record(shared: &Shared, method: &Method, path: &str, operation: Option<&str>, status: u16) {
    lock(shared).calls.push(EksCall {
        method: method.to_string(),
        path: path.to_string(),
        operation: operation.map(str::to_string),
        status,
    });
}

/// The axum fallback handler: every request comes here.
pub(super) async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    request: http::Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path_and_query = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let route = match route(&method, parts.uri.path()) {
        Ok(route) => route,
        Err(e) => {
            let (status, response) = answer(Err(e));
            record(&shared, &method, &path_and_query, Some("Invalid"), status);
            return response;
        }
    };
    if route == Route::Forward {
        return forward_streaming(&shared, &parts, &path_and_query, body).await;
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let e = EksError::new(413, "RequestEntityTooLargeException", "Request too large.");
            return answer(Err(e)).1;
        }
    };
    let (operation, status, response) =
        dispatch(&shared, route, &parts, &path_and_query, bytes).await;
    record(&shared, &method, &path_and_query, operation, status);
    response
}

/// Streams a request to moto and its answer back.
async fn forward_streaming(
    shared: &Shared,
    parts: &http::request::Parts,
    path_and_query: &str,
    body: Body,
) -> Response {
    let sent = shared
        .upstream
        .send(parts.method.clone(), path_and_query, &parts.headers, body)
        .await;
    let (status, response) = match sent {
        Ok(upstream) => {
            let (mut head, body) = upstream.into_parts();
            strip_hop_by_hop(&mut head.headers);
            let status = head.status.as_u16();
            (status, Response::from_parts(head, Body::new(body)))
        }
        Err(e) => answer(Err(e)),
    };
    record(shared, &parts.method, path_and_query, None, status);
    response
}

/// Forwards a buffered request; hands a JSON answer to `edit` before passing it on.
async fn forward_buffered(
    shared: &Shared,
    parts: &http::request::Parts,
    path_and_query: &str,
    body: bytes::Bytes,
    edit: impl FnOnce(u16, &mut Value),
) -> (u16, Response) {
    let exchanged = shared
        .upstream
        .exchange(
            parts.method.clone(),
            path_and_query,
            &parts.headers,
            Body::from(body),
        )
        .await;
    let (mut head, bytes) = match exchanged {
        Ok(exchanged) => exchanged,
        Err(e) => return answer(Err(e)),
    };
    let status = head.status.as_u16();
    strip_hop_by_hop(&mut head.headers);
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut value) => {
            edit(status, &mut value);
            head.headers.remove(header::CONTENT_LENGTH);
            Body::from(value.to_string())
        }
        Err(_) => Body::from(bytes),
    };
    (status, Response::from_parts(head, body))
}

/// Adds `accessConfig` to a DescribeCluster/CreateCluster answer from what the stand-in knows.
fn add_access_config(cluster: &ClusterState, answer: &mut Value) {
    let mut config = json!({"authenticationMode": cluster.auth_mode()});
    if let Some(bootstrap) = cluster.bootstrap_admin {
        config["bootstrapClusterCreatorAdminPermissions"] = json!(bootstrap);
    }
    if let Some(object) = answer.get_mut("cluster").and_then(Value::as_object_mut) {
        object.insert("accessConfig".into(), config);
    }
}

/// Follows moto's cluster: a different `createdAt` than last seen means it was deleted and
/// created again behind the stand-in's back, so what the stand-in knew is gone.
fn sync_cluster<'a>(state: &'a mut State, name: &str, moto: &Value) -> &'a mut ClusterState {
    let created = moto.get("createdAt").map(Value::to_string);
    let cluster = state.clusters.entry(name.to_string()).or_default();
    match (&cluster.moto_created_at, created) {
        (Some(seen), Some(now)) if *seen != now => {
            *cluster = ClusterState {
                moto_created_at: Some(now),
                ..Default::default()
            };
        }
        (None, now) => cluster.moto_created_at = now,
        _ => {}
    }
    cluster
}

async fn dispatch(
    shared: &Shared,
    route: Route,
    parts: &http::request::Parts,
    path_and_query: &str,
    bytes: bytes::Bytes,
) -> (Option<&'static str>, u16, Response) {
    let forwarded = |(status, response): (u16, Response)| (None, status, response);
    match route {
        Route::CreateCluster => {
            let request = parse_body(&bytes).unwrap_or_default();
            let name = request
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let config = request.get("accessConfig");
            let mode = config
                .and_then(|c| c.get("authenticationMode"))
                .and_then(Value::as_str);
            let bootstrap = config
                .and_then(|c| c.get("bootstrapClusterCreatorAdminPermissions"))
                .and_then(Value::as_bool);
            forwarded(
                forward_buffered(
                    shared,
                    parts,
                    path_and_query,
                    bytes.clone(),
                    |status, answer| {
                        if status != 200 {
                            return;
                        }
                        let mut state = lock(shared);
                        let created = answer
                            .get("cluster")
                            .and_then(|c| c.get("createdAt"))
                            .map(Value::to_string);
                        let cluster = state.clusters.entry(name.clone()).or_default();
                        if cluster.moto_created_at.is_some() {
                            // An earlier cluster of that name; presets made before this one
                            // existed (never seen in moto) apply to it.
                            *cluster = ClusterState::default();
                        }
                        cluster.moto_created_at = created;
                        if let Some(mode) = mode {
                            cluster.auth_mode = Some(mode.to_string());
                        }
                        cluster.bootstrap_admin = Some(bootstrap.unwrap_or(true));
                        add_access_config(cluster, answer);
                    },
                )
                .await,
            )
        }
        Route::DescribeCluster(name) => forwarded(
            forward_buffered(shared, parts, path_and_query, bytes, |status, answer| {
                if status == 200 {
                    let mut state = lock(shared);
                    let moto = answer.get("cluster").cloned().unwrap_or_default();
                    add_access_config(sync_cluster(&mut state, &name, &moto), answer);
                }
            })
            .await,
        ),
        Route::DeleteCluster(name) => forwarded(
            forward_buffered(shared, parts, path_and_query, bytes, |status, _| {
                if status == 200 {
                    lock(shared).clusters.remove(&name);
                }
            })
            .await,
        ),
        Route::UpdateClusterConfig(name) => {
            let body = parse_body(&bytes).unwrap_or_default();
            if !body.contains_key("accessConfig") {
                let sent = forward_buffered(shared, parts, path_and_query, bytes, |_, _| {});
                return forwarded(sent.await);
            }
            local(shared, parts, name, Op::UpdateClusterConfig, &bytes).await
        }
        Route::DescribeUpdate(name, id) => {
            let own = lock(shared)
                .clusters
                .get(&name)
                .and_then(|c| c.updates.get(&id).cloned());
            match own {
                Some(update) => {
                    let (status, response) = answer(Ok(json!({"update": update})));
                    (Some("DescribeUpdate"), status, response)
                }
                None => forwarded(
                    forward_buffered(shared, parts, path_and_query, bytes, |_, _| {}).await,
                ),
            }
        }
        Route::Tags(arn) if access::parse_own_arn(&arn).is_some() => {
            let operation = match parts.method {
                Method::GET => "ListTagsForResource",
                Method::POST => "TagResource",
                _ => "UntagResource",
            };
            let result = Query::parse(parts.uri.query()).and_then(|query| {
                let body = parse_body(&bytes)?;
                access::tag_operation(&mut lock(shared), &parts.method, &arn, &query, &body)
            });
            let (status, response) = answer(result);
            (Some(operation), status, response)
        }
        Route::Tags(_) | Route::Forward => {
            forwarded(forward_buffered(shared, parts, path_and_query, bytes, |_, _| {}).await)
        }
        Route::ListAccessPolicies => {
            let result =
                Query::parse(parts.uri.query()).and_then(|q| access::list_access_policies(&q));
            let (status, response) = answer(result);
            (Some("ListAccessPolicies"), status, response)
        }
        Route::Local(cluster, op) => local(shared, parts, cluster, op, &bytes).await,
    }
}

/// An operation on one cluster: the cluster must exist in moto; roles given to Pod Identity
/// must exist in moto's IAM and trust `pods.eks.amazonaws.com` (unless switched off).
async fn local(
    shared: &Shared,
    parts: &http::request::Parts,
    name: String,
    op: Op,
    bytes: &[u8],
) -> (Option<&'static str>, u16, Response) {
    let operation = Some(op.name());
    let result = local_result(shared, &parts.headers, parts.uri.query(), &name, &op, bytes).await;
    let (status, response) = answer(result);
    (operation, status, response)
}

async fn local_result(
    shared: &Shared,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    name: &str,
    op: &Op,
    bytes: &[u8],
) -> Result<Value, EksError> {
    if let Op::NotImplemented(what) = op {
        return Err(EksError::new(
            501,
            "NotImplemented",
            format!("the EKS stand-in does not implement {what}"),
        ));
    }
    let query = Query::parse(raw_query)?;
    let body = parse_body(bytes)?;
    let moto = shared
        .upstream
        .describe_cluster(name, headers)
        .await?
        .ok_or_else(|| EksError::cluster_not_found(name))?;
    let arn = moto.get("arn").and_then(Value::as_str).unwrap_or("");
    let ctx = Ctx::from_cluster_arn(name, arn);
    let skip_role_checks = lock(shared)
        .clusters
        .get(name)
        .is_some_and(|c| c.skip_role_checks);
    if !skip_role_checks
        && matches!(
            op,
            Op::CreatePodIdentityAssociation | Op::UpdatePodIdentityAssociation(_)
        )
    {
        check_role(shared, headers, &ctx, body.get("roleArn")).await?;
    }
    let mut state = lock(shared);
    let seq = state.next_seq();
    let cluster = sync_cluster(&mut state, name, &moto);
    let delay = cluster.addon_delay;
    match op {
        Op::CreatePodIdentityAssociation => {
            pod_identity::create_association(&ctx, cluster, seq, &body)
        }
        Op::ListPodIdentityAssociations => pod_identity::list_associations(&ctx, cluster, &query),
        Op::DescribePodIdentityAssociation(id) => {
            pod_identity::describe_association(&ctx, cluster, id)
        }
        Op::UpdatePodIdentityAssociation(id) => {
            pod_identity::update_association(&ctx, cluster, id, &body)
        }
        Op::DeletePodIdentityAssociation(id) => pod_identity::delete_association(&ctx, cluster, id),
        Op::CreateAddon => pod_identity::create_addon(&ctx, cluster, delay, &body),
        Op::ListAddons => pod_identity::list_addons(cluster, &query),
        Op::DescribeAddon(addon) => pod_identity::describe_addon(&ctx, cluster, addon),
        Op::DeleteAddon(addon) => pod_identity::delete_addon(&ctx, cluster, addon),
        Op::CreateAccessEntry => access::create_entry(&ctx, cluster, seq, &body),
        Op::ListAccessEntries => access::list_entries(cluster, &query),
        Op::DescribeAccessEntry(p) => access::describe_entry(&ctx, cluster, p),
        Op::UpdateAccessEntry(p) => access::update_entry(&ctx, cluster, p, &body),
        Op::DeleteAccessEntry(p) => access::delete_entry(cluster, p),
        Op::AssociateAccessPolicy(p) => access::associate_policy(&ctx, cluster, p, &body),
        Op::ListAssociatedAccessPolicies(p) => {
            access::list_associated_policies(&ctx, cluster, p, &query)
        }
        Op::DisassociateAccessPolicy(p, policy) => access::disassociate_policy(cluster, p, policy),
        Op::UpdateClusterConfig => access::update_access_config(&ctx, cluster, &body),
        Op::NotImplemented(_) => Err(EksError::server("unreachable")),
    }
}

/// Real EKS refuses a role that does not exist or does not trust EKS Pod Identity. Roles in
/// another account than the cluster's are not looked at (moto keeps accounts apart).
async fn check_role(
    shared: &Shared,
    headers: &HeaderMap,
    ctx: &Ctx,
    role_arn: Option<&Value>,
) -> Result<(), EksError> {
    let Some((_, account, name)) = role_arn
        .and_then(Value::as_str)
        .and_then(parse_iam_principal)
    else {
        return Ok(()); // absent or malformed: the operation reports it
    };
    if account != ctx.account {
        return Ok(());
    }
    match shared.upstream.role_trust(name, headers).await? {
        None => Err(EksError::invalid_parameter(
            "Role provided in the request does not exist",
        )),
        Some(trust) if !trusts_pod_identity(&trust) => Err(EksError::invalid_parameter(
            "Trust policy of the role provided is invalid",
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_sdk_paths() {
        let principal = "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdev";
        let policy = "arn%3Aaws%3Aeks%3A%3Aaws%3Acluster-access-policy%2FAmazonEKSViewPolicy";
        let cases = [
            (
                Method::POST,
                "/clusters/demo/pod-identity-associations".to_string(),
                Route::Local("demo".into(), Op::CreatePodIdentityAssociation),
            ),
            (
                Method::DELETE,
                "/clusters/demo/pod-identity-associations/a-x".to_string(),
                Route::Local(
                    "demo".into(),
                    Op::DeletePodIdentityAssociation("a-x".into()),
                ),
            ),
            (
                Method::GET,
                "/clusters/demo/addons/eks-pod-identity-agent".to_string(),
                Route::Local(
                    "demo".into(),
                    Op::DescribeAddon("eks-pod-identity-agent".into()),
                ),
            ),
            (
                Method::GET,
                format!("/clusters/demo/access-entries/{principal}"),
                Route::Local(
                    "demo".into(),
                    Op::DescribeAccessEntry("arn:aws:iam::123456789012:role/dev".into()),
                ),
            ),
            (
                Method::DELETE,
                format!("/clusters/demo/access-entries/{principal}/access-policies/{policy}"),
                Route::Local(
                    "demo".into(),
                    Op::DisassociateAccessPolicy(
                        "arn:aws:iam::123456789012:role/dev".into(),
                        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy".into(),
                    ),
                ),
            ),
            (
                Method::GET,
                "/access-policies".to_string(),
                Route::ListAccessPolicies,
            ),
            (
                Method::GET,
                "/clusters/demo".to_string(),
                Route::DescribeCluster("demo".into()),
            ),
            (
                Method::POST,
                "/clusters/demo/update-config".to_string(),
                Route::UpdateClusterConfig("demo".into()),
            ),
            (Method::GET, "/clusters".to_string(), Route::Forward),
            (Method::POST, "/".to_string(), Route::Forward),
            (
                Method::GET,
                "/clusters/demo/node-groups".to_string(),
                Route::Forward,
            ),
            (
                Method::GET,
                "/tags/arn%3Aaws%3Aeks%3Aus-east-1%3A1%3Acluster%2Fdemo".to_string(),
                Route::Tags("arn:aws:eks:us-east-1:1:cluster/demo".into()),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, &path).unwrap(), expected, "{method} {path}");
        }
        assert!(route(&Method::GET, "/clusters/%zz/addons").is_err());
    }
}

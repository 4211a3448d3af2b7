//! HTTP translation around the store: path routing, query parameters, request recording,
//! injected failures, and the write paths (with admission when webhooks are configured).
//! Rendering, watch streams and authorization live in `render`, `watch_stream` and `authz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::admission::{self, Attributes, Operation};
use super::authz::{authorize_impersonated, impersonation, review};
use super::rbac::UserInfo;
use super::render::{Shape, paginate, render, render_list, shape_of};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{ApplyOptions, Part, PatchType, Store};
use super::watch_stream::watch_response;
use super::{InjectedFailure, RecordedRequest};

/// Request bodies above this are refused with 413, as the apiserver does (3 MiB + slack).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The kubeconfig user of the double: allowed everything (a member of system:masters).
pub const ADMIN_USER: &str = "admin";

/// State shared by the handle and the server task.
pub struct Shared {
    pub store: Mutex<Store>,
    /// Service (namespace, name) → address, for admission webhooks behind Services.
    pub routes: Mutex<HashMap<(String, String), SocketAddr>>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub failures: Mutex<Vec<InjectedFailure>>,
    pub shutdown: watch::Receiver<bool>,
    pub addr: SocketAddr,
}

/// Locks a mutex, recovering the data if a panicking test thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Decoded query parameters, in order.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Query {
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// `application/x-www-form-urlencoded` decoding: `%XX` and `+`.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn error_response(err: &ApiError) -> Response {
    json_response(err.code, &err.to_status())
}

/// The axum fallback handler: every request comes here.
pub async fn handle(State(shared): State<Arc<Shared>>, request: http::Request<Body>) -> Response {
    if *shared.shutdown.borrow() {
        return error_response(&ApiError::new(
            503,
            "ServiceUnavailable",
            "the kube double is shut down",
        ));
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                "the request body is too large",
            ));
        }
    };
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    lock(&shared.requests).push(RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        content_type: content_type.clone(),
        body: parse_body(&body, content_type.as_deref())
            .ok()
            .filter(|v| !v.is_null()),
    });
    if let Some(err) = take_injected_failure(&shared, parts.method.as_str(), &path) {
        return error_response(&err);
    }
    if content_type
        .as_deref()
        .is_some_and(|c| c.contains("protobuf") || c.contains("cbor"))
    {
        // kubectl prefers protobuf for built-in types; 415 makes client-go fall back to JSON.
        return error_response(&ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {})",
                content_type.as_deref().unwrap_or("")
            ),
        ));
    }
    let query = Query::parse(&raw_query);
    let request = ApiRequest {
        method: parts.method,
        path,
        query,
        content_type,
        shape: shape_of(&parts.headers),
        impersonate: match impersonation(&parts.headers) {
            Ok(who) => who,
            Err(err) => return error_response(&err),
        },
        body,
    };
    let routed = match dispatch(&shared, &request) {
        Ok(Routed::Done(response)) => return response,
        Ok(Routed::Resource(target, watch_path)) => {
            match authorize_impersonated(&shared, &request, &target, watch_path) {
                Ok(()) => serve(&shared, &request, target, watch_path).await,
                Err(err) => Err(err),
            }
        }
        Err(err) => Err(err),
    };
    routed.unwrap_or_else(|err| error_response(&err))
}

/// Where `dispatch` sent a request: answered, or a resource to serve.
enum Routed {
    Done(Response),
    Resource(Target, bool),
}

fn take_injected_failure(shared: &Shared, method: &str, path: &str) -> Option<ApiError> {
    let mut failures = lock(&shared.failures);
    let index = failures.iter().position(|f| f.matches(method, path))?;
    let failure = &mut failures[index];
    failure.remaining -= 1;
    let err = ApiError::injected(failure.status, method, path);
    if failure.remaining == 0 {
        failures.remove(index);
    }
    Some(err)
}

/// JSON, or YAML for server-side apply bodies.
fn parse_body(body: &Bytes, content_type: Option<&str>) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            if content_type.is_some_and(|c| c.contains("yaml")) {
                serde_yaml_ng::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
                })
            } else {
                Err(ApiError::bad_request(format!(
                    "the request body is not valid JSON: {json_err}"
                )))
            }
        }
    }
}

pub struct ApiRequest {
    pub method: Method,
    /// `Impersonate-User` / `Impersonate-Group`: who the request acts as (RBAC applies).
    pub impersonate: Option<UserInfo>,
    pub path: String,
    pub query: Query,
    pub content_type: Option<String>,
    pub shape: Shape,
    pub body: Bytes,
}

impl ApiRequest {
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.query.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dry run value \"{other}\": only \"All\" is supported"
            ))),
        }
    }

    /// Server-side apply's `fieldManager` and `force` query parameters.
    pub fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            field_manager: self.query.get("fieldManager").map(str::to_string),
            force: self.query.flag("force"),
        }
    }

    pub fn json_body(&self) -> Result<Value, ApiError> {
        match parse_body(&self.body, self.content_type.as_deref())? {
            Value::Null => Err(ApiError::bad_request("a request body is required")),
            v => Ok(v),
        }
    }
}

/// What a resource URL addresses.
#[derive(Clone)]
pub struct Target {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn dispatch(shared: &Arc<Shared>, request: &ApiRequest) -> Result<Routed, ApiError> {
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    let store = lock(&shared.store);
    match segments.as_slice() {
        ["version"] => Ok(Routed::Done(json_response(200, &version_json()))),
        ["healthz" | "readyz" | "livez"] => Ok(Routed::Done(Response::new(Body::from("ok")))),
        ["api"] => Ok(Routed::Done(json_response(
            200,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}],
            }),
        ))),
        ["apis"] => {
            let groups: Vec<Value> = resources::groups(&store.resource_table())
                .iter()
                .map(|(g, vs)| {
                    let mut group = resources::api_group_json(g, vs);
                    if let Some(m) = group.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    group
                })
                .collect();
            Ok(Routed::Done(json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )))
        }
        ["api", "v1"] => {
            let list = resources::resources_in(&store.resource_table(), "", "v1");
            Ok(Routed::Done(json_response(
                200,
                &resources::api_resource_list_json("", "v1", &list),
            )))
        }
        ["apis", group] => {
            let groups = resources::groups(&store.resource_table());
            let (_, versions) = groups
                .iter()
                .find(|(g, _)| g == group)
                .ok_or_else(ApiError::no_such_resource)?;
            Ok(Routed::Done(json_response(
                200,
                &resources::api_group_json(group, versions),
            )))
        }
        ["apis", group, version] => {
            let list = resources::resources_in(&store.resource_table(), group, version);
            if list.is_empty() {
                return Err(ApiError::no_such_resource());
            }
            Ok(Routed::Done(json_response(
                200,
                &resources::api_resource_list_json(group, version, &list),
            )))
        }
        ["api", "v1", rest @ ..] => {
            let (watch_path, rest) = strip_watch(rest);
            Ok(Routed::Resource(
                resolve_target(&store, "", "v1", rest)?,
                watch_path,
            ))
        }
        ["apis", group, version, rest @ ..] => {
            let (watch_path, rest) = strip_watch(rest);
            Ok(Routed::Resource(
                resolve_target(&store, group, version, rest)?,
                watch_path,
            ))
        }
        _ => Err(ApiError::no_such_resource()),
    }
}

/// The deprecated `/watch/` path prefix.
fn strip_watch<'a, 'b>(rest: &'a [&'b str]) -> (bool, &'a [&'b str]) {
    match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    }
}

fn resolve_target(
    store: &Store,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    if let ["namespaces", ns, plural, tail @ ..] = rest
        && let Some(rt) = store
            .resolve(group, version, plural)
            .filter(|r| r.namespaced)
        && tail.len() <= 2
    {
        return Ok(Target {
            rt,
            namespace: Some(ns.to_string()),
            name: tail.first().map(|s| s.to_string()),
            subresource: tail.get(1).map(|s| s.to_string()),
        });
    }
    let [plural, tail @ ..] = rest else {
        return Err(ApiError::no_such_resource());
    };
    let rt = store
        .resolve(group, version, plural)
        .ok_or_else(ApiError::no_such_resource)?;
    if tail.len() > 2 || (rt.namespaced && !tail.is_empty()) {
        return Err(ApiError::no_such_resource());
    }
    Ok(Target {
        rt,
        namespace: None,
        name: tail.first().map(|s| s.to_string()),
        subresource: tail.get(1).map(|s| s.to_string()),
    })
}

fn version_json() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-double",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Serves a resource request; writes go through admission webhooks when any are configured.
async fn serve(
    shared: &Arc<Shared>,
    request: &ApiRequest,
    target: Target,
    watch_path: bool,
) -> Result<Response, ApiError> {
    let write = !target.rt.review_only
        && match request.method {
            Method::POST | Method::PUT | Method::PATCH => true,
            Method::DELETE => target.name.is_some(),
            _ => false,
        };
    let configured = write && admission::configured(&lock(&shared.store));
    if configured && let Some(response) = admitted_write(shared, request, target.clone()).await? {
        return Ok(response);
    }
    serve_resource(shared, request, target, watch_path)
}

fn part_of(rt: &ResourceType, subresource: Option<&str>) -> Result<Part, ApiError> {
    match subresource {
        None => Ok(Part::Main),
        Some("status") if rt.has_status => Ok(Part::Status),
        Some(_) => Err(ApiError::no_such_resource()),
    }
}

fn patch_type_of(request: &ApiRequest) -> Result<PatchType, ApiError> {
    let content_type = request.content_type.as_deref().unwrap_or("");
    PatchType::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got \"{content_type}\")"),
        )
    })
}

/// A write with admission: the would-be object (a dry run), mutating webhooks, validation
/// again, validating webhooks, then the real write. `None` when no webhook applies.
async fn admitted_write(
    shared: &Arc<Shared>,
    request: &ApiRequest,
    target: Target,
) -> Result<Option<Response>, ApiError> {
    let Target {
        rt,
        namespace,
        name,
        subresource,
    } = target;
    let ns = namespace.as_deref();
    let part = part_of(&rt, subresource.as_deref())?;
    let mut dry_run = request.dry_run()?;
    let mut options = Value::Null;
    // The apply configuration, to record field ownership after the real write.
    let mut applied: Option<Value> = None;
    let (operation, candidate, old_object) = {
        let mut store = lock(&shared.store);
        match (&request.method, name.as_deref()) {
            (&Method::POST, None) => {
                if rt.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed("POST"));
                }
                let created = store.create(&rt, ns, request.json_body()?, true)?;
                (Operation::Create, created, None)
            }
            (&Method::PUT, Some(name)) => {
                let old = store.get(&rt, ns, name)?;
                let replaced = store.replace(&rt, ns, name, request.json_body()?, part, true)?;
                (Operation::Update, replaced, Some(old))
            }
            (&Method::PATCH, Some(name)) => {
                let old = store.get(&rt, ns, name).ok();
                let patch = request.json_body()?;
                let patch_type = patch_type_of(request)?;
                let patched = store.patch(
                    &rt,
                    ns,
                    name,
                    patch_type,
                    &patch,
                    part,
                    true,
                    &request.apply_options(),
                )?;
                if patch_type == PatchType::Apply {
                    applied = Some(patch.clone());
                }
                let operation = if old.is_some() {
                    Operation::Update
                } else {
                    Operation::Create
                };
                (operation, patched, old)
            }
            (&Method::DELETE, Some(name)) if part == Part::Main => {
                options = parse_body(&request.body, Some("application/json"))?;
                dry_run = dry_run || options_dry_run(&options)?;
                let old = store.get(&rt, ns, name)?;
                (Operation::Delete, Value::Null, Some(old))
            }
            _ => return Err(ApiError::method_not_allowed(request.method.as_str())),
        }
    };
    let object_name = name
        .clone()
        .unwrap_or_else(|| admission::name_of(&candidate));
    let mut attrs = Attributes {
        operation,
        rt: rt.clone(),
        subresource,
        namespace: namespace.clone(),
        name: object_name.clone(),
        object: (operation != Operation::Delete).then(|| candidate.clone()),
        old_object,
        dry_run,
    };
    let (mutating, validating) = {
        let store = lock(&shared.store);
        let routes = lock(&shared.routes);
        (
            admission::hooks(&store, &routes, &attrs, true),
            admission::hooks(&store, &routes, &attrs, false),
        )
    };
    if mutating.is_empty() && validating.is_empty() {
        return Ok(None);
    }
    let mut warnings = admission::run(&mutating, &mut attrs, true).await?;
    if operation != Operation::Delete && attrs.object.as_ref() != Some(&candidate) {
        let mutated = attrs.object.clone().unwrap_or(Value::Null);
        let mut store = lock(&shared.store);
        let revalidated = match operation {
            Operation::Create => store.create(&rt, ns, mutated, true)?,
            _ => store.replace(&rt, ns, &object_name, mutated, part, true)?,
        };
        attrs.object = Some(revalidated);
    }
    warnings.extend(admission::run(&validating, &mut attrs, false).await?);
    let (code, out) = {
        let mut store = lock(&shared.store);
        let object = attrs.object.clone().unwrap_or(Value::Null);
        let out = match operation {
            Operation::Create => (201, store.create(&rt, ns, object, dry_run)?),
            Operation::Update => (
                200,
                store.replace(&rt, ns, &object_name, object, part, dry_run)?,
            ),
            Operation::Delete => (200, store.delete(&rt, ns, &object_name, &options, dry_run)?),
        };
        if let Some(applied) = applied.filter(|_| !dry_run) {
            store.record_apply(
                &Store::key_for(&rt, ns, &object_name),
                &request.apply_options(),
                &applied,
            );
        }
        out
    };
    let mut response = json_response(code, &render(out, request.shape));
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "'"));
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    Ok(Some(response))
}

fn serve_resource(
    shared: &Arc<Shared>,
    request: &ApiRequest,
    target: Target,
    watch_path: bool,
) -> Result<Response, ApiError> {
    let Target {
        rt,
        namespace,
        name,
        subresource,
    } = target;
    let ns = namespace.as_deref();
    if rt.review_only {
        if request.method != Method::POST || name.is_some() {
            return Err(ApiError::method_not_allowed(request.method.as_str()));
        }
        let review = review(
            shared,
            &rt,
            ns,
            request.json_body()?,
            request.impersonate.as_ref(),
        )?;
        return Ok(json_response(201, &review));
    }
    let part = part_of(&rt, subresource.as_deref())?;
    let shape = request.shape;
    let Some(name) = name else {
        let labels = LabelSelector::parse(request.query.get("labelSelector").unwrap_or(""))?;
        let fields =
            FieldSelector::parse(request.query.get("fieldSelector").unwrap_or(""), &rt.kind)?;
        return match request.method {
            Method::GET if watch_path || request.query.flag("watch") => {
                watch_response(shared, &request.query, rt, namespace, labels, fields, shape)
            }
            Method::GET => {
                let (items, rv) = {
                    let store = lock(&shared.store);
                    (store.list(&rt, ns, &labels, &fields), store.current_rv())
                };
                let limit = request
                    .query
                    .get("limit")
                    .and_then(|l| l.parse::<usize>().ok());
                let page = paginate(items, limit, request.query.get("continue"), rv)?;
                let mut list = render_list(&rt, page.items, page.resource_version, shape);
                if let Some(token) = page.next {
                    list["metadata"]["continue"] = json!(token);
                    list["metadata"]["remainingItemCount"] = json!(page.remaining);
                }
                Ok(json_response(200, &list))
            }
            Method::POST => {
                if rt.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed("POST"));
                }
                let body = request.json_body()?;
                let created = lock(&shared.store).create(&rt, ns, body, request.dry_run()?)?;
                Ok(json_response(201, &render(created, shape)))
            }
            Method::DELETE => {
                let options = parse_body(&request.body, Some("application/json"))?;
                let dry_run = request.dry_run()? || options_dry_run(&options)?;
                let mut store = lock(&shared.store);
                let deleted = store.delete_collection(&rt, ns, &labels, &fields, dry_run)?;
                let rv = store.current_rv();
                Ok(json_response(200, &render_list(&rt, deleted, rv, shape)))
            }
            _ => Err(ApiError::method_not_allowed(request.method.as_str())),
        };
    };
    match request.method {
        Method::GET if watch_path || request.query.flag("watch") => {
            let labels = LabelSelector::parse(request.query.get("labelSelector").unwrap_or(""))?;
            let fields = FieldSelector::parse(&format!("metadata.name={name}"), &rt.kind)?;
            watch_response(shared, &request.query, rt, namespace, labels, fields, shape)
        }
        Method::GET => {
            let object = lock(&shared.store).get(&rt, ns, &name)?;
            Ok(json_response(200, &render(object, shape)))
        }
        Method::PUT => {
            let body = request.json_body()?;
            let out =
                lock(&shared.store).replace(&rt, ns, &name, body, part, request.dry_run()?)?;
            Ok(json_response(200, &render(out, shape)))
        }
        Method::PATCH => {
            let patch_type = patch_type_of(request)?;
            let patch = request.json_body()?;
            let dry_run = request.dry_run()?;
            let mut store = lock(&shared.store);
            let existed = store.get(&rt, ns, &name).is_ok();
            let out = store.patch(
                &rt,
                ns,
                &name,
                patch_type,
                &patch,
                part,
                dry_run,
                &request.apply_options(),
            )?;
            let code = if existed { 200 } else { 201 };
            Ok(json_response(code, &render(out, shape)))
        }
        Method::DELETE if part == Part::Main => {
            let options = parse_body(&request.body, Some("application/json"))?;
            let dry_run = request.dry_run()? || options_dry_run(&options)?;
            let out = lock(&shared.store).delete(&rt, ns, &name, &options, dry_run)?;
            Ok(json_response(200, &render(out, shape)))
        }
        _ => Err(ApiError::method_not_allowed(request.method.as_str())),
    }
}

/// `dryRun: ["All"]` in a DeleteOptions body (kube sends it there rather than in the query).
fn options_dry_run(options: &Value) -> Result<bool, ApiError> {
    match options.get("dryRun").and_then(Value::as_array) {
        None => Ok(false),
        Some(values) if values.is_empty() => Ok(false),
        Some(values) if values.iter().all(|v| v == "All") => Ok(true),
        Some(values) => Err(ApiError::bad_request(format!(
            "unsupported dry run value {values:?}: only \"All\" is supported"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = Query::parse("&watch=true&labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&x");
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a,b)"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}

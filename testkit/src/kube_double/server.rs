//! HTTP translation around the store: path routing, query parameters, content
//! negotiation, watch streams, request recording and injected failures.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::admission::{self, Attributes, Operation};
use super::rbac::{self, RbacObjects, UserInfo};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Part, PatchType, Store, WatchEvent, filter_event};
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

/// How the client wants objects back (the Accept header's `as=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Full,
    Metadata,
    Table,
}

fn shape_of(headers: &HeaderMap) -> Shape {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for option in accept.split(',') {
        let params: Vec<&str> = option.split(';').map(str::trim).collect();
        let wants = |p: &str| params.contains(&p);
        if wants("as=PartialObjectMetadata") || wants("as=PartialObjectMetadataList") {
            return Shape::Metadata;
        }
        if wants("as=Table") && wants("v=v1") {
            return Shape::Table;
        }
        if params
            .first()
            .is_some_and(|m| *m == "application/json" || *m == "*/*")
            && params.len() == 1
        {
            return Shape::Full;
        }
    }
    Shape::Full
}

/// Decoded query parameters, in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
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

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
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
        body,
    };
    let routed = match dispatch(&shared, &request) {
        Ok(Routed::Done(response)) => return response,
        Ok(Routed::Resource(target, watch_path)) => {
            serve(&shared, &request, target, watch_path).await
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

struct ApiRequest {
    method: Method,
    path: String,
    query: Query,
    content_type: Option<String>,
    shape: Shape,
    body: Bytes,
}

impl ApiRequest {
    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.query.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dry run value \"{other}\": only \"All\" is supported"
            ))),
        }
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        match parse_body(&self.body, self.content_type.as_deref())? {
            Value::Null => Err(ApiError::bad_request("a request body is required")),
            v => Ok(v),
        }
    }
}

/// What a resource URL addresses.
#[derive(Clone)]
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
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
                let patched =
                    store.patch(&rt, ns, name, patch_type_of(request)?, &patch, part, true)?;
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
        match operation {
            Operation::Create => (201, store.create(&rt, ns, object, dry_run)?),
            Operation::Update => (
                200,
                store.replace(&rt, ns, &object_name, object, part, dry_run)?,
            ),
            Operation::Delete => (200, store.delete(&rt, ns, &object_name, &options, dry_run)?),
        }
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
        let review = review(shared, &rt, ns, request.json_body()?)?;
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
                let store = lock(&shared.store);
                let items = store.list(&rt, ns, &labels, &fields);
                let rv = store.current_rv();
                Ok(json_response(200, &render_list(&rt, items, rv, shape)))
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
            let out = store.patch(&rt, ns, &name, patch_type, &patch, part, dry_run)?;
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

/// SubjectAccessReview and friends: evaluated, echoed back with a status, never stored.
fn review(
    shared: &Shared,
    rt: &ResourceType,
    namespace: Option<&str>,
    body: Value,
) -> Result<Value, ApiError> {
    let mut out = body;
    if !out.is_object() {
        return Err(ApiError::bad_request("the review must be a JSON object"));
    }
    out["apiVersion"] = json!(rt.api_version());
    out["kind"] = json!(rt.kind);
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
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
            let request = rbac::Request::from_sar_spec(&spec, namespace).ok_or_else(|| {
                ApiError::bad_request("exactly one of spec.resourceAttributes and spec.nonResourceAttributes must be set")
            })?;
            let objects = {
                let store = lock(&shared.store);
                RbacObjects {
                    roles: store.objects_of("rbac.authorization.k8s.io", "Role"),
                    cluster_roles: store.objects_of("rbac.authorization.k8s.io", "ClusterRole"),
                    role_bindings: store.objects_of("rbac.authorization.k8s.io", "RoleBinding"),
                    cluster_role_bindings: store
                        .objects_of("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                }
            };
            let decision = rbac::authorize(&objects, &who, &request);
            out["status"] = json!({"allowed": decision.allowed, "reason": decision.reason});
        }
        "SelfSubjectAccessReview" => {
            out["status"] = json!({
                "allowed": true,
                "reason": format!("the kube double's kubeconfig user \"{ADMIN_USER}\" is in system:masters"),
            });
        }
        "SelfSubjectReview" => {
            out["status"] = json!({"userInfo": {"username": ADMIN_USER, "groups": ["system:masters", "system:authenticated"]}});
        }
        _ => {
            out["status"] = json!({"authenticated": false, "error": "the kube double does not authenticate tokens"});
        }
    }
    Ok(out)
}

fn metadata_only(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
    })
}

fn render(object: Value, shape: Shape) -> Value {
    match shape {
        Shape::Metadata => metadata_only(&object),
        Shape::Full | Shape::Table => object,
    }
}

fn render_list(rt: &ResourceType, items: Vec<Value>, rv: u64, shape: Shape) -> Value {
    let metadata = json!({"resourceVersion": rv.to_string()});
    match shape {
        Shape::Metadata => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": metadata,
            "items": items.iter().map(metadata_only).collect::<Vec<_>>(),
        }),
        Shape::Table => table(rt, &items, metadata),
        Shape::Full => json!({
            "apiVersion": rt.api_version(),
            "kind": format!("{}List", rt.kind),
            "metadata": metadata,
            "items": items,
        }),
    }
}

/// A meta.k8s.io/v1 Table (what kubectl asks for): name, namespace-phase for namespaces, age.
fn table(rt: &ResourceType, items: &[Value], metadata: Value) -> Value {
    let is_namespace = rt.group.is_empty() && rt.kind == "Namespace";
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    if is_namespace {
        columns.push(json!({"name": "Status", "type": "string", "format": "", "description": "Phase", "priority": 0}));
    }
    columns.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}));
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let name = item.pointer("/metadata/name").cloned().unwrap_or(json!(""));
            let mut cells = vec![name];
            if is_namespace {
                cells.push(item.pointer("/status/phase").cloned().unwrap_or(json!("")));
            }
            cells.push(json!(age(item
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str))));
            json!({"cells": cells, "object": metadata_only(item)})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// "5s", "3m", "2h", "4d" since an RFC 3339 timestamp written by this double.
fn age(timestamp: Option<&str>) -> String {
    let Some(ts) = timestamp else {
        return "<unknown>".to_string();
    };
    let now = super::store::now_rfc3339();
    // Both are `YYYY-MM-DDTHH:MM:SSZ`; compare via seconds since epoch.
    match (rfc3339_secs(ts), rfc3339_secs(&now)) {
        (Some(then), Some(now)) => {
            let s = now.saturating_sub(then);
            match s {
                0..120 => format!("{s}s"),
                120..7200 => format!("{}m", s / 60),
                7200..172_800 => format!("{}h", s / 3600),
                _ => format!("{}d", s / 86_400),
            }
        }
        _ => "<unknown>".to_string(),
    }
}

fn rfc3339_secs(ts: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn event_line(event_type: &str, object: Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

struct WatchState {
    shared: Arc<Shared>,
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    shape: Shape,
    pending: VecDeque<Bytes>,
    live: broadcast::Receiver<Arc<WatchEvent>>,
    covered_rv: u64,
    deadline: Instant,
    bookmarks: bool,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl WatchState {
    fn render_event(&self, event: &WatchEvent) -> Bytes {
        let object = match self.shape {
            Shape::Metadata => metadata_only(&event.object),
            _ => event.object.clone(),
        };
        event_line(event.event_type.as_str(), object)
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (api_version, kind) = match self.shape {
            Shape::Metadata => (
                "meta.k8s.io/v1".to_string(),
                "PartialObjectMetadata".to_string(),
            ),
            _ => (self.rt.api_version(), self.rt.kind.clone()),
        };
        event_line(
            "BOOKMARK",
            json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}),
        )
    }

    /// The next chunk of the stream, or None when the watch ends.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.pop_front() {
            return Some(chunk);
        }
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(event) => {
                        if event.resource_version <= self.covered_rv {
                            continue;
                        }
                        self.covered_rv = event.resource_version;
                        let ns = self.namespace.as_deref();
                        if let Some(seen) = filter_event(&event, &self.rt, ns, &self.labels, &self.fields) {
                            return Some(self.render_event(&seen));
                        }
                    }
                    // Fell behind the live feed: end the watch; the client re-watches from
                    // its last resourceVersion and gets the rest from history.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(self.deadline) => {
                    self.done = true;
                    if self.bookmarks {
                        let rv = lock(&self.shared.store).current_rv();
                        return Some(self.bookmark(rv, false));
                    }
                    return None;
                }
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        return None;
                    }
                }
            }
        }
    }
}

fn watch_response(
    shared: &Arc<Shared>,
    query: &Query,
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    shape: Shape,
) -> Result<Response, ApiError> {
    let send_initial = query.flag("sendInitialEvents");
    let since = match query.get("resourceVersion") {
        None | Some("" | "0") => None,
        Some(_) if send_initial => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))?,
        ),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let started = {
        let store = lock(&shared.store);
        store.watch_start(&rt, namespace.as_deref(), since, &labels, &fields)
    };
    let state = match started {
        Ok(start) => WatchState {
            shared: shared.clone(),
            rt,
            namespace,
            labels,
            fields,
            shape,
            pending: VecDeque::new(),
            live: start.live,
            covered_rv: start.covered_rv,
            deadline: Instant::now() + Duration::from_secs(timeout),
            bookmarks: query.flag("allowWatchBookmarks"),
            shutdown: shared.shutdown.clone(),
            done: false,
        }
        .with_initial(start.initial, send_initial),
        Err(err) if err.code == 410 => {
            // The apiserver answers 200 and sends the 410 as an ERROR event.
            let body = event_line("ERROR", err.to_status());
            return Ok(stream_response(futures::stream::iter([Ok::<
                _,
                std::io::Error,
            >(body)])));
        }
        Err(err) => return Err(err),
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        state
            .next_chunk()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), state))
    });
    Ok(stream_response(stream))
}

impl WatchState {
    fn with_initial(mut self, initial: Vec<WatchEvent>, send_initial: bool) -> Self {
        for event in &initial {
            let line = self.render_event(event);
            self.pending.push_back(line);
        }
        if send_initial {
            let end = self.bookmark(self.covered_rv, true);
            self.pending.push_back(end);
        }
        self
    }
}

fn stream_response<S>(stream: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
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

    #[test]
    fn accept_shapes() {
        let mut h = HeaderMap::new();
        assert_eq!(shape_of(&h), Shape::Full);
        h.insert(
            header::ACCEPT,
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
                .parse()
                .unwrap(),
        );
        assert_eq!(shape_of(&h), Shape::Metadata);
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(shape_of(&h), Shape::Table);
    }

    #[test]
    fn timestamps_round_trip() {
        for secs in [0u64, 951_782_400, 1_700_000_000] {
            assert_eq!(
                rfc3339_secs(&super::super::store::rfc3339(secs)),
                Some(secs)
            );
        }
    }
}

//! HTTP translation around the store: path routing, request recording, injected
//! failures, and the write paths (with admission when webhooks are configured).
//! Rendering, watch streams and authorization live in `render`, `watch_stream` and `authz`;
//! the request types they share live in `request`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::admission::{self, Attributes, Operation};
use super::admission_policy;
use super::authz::{authorize_impersonated, impersonation, review};
use super::managed::Manager;
use super::recording::RecordedRequest;
use super::render::{paginate, render, render_list, shape_of};
use super::request::{ApiRequest, Query, Shared, Target, lock, parse_body};
use super::resources;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Part, PatchType, Store};
use super::watch_stream::watch_response;

/// Request bodies above this are refused with 413, as the apiserver does (3 MiB + slack).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

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

/// What the apiserver's mux answers for a path no API group serves: plain text.
fn page_not_found() -> Response {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from("404 page not found\n"))
        .unwrap_or_default()
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
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let request = ApiRequest {
        method: parts.method,
        path,
        query,
        content_type,
        user_agent,
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
            let Some((_, versions)) = groups.iter().find(|(g, _)| g == group) else {
                return Ok(Routed::Done(page_not_found()));
            };
            Ok(Routed::Done(json_response(
                200,
                &resources::api_group_json(group, versions),
            )))
        }
        ["apis", group, version] => {
            let list = resources::resources_in(&store.resource_table(), group, version);
            if list.is_empty() {
                return Ok(Routed::Done(page_not_found()));
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
            if !store.group_served(group, version) {
                return Ok(Routed::Done(page_not_found()));
            }
            let (watch_path, rest) = strip_watch(rest);
            Ok(Routed::Resource(
                resolve_target(&store, group, version, rest)?,
                watch_path,
            ))
        }
        _ => Ok(Routed::Done(page_not_found())),
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

/// `/version`, with the fields kube-apiserver v1.36 reports.
fn version_json() -> Value {
    json!({
        "major": "1",
        "minor": "36",
        "emulationMajor": "1",
        "emulationMinor": "36",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "35",
        "gitVersion": "v1.36.2-kube-double",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.26.0",
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
    let configured = write && {
        let store = lock(&shared.store);
        admission::configured(&store) || admission_policy::configured(&store)
    };
    if configured && let Some(response) = admitted_write(shared, request, target.clone()).await? {
        return Ok(response);
    }
    serve_resource(shared, request, target, watch_path)
}

/// A new object as mutating webhooks see it: before the registry's create step, so without
/// uid, creationTimestamp, generation, a generated name, or a Pod's creation status.
fn before_create(mut object: Value, generated_name: bool) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["uid", "creationTimestamp", "generation"] {
            metadata.remove(field);
        }
        if generated_name {
            metadata.remove("name");
        }
    }
    if object.get("kind").and_then(Value::as_str) == Some("Pod")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
    {
        object["status"] = json!({});
    }
    object
}

fn part_of(rt: &resources::ResourceType, subresource: Option<&str>) -> Result<Part, ApiError> {
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
    // Who writes: an apply keeps its configuration so the final write records ownership.
    let mut who = Manager::Update(request.manager());
    let (operation, candidate, old_object) = {
        let mut store = lock(&shared.store);
        match (&request.method, name.as_deref()) {
            (&Method::POST, None) => {
                if rt.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed("POST"));
                }
                let body = request.json_body()?;
                let generated = body
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
                let created = store.create_as(&rt, ns, body, true, &who)?;
                (Operation::Create, before_create(created, generated), None)
            }
            (&Method::PUT, Some(name)) => {
                let old = store.get(&rt, ns, name)?;
                let body = request.json_body()?;
                let replaced = store.replace_as(&rt, ns, name, body, part, true, &who)?;
                (Operation::Update, replaced, Some(old))
            }
            (&Method::PATCH, Some(name)) => {
                let old = store.get(&rt, ns, name).ok();
                let patch = request.json_body()?;
                let patch_type = patch_type_of(request)?;
                let options = request.apply_options(patch_type);
                let patched =
                    store.patch(&rt, ns, name, patch_type, &patch, part, true, &options)?;
                if patch_type == PatchType::Apply {
                    who = Manager::Apply {
                        name: options.field_manager.unwrap_or_default(),
                        config: patch.clone(),
                        force: options.force,
                    };
                }
                match old {
                    Some(old) => (Operation::Update, patched, Some(old)),
                    None => (Operation::Create, before_create(patched, false), None),
                }
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
    let (mutating, validating, policies) = {
        let store = lock(&shared.store);
        let routes = lock(&shared.routes);
        (
            admission::hooks(&store, &routes, &attrs, true),
            admission::hooks(&store, &routes, &attrs, false),
            admission_policy::configured(&store),
        )
    };
    if mutating.is_empty() && validating.is_empty() && !policies {
        return Ok(None);
    }
    // The apiserver's order: mutating policies, mutating webhooks, validation, validating
    // policies, validating webhooks.
    if policies {
        admission_policy::mutate(&lock(&shared.store), &mut attrs)?;
    }
    let mut warnings = admission::run(&mutating, &mut attrs, true).await?;
    // Creates always pass here: validating webhooks see the object as created (name,
    // uid, status filled in); updates only when a webhook changed something.
    let mutated = attrs.object.as_ref() != Some(&candidate);
    if operation == Operation::Create || (operation == Operation::Update && mutated) {
        let mutated = attrs.object.clone().unwrap_or(Value::Null);
        let mut store = lock(&shared.store);
        let revalidated = match operation {
            Operation::Create => store.create_as(&rt, ns, mutated, true, &who)?,
            _ => store.replace_as(&rt, ns, &object_name, mutated, part, true, &who)?,
        };
        attrs.name = admission::name_of(&revalidated);
        attrs.object = Some(revalidated);
    }
    if policies {
        warnings.extend(admission_policy::validate(&lock(&shared.store), &attrs)?);
    }
    warnings.extend(admission::run(&validating, &mut attrs, false).await?);
    let (code, out) = {
        let mut store = lock(&shared.store);
        let object = attrs.object.clone().unwrap_or(Value::Null);
        match operation {
            Operation::Create => (201, store.create_as(&rt, ns, object, dry_run, &who)?),
            Operation::Update => (
                200,
                store.replace_as(&rt, ns, &object_name, object, part, dry_run, &who)?,
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
        let review = review(shared, &rt, ns, request)?;
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
                let who = Manager::Update(request.manager());
                let created =
                    lock(&shared.store).create_as(&rt, ns, body, request.dry_run()?, &who)?;
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
            let who = Manager::Update(request.manager());
            let dry_run = request.dry_run()?;
            let out = lock(&shared.store).replace_as(&rt, ns, &name, body, part, dry_run, &who)?;
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
                &request.apply_options(patch_type),
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

//! What the HTTP layer and its helpers (`server`, `authz`, `watch_stream`, `admission`)
//! share: the server state, a decoded request, its target and query. Kept apart from
//! `server` so the dependencies point one way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
use http::Method;
use serde_json::Value;
use tokio::sync::watch;

use super::managed::manager_from_user_agent;
use super::rbac::UserInfo;
use super::recording::{InjectedFailure, RecordedRequest, percent_decode};
use super::render::Shape;
use super::resources::ResourceType;
use super::status::ApiError;
use super::store::{ApplyOptions, PatchType, Store};

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

/// JSON, or YAML for server-side apply bodies.
pub fn parse_body(body: &Bytes, content_type: Option<&str>) -> Result<Value, ApiError> {
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
    pub user_agent: Option<String>,
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

    /// The field manager of an ordinary write: `fieldManager`, else the User-Agent's
    /// first part, as the apiserver defaults it.
    pub fn manager(&self) -> String {
        match self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(manager) => manager.to_string(),
            None => manager_from_user_agent(self.user_agent.as_deref()),
        }
    }

    /// `fieldManager` and `force` for a patch: server-side apply needs an explicit
    /// `fieldManager`; other patches fall back to the User-Agent.
    pub fn apply_options(&self, patch_type: PatchType) -> ApplyOptions {
        let field_manager = match patch_type {
            PatchType::Apply => self.query.get("fieldManager").map(str::to_string),
            _ => Some(self.manager()),
        };
        ApplyOptions {
            field_manager,
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

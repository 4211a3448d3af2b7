//! Any object of the install, by its apiVersion and kind, through the dynamic API.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

pub(crate) fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("object");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

pub(crate) fn api_for(client: &kube::Client, object: &Value) -> Option<Api<DynamicObject>> {
    let (group, version) = match object["apiVersion"].as_str()?.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", object["apiVersion"].as_str()?),
    };
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str()?);
    let resource = ApiResource::from_gvk(&gvk);
    Some(match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    })
}

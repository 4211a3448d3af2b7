//! Content negotiation and list shapes: full objects, `PartialObjectMetadata`, kubectl's
//! `Table`, and `limit`/`continue` pages.

use http::{HeaderMap, header};
use serde_json::{Value, json};

use super::resources::ResourceType;
use super::status::ApiError;
use super::time::{now_rfc3339, rfc3339_secs};

/// How the client wants objects back (the Accept header's `as=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Full,
    Metadata,
    Table,
}

pub fn shape_of(headers: &HeaderMap) -> Shape {
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

pub fn metadata_only(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
    })
}

pub fn render(object: Value, shape: Shape) -> Value {
    if object.get("kind").and_then(Value::as_str) == Some("Status") {
        // A DELETE's Status answer is what it is, whatever shape was asked for.
        return object;
    }
    match shape {
        Shape::Metadata => metadata_only(&object),
        Shape::Full | Shape::Table => object,
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Value>,
    /// The resourceVersion of the first page (later pages keep it, like the apiserver).
    pub resource_version: u64,
    pub next: Option<String>,
    pub remaining: usize,
}

/// (namespace, name): the store's order, which pages follow.
fn item_position(item: &Value) -> (String, String) {
    let meta = |f: &str| {
        item.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (meta("namespace"), meta("name"))
}

/// `limit`/`continue` over `items` (sorted by namespace/name). The token is opaque to
/// clients: it names the last item served and the first page's resourceVersion. Later pages
/// read the current state rather than a snapshot at that resourceVersion.
pub fn paginate(
    items: Vec<Value>,
    limit: Option<usize>,
    token: Option<&str>,
    rv: u64,
) -> Result<Page, ApiError> {
    let (start_after, resource_version) = match token.filter(|t| !t.is_empty()) {
        None => (None, rv),
        Some(token) => {
            let invalid = || {
                ApiError::bad_request(
                    "continue key is not valid: send the token from the previous page",
                )
            };
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token)
                    .map_err(|_| invalid())?;
            let decoded: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
            let part = |i: usize| {
                decoded
                    .pointer(&format!("/after/{i}"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let after = part(0).zip(part(1)).ok_or_else(invalid)?;
            let rv = decoded
                .get("rv")
                .and_then(Value::as_u64)
                .ok_or_else(invalid)?;
            (Some(after), rv)
        }
    };
    let mut rest: Vec<Value> = match &start_after {
        Some(after) => items
            .into_iter()
            .filter(|i| item_position(i) > *after)
            .collect(),
        None => items,
    };
    let limit = limit.filter(|l| *l > 0);
    let Some(limit) = limit.filter(|l| rest.len() > *l) else {
        return Ok(Page {
            items: rest,
            resource_version,
            next: None,
            remaining: 0,
        });
    };
    let remaining = rest.len() - limit;
    rest.truncate(limit);
    let (ns, name) = rest.last().map(item_position).unwrap_or_default();
    let token = json!({"after": [ns, name], "rv": resource_version}).to_string();
    Ok(Page {
        items: rest,
        resource_version,
        next: Some(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token,
        )),
        remaining,
    })
}

pub fn render_list(rt: &ResourceType, items: Vec<Value>, rv: u64, shape: Shape) -> Value {
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
            "items": items.into_iter().map(|item| list_item(item, rt)).collect::<Vec<_>>(),
        }),
    }
}

/// A list item as the apiserver encodes it: built-in kinds without kind/apiVersion (the
/// list names the type once); custom resources keep theirs.
fn list_item(mut item: Value, rt: &ResourceType) -> Value {
    if !rt.custom
        && let Some(map) = item.as_object_mut()
    {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
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
    let now = now_rfc3339();
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn pagination_walks_every_item_once() {
        let items: Vec<Value> = (0..5)
            .map(|i| json!({"metadata": {"namespace": "ns", "name": format!("o{i}")}}))
            .collect();
        let first = paginate(items.clone(), Some(2), None, 7).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.remaining, 3);
        let second = paginate(items.clone(), Some(2), first.next.as_deref(), 9).unwrap();
        assert_eq!(
            second.resource_version, 7,
            "later pages keep the first page's resourceVersion"
        );
        assert_eq!(second.items[0]["metadata"]["name"], "o2");
        let third = paginate(items.clone(), Some(2), second.next.as_deref(), 9).unwrap();
        assert_eq!(third.items.len(), 1);
        assert!(third.next.is_none());
        assert_eq!(
            paginate(items.clone(), None, None, 1).unwrap().items.len(),
            5
        );
        assert_eq!(
            paginate(items, Some(2), Some("garbage!"), 1)
                .unwrap_err()
                .code,
            400
        );
    }
}

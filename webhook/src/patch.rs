//! RFC 6902 JSON Patch operations, built one element at a time.
//!
//! The webhook only ever *adds*: whole arrays are never rewritten, so fields of the object
//! that this crate does not model are never dropped (the Go webhook's issue #208).

use serde::Serialize;
use serde_json::Value;

/// One `add` operation. Serialized as `{"op":"add","path":..,"value":..}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOperation {
    pub op: &'static str,
    pub path: String,
    pub value: Value,
}

impl PatchOperation {
    pub fn add(path: String, value: Value) -> Self {
        Self {
            op: "add",
            path,
            value,
        }
    }
}

/// An ordered list of operations; empty means "nothing to change".
pub type JsonPatch = Vec<PatchOperation>;

/// Escapes one reference token per RFC 6901 (`~` → `~0`, `/` → `~1`), e.g. for annotation keys.
pub fn escape_pointer_token(token: &str) -> String {
    if !token.contains(['~', '/']) {
        return token.to_owned();
    }
    token.replace('~', "~0").replace('/', "~1")
}

/// Adds `items` to the array at `array_path`: one `add` of the whole array when it is absent
/// (or null), otherwise one `add` at `array_path/-` per item so existing elements stay untouched.
pub fn append_to_array(
    patch: &mut JsonPatch,
    array_path: &str,
    array_present: bool,
    items: Vec<Value>,
) {
    if items.is_empty() {
        return;
    }
    if array_present {
        for item in items {
            patch.push(PatchOperation::add(format!("{array_path}/-"), item));
        }
    } else {
        patch.push(PatchOperation::add(
            array_path.to_owned(),
            Value::Array(items),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_tilde_before_slash() {
        assert_eq!(
            escape_pointer_token("eks.amazonaws.com/role-arn"),
            "eks.amazonaws.com~1role-arn"
        );
        assert_eq!(escape_pointer_token("a~/b"), "a~0~1b");
        assert_eq!(escape_pointer_token("plain"), "plain");
    }

    #[test]
    fn absent_array_is_created_whole_present_array_gets_per_element_adds() {
        let mut patch = JsonPatch::new();
        append_to_array(&mut patch, "/spec/volumes", false, vec![json!(1), json!(2)]);
        append_to_array(
            &mut patch,
            "/spec/containers/0/env",
            true,
            vec![json!(3), json!(4)],
        );
        append_to_array(&mut patch, "/spec/x", true, vec![]);
        let paths: Vec<_> = patch.iter().map(|op| op.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/spec/volumes",
                "/spec/containers/0/env/-",
                "/spec/containers/0/env/-"
            ]
        );
        assert_eq!(patch[0].value, json!([1, 2]));
    }

    #[test]
    fn patch_applies_with_json_patch_crate() {
        let mut doc = json!({"metadata": {"annotations": {"keep": "1"}}});
        let patch = vec![PatchOperation::add(
            format!(
                "/metadata/annotations/{}",
                escape_pointer_token("eks.amazonaws.com/role-arn")
            ),
            json!("arn"),
        )];
        let patch: json_patch::Patch =
            serde_json::from_value(serde_json::to_value(&patch).unwrap()).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"annotations": {"keep": "1", "eks.amazonaws.com/role-arn": "arn"}}})
        );
    }
}

//! Small readers of JSON objects, shared by the double's modules.

use serde_json::Value;

/// The strings of the array at `field` (non-strings and a missing field: left out / empty).
pub(crate) fn str_list(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

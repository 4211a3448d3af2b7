//! Request matching: webhook configurations and policies share the rule format.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::namespaces::Namespace;
use crate::selector;

fn strings_contain(list: &Value, value: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|v| v == "*" || v == value)
}

/// Does a `rules`/`resourceRules` entry select this request?
fn rule_matches(rule: &Value, request: &Value) -> bool {
    let resource = &request["resource"];
    let sub = request["subResource"].as_str().unwrap_or_default();
    let name = resource["resource"].as_str().unwrap_or_default();
    let full = if sub.is_empty() {
        name.to_owned()
    } else {
        format!("{name}/{sub}")
    };
    let namespaced = request["namespace"].as_str().is_some_and(|n| !n.is_empty());
    strings_contain(
        &rule["apiGroups"],
        resource["group"].as_str().unwrap_or_default(),
    ) && strings_contain(
        &rule["apiVersions"],
        resource["version"].as_str().unwrap_or_default(),
    ) && strings_contain(
        &rule["operations"],
        request["operation"].as_str().unwrap_or_default(),
    ) && strings_contain(&rule["resources"], &full)
        && match rule["scope"].as_str() {
            Some("Namespaced") => namespaced,
            Some("Cluster") => !namespaced,
            _ => true,
        }
}

fn selects(selector: &Value, ns: &Namespace) -> bool {
    let selector: Option<LabelSelector> = (!selector.is_null())
        .then(|| serde_json::from_value(selector.clone()).expect("a label selector"));
    selector::selects(selector.as_ref(), &ns.server_labels())
}

/// A webhook's `rules` + `namespaceSelector`, or a policy's `matchConstraints`, or a binding's
/// `matchResources` (whose absent `resourceRules` constrain nothing).
pub(crate) fn matches(
    rules: &Value,
    namespace_selector: &Value,
    request: &Value,
    ns: &Namespace,
) -> bool {
    let rules_match = rules
        .as_array()
        .is_none_or(|rules| rules.iter().any(|r| rule_matches(r, request)));
    rules_match && selects(namespace_selector, ns)
}

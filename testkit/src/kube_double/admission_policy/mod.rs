//! Admission policies (`admissionregistration.k8s.io/v1`), run the way kube-apiserver runs
//! them: for every stored binding, the policy it names is matched by its `matchConstraints`
//! (resource rules with resource names, exclusions, namespace and object selectors) and the
//! binding's `matchResources`; then its `matchConditions`, `variables` and `validations` are
//! evaluated with a CEL interpreter (the `cel` crate, strings extension enabled) over
//! `object`, `oldObject`, `request` and `namespaceObject`.
//!
//! - ValidatingAdmissionPolicy: a failed validation is a denial for a `Deny` binding
//!   (`<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with binding '<b>'
//!   denied request: <message>`, with the code of the validation's `reason`), a warning
//!   (`Validation failed for ValidatingAdmissionPolicy '<p>' with binding '<b>': <message>`)
//!   for `Warn`, nothing visible for `Audit` (the double keeps no audit log).
//! - MutatingAdmissionPolicy: `ApplyConfiguration` mutations are merged into the object
//!   (maps merged key by key, everything else replaced), before the mutating webhooks run.
//!
//! Not modelled: `paramKind`/`paramRef` (a binding with a `paramRef` is skipped), `authorizer`,
//! `JSONPatch` mutations, reinvocation, type checking (expressions are parsed when a policy is
//! stored, their types only meet their values at evaluation), and cost limits.

mod expressions;

use serde_json::Value;

use super::admission::{Attributes, rule_matches};
use super::selectors::label_selector_object_matches;
use super::status::ApiError;
use super::store::{ObjectKey, Store, meta_str};
use expressions::{Activation, Compiled, Evaluation, Source, Validation, compile_all, evaluate};

const GROUP: &str = "admissionregistration.k8s.io";

/// `(field, message)` problems, as the validation module reports them.
type Causes = Vec<(String, String)>;

/// Whether any policy binding is stored (the fast path skips admission otherwise).
pub fn configured(store: &Store) -> bool {
    [
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicyBinding",
    ]
    .iter()
    .any(|kind| !store.objects_of(GROUP, kind).is_empty())
}

fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// The sources of a policy's expressions, by where they sit.
struct Sources {
    match_conditions: Vec<(String, Source)>,
    variables: Vec<(String, Source)>,
    validations: Vec<Source>,
    message_expressions: Vec<Option<Source>>,
    mutations: Vec<Source>,
}

fn sources(spec: &Value) -> Sources {
    let named = |field: &str| -> Vec<(String, Source)> {
        list(spec, field)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let source = Source {
                    field: format!("spec.{field}[{i}].expression"),
                    text: text(v, "expression").unwrap_or("").to_owned(),
                };
                (text(v, "name").unwrap_or("").to_owned(), source)
            })
            .collect()
    };
    let validations = list(spec, "validations");
    Sources {
        match_conditions: named("matchConditions"),
        variables: named("variables"),
        validations: validations
            .iter()
            .enumerate()
            .map(|(i, v)| Source {
                field: format!("spec.validations[{i}].expression"),
                text: text(v, "expression").unwrap_or("").to_owned(),
            })
            .collect(),
        message_expressions: validations
            .iter()
            .enumerate()
            .map(|(i, v)| {
                text(v, "messageExpression").map(|t| Source {
                    field: format!("spec.validations[{i}].messageExpression"),
                    text: t.to_owned(),
                })
            })
            .collect(),
        mutations: list(spec, "mutations")
            .iter()
            .enumerate()
            .filter(|(_, m)| text(m, "patchType") == Some("ApplyConfiguration"))
            .map(|(i, m)| Source {
                field: format!("spec.mutations[{i}].applyConfiguration.expression"),
                text: m
                    .pointer("/applyConfiguration/expression")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            })
            .collect(),
    }
}

/// Compiles a policy's expressions; the errors name the fields.
fn compile(spec: &Value) -> Result<Compiled, Causes> {
    let s = sources(spec);
    let texts: Vec<&str> = s.mutations.iter().map(|m| m.text.as_str()).collect();
    let env = expressions::env(&texts).map_err(|e| vec![("spec".to_owned(), e)])?;
    let mut causes = Vec::new();
    let mut all = |sources: Vec<Source>| match compile_all(&env, &sources) {
        Ok(programs) => programs,
        Err(errors) => {
            causes.extend(errors);
            Vec::new()
        }
    };
    let (condition_names, conditions): (Vec<String>, Vec<Source>) =
        s.match_conditions.into_iter().unzip();
    let (variable_names, variables): (Vec<String>, Vec<Source>) = s.variables.into_iter().unzip();
    let conditions = all(conditions);
    let variables = all(variables);
    let validation_texts: Vec<String> = s.validations.iter().map(|v| v.text.clone()).collect();
    let validations = all(s.validations);
    let mut message_programs = Vec::new();
    for source in s.message_expressions {
        message_programs.push(source.map(|source| all(vec![source]).into_iter().next()));
    }
    let mutations = all(s.mutations);
    if !causes.is_empty() {
        return Err(causes);
    }
    let specs = list(spec, "validations");
    Ok(Compiled {
        env: env.clone(),
        match_conditions: condition_names.into_iter().zip(conditions).collect(),
        variables: variable_names.into_iter().zip(variables).collect(),
        validations: validations
            .into_iter()
            .zip(validation_texts)
            .zip(message_programs)
            .zip(specs)
            .map(|(((expression, text), message_expression), v)| Validation {
                expression,
                text,
                message_expression: message_expression.flatten(),
                message: text_of(v, "message"),
                reason: text_of(v, "reason"),
            })
            .collect(),
        mutations,
    })
}

fn text_of(v: &Value, field: &str) -> Option<String> {
    text(v, field).map(str::to_owned)
}

/// What the API server's validation says about a stored policy or binding beyond metadata:
/// required fields, enumerations, and expressions that do not compile.
pub fn validate_definition(kind: &str, object: &Value, causes: &mut Causes) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let mut cause = |field: &str, message: &str| causes.push((field.into(), message.into()));
    match kind {
        "ValidatingAdmissionPolicy" | "MutatingAdmissionPolicy" => {
            match spec.get("matchConstraints") {
                None | Some(Value::Null) => cause("spec.matchConstraints", "Required value"),
                Some(c) if list(c, "resourceRules").is_empty() => {
                    cause("spec.matchConstraints.resourceRules", "Required value")
                }
                Some(_) => {}
            }
            if !matches!(text(spec, "failurePolicy"), None | Some("Fail" | "Ignore")) {
                cause(
                    "spec.failurePolicy",
                    "Unsupported value: supported values: \"Fail\", \"Ignore\"",
                );
            }
            if kind == "ValidatingAdmissionPolicy"
                && list(spec, "validations").is_empty()
                && list(spec, "auditAnnotations").is_empty()
            {
                cause(
                    "spec.validations",
                    "Required value: validations or auditAnnotations must contain at least one item",
                );
            }
            if kind == "MutatingAdmissionPolicy" {
                if list(spec, "mutations").is_empty() {
                    cause("spec.mutations", "Required value");
                }
                if !matches!(text(spec, "reinvocationPolicy"), Some("IfNeeded" | "Never")) {
                    cause(
                        "spec.reinvocationPolicy",
                        "Unsupported value: supported values: \"IfNeeded\", \"Never\"",
                    );
                }
            }
            if let Err(errors) = compile(spec) {
                causes.extend(errors);
            }
        }
        "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding" => {
            if text(spec, "policyName").is_none_or(str::is_empty) {
                cause("spec.policyName", "Required value");
            }
            if kind == "ValidatingAdmissionPolicyBinding" {
                let actions = list(spec, "validationActions");
                if actions.is_empty() {
                    cause(
                        "spec.validationActions",
                        "Required value: at least one validation action is required",
                    );
                }
                for (i, action) in actions.iter().enumerate() {
                    if !matches!(action.as_str(), Some("Deny" | "Warn" | "Audit")) {
                        cause(
                            &format!("spec.validationActions[{i}]"),
                            "Unsupported value: supported values: \"Audit\", \"Deny\", \"Warn\"",
                        );
                    }
                    if actions[..i].contains(action) {
                        cause(
                            &format!("spec.validationActions[{i}]"),
                            &format!("Duplicate value: {action}"),
                        );
                    }
                }
            }
        }
        _ => {}
    }
}

/// The namespace object of the request (None for cluster-scoped requests).
fn namespace_of(store: &Store, attrs: &Attributes) -> Option<Value> {
    let key = ObjectKey {
        group: String::new(),
        kind: "Namespace".into(),
        namespace: String::new(),
        name: attrs.namespace.clone()?,
    };
    store.get_by_key(&key).cloned()
}

fn labels(object: Option<&Value>) -> Value {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}))
}

/// A `NamedRuleWithOperations`: the webhook rule plus `resourceNames`.
fn named_rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let names = list(rule, "resourceNames");
    rule_matches(rule, attrs)
        && (names.is_empty()
            || names
                .iter()
                .any(|n| n.as_str() == Some(attrs.name.as_str())))
}

/// `MatchResources` (a policy's `matchConstraints` or a binding's `matchResources`): both
/// selectors, no exclusion, and a resource rule (none: every resource, for bindings).
fn match_resources(resources: &Value, attrs: &Attributes, namespace: Option<&Value>) -> bool {
    let selector_ok = |field: &str, labels: &Value| {
        resources
            .get(field)
            .is_none_or(|s| s.is_null() || label_selector_object_matches(s, labels))
    };
    let is_namespace = attrs.rt.group.is_empty() && attrs.rt.kind == "Namespace";
    let namespace_ok = if is_namespace {
        selector_ok(
            "namespaceSelector",
            &labels(attrs.object.as_ref().or(attrs.old_object.as_ref())),
        )
    } else if attrs.rt.namespaced {
        selector_ok("namespaceSelector", &labels(namespace))
    } else {
        true
    };
    let object_ok = [attrs.object.as_ref(), attrs.old_object.as_ref()]
        .into_iter()
        .flatten()
        .any(|o| selector_ok("objectSelector", &labels(Some(o))));
    let excluded = list(resources, "excludeResourceRules")
        .iter()
        .any(|r| named_rule_matches(r, attrs));
    let rules = list(resources, "resourceRules");
    namespace_ok
        && object_ok
        && !excluded
        && (rules.is_empty() || rules.iter().any(|r| named_rule_matches(r, attrs)))
}

/// The policies of `kind` that apply to the request, with their bindings, in binding-name
/// order: `(policy, binding)`.
fn bound(
    store: &Store,
    attrs: &Attributes,
    namespace: Option<&Value>,
    kind: &str,
) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for binding in store.objects_of(GROUP, &format!("{kind}Binding")) {
        let spec = binding.get("spec").unwrap_or(&Value::Null);
        if spec.get("paramRef").is_some_and(|p| !p.is_null()) {
            tracing::debug!(binding = ?meta_str(&binding, "name"), "paramRef is not modelled; skipped");
            continue;
        }
        let Some(policy) = text(spec, "policyName").and_then(|name| {
            store.get_by_key(&ObjectKey {
                group: GROUP.into(),
                kind: kind.into(),
                namespace: String::new(),
                name: name.into(),
            })
        }) else {
            continue;
        };
        let constraints = policy
            .pointer("/spec/matchConstraints")
            .unwrap_or(&Value::Null);
        if constraints.is_null() || !match_resources(constraints, attrs, namespace) {
            continue;
        }
        if let Some(resources) = spec.get("matchResources").filter(|r| !r.is_null())
            && !match_resources(resources, attrs, namespace)
        {
            continue;
        }
        out.push((policy.clone(), binding));
    }
    out
}

fn name(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or("")
}

fn fail_closed(policy: &Value) -> bool {
    policy
        .pointer("/spec/failurePolicy")
        .and_then(Value::as_str)
        != Some("Ignore")
}

/// The denial: `<resource> "<name>" is forbidden: <why>`, with the reason's code.
fn denial(attrs: &Attributes, why: String, reason: &str) -> ApiError {
    let mut err = ApiError::forbidden(&attrs.rt.group, &attrs.rt.plural, &attrs.name, &why);
    err.code = match reason {
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    };
    err.reason = reason.to_owned();
    if let Some(details) = err.details.as_mut() {
        details["causes"] = serde_json::json!([{"message": why}]);
    }
    err
}

/// Runs the ValidatingAdmissionPolicies that apply to the request: the warnings of `Warn`
/// bindings, or the first denial of a `Deny` binding.
pub fn validate(store: &Store, attrs: &Attributes) -> Result<Vec<String>, ApiError> {
    let namespace = namespace_of(store, attrs);
    let activation = Activation::new(attrs, namespace.as_ref());
    let mut warnings = Vec::new();
    for (policy, binding) in bound(
        store,
        attrs,
        namespace.as_ref(),
        "ValidatingAdmissionPolicy",
    ) {
        let (policy_name, binding_name) = (name(&policy), name(&binding));
        let failures = match compile(policy.get("spec").unwrap_or(&Value::Null)) {
            Ok(compiled) => match evaluate(&compiled, &activation, fail_closed(&policy)) {
                Evaluation::Skipped => continue,
                Evaluation::Evaluated { failures, .. } => failures,
            },
            // Stored without validation (a fixture): as the API server with a policy it
            // cannot compile, the failure policy decides.
            Err(errors) if fail_closed(&policy) => vec![expressions::Failure {
                message: format!("policy does not compile: {errors:?}"),
                reason: "Invalid".into(),
            }],
            Err(_) => continue,
        };
        let actions = list(
            binding.get("spec").unwrap_or(&Value::Null),
            "validationActions",
        );
        for failure in failures {
            for action in actions.iter().filter_map(Value::as_str) {
                match action {
                    "Deny" => {
                        return Err(denial(
                            attrs,
                            format!(
                                "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {}",
                                failure.message
                            ),
                            &failure.reason,
                        ));
                    }
                    "Warn" => warnings.push(format!(
                        "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {}",
                        failure.message
                    )),
                    _ => {}
                }
            }
        }
    }
    Ok(warnings)
}

/// Merges an apply configuration into an object: maps key by key, everything else replaced.
fn merge_apply_configuration(object: &mut Value, configuration: &Value) {
    match (object, configuration) {
        (Value::Object(o), Value::Object(c)) => {
            for (k, v) in c {
                merge_apply_configuration(o.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (o, c) => *o = c.clone(),
    }
}

/// Runs the MutatingAdmissionPolicies that apply to the request (on servers that serve
/// them), changing `attrs.object`.
pub fn mutate(store: &Store, attrs: &mut Attributes) -> Result<(), ApiError> {
    if attrs.object.is_none()
        || store
            .resolve(GROUP, "v1", "mutatingadmissionpolicies")
            .is_none()
    {
        return Ok(());
    }
    let namespace = namespace_of(store, attrs);
    for (policy, binding) in bound(store, attrs, namespace.as_ref(), "MutatingAdmissionPolicy") {
        let activation = Activation::new(attrs, namespace.as_ref());
        let closed = fail_closed(&policy);
        let why = |message: String| {
            format!(
                "MutatingAdmissionPolicy '{}' with binding '{}' denied request: {message}",
                name(&policy),
                name(&binding)
            )
        };
        let mutations = match compile(policy.get("spec").unwrap_or(&Value::Null)) {
            Ok(compiled) => match evaluate(&compiled, &activation, closed) {
                Evaluation::Skipped => continue,
                Evaluation::Evaluated { mutations, .. } => mutations,
            },
            Err(errors) if closed => {
                return Err(denial(attrs, why(format!("{errors:?}")), "Invalid"));
            }
            Err(_) => continue,
        };
        for mutation in mutations {
            match (mutation, attrs.object.as_mut()) {
                (Ok(configuration), Some(object)) => {
                    merge_apply_configuration(object, &configuration)
                }
                (Err(e), _) if closed => return Err(denial(attrs, why(e), "Invalid")),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

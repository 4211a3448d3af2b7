//! The rendered policies and bindings together: which bind a request, and what the
//! validating ones answer and the mutating ones leave.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::Env;
use mlplatform_namespace_policy::admission_policy as policies;
use serde_json::{Value, json};

use crate::cel::{Activation, Evaluation, Failure, Policy, cel_env, evaluate};
use crate::matching::matches;
use crate::namespaces::Namespace;

/// The rendered objects, compiled: policies and their bindings.
pub(crate) struct Engine {
    env: Arc<Env>,
    policies: Vec<Policy>,
    bindings: Vec<Value>,
}

impl Engine {
    pub(crate) fn new(objects: &[Value]) -> Self {
        let env = cel_env();
        let (bindings, policies): (Vec<&Value>, Vec<&Value>) = objects
            .iter()
            .partition(|o| o["kind"].as_str().unwrap().ends_with("Binding"));
        Self {
            policies: policies.iter().map(|p| Policy::new(&env, p)).collect(),
            bindings: bindings.into_iter().cloned().collect(),
            env,
        }
    }

    pub(crate) fn rendered() -> Self {
        Self::new(&policies::all_objects())
    }

    /// Each (policy, binding) pair that selects this request, in the order the objects were
    /// rendered.
    fn bound<'e>(&'e self, request: &Value, ns: &Namespace) -> Vec<(&'e Policy, &'e Value)> {
        let mut out = Vec::new();
        for policy in &self.policies {
            if !policy.selects(request, ns) {
                continue;
            }
            for binding in &self.bindings {
                let spec = &binding["spec"];
                let kind_matches = binding["kind"]
                    .as_str()
                    .is_some_and(|k| k.trim_end_matches("Binding") == self.kind_of(policy));
                if !kind_matches || spec["policyName"] != policy.name.as_str() {
                    continue;
                }
                let resources = &spec["matchResources"];
                if matches(
                    &resources["resourceRules"],
                    &resources["namespaceSelector"],
                    request,
                    ns,
                ) {
                    out.push((policy, binding));
                }
            }
        }
        out
    }

    fn kind_of(&self, policy: &Policy) -> &'static str {
        if policy.mutations.is_empty() {
            "ValidatingAdmissionPolicy"
        } else {
            "MutatingAdmissionPolicy"
        }
    }

    /// The validating policies' answer.
    pub(crate) fn validate(&self, review: &Value, ns: &Namespace) -> Outcome {
        let request = &review["request"];
        let act = Activation::new(review, ns);
        let mut out = Outcome::default();
        for (policy, binding) in self.bound(request, ns) {
            if !policy.mutations.is_empty() {
                continue;
            }
            let Evaluation::Evaluated {
                failures,
                audit_annotations,
                ..
            } = evaluate(&self.env, policy, &act)
            else {
                continue;
            };
            out.audit_annotations.extend(audit_annotations);
            for failure in failures {
                for action in binding["spec"]["validationActions"].as_array().unwrap() {
                    match action.as_str().unwrap() {
                        "Deny" => out.denied.push(failure.clone()),
                        "Warn" => out.warnings.push(failure.message.clone()),
                        "Audit" => out.audited.push(failure.message.clone()),
                        other => panic!("unknown validation action {other}"),
                    }
                }
            }
        }
        out
    }

    /// The object after the mutating policies (apply configurations merged as SSA merges
    /// granular maps).
    pub(crate) fn mutate(&self, review: &Value, ns: &Namespace) -> Value {
        let request = &review["request"];
        let act = Activation::new(review, ns);
        let mut object = request["object"].clone();
        for (policy, _) in self.bound(request, ns) {
            if let Evaluation::Evaluated { mutations, .. } = evaluate(&self.env, policy, &act) {
                for config in mutations {
                    merge(&mut object, &config);
                }
            }
        }
        object
    }
}

/// Server-side-apply merge as far as these configurations go: maps merge key by key.
fn merge(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(target), Value::Object(config)) => {
            for (k, v) in config {
                merge(target.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (target, config) => {
            if target.is_null() && config.is_object() {
                *target = json!({});
                merge(target, config);
            } else {
                *target = config.clone();
            }
        }
    }
}

/// What the validating policies did with one request.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    denied: Vec<Failure>,
    warnings: Vec<String>,
    audited: Vec<String>,
    pub(crate) audit_annotations: BTreeMap<String, String>,
}

/// One engine's answer, reduced to what both can say.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Allow,
    Deny { code: u16, message: String },
    Warn(String),
    Audit(String),
}

impl Outcome {
    pub(crate) fn verdict(&self) -> Result<Verdict, String> {
        if let Some(first) = self.denied.first() {
            return Ok(Verdict::Deny {
                code: first.code,
                message: first.message.clone(),
            });
        }
        match (self.warnings.as_slice(), self.audited.as_slice()) {
            ([], []) => Ok(Verdict::Allow),
            // The warn binding warns and audits, with one message.
            ([w], [a]) if w == a => Ok(Verdict::Warn(w.clone())),
            ([], [a]) => Ok(Verdict::Audit(a.clone())),
            _ => Err(format!(
                "unexpected warnings {:?} / audits {:?}",
                self.warnings, self.audited
            )),
        }
    }
}

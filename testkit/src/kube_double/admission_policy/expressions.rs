//! The CEL side of admission policies, as kube-apiserver runs it for one binding: the
//! environment (standard library, macros, the strings extension, apply-configuration types),
//! what a request binds, a policy's compiled expressions and their evaluation.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as Cel};

pub(crate) use crate::cel_runtime::{env, from_cel, to_cel};
use serde_json::Value;

use super::super::admission::{Attributes, review_request};

/// What one request binds, converted once: `object`, `oldObject`, `request` (without the
/// objects and without the fields Go leaves out when empty) and `namespaceObject` (null for
/// cluster-scoped requests).
pub struct Activation {
    object: Cel,
    old_object: Cel,
    request: Cel,
    namespace_object: Cel,
}

impl Activation {
    pub fn new(attrs: &Attributes, namespace_object: Option<&Value>) -> Self {
        let review = review_request(attrs, "");
        let mut request = review["request"].clone();
        if let Some(fields) = request.as_object_mut() {
            fields.remove("object");
            fields.remove("oldObject");
            fields.retain(|_, v| !(v.is_null() || v == ""));
        }
        let opt = |v: Option<&Value>| v.map_or(Cel::Null, to_cel);
        Activation {
            object: opt(attrs.object.as_ref()),
            old_object: opt(attrs.old_object.as_ref()),
            request: to_cel(&request),
            namespace_object: opt(namespace_object.filter(|_| attrs.namespace.is_some())),
        }
    }
}

/// Where an expression sits in the policy (`spec.validations[0].expression`) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub field: String,
    pub text: String,
}

/// Compiles `sources` in `env`; every source that does not compile is one `(field, message)`.
pub fn compile_all(env: &Env, sources: &[Source]) -> Result<Vec<Program>, Vec<(String, String)>> {
    let mut programs = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        match env.compile(&source.text) {
            Ok(p) => programs.push(p),
            Err(e) => errors.push((
                source.field.clone(),
                format!(
                    "Invalid value: {:?}: compilation failed: {}",
                    source.text,
                    e.to_string().replace('\n', " ")
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(programs)
    } else {
        Err(errors)
    }
}

/// A policy's expressions, compiled, in the order the API server evaluates them.
pub struct Compiled {
    pub env: Arc<Env>,
    pub match_conditions: Vec<(String, Program)>,
    pub variables: Vec<(String, Program)>,
    pub validations: Vec<Validation>,
    /// Apply-configuration expressions of a MutatingAdmissionPolicy.
    pub mutations: Vec<Program>,
}

pub struct Validation {
    pub expression: Program,
    pub text: String,
    pub message_expression: Option<Program>,
    pub message: Option<String>,
    pub reason: Option<String>,
}

/// A validation that failed: its message and reason (`Invalid` when the policy names none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub reason: String,
}

/// The verdict of one policy for one request.
pub enum Evaluation {
    /// A matchCondition was false: the policy does not apply.
    Skipped,
    Evaluated {
        failures: Vec<Failure>,
        /// The mutations' apply configurations (as JSON); errors are the failure policy's.
        mutations: Vec<Result<Value, String>>,
    },
}

fn context(env: &Arc<Env>, act: &Activation) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env.clone());
    ctx.add_variable_from_value("object", act.object.clone());
    ctx.add_variable_from_value("oldObject", act.old_object.clone());
    ctx.add_variable_from_value("request", act.request.clone());
    ctx.add_variable_from_value("namespaceObject", act.namespace_object.clone());
    ctx.add_variable_from_value("params", Cel::Null);
    ctx
}

fn variables_map(variables: &HashMap<Key, Cel>) -> Cel {
    Cel::Map(Map {
        map: Arc::new(variables.clone()),
    })
}

/// Evaluates `policy` for one request, as the API server does for one matching binding.
/// `fail_closed`: the policy's `failurePolicy` is `Fail` (an erroring matchCondition or
/// validation then fails the request).
pub fn evaluate(policy: &Compiled, act: &Activation, fail_closed: bool) -> Evaluation {
    let mut ctx = context(&policy.env, act);
    // matchConditions: any false skips; otherwise an error applies the failure policy.
    let mut condition_error = None;
    for (name, program) in &policy.match_conditions {
        match program.execute(&ctx) {
            Ok(Cel::Bool(false)) => return Evaluation::Skipped,
            Ok(Cel::Bool(true)) => {}
            Ok(other) => {
                condition_error = Some(format!(
                    "matchCondition '{name}': expected a bool, got {other:?}"
                ))
            }
            Err(e) => condition_error = Some(format!("matchCondition '{name}': {e}")),
        }
    }
    if let Some(message) = condition_error {
        if !fail_closed {
            return Evaluation::Skipped;
        }
        return Evaluation::Evaluated {
            failures: vec![Failure {
                message: format!("failed to evaluate match conditions: {message}"),
                reason: "Invalid".into(),
            }],
            mutations: Vec::new(),
        };
    }
    // Variables, in order; one that fails is left out, so only a use of it fails (the API
    // server evaluates them lazily).
    let mut variables: HashMap<Key, Cel> = HashMap::new();
    for (name, program) in &policy.variables {
        ctx.add_variable_from_value("variables", variables_map(&variables));
        if let Ok(value) = program.execute(&ctx) {
            variables.insert(Key::String(Arc::new(name.clone())), value);
        }
    }
    ctx.add_variable_from_value("variables", variables_map(&variables));
    let mut failures = Vec::new();
    for v in &policy.validations {
        let reason = v.reason.clone().unwrap_or_else(|| "Invalid".into());
        match v.expression.execute(&ctx) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                // An unusable messageExpression falls back to `message`.
                let message = v
                    .message_expression
                    .as_ref()
                    .and_then(|p| match p.execute(&ctx) {
                        Ok(Cel::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                            Some(s.to_string())
                        }
                        _ => None,
                    })
                    .or_else(|| v.message.clone().filter(|m| !m.is_empty()))
                    .unwrap_or_else(|| format!("failed expression: {}", v.text));
                failures.push(Failure { message, reason });
            }
            Ok(other) if fail_closed => failures.push(Failure {
                message: format!(
                    "expression '{}' resulted in error: expected a bool, got {other:?}",
                    v.text
                ),
                reason: "Invalid".into(),
            }),
            Err(e) if fail_closed => failures.push(Failure {
                message: format!("expression '{}' resulted in error: {e}", v.text),
                reason: "Invalid".into(),
            }),
            _ => {}
        }
    }
    let mutations = policy
        .mutations
        .iter()
        .map(|m| match m.execute(&ctx) {
            Ok(value) => from_cel(&value),
            Err(e) => Err(e.to_string()),
        })
        .collect();
    Evaluation::Evaluated {
        failures,
        mutations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cel_runtime::apply_configuration_types;

    #[test]
    fn apply_configuration_types_are_found_with_their_parents() {
        let types = apply_configuration_types(&[
            "x ? Object{metadata: Object.metadata{annotations: {'a': 'b'}}} : Object{}",
            "myObject.spec",
        ]);
        assert_eq!(
            types.into_iter().collect::<Vec<_>>(),
            vec!["Object".to_owned(), "Object.metadata".to_owned()]
        );
    }

    #[test]
    fn a_bad_expression_names_its_field() {
        let env = env(&[]).unwrap();
        let sources = [Source {
            field: "spec.validations[0].expression".into(),
            text: "1 +".into(),
        }];
        let errors = compile_all(&env, &sources).err().unwrap();
        assert_eq!(errors[0].0, "spec.validations[0].expression");
        assert!(errors[0].1.contains("compilation failed"), "{errors:?}");
    }
}

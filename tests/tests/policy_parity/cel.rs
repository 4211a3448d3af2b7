//! The CEL side, as kube-apiserver runs an admission policy for one binding: the
//! environment, what a request binds, a policy's compiled expressions and their evaluation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as Cel};
use mlplatform_testkit::cel_runtime::{env_with_types, from_cel, to_cel};
use serde_json::{Value, json};

use crate::matching::matches;
use crate::namespaces::Namespace;

/// Kubernetes' CEL environment as far as these policies need it (testkit's, which the API
/// double evaluates policies with): the standard library and macros, the strings extension,
/// and the apply-configuration types `Object` and `Object.metadata`.
pub(crate) fn cel_env() -> Arc<Env> {
    env_with_types(["Object".to_owned(), "Object.metadata".to_owned()])
        .expect("the CEL environment builds")
}

/// What one request binds, converted once.
pub(crate) struct Activation {
    object: Cel,
    old_object: Cel,
    request: Cel,
    namespace_object: Cel,
}

impl Activation {
    /// As the API server builds it: `request` without the objects and without the fields Go
    /// omits when empty (`omitempty`), `namespaceObject` null for cluster-scoped requests.
    pub(crate) fn new(review: &Value, ns: &Namespace) -> Self {
        let req = &review["request"];
        let mut request = req.clone();
        if let Some(fields) = request.as_object_mut() {
            fields.remove("object");
            fields.remove("oldObject");
            fields.retain(|_, v| !(v.is_null() || v == ""));
        }
        let namespaced = req["namespace"].as_str().is_some_and(|n| !n.is_empty());
        Self {
            object: to_cel(&req["object"]),
            old_object: to_cel(&req["oldObject"]),
            request: to_cel(&request),
            namespace_object: if namespaced {
                to_cel(&ns.object())
            } else {
                Cel::Null
            },
        }
    }
}

struct Validation {
    expression: Program,
    message_expression: Option<Program>,
    message: Option<String>,
    reason: Option<String>,
}

/// A policy's expressions, compiled.
pub(crate) struct Policy {
    pub(crate) name: String,
    spec: Value,
    fail_closed: bool,
    match_conditions: Vec<(String, Program)>,
    variables: Vec<(String, Program)>,
    validations: Vec<Validation>,
    audit_annotations: Vec<(String, Program)>,
    pub(crate) mutations: Vec<Program>,
}

fn compile(env: &Env, source: &str) -> Program {
    env.compile(source)
        .unwrap_or_else(|e| panic!("CEL does not compile: {e}\n{source}"))
}

impl Policy {
    pub(crate) fn new(env: &Env, object: &Value) -> Self {
        let spec = &object["spec"];
        let list = |field: &str| spec[field].as_array().cloned().unwrap_or_default();
        let named = |field: &str, expr: &str| -> Vec<(String, Program)> {
            list(field)
                .iter()
                .map(|v| {
                    let name = v["name"].as_str().or(v["key"].as_str()).unwrap().to_owned();
                    (name, compile(env, v[expr].as_str().unwrap()))
                })
                .collect()
        };
        Self {
            name: object["metadata"]["name"].as_str().unwrap().to_owned(),
            spec: spec.clone(),
            fail_closed: spec["failurePolicy"].as_str().unwrap_or("Fail") == "Fail",
            match_conditions: named("matchConditions", "expression"),
            variables: named("variables", "expression"),
            validations: list("validations")
                .iter()
                .map(|v| Validation {
                    expression: compile(env, v["expression"].as_str().unwrap()),
                    message_expression: v["messageExpression"].as_str().map(|s| compile(env, s)),
                    message: v["message"].as_str().map(str::to_owned),
                    reason: v["reason"].as_str().map(str::to_owned),
                })
                .collect(),
            audit_annotations: named("auditAnnotations", "valueExpression"),
            mutations: list("mutations")
                .iter()
                .map(|m| {
                    assert_eq!(m["patchType"], "ApplyConfiguration", "{m}");
                    compile(env, m["applyConfiguration"]["expression"].as_str().unwrap())
                })
                .collect(),
        }
    }

    pub(crate) fn selects(&self, request: &Value, ns: &Namespace) -> bool {
        let c = &self.spec["matchConstraints"];
        matches(&c["resourceRules"], &c["namespaceSelector"], request, ns)
    }
}

/// A failed validation: its message and the HTTP code its reason maps to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u16,
}

/// One policy evaluated for one binding.
pub(crate) enum Evaluation {
    /// A matchCondition was false.
    Skipped,
    Evaluated {
        failures: Vec<Failure>,
        audit_annotations: BTreeMap<String, String>,
        /// The mutations' apply configurations, as JSON.
        mutations: Vec<Value>,
    },
}

fn reason_code(reason: Option<&str>) -> u16 {
    match reason.unwrap_or("Invalid") {
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}

fn context(env: &Arc<Env>, act: &Activation) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env.clone());
    ctx.add_variable_from_value("object", act.object.clone());
    ctx.add_variable_from_value("oldObject", act.old_object.clone());
    ctx.add_variable_from_value("request", act.request.clone());
    ctx.add_variable_from_value("namespaceObject", act.namespace_object.clone());
    ctx
}

/// Evaluates `policy` as the API server does for one matching binding.
pub(crate) fn evaluate(env: &Arc<Env>, policy: &Policy, act: &Activation) -> Evaluation {
    let mut ctx = context(env, act);
    // matchConditions: any false skips; otherwise an error applies the failure policy.
    let mut condition_error = None;
    for (name, program) in &policy.match_conditions {
        match program.execute(&ctx) {
            Ok(Cel::Bool(false)) => return Evaluation::Skipped,
            Ok(Cel::Bool(true)) => {}
            Ok(other) => condition_error = Some(format!("matchCondition {name}: {other:?}")),
            Err(e) => condition_error = Some(format!("matchCondition {name}: {e}")),
        }
    }
    if let Some(error) = condition_error {
        return if policy.fail_closed {
            Evaluation::Evaluated {
                failures: vec![Failure {
                    message: error,
                    code: 403,
                }],
                audit_annotations: BTreeMap::new(),
                mutations: vec![],
            }
        } else {
            Evaluation::Skipped
        };
    }
    // Variables, in order; one that fails is left out, so only a use of it fails (as lazily).
    let mut variables: HashMap<Key, Cel> = HashMap::new();
    for (name, program) in &policy.variables {
        ctx.add_variable_from_value(
            "variables",
            Cel::Map(Map {
                map: Arc::new(variables.clone()),
            }),
        );
        if let Ok(value) = program.execute(&ctx) {
            variables.insert(Key::String(Arc::new(name.clone())), value);
        }
    }
    ctx.add_variable_from_value(
        "variables",
        Cel::Map(Map {
            map: Arc::new(variables),
        }),
    );
    let mut failures = Vec::new();
    for v in &policy.validations {
        let code = reason_code(v.reason.as_deref());
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
                    .or_else(|| v.message.clone())
                    .unwrap_or_else(|| "failed expression".to_owned());
                failures.push(Failure { message, code });
            }
            other if policy.fail_closed => failures.push(Failure {
                message: format!("expression error: {other:?}"),
                code,
            }),
            _ => {}
        }
    }
    let mut audit_annotations = BTreeMap::new();
    for (key, program) in &policy.audit_annotations {
        match program.execute(&ctx) {
            Ok(Cel::String(s)) if !s.is_empty() => {
                audit_annotations.insert(format!("{}/{key}", policy.name), s.to_string());
            }
            Ok(Cel::String(_) | Cel::Null) => {}
            other => panic!("auditAnnotation {key}: {other:?}"),
        }
    }
    let mutations = policy
        .mutations
        .iter()
        .map(|m| match m.execute(&ctx) {
            Ok(value) => from_cel(&value).unwrap_or_else(|e| panic!("mutation: {e}")),
            Err(e) if policy.fail_closed => panic!("mutation error: {e}"),
            // failurePolicy Ignore: the mutation is skipped.
            Err(_) => json!({}),
        })
        .collect();
    Evaluation::Evaluated {
        failures,
        audit_annotations,
        mutations,
    }
}

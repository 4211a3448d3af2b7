//! One rule, two engines, no drift (issue 12 §2).
//!
//! The admission policies rendered by `mlplatform_namespace_policy::admission_policy` are run
//! here the way kube-apiserver runs them — match constraints, the bindings' namespace
//! selectors, matchConditions, variables, validations with their messageExpression, audit
//! annotations, validationActions — with their CEL evaluated by a Rust CEL interpreter (the
//! `cel` crate, with the strings extension Kubernetes also enables). Each verdict is compared
//! with the webhook's own decision (`decide`), which the webhook only reaches when the webhook
//! configurations in `manifests/` send it the request:
//!
//! - every `/validate` golden fixture of the webhook and the 26 AdmissionReviews recorded from
//!   kube-apiserver v1.36.2, each under `enforce`, `warn` and `audit` and a range of namespace
//!   policies (user SA, listed system SAs, `default`, unmanaged, broken, excluded namespace);
//! - the MutatingAdmissionPolicy over the ServiceAccount reviews (real 01 and 02, and the
//!   webhook's `sa-*` fixtures), compared by the object each engine leaves.
//!
//! Perturbed policies must disagree somewhere, so a harness that compares nothing fails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use cel::common::types::{CelStruct, Type};
use cel::common::value::{CowVal, Val};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, StructType, Value as Cel};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use mlplatform_namespace_policy::admission_policy::{
    self as policies, AUDIT_ANNOTATION, NAMESPACE_POLICY_CHECK, SERVICE_ACCOUNT_POLICY,
};
use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, ENFORCEMENT_LABEL, EnforcementMode, IRSA_ROLE_ARN_ANNOTATION,
    MANAGED_LABEL, NamespacePolicy, SYSTEM_SERVICE_ACCOUNTS_ANNOTATION,
    USER_SERVICE_ACCOUNT_ANNOTATION,
};
use mlplatform_webhook::Endpoint;
use mlplatform_webhook::admission::{encode_review, parse_review};
use mlplatform_webhook::cluster::StaticClusterView;
use mlplatform_webhook::mutate::InjectionConfig;
use serde_json::{Value, json};

// The label-selector semantics the webhook tests already use; only `selects` is needed here.
#[allow(dead_code)]
#[path = "webhook_support/selector.rs"]
mod selector;

const MODES: [EnforcementMode; 3] = [
    EnforcementMode::Enforce,
    EnforcementMode::Warn,
    EnforcementMode::Audit,
];
const ROLE: &str = "arn:aws:iam::123456789012:role/ml-user";

// ---------------------------------------------------------------------------------------------
// Fixtures

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The AdmissionReviews kube-apiserver v1.36.2 sent (the webhook's copy, else shared/'s).
fn real_reviews() -> Vec<(String, Value)> {
    let root = workspace_root();
    let copy = root.join("webhook/tests/fixtures/real-reviews");
    let dir = if copy.is_dir() {
        copy
    } else {
        root.join("../shared/apiserver-conformance/admission-reviews")
    };
    let reviews: Vec<_> = json_files(&dir)
        .iter()
        .map(|p| (format!("real/{}", file_name(p)), read_json(p)))
        .collect();
    assert_eq!(
        reviews.len(),
        26,
        "real AdmissionReviews in {}",
        dir.display()
    );
    reviews
}

/// The webhook's golden fixtures of one endpoint: (name, namespaces of its cluster, review).
fn webhook_fixtures(endpoint: &str) -> Vec<(String, Vec<Value>, Value)> {
    let dir = workspace_root()
        .join("webhook/tests/fixtures")
        .join(endpoint);
    json_files(&dir)
        .iter()
        .map(|p| {
            let f = read_json(p);
            let namespaces = f["cluster"]["namespaces"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (
                format!("{endpoint}/{}", file_name(p)),
                namespaces,
                f["review"].clone(),
            )
        })
        .collect()
}

fn manifest(name: &str) -> Value {
    let path = workspace_root().join("manifests").join(name);
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The validating webhook, as `manifests/` configures it.
static VALIDATING_WEBHOOK: LazyLock<Value> = LazyLock::new(|| {
    webhook_config(
        "07-validatingwebhookconfiguration.yaml",
        "workloads.validate.mlplatform.io",
    )
});
/// The ServiceAccount mutating webhook, as `manifests/` configures it.
static SERVICE_ACCOUNT_WEBHOOK: LazyLock<Value> = LazyLock::new(|| {
    webhook_config(
        "06-mutatingwebhookconfiguration.yaml",
        "serviceaccounts.mutate.mlplatform.io",
    )
});

/// One webhook of a webhook configuration in `manifests/`.
fn webhook_config(file: &str, webhook: &str) -> Value {
    manifest(file)["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == webhook)
        .unwrap_or_else(|| panic!("{file} has no webhook {webhook}"))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Namespaces

#[derive(Debug, Clone)]
struct Namespace {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Namespace {
    fn new(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Self {
            name: name.to_owned(),
            labels: map(labels),
            annotations: map(annotations),
        }
    }

    /// As the plugin writes it: `NamespacePolicy`'s labels and annotations.
    fn written(name: &str, policy: &NamespacePolicy) -> Self {
        Self {
            name: name.to_owned(),
            labels: policy.to_labels(),
            annotations: policy.to_annotations(),
        }
    }

    /// Its labels as the API server keeps them (with `kubernetes.io/metadata.name`).
    fn server_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), self.name.clone());
        labels
    }

    /// The object the API server binds to `namespaceObject` (empty maps omitted, as in Go).
    fn object(&self) -> Value {
        let mut metadata = json!({"name": self.name, "labels": self.server_labels()});
        if !self.annotations.is_empty() {
            metadata["annotations"] = json!(self.annotations);
        }
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata, "spec": {}, "status": {"phase": "Active"}})
    }

    fn view(&self) -> StaticClusterView {
        StaticClusterView::from_objects(&[self.object()], &[]).unwrap()
    }
}

fn policy(
    user: &str,
    system: &[&str],
    role: Option<&str>,
    mode: EnforcementMode,
) -> NamespacePolicy {
    NamespacePolicy {
        user_service_account: user.to_owned(),
        system_service_accounts: system.iter().map(|s| (*s).to_owned()).collect(),
        irsa_role_arn: role.map(str::to_owned),
        enforcement: mode,
    }
}

/// The namespace policies every review is tried under, for namespace `ns`.
fn namespace_policies(ns: &str) -> Vec<(String, Namespace)> {
    let mut out = Vec::new();
    for mode in MODES {
        let m = mode.as_str();
        let label = [(MANAGED_LABEL, "true"), (ENFORCEMENT_LABEL, m)];
        for (what, p) in [
            ("user ml-user", policy("ml-user", &[], None, mode)),
            (
                "user ml-user, system ml-system",
                policy("ml-user", &["ml-system"], None, mode),
            ),
            (
                "default listed as system",
                policy("ml-user", &["ml-system", "default"], None, mode),
            ),
            ("user is default", policy("default", &[], None, mode)),
            (
                "ml-user not allowed",
                policy("ml-admin", &["ml-system", "ops"], Some(ROLE), mode),
            ),
        ] {
            out.push((format!("{m}: {what}"), Namespace::written(ns, &p)));
        }
        let spaced_mode = format!(" {m} ");
        out.push((
            format!("{m}: values padded with blanks"),
            Namespace::new(
                ns,
                &label,
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, " ml-admin "),
                    (
                        SYSTEM_SERVICE_ACCOUNTS_ANNOTATION,
                        " , ml-system ,, default ",
                    ),
                    (ENFORCEMENT_ANNOTATION, &spaced_mode),
                ],
            ),
        ));
        out.push((
            format!("{m}: broken, no user SA"),
            Namespace::new(ns, &label, &[(ENFORCEMENT_ANNOTATION, m)]),
        ));
        out.push((
            format!("{m}: broken, blank user SA"),
            Namespace::new(
                ns,
                &label,
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, "  "),
                    (ENFORCEMENT_ANNOTATION, m),
                ],
            ),
        ));
        out.push((
            format!("label {m}: broken, enforcement annotation \"block\""),
            Namespace::new(
                ns,
                &label,
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin"),
                    (ENFORCEMENT_ANNOTATION, "block"),
                ],
            ),
        ));
        out.push((
            format!("{m}: unmanaged"),
            Namespace::new(
                ns,
                &[(ENFORCEMENT_LABEL, m)],
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin"),
                    (ENFORCEMENT_ANNOTATION, m),
                ],
            ),
        ));
        out.push((
            format!("{m}: managed label \"false\""),
            Namespace::new(
                ns,
                &[(MANAGED_LABEL, "false"), (ENFORCEMENT_LABEL, m)],
                &[(USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin")],
            ),
        ));
    }
    out.push((
        "no enforcement annotation nor label (enforce)".into(),
        Namespace::new(
            ns,
            &[(MANAGED_LABEL, "true")],
            &[(USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin")],
        ),
    ));
    out.push((
        "broken, no annotations at all, no enforcement label".into(),
        Namespace::new(ns, &[(MANAGED_LABEL, "true")], &[]),
    ));
    out
}

/// A fixture's own namespace, labelled as the plugin would label it.
fn labelled_as_written(object: &Value) -> Namespace {
    let meta = &object["metadata"];
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    };
    let mut labels = strings(&meta["labels"]);
    labels.remove("kubernetes.io/metadata.name");
    let annotations = strings(&meta["annotations"]);
    if let Some(Ok(mode)) = annotations
        .get(ENFORCEMENT_ANNOTATION)
        .map(|v| v.parse::<EnforcementMode>())
    {
        labels.insert(ENFORCEMENT_LABEL.into(), mode.as_str().into());
    }
    Namespace {
        name: meta["name"].as_str().unwrap_or_default().to_owned(),
        labels,
        annotations,
    }
}

/// The review as if sent for namespace `ns`.
fn in_namespace(review: &Value, ns: &str) -> Value {
    let mut review = review.clone();
    review["request"]["namespace"] = json!(ns);
    for field in ["object", "oldObject"] {
        if review["request"][field]["metadata"].is_object() {
            review["request"][field]["metadata"]["namespace"] = json!(ns);
        }
    }
    review
}

// ---------------------------------------------------------------------------------------------
// Request matching (webhook configurations and policies share the rule format)

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
fn matches(rules: &Value, namespace_selector: &Value, request: &Value, ns: &Namespace) -> bool {
    let rules_match = rules
        .as_array()
        .is_none_or(|rules| rules.iter().any(|r| rule_matches(r, request)));
    rules_match && selects(namespace_selector, ns)
}

// ---------------------------------------------------------------------------------------------
// The CEL engine, as kube-apiserver runs admission policies

/// `Object`, `Object.metadata`, ...: the apply-configuration types, taking any field.
struct ApplyConfigurationType(Type);

impl StructType for ApplyConfigurationType {
    fn get_type(&self) -> &Type {
        &self.0
    }

    fn new_value<'b, 'v>(
        &self,
        fields: BTreeMap<String, CowVal<'b, 'v>>,
    ) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        let mut value = CelStruct::new(self.0.name().to_owned());
        for (name, field) in fields {
            value.add_field_value(name, field);
        }
        Ok(Box::new(value))
    }
}

/// Kubernetes' CEL environment as far as these policies need it: the standard library and
/// macros, the strings extension (`trim`, `split`, `join`), and the apply-configuration types.
fn cel_env() -> Arc<Env> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings).unwrap();
    for name in ["Object", "Object.metadata"] {
        env.add_type(ApplyConfigurationType(Type::new_struct(name.to_owned())))
            .unwrap();
    }
    Arc::new(env)
}

fn to_cel(value: &Value) -> Cel {
    cel::to_value(value).expect("JSON converts to CEL")
}

fn from_cel(value: &Cel) -> Result<Value, String> {
    Ok(match value {
        Cel::Null => Value::Null,
        Cel::Bool(b) => json!(b),
        Cel::Int(i) => json!(i),
        Cel::UInt(u) => json!(u),
        Cel::Float(f) => json!(f),
        Cel::String(s) => json!(s.as_str()),
        Cel::List(items) => Value::Array(items.iter().map(from_cel).collect::<Result<_, _>>()?),
        Cel::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let Key::String(k) = k else {
                    return Err(format!("map key {k:?} is not a string"));
                };
                out.insert(k.to_string(), from_cel(v)?);
            }
            Value::Object(out)
        }
        Cel::Struct(s) => {
            let mut out = serde_json::Map::new();
            for (k, v) in s.field_values() {
                let v = Cel::try_from(v.as_ref()).map_err(|e| e.to_string())?;
                out.insert(k, from_cel(&v)?);
            }
            Value::Object(out)
        }
        other => return Err(format!("{other:?} has no JSON form")),
    })
}

/// What one request binds, converted once.
struct Activation {
    object: Cel,
    old_object: Cel,
    request: Cel,
    namespace_object: Cel,
}

impl Activation {
    /// As the API server builds it: `request` without the objects and without the fields Go
    /// omits when empty (`omitempty`), `namespaceObject` null for cluster-scoped requests.
    fn new(review: &Value, ns: &Namespace) -> Self {
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
struct Policy {
    name: String,
    spec: Value,
    fail_closed: bool,
    match_conditions: Vec<(String, Program)>,
    variables: Vec<(String, Program)>,
    validations: Vec<Validation>,
    audit_annotations: Vec<(String, Program)>,
    mutations: Vec<Program>,
}

fn compile(env: &Env, source: &str) -> Program {
    env.compile(source)
        .unwrap_or_else(|e| panic!("CEL does not compile: {e}\n{source}"))
}

impl Policy {
    fn new(env: &Env, object: &Value) -> Self {
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

    fn selects(&self, request: &Value, ns: &Namespace) -> bool {
        let c = &self.spec["matchConstraints"];
        matches(&c["resourceRules"], &c["namespaceSelector"], request, ns)
    }
}

/// A failed validation: its message and the HTTP code its reason maps to.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    message: String,
    code: u16,
}

/// One policy evaluated for one binding.
enum Evaluation {
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
fn evaluate(env: &Arc<Env>, policy: &Policy, act: &Activation) -> Evaluation {
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

/// The rendered objects, compiled: policies and their bindings.
struct Engine {
    env: Arc<Env>,
    policies: Vec<Policy>,
    bindings: Vec<Value>,
}

impl Engine {
    fn new(objects: &[Value]) -> Self {
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

    fn rendered() -> Self {
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
    fn validate(&self, review: &Value, ns: &Namespace) -> Outcome {
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
    fn mutate(&self, review: &Value, ns: &Namespace) -> Value {
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
struct Outcome {
    denied: Vec<Failure>,
    warnings: Vec<String>,
    audited: Vec<String>,
    audit_annotations: BTreeMap<String, String>,
}

/// One engine's answer, reduced to what both can say.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Allow,
    Deny { code: u16, message: String },
    Warn(String),
    Audit(String),
}

impl Outcome {
    fn verdict(&self) -> Result<Verdict, String> {
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

// ---------------------------------------------------------------------------------------------
// The webhook

fn run_webhook(review: &Value, ns: &Namespace, mutate: bool) -> Value {
    let body = serde_json::to_vec(review).unwrap();
    let req = parse_review(&body).expect("fixtures are AdmissionReviews");
    let view = ns.view();
    let endpoint = if mutate {
        Endpoint::Mutate
    } else {
        Endpoint::Validate
    };
    let response = mlplatform_webhook::decide(endpoint, &req, &view, &InjectionConfig::default())
        .expect("a static view never misses");
    let wire: Value = serde_json::from_slice(&encode_review(&response)).unwrap();
    wire["response"].clone()
}

/// The webhook's verdict, or `Allow` when its configuration would not send the request.
fn webhook_verdict(review: &Value, ns: &Namespace) -> Result<(Verdict, Option<String>), String> {
    let config = &*VALIDATING_WEBHOOK;
    if !matches(
        &config["rules"],
        &config["namespaceSelector"],
        &review["request"],
        ns,
    ) {
        return Ok((Verdict::Allow, None));
    }
    let r = run_webhook(review, ns, false);
    let audit = r["auditAnnotations"][mlplatform_webhook::validate::AUDIT_ANNOTATION]
        .as_str()
        .map(str::to_owned);
    let warnings = r["warnings"].as_array().cloned().unwrap_or_default();
    let verdict = if r["allowed"] == false {
        Verdict::Deny {
            code: r["status"]["code"].as_u64().unwrap_or_default() as u16,
            message: r["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    } else if let [w] = warnings.as_slice() {
        Verdict::Warn(w.as_str().unwrap_or_default().to_owned())
    } else if let Some(a) = &audit {
        Verdict::Audit(a.clone())
    } else if warnings.is_empty() {
        Verdict::Allow
    } else {
        return Err(format!("webhook answered {r}"));
    };
    Ok((verdict, audit))
}

/// The object the webhook's mutation leaves (its JSON patch applied).
fn webhook_mutated(review: &Value, ns: &Namespace) -> Value {
    let config = &*SERVICE_ACCOUNT_WEBHOOK;
    let mut object = review["request"]["object"].clone();
    if !matches(
        &config["rules"],
        &config["namespaceSelector"],
        &review["request"],
        ns,
    ) {
        return object;
    }
    let r = run_webhook(review, ns, true);
    if let Some(patch) = r["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
    }
    object
}

// ---------------------------------------------------------------------------------------------
// Parity

/// One comparison: the policies on one review in one namespace, against the webhook's answer.
fn compare_validation(engine: &Engine, case: &ValidationCase) -> Result<Verdict, String> {
    let (webhook, webhook_audit) = case.webhook.clone()?;
    let outcome = engine.validate(&case.review, &case.ns);
    let policy = outcome.verdict()?;
    if policy != webhook {
        return Err(format!("webhook: {webhook:?}\npolicy:  {policy:?}"));
    }
    if let Some(audit) = webhook_audit {
        let key = format!("{SERVICE_ACCOUNT_POLICY}/{AUDIT_ANNOTATION}");
        if outcome.audit_annotations.get(&key) != Some(&audit) {
            return Err(format!(
                "audit annotation: webhook {audit:?}, policy {:?}",
                outcome.audit_annotations
            ));
        }
    }
    Ok(webhook)
}

/// Every validation case: (label, review, namespace).
fn validation_cases() -> Vec<(String, Value, Namespace)> {
    let mut cases = Vec::new();
    let mut reviews: Vec<(String, Value)> = real_reviews();
    for (name, namespaces, review) in webhook_fixtures("validate") {
        // First in the fixture's own cluster, labelled as the plugin labels it.
        for ns in namespaces.iter().map(labelled_as_written) {
            cases.push((format!("{name} [own namespace]"), review.clone(), ns));
        }
        reviews.push((name, review));
    }
    for (name, review) in reviews {
        let ns_name = review["request"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for (what, ns) in namespace_policies(&ns_name) {
            cases.push((format!("{name} [{what}]"), review.clone(), ns));
        }
        // Both engines leave the excluded namespaces alone, managed or not.
        let excluded = in_namespace(&review, "kube-system");
        let ns = Namespace::written(
            "kube-system",
            &policy("ml-admin", &[], None, EnforcementMode::Enforce),
        );
        cases.push((format!("{name} [kube-system]"), excluded, ns));
    }
    cases
}

/// Every mutation case: ServiceAccount reviews in a range of namespaces.
fn mutation_cases() -> Vec<(String, Value, Namespace)> {
    let mut reviews: Vec<(String, Value)> = real_reviews()
        .into_iter()
        .filter(|(_, r)| r["request"]["kind"]["kind"] == "ServiceAccount")
        .collect();
    assert_eq!(reviews.len(), 2, "real ServiceAccount reviews");
    let mut cases = Vec::new();
    for (name, namespaces, review) in webhook_fixtures("mutate") {
        if review["request"]["kind"]["kind"] != "ServiceAccount" {
            continue;
        }
        for ns in namespaces.iter().map(labelled_as_written) {
            cases.push((format!("{name} [own namespace]"), review.clone(), ns));
        }
        reviews.push((name, review));
    }
    for (name, review) in reviews {
        let ns = review["request"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let written = |p: NamespacePolicy| Namespace::written(&ns, &p);
        let enforce = EnforcementMode::Enforce;
        for (what, namespace) in [
            (
                "role for ml-user",
                written(policy("ml-user", &[], Some(ROLE), enforce)),
            ),
            (
                "other role for ml-user",
                written(policy(
                    "ml-user",
                    &[],
                    Some("arn:aws:iam::1:role/other"),
                    enforce,
                )),
            ),
            ("no role", written(policy("ml-user", &[], None, enforce))),
            (
                "role for another SA",
                written(policy("ml-admin", &[], Some(ROLE), enforce)),
            ),
            (
                "padded role and user",
                Namespace::new(
                    &ns,
                    &[(MANAGED_LABEL, "true")],
                    &[
                        (USER_SERVICE_ACCOUNT_ANNOTATION, " ml-user "),
                        (IRSA_ROLE_ARN_ANNOTATION, &format!(" {ROLE} ")),
                    ],
                ),
            ),
            (
                "broken: bad enforcement",
                Namespace::new(
                    &ns,
                    &[(MANAGED_LABEL, "true")],
                    &[
                        (USER_SERVICE_ACCOUNT_ANNOTATION, "ml-user"),
                        (IRSA_ROLE_ARN_ANNOTATION, ROLE),
                        (ENFORCEMENT_ANNOTATION, "block"),
                    ],
                ),
            ),
            (
                "unmanaged",
                Namespace::new(
                    &ns,
                    &[],
                    &[
                        (USER_SERVICE_ACCOUNT_ANNOTATION, "ml-user"),
                        (IRSA_ROLE_ARN_ANNOTATION, ROLE),
                    ],
                ),
            ),
        ] {
            cases.push((format!("{name} [{what}]"), review.clone(), namespace));
        }
        let excluded = in_namespace(&review, "kube-system");
        let ns = Namespace::written("kube-system", &policy("ml-user", &[], Some(ROLE), enforce));
        cases.push((format!("{name} [kube-system]"), excluded, ns));
    }
    cases
}

/// A review in a namespace, with the webhook's answer (computed once).
struct Case<W> {
    label: String,
    review: Value,
    ns: Namespace,
    webhook: W,
}

type ValidationCase = Case<Result<(Verdict, Option<String>), String>>;
static VALIDATION_CASES: LazyLock<Vec<ValidationCase>> = LazyLock::new(|| {
    validation_cases()
        .into_iter()
        .map(|(label, review, ns)| Case {
            webhook: webhook_verdict(&review, &ns),
            label,
            review,
            ns,
        })
        .collect()
});

static MUTATION_CASES: LazyLock<Vec<Case<Value>>> = LazyLock::new(|| {
    mutation_cases()
        .into_iter()
        .map(|(label, review, ns)| Case {
            webhook: webhook_mutated(&review, &ns),
            label,
            review,
            ns,
        })
        .collect()
});

/// Runs every case against `engine` (up to the first disagreement with `first_only`): the
/// disagreements, and a count of each verdict.
fn run_all(engine: &Engine, first_only: bool) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut failures = Vec::new();
    let mut counts = BTreeMap::new();
    for case in VALIDATION_CASES.iter() {
        match compare_validation(engine, case) {
            Ok(verdict) => {
                let kind = format!("{verdict:?}");
                let kind = kind.split(['(', ' ']).next().unwrap_or_default().to_owned();
                *counts.entry(format!("validate {kind}")).or_default() += 1;
            }
            Err(e) => failures.push(format!("{}:\n{e}", case.label)),
        }
        if first_only && !failures.is_empty() {
            return (failures, counts);
        }
    }
    for case in MUTATION_CASES.iter() {
        let policy = engine.mutate(&case.review, &case.ns);
        if case.webhook == policy {
            let changed = policy != case.review["request"]["object"];
            *counts
                .entry(format!(
                    "mutate {}",
                    if changed { "changed" } else { "unchanged" }
                ))
                .or_default() += 1;
        } else {
            failures.push(format!(
                "{}:\nwebhook: {}\npolicy:  {policy}",
                case.label, case.webhook
            ));
        }
        if first_only && !failures.is_empty() {
            break;
        }
    }
    (failures, counts)
}

#[test]
fn both_engines_agree_on_every_fixture() {
    let (failures, counts) = run_all(&Engine::rendered(), false);
    let total: usize = counts.values().sum();
    eprintln!("{total} cases agree: {counts:?}");
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n\n{}",
        failures.len(),
        failures.len() + total,
        failures.join("\n\n")
    );
    // Every kind of verdict was exercised, so agreement is not agreement on "allow".
    for kind in [
        "validate Allow",
        "validate Deny",
        "validate Warn",
        "validate Audit",
        "mutate changed",
        "mutate unchanged",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no case gave {kind}"
        );
    }
    assert!(total > 1500, "only {total} cases");
}

/// A policy changed in one place must disagree with the webhook somewhere.
#[test]
fn perturbed_policies_disagree() {
    let perturb = |kind: &str, name: &str, from: &str, to: &str| -> Vec<Value> {
        let mut objects = policies::all_objects();
        let target = objects
            .iter_mut()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap();
        let before = target.to_string();
        let after = before.replacen(from, to, 1);
        assert_ne!(before, after, "perturbation {from:?} changed nothing");
        *target = serde_json::from_str(&after).unwrap();
        objects
    };
    let vap = "ValidatingAdmissionPolicy";
    let cases = [
        (
            "system ServiceAccounts no longer allowed",
            perturb(
                vap,
                SERVICE_ACCOUNT_POLICY,
                "|| variables.serviceAccount in variables.systemServiceAccounts",
                "",
            ),
        ),
        (
            "one word of the message changed",
            perturb(
                vap,
                SERVICE_ACCOUNT_POLICY,
                "which namespace",
                "which the namespace",
            ),
        ),
        (
            "an empty serviceAccountName no longer means default",
            perturb(vap, SERVICE_ACCOUNT_POLICY, ": 'default'", ": ''"),
        ),
        (
            "system list not trimmed",
            perturb(vap, SERVICE_ACCOUNT_POLICY, ".map(s, s.trim())", ""),
        ),
        (
            "broken policies admitted",
            perturb(
                vap,
                NAMESPACE_POLICY_CHECK,
                "size(variables.policyError) == 0",
                "true",
            ),
        ),
        (
            "warn binding without Audit",
            perturb(
                "ValidatingAdmissionPolicyBinding",
                "mlplatform-service-accounts-warn",
                r#"["Warn","Audit"]"#,
                r#"["Warn"]"#,
            ),
        ),
        (
            "role set on every ServiceAccount",
            perturb(
                "MutatingAdmissionPolicy",
                policies::IRSA_ROLE_POLICY,
                "&& variables.objectName == variables.userServiceAccount",
                "",
            ),
        ),
    ];
    for (what, objects) in cases {
        let (failures, _) = run_all(&Engine::new(&objects), true);
        assert!(!failures.is_empty(), "the harness did not notice: {what}");
    }
}

/// The policies match exactly what the webhook configurations send to the webhook.
#[test]
fn policies_match_what_the_webhook_configurations_match() {
    let objects = policies::all_objects();
    let find = |name: &str| {
        objects
            .iter()
            .find(|o| {
                o["metadata"]["name"] == name && !o["kind"].as_str().unwrap().ends_with("Binding")
            })
            .unwrap()["spec"]["matchConstraints"]
            .clone()
    };
    let validating = &*VALIDATING_WEBHOOK;
    for name in [SERVICE_ACCOUNT_POLICY, NAMESPACE_POLICY_CHECK] {
        let c = find(name);
        assert_eq!(c["resourceRules"], validating["rules"], "{name}");
        assert_eq!(
            c["namespaceSelector"], validating["namespaceSelector"],
            "{name}"
        );
    }
    let mutating = &*SERVICE_ACCOUNT_WEBHOOK;
    let c = find(policies::IRSA_ROLE_POLICY);
    assert_eq!(c["resourceRules"], mutating["rules"]);
    assert_eq!(c["namespaceSelector"], mutating["namespaceSelector"]);
    assert_eq!(
        AUDIT_ANNOTATION,
        mlplatform_webhook::validate::AUDIT_ANNOTATION
    );
}

/// A label weaker than the annotation would enforce less than the policy says: refused.
/// (The webhook reads only the annotation; this is the policies' own rule.)
#[test]
fn enforcement_label_weaker_than_annotation_fails_closed() {
    let engine = Engine::rendered();
    let review = real_reviews()
        .into_iter()
        .find(|(name, _)| name.contains("04-validate-create-pod"))
        .unwrap()
        .1;
    let ns_name = review["request"]["namespace"].as_str().unwrap().to_owned();
    let ml_user = |annotation: &str, label: Option<&str>| {
        let mut labels = vec![(MANAGED_LABEL, "true")];
        labels.extend(label.map(|l| (ENFORCEMENT_LABEL, l)));
        Namespace::new(
            &ns_name,
            &labels,
            &[
                (USER_SERVICE_ACCOUNT_ANNOTATION, "ml-user"),
                (ENFORCEMENT_ANNOTATION, annotation),
            ],
        )
    };
    for (annotation, label) in [
        ("enforce", Some("warn")),
        ("warn", Some("audit")),
        ("", Some("audit")),
    ] {
        let verdict = engine
            .validate(&review, &ml_user(annotation, label))
            .verdict();
        let effective = if annotation.is_empty() {
            "enforce"
        } else {
            annotation
        };
        assert_eq!(
            verdict,
            Ok(Verdict::Deny {
                code: 403,
                message: format!(
                    "namespace {ns_name}: label {ENFORCEMENT_LABEL}=\"{}\" is weaker than annotation {ENFORCEMENT_ANNOTATION}=\"{effective}\"; run `kubectl mlplatform namespace add` to repair it",
                    label.unwrap()
                ),
            }),
            "annotation {annotation:?}, label {label:?}"
        );
    }
    // A stricter label (or none, which means enforce) is not refused: the pod runs as ml-user.
    for (annotation, label) in [
        ("warn", None),
        ("audit", Some("enforce")),
        ("audit", Some("warn")),
    ] {
        let verdict = engine
            .validate(&review, &ml_user(annotation, label))
            .verdict();
        assert_eq!(
            verdict,
            Ok(Verdict::Allow),
            "annotation {annotation:?}, label {label:?}"
        );
    }
}

/// The rendered objects use only fields the Kubernetes API knows: they survive a round trip
/// through k8s-openapi's types (MutatingAdmissionPolicy v1 has v1alpha1's fields).
#[test]
fn rendered_objects_round_trip_through_the_api_types() {
    use k8s_openapi::api::admissionregistration::{v1, v1alpha1};
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Value {
        let typed: T = serde_json::from_value(object.clone()).unwrap();
        serde_json::to_value(typed).unwrap()
    }
    for object in policies::all_objects() {
        let kind = object["kind"].as_str().unwrap().to_owned();
        let back = match kind.as_str() {
            "ValidatingAdmissionPolicy" => round_trip::<v1::ValidatingAdmissionPolicy>(&object),
            "ValidatingAdmissionPolicyBinding" => {
                round_trip::<v1::ValidatingAdmissionPolicyBinding>(&object)
            }
            "MutatingAdmissionPolicy" | "MutatingAdmissionPolicyBinding" => {
                let mut alpha = object.clone();
                alpha["apiVersion"] = json!("admissionregistration.k8s.io/v1alpha1");
                let mut back = if kind == "MutatingAdmissionPolicy" {
                    round_trip::<v1alpha1::MutatingAdmissionPolicy>(&alpha)
                } else {
                    round_trip::<v1alpha1::MutatingAdmissionPolicyBinding>(&alpha)
                };
                back["apiVersion"] = object["apiVersion"].clone();
                back
            }
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(back, object, "{kind} has fields the API does not know");
    }
}

//! The webhook's rules as API-server admission policies (SPEC §3–4, issue 12): a second engine
//! that needs no process of ours. Pure rendering: `serde_json::Value` out, no I/O.
//!
//! What is rendered, in apply order ([`validating_objects`], then [`mutating_objects`]):
//!
//! - ValidatingAdmissionPolicy [`NAMESPACE_POLICY_CHECK`] and one Deny binding over every managed
//!   namespace: a managed namespace whose annotations do not parse fails closed in every
//!   enforcement mode, with the webhook's message, as the webhook does. It also refuses a
//!   namespace whose [`ENFORCEMENT_LABEL`] is weaker than its annotation (the label picks the
//!   binding below, so such a namespace would be enforced more weakly than its policy says).
//! - ValidatingAdmissionPolicy [`SERVICE_ACCOUNT_POLICY`]: Pods and the pod templates of
//!   Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and CronJob must run as the user or a
//!   listed system ServiceAccount; the message is the webhook's, word for word. Three bindings
//!   pick the action from the namespace's [`ENFORCEMENT_LABEL`]: Deny (`enforce`, and a missing
//!   label, as a missing annotation means `enforce`), Warn + Audit (`warn`), Audit (`audit`).
//! - MutatingAdmissionPolicy [`IRSA_ROLE_POLICY`] (`admissionregistration.k8s.io/v1`, served
//!   from Kubernetes 1.36) and its binding: the namespace's user ServiceAccount gets
//!   `eks.amazonaws.com/role-arn` from [`IRSA_ROLE_ARN_ANNOTATION`], replacing a different value.
//!
//! Bindings select namespaces by label, not annotation: the plugin must write
//! [`ENFORCEMENT_LABEL`] next to [`ENFORCEMENT_ANNOTATION`] (see [`NamespacePolicy::to_labels`]).
//!
//! Known differences from the webhook, all inherent to the API server:
//! - a warning reads `Validation failed for ValidatingAdmissionPolicy ... : <message>` and a
//!   denial `ValidatingAdmissionPolicy ... denied request: <message>` (the webhook's are
//!   `<message>` and `admission webhook ... denied the request: <message>`); `<message>` is equal;
//! - in `warn` mode the violation is also audited (the binding's `Audit` action);
//! - a broken policy gives no warning on ServiceAccount writes (a mutating policy cannot warn);
//! - a bad enforcement value is quoted plainly, where the webhook escapes `"`, `\` and control
//!   characters Rust's way.

use serde_json::{Value, json};

use crate::{
    ENFORCEMENT_ANNOTATION, ENFORCEMENT_LABEL, EnforcementMode, IRSA_ROLE_ARN_ANNOTATION,
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_LABEL, MANAGED_VALUE, PolicyError,
    SYSTEM_SERVICE_ACCOUNTS_ANNOTATION, USER_SERVICE_ACCOUNT_ANNOTATION, eks,
};

#[cfg(doc)]
use crate::NamespacePolicy;

/// `apiVersion` of every object rendered here.
pub const API_VERSION: &str = "admissionregistration.k8s.io/v1";

/// Refuses workloads that run as a ServiceAccount the namespace does not allow.
pub const SERVICE_ACCOUNT_POLICY: &str = "mlplatform-service-accounts";
/// Refuses every workload write in a managed namespace whose policy does not parse.
pub const NAMESPACE_POLICY_CHECK: &str = "mlplatform-namespace-policy";
/// Sets `eks.amazonaws.com/role-arn` on the namespace's user ServiceAccount.
pub const IRSA_ROLE_POLICY: &str = "mlplatform-irsa-role-arn";

/// Binding of [`SERVICE_ACCOUNT_POLICY`] for each enforcement mode.
pub const fn service_account_binding(mode: EnforcementMode) -> &'static str {
    match mode {
        EnforcementMode::Enforce => "mlplatform-service-accounts-enforce",
        EnforcementMode::Warn => "mlplatform-service-accounts-warn",
        EnforcementMode::Audit => "mlplatform-service-accounts-audit",
    }
}

/// `auditAnnotations` key of [`SERVICE_ACCOUNT_POLICY`]; the API server prefixes it with the
/// policy name, as it prefixes the webhook's key (the same word) with the webhook name.
pub const AUDIT_ANNOTATION: &str = "service-account-violation";

/// Label on every object rendered here, beside the plugin's managed-by label, so that
/// `policy status|uninstall` can find exactly these objects.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const COMPONENT_VALUE: &str = "admission-policy";
/// Label selector for the objects rendered here.
pub const OBJECT_SELECTOR: &str =
    "app.kubernetes.io/managed-by=kubectl-mlplatform,app.kubernetes.io/component=admission-policy";

/// Namespaces never enforced, as in the webhook configurations in `manifests/`: the webhook's
/// own, and `kube-system` so that a stray label cannot block the cluster's system pods.
pub const EXCLUDED_NAMESPACES: [&str; 2] = ["mlplatform-system", "kube-system"];

/// The `(apiGroup, resources)` whose pods the validating policies check: what
/// `manifests/07-validatingwebhookconfiguration.yaml` sends to `/validate`.
pub const WORKLOAD_RESOURCES: [(&str, &[&str]); 3] = [
    ("", &["pods"]),
    (
        "apps",
        &["deployments", "statefulsets", "daemonsets", "replicasets"],
    ),
    ("batch", &["jobs", "cronjobs"]),
];

/// Every object, in apply order: the validating part, then the mutating part.
pub fn all_objects() -> Vec<Value> {
    let mut objects = validating_objects();
    objects.extend(mutating_objects());
    objects
}

/// The ValidatingAdmissionPolicies and their bindings (GA since Kubernetes 1.30), policies first.
pub fn validating_objects() -> Vec<Value> {
    let mut objects = vec![
        namespace_policy_check(),
        service_account_policy(),
        object(
            "ValidatingAdmissionPolicyBinding",
            NAMESPACE_POLICY_CHECK,
            json!({"policyName": NAMESPACE_POLICY_CHECK, "validationActions": ["Deny"]}),
        ),
    ];
    objects.extend(
        [
            EnforcementMode::Enforce,
            EnforcementMode::Warn,
            EnforcementMode::Audit,
        ]
        .map(service_account_policy_binding),
    );
    objects
}

/// The MutatingAdmissionPolicy and its binding (`admissionregistration.k8s.io/v1`, Kubernetes
/// 1.36+): install them only where the server serves that version.
pub fn mutating_objects() -> Vec<Value> {
    vec![
        irsa_role_policy(),
        object(
            "MutatingAdmissionPolicyBinding",
            IRSA_ROLE_POLICY,
            json!({"policyName": IRSA_ROLE_POLICY}),
        ),
    ]
}

/// The labels every rendered object carries.
pub fn object_labels() -> Value {
    json!({MANAGED_BY_LABEL: MANAGED_BY_VALUE, COMPONENT_LABEL: COMPONENT_VALUE})
}

// ---- objects ----

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "labels": object_labels()},
        "spec": spec,
    })
}

/// Managed namespaces, less the excluded ones: the webhook configurations' selector.
fn managed_namespaces() -> Value {
    json!({
        "matchLabels": {MANAGED_LABEL: MANAGED_VALUE},
        "matchExpressions": [{
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": EXCLUDED_NAMESPACES,
        }],
    })
}

fn match_constraints(rules: Value) -> Value {
    json!({
        "matchPolicy": "Equivalent",
        "namespaceSelector": managed_namespaces(),
        "resourceRules": rules,
    })
}

fn workload_rules() -> Value {
    Value::Array(
        WORKLOAD_RESOURCES
            .iter()
            .map(|(group, resources)| {
                json!({
                    "apiGroups": [group],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": resources,
                    "scope": "Namespaced",
                })
            })
            .collect(),
    )
}

/// A named CEL expression. Multi-line, so that YAML shows it as a block, quotes unescaped.
fn named(name: &str, lines: &[&str]) -> Value {
    json!({"name": name, "expression": cel(lines)})
}

fn cel(lines: &[&str]) -> String {
    lines.join("\n")
}

fn namespace_policy_check() -> Value {
    let label = lit(ENFORCEMENT_LABEL);
    let [enforce, warn, audit] = [
        EnforcementMode::Enforce,
        EnforcementMode::Warn,
        EnforcementMode::Audit,
    ]
    .map(|m| lit(m.as_str()));
    let mut variables = vec![named(
        "nsLabels",
        &["has(namespaceObject.metadata.labels) ? namespaceObject.metadata.labels : {}"],
    )];
    variables.extend(namespace_variables());
    variables.extend([
        // The mode of the binding that applies: the label's, as the selectors read it.
        named(
            "bindingEnforcement",
            &[
                &format!("{label} in variables.nsLabels && variables.nsLabels[{label}] in [{warn}, {audit}]"),
                &format!("? variables.nsLabels[{label}]"),
                &format!(": {enforce}"),
            ],
        ),
        named(
            "policyEnforcement",
            &[
                "variables.enforcement == ''",
                &format!("? {}", lit(EnforcementMode::default().as_str())),
                ": variables.enforcement",
            ],
        ),
    ]);
    // Strictness of each mode: a label below the annotation would weaken the policy.
    let rank = format!("{{{enforce}: 2, {warn}: 1, {audit}: 0}}");
    object(
        "ValidatingAdmissionPolicy",
        NAMESPACE_POLICY_CHECK,
        json!({
            "failurePolicy": "Fail",
            "matchConstraints": match_constraints(workload_rules()),
            "matchConditions": [managed_namespace_condition()],
            "variables": variables,
            "validations": [
                {
                    "expression": "size(variables.policyError) == 0",
                    "messageExpression": "variables.policyError",
                    "message": "the mlplatform policy annotations of this namespace do not parse; run `kubectl mlplatform namespace add` to repair them",
                    "reason": "Forbidden",
                },
                {
                    // Only when the policy parses, so that one request fails one validation.
                    "expression": cel(&[
                        "size(variables.policyError) > 0",
                        &format!("|| {rank}[variables.bindingEnforcement] >= {rank}[variables.policyEnforcement]"),
                    ]),
                    "messageExpression": cel(&[
                        &format!("{} + namespaceObject.metadata.name", lit("namespace ")),
                        &format!("+ {} + variables.bindingEnforcement", lit(&format!(": label {ENFORCEMENT_LABEL}=\""))),
                        &format!("+ {} + variables.policyEnforcement", lit(&format!("\" is weaker than annotation {ENFORCEMENT_ANNOTATION}=\""))),
                        &format!("+ {}", lit("\"; run `kubectl mlplatform namespace add` to repair it")),
                    ]),
                    "message": format!(
                        "label {ENFORCEMENT_LABEL} of this namespace is weaker than its annotation; run `kubectl mlplatform namespace add` to repair it"
                    ),
                    "reason": "Forbidden",
                },
            ],
        }),
    )
}

fn service_account_policy() -> Value {
    let mut variables = namespace_variables();
    variables.extend(service_account_variables());
    object(
        "ValidatingAdmissionPolicy",
        SERVICE_ACCOUNT_POLICY,
        json!({
            "failurePolicy": "Fail",
            "matchConstraints": match_constraints(workload_rules()),
            "matchConditions": [
                managed_namespace_condition(),
                // The webhook never blocks an object on its way out (finalizer removal is an
                // UPDATE); a broken policy is refused by the namespace-policy check instead.
                named(
                    "not-being-deleted",
                    &["object == null || !has(object.metadata) || !has(object.metadata.deletionTimestamp)"],
                ),
            ],
            "variables": variables,
            "validations": [{
                // A broken policy is the namespace-policy check's to refuse, with its message.
                "expression": "size(variables.policyError) > 0 || variables.serviceAccountAllowed",
                "messageExpression": "variables.violation",
                "message": "the workload runs as a ServiceAccount that this namespace does not allow; see its mlplatform.io annotations",
                "reason": "Forbidden",
            }],
            "auditAnnotations": [{
                "key": AUDIT_ANNOTATION,
                // An empty value leaves the annotation out.
                "valueExpression": cel(&[
                    "size(variables.policyError) == 0 && !variables.serviceAccountAllowed",
                    "? variables.violation",
                    ": ''",
                ]),
            }],
        }),
    )
}

fn service_account_policy_binding(mode: EnforcementMode) -> Value {
    let (actions, selector) = match mode {
        // A missing or unknown label means `enforce`, as a missing annotation does.
        EnforcementMode::Enforce => (
            json!(["Deny"]),
            json!({"matchExpressions": [{
                "key": ENFORCEMENT_LABEL,
                "operator": "NotIn",
                "values": [EnforcementMode::Warn.as_str(), EnforcementMode::Audit.as_str()],
            }]}),
        ),
        EnforcementMode::Warn => (
            json!(["Warn", "Audit"]),
            json!({"matchLabels": {ENFORCEMENT_LABEL: mode.as_str()}}),
        ),
        EnforcementMode::Audit => (
            json!(["Audit"]),
            json!({"matchLabels": {ENFORCEMENT_LABEL: mode.as_str()}}),
        ),
    };
    object(
        "ValidatingAdmissionPolicyBinding",
        service_account_binding(mode),
        json!({
            "policyName": SERVICE_ACCOUNT_POLICY,
            "validationActions": actions,
            "matchResources": {"namespaceSelector": selector},
        }),
    )
}

fn irsa_role_policy() -> Value {
    let role_key = lit(IRSA_ROLE_ARN_ANNOTATION);
    let mut variables = namespace_variables();
    variables.extend([
        named(
            "roleArn",
            &[
                &format!("{role_key} in variables.nsAnnotations"),
                &format!("? variables.nsAnnotations[{role_key}].trim()"),
                ": ''",
            ],
        ),
        object_name_variable(),
        // The webhook's rule: the user ServiceAccount of a namespace whose policy parses and
        // names a role. A different value is replaced; an equal one makes the apply a no-op.
        named(
            "setsRoleArn",
            &[
                "size(variables.policyError) == 0 && size(variables.roleArn) > 0",
                "&& variables.objectName == variables.userServiceAccount",
            ],
        ),
    ]);
    object(
        "MutatingAdmissionPolicy",
        IRSA_ROLE_POLICY,
        json!({
            // As the webhook's ServiceAccount rule: the plugin writes the annotation itself
            // too, so a failing policy must not block ServiceAccount writes.
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "IfNeeded",
            "matchConstraints": match_constraints(json!([{
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["serviceaccounts"],
                "scope": "Namespaced",
            }])),
            "matchConditions": [managed_namespace_condition()],
            "variables": variables,
            "mutations": [{
                "patchType": "ApplyConfiguration",
                "applyConfiguration": {
                    // Annotations are a granular map: the apply sets one key, keeps the rest.
                    "expression": cel(&[
                        "variables.setsRoleArn",
                        &format!(
                            "? Object{{metadata: Object.metadata{{annotations: {{{}: variables.roleArn}}}}}}",
                            lit(eks::ROLE_ARN)
                        ),
                        ": Object{}",
                    ]),
                },
            }],
        }),
    )
}

// ---- CEL ----

/// `namespaceObject` is null for cluster-scoped requests; the namespace must be managed.
fn managed_namespace_condition() -> Value {
    let key = lit(MANAGED_LABEL);
    named(
        "managed-namespace",
        &[
            "namespaceObject != null && has(namespaceObject.metadata.labels)",
            &format!("&& {key} in namespaceObject.metadata.labels"),
            &format!(
                "&& namespaceObject.metadata.labels[{key}] == {}",
                lit(MANAGED_VALUE)
            ),
        ],
    )
}

/// `key in variables.nsAnnotations ? <trimmed value> : ''`
fn trimmed_annotation(name: &str, key: &str) -> Value {
    let key = lit(key);
    named(
        name,
        &[
            &format!("{key} in variables.nsAnnotations"),
            &format!("? variables.nsAnnotations[{key}].trim()"),
            ": ''",
        ],
    )
}

/// The namespace's policy, read as `NamespacePolicy::from_metadata` reads it: values trimmed,
/// empty means absent, and `policyError` is its error message, prefixed as the webhook
/// prefixes it, or `''`.
fn namespace_variables() -> Vec<Value> {
    let missing_user = lit(&PolicyError::MissingUserServiceAccount.to_string());
    // Split the error's text around the value, so that its words come from one place.
    const MARKER: &str = "@VALUE@";
    let bad = PolicyError::BadEnforcement(MARKER.to_owned()).to_string();
    let (before, after) = bad.split_once(MARKER).unwrap_or((bad.as_str(), ""));
    let (before, after) = (lit(before), lit(after));
    let modes = [
        EnforcementMode::Enforce,
        EnforcementMode::Warn,
        EnforcementMode::Audit,
    ]
    .map(|m| lit(m.as_str()))
    .join(", ");
    let prefix = format!(
        "{} + namespaceObject.metadata.name + {}",
        lit("namespace "),
        lit(": ")
    );
    let system_key = lit(SYSTEM_SERVICE_ACCOUNTS_ANNOTATION);
    vec![
        named(
            "nsAnnotations",
            &[
                "has(namespaceObject.metadata.annotations) ? namespaceObject.metadata.annotations : {}",
            ],
        ),
        trimmed_annotation("userServiceAccount", USER_SERVICE_ACCOUNT_ANNOTATION),
        named(
            "systemServiceAccounts",
            &[
                &format!("{system_key} in variables.nsAnnotations"),
                &format!(
                    "? variables.nsAnnotations[{system_key}].split(',').map(s, s.trim()).filter(s, s != '')"
                ),
                ": []",
            ],
        ),
        trimmed_annotation("enforcement", ENFORCEMENT_ANNOTATION),
        named(
            "policyError",
            &[
                "variables.userServiceAccount == ''",
                &format!("? {prefix} + {missing_user}"),
                &format!(": !(variables.enforcement in ['', {modes}])"),
                &format!("? {prefix} + {before} + variables.enforcement + {after}"),
                ": ''",
            ],
        ),
    ]
}

/// `metadata.name`, else the request's name (objects named by `generateName` have none yet).
fn object_name_variable() -> Value {
    named(
        "objectName",
        &[
            "has(object.metadata.name) ? object.metadata.name",
            ": has(request.name) ? request.name",
            ": ''",
        ],
    )
}

/// The pod spec of the object under review, its ServiceAccount as the API server resolves it,
/// and the webhook's message.
fn service_account_variables() -> Vec<Value> {
    let namespace = "namespaceObject.metadata.name";
    vec![
        named(
            "podSpec",
            &[
                "request.kind.kind == 'Pod'",
                "? (has(object.spec) ? object.spec : {})",
                ": request.kind.kind == 'CronJob'",
                "? (has(object.spec) && has(object.spec.jobTemplate) && has(object.spec.jobTemplate.spec)",
                "   && has(object.spec.jobTemplate.spec.template) && has(object.spec.jobTemplate.spec.template.spec)",
                "   ? object.spec.jobTemplate.spec.template.spec : {})",
                ": (has(object.spec) && has(object.spec.template) && has(object.spec.template.spec)",
                "   ? object.spec.template.spec : {})",
            ],
        ),
        // `serviceAccountName`, else the deprecated `serviceAccount`, else `default`.
        named(
            "serviceAccount",
            &[
                "has(variables.podSpec.serviceAccountName) && variables.podSpec.serviceAccountName != ''",
                "? variables.podSpec.serviceAccountName",
                ": has(variables.podSpec.serviceAccount) && variables.podSpec.serviceAccount != ''",
                "? variables.podSpec.serviceAccount",
                ": 'default'",
            ],
        ),
        named(
            "serviceAccountAllowed",
            &[
                "variables.serviceAccount == variables.userServiceAccount",
                "|| variables.serviceAccount in variables.systemServiceAccounts",
            ],
        ),
        object_name_variable(),
        named(
            "workload",
            &[
                "request.kind.kind + ' ' + (",
                &format!("  variables.objectName != '' ? {namespace} + '/' + variables.objectName"),
                &format!(
                    "  : has(object.metadata.generateName) ? {namespace} + '/' + object.metadata.generateName + '* (generateName)'"
                ),
                &format!("  : 'in namespace ' + {namespace})"),
            ],
        ),
        named(
            "serviceAccountField",
            &[
                "request.kind.kind == 'Pod' ? 'spec.serviceAccountName'",
                ": request.kind.kind == 'CronJob' ? 'spec.jobTemplate.spec.template.spec.serviceAccountName'",
                ": 'spec.template.spec.serviceAccountName'",
            ],
        ),
        named(
            "violation",
            &[
                "variables.workload + ' runs as ServiceAccount \"' + variables.serviceAccount + '\", which namespace '",
                &format!("+ {namespace} + ' does not allow: set ' + variables.serviceAccountField"),
                "+ ' to \"' + variables.userServiceAccount + '\"'",
                "+ (size(variables.systemServiceAccounts) > 0",
                "   ? ' (system ServiceAccounts also allowed: ' + variables.systemServiceAccounts.join(', ') + ')'",
                "   : '')",
            ],
        ),
    ]
}

/// A CEL string literal (single-quoted, escaped).
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(lit(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(lit("x\ny"), r"'x\ny'");
    }

    #[test]
    fn bad_enforcement_message_is_split_around_the_value() {
        let variables = namespace_variables();
        let policy_error = variables
            .iter()
            .find(|v| v["name"] == "policyError")
            .unwrap()["expression"]
            .as_str()
            .unwrap();
        assert!(
            policy_error.contains(&format!(
                "'annotation {ENFORCEMENT_ANNOTATION}=\"' + variables.enforcement + '\" is not one of enforce, warn, audit; fix the annotation'"
            )),
            "{policy_error}"
        );
    }

    #[test]
    fn every_binding_names_a_rendered_policy_and_every_object_is_labelled() {
        let objects = all_objects();
        let policies: Vec<(&str, &str)> = objects
            .iter()
            .filter(|o| !o["kind"].as_str().unwrap().ends_with("Binding"))
            .map(|o| {
                (
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        for o in &objects {
            assert_eq!(o["apiVersion"], API_VERSION);
            assert_eq!(o["metadata"]["labels"], object_labels());
            let kind = o["kind"].as_str().unwrap();
            if let Some(policy_kind) = kind.strip_suffix("Binding") {
                let name = o["spec"]["policyName"].as_str().unwrap();
                assert!(policies.contains(&(policy_kind, name)), "{o}");
            }
        }
        assert_eq!(objects.len(), 8);
        // Sorted: serde_json's map order depends on workspace feature unification
        // (`preserve_order`), so the test must not.
        let mut selector: Vec<String> = object_labels()
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        selector.sort_unstable();
        let mut expected: Vec<&str> = OBJECT_SELECTOR.split(',').collect();
        expected.sort_unstable();
        assert_eq!(selector, expected);
    }

    #[test]
    fn every_mode_has_one_binding_and_a_missing_label_means_enforce() {
        let bindings: Vec<Value> = validating_objects()
            .into_iter()
            .filter(|o| o["spec"]["policyName"] == SERVICE_ACCOUNT_POLICY)
            .collect();
        assert_eq!(bindings.len(), 3);
        let enforce = &bindings[0]["spec"];
        assert_eq!(enforce["validationActions"], json!(["Deny"]));
        assert_eq!(
            enforce["matchResources"]["namespaceSelector"]["matchExpressions"][0]["operator"],
            "NotIn"
        );
        assert_eq!(
            bindings[1]["spec"]["validationActions"],
            json!(["Warn", "Audit"])
        );
        assert_eq!(bindings[2]["spec"]["validationActions"], json!(["Audit"]));
    }
}

//! The cases (every review in every namespace) and running them through both engines.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use mlplatform_namespace_policy::admission_policy::{AUDIT_ANNOTATION, SERVICE_ACCOUNT_POLICY};
use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, EnforcementMode, IRSA_ROLE_ARN_ANNOTATION, MANAGED_LABEL,
    NamespacePolicy, USER_SERVICE_ACCOUNT_ANNOTATION,
};
use serde_json::Value;

use crate::engine::{Engine, Verdict};
use crate::fixtures::{real_reviews, webhook_fixtures};
use crate::namespaces::{
    Namespace, ROLE, in_namespace, labelled_as_written, namespace_policies, policy,
};
use crate::webhook::{webhook_mutated, webhook_verdict};

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
pub(crate) fn run_all(engine: &Engine, first_only: bool) -> (Vec<String>, BTreeMap<String, usize>) {
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

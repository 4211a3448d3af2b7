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
//!
//! Modules: `fixtures` (inputs), `namespaces` (the namespaces tried), `matching` (rules and
//! selectors), `cel` and `engine` (the policies as the API server runs them), `webhook` (its
//! decisions), `cases` (every comparison).

mod cases;
mod cel;
mod engine;
mod fixtures;
mod matching;
mod namespaces;
mod webhook;

// The label-selector semantics the webhook tests already use; only `selects` is needed here.
#[allow(dead_code)]
#[path = "../webhook_support/selector.rs"]
mod selector;

use mlplatform_namespace_policy::admission_policy::{
    self as policies, AUDIT_ANNOTATION, NAMESPACE_POLICY_CHECK, SERVICE_ACCOUNT_POLICY,
};
use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, ENFORCEMENT_LABEL, MANAGED_LABEL, USER_SERVICE_ACCOUNT_ANNOTATION,
};
use serde_json::{Value, json};

use crate::cases::run_all;
use crate::engine::{Engine, Verdict};
use crate::fixtures::{SERVICE_ACCOUNT_WEBHOOK, VALIDATING_WEBHOOK, real_reviews};
use crate::namespaces::Namespace;

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

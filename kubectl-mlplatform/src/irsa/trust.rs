//! The web-identity trust policy, and the tags that say which roles and policies are ours.

use std::collections::{BTreeMap, BTreeSet};

use mlplatform_namespace_policy::eks;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::vocabulary::TAG_ATTACHED_PREFIX;

/// `arn:PARTITION:iam::ACCOUNT:oidc-provider/<issuer host/path>`.
pub(crate) fn oidc_provider_arn(partition: &str, account: &str, issuer_host_path: &str) -> String {
    format!("arn:{partition}:iam::{account}:oidc-provider/{issuer_host_path}")
}

/// `system:serviceaccount:NS:SA`.
pub(crate) fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// The web-identity trust: the cluster's OIDC provider may assume the role for exactly these
/// ServiceAccounts (`:sub`, a list when several) and the STS audience (`:aud`).
pub(crate) fn trust_policy(
    provider_arn: &str,
    issuer_host_path: &str,
    subjects: &[String],
) -> Value {
    let mut subs: Vec<&str> = subjects.iter().map(String::as_str).collect();
    subs.sort_unstable();
    subs.dedup();
    let sub_value = match subs.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer_host_path}:sub"): sub_value,
                format!("{issuer_host_path}:aud"): eks::DEFAULT_AUDIENCE,
            }},
        }],
    })
}

/// The `(namespace, name)` pairs a trust policy admits through `<issuer>:sub` conditions.
pub(crate) fn subjects_in_trust(
    trust: &Value,
    issuer_host_path: &str,
) -> BTreeSet<(String, String)> {
    let key = format!("{issuer_host_path}:sub");
    let statements: Vec<&Value> = match &trust["Statement"] {
        Value::Array(items) => items.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    };
    let mut out = BTreeSet::new();
    for st in statements {
        let Some(conditions) = st["Condition"].as_object() else {
            continue;
        };
        for operator in conditions.values() {
            let values: Vec<&Value> = match &operator[&key] {
                Value::Array(items) => items.iter().collect(),
                v @ Value::String(_) => vec![v],
                _ => continue,
            };
            for v in values.into_iter().filter_map(Value::as_str) {
                let mut parts = v.splitn(4, ':');
                if let (Some("system"), Some("serviceaccount"), Some(ns), Some(sa)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                    && !sa.contains('*')
                {
                    out.insert((ns.to_owned(), sa.to_owned()));
                }
            }
        }
    }
    out
}

/// Tag key tracking one attached managed policy.
pub(crate) fn attached_policy_tag(policy_arn: &str) -> String {
    let hash = hex::encode(Sha256::digest(policy_arn.as_bytes()));
    format!("{TAG_ATTACHED_PREFIX}{}", &hash[..16])
}

/// Managed policies this tool attached, from the role's tags.
pub(crate) fn tracked_policies(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| k.starts_with(TAG_ATTACHED_PREFIX))
        .map(|(k, v)| (v.clone(), k.clone()))
        .collect()
}

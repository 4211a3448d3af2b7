//! The profile's parameters and placeholders: checked and resolved from flags, and the
//! variables templates render with for one cluster and namespace.

use std::collections::{BTreeMap, BTreeSet};

use super::error::PlanError;
use crate::arn::{is_account_id, parse_iam_arn};
use crate::facts::{ClusterFacts, issuer_host_path};
use crate::profile::{ParameterType, Profile, Vars};
use crate::security_group::Cidr;

/// Checks and resolves the profile's parameters from `--param`s and dedicated flags; `strict`:
/// required ones must be given (connect, doctor; teardown needs fewer).
pub(crate) fn resolve_params(
    profile: &Profile,
    given: &BTreeMap<String, String>,
    strict: bool,
) -> Result<BTreeMap<String, String>, PlanError> {
    let known: BTreeSet<&str> = profile
        .spec
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    if let Some(name) = given.keys().find(|k| !known.contains(k.as_str())) {
        return Err(PlanError::UnknownParameter {
            name: name.clone(),
            profile: profile.name().to_owned(),
            known: if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.into_iter().collect::<Vec<_>>().join(", ")
            },
        });
    }
    let mut out = BTreeMap::new();
    for p in &profile.spec.parameters {
        let flag = p
            .flag
            .as_ref()
            .map(|f| format!("--{f}"))
            .unwrap_or_else(|| format!("--param {}=VALUE", p.name));
        let value = given
            .get(&p.name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| p.default.clone());
        let Some(value) = value else {
            if p.required && strict {
                let what = if p.description.is_empty() {
                    p.name.clone()
                } else {
                    format!("{} ({})", p.name, p.description)
                };
                return Err(PlanError::MissingParameter { what, flag });
            }
            continue;
        };
        match p.kind {
            ParameterType::String => {}
            ParameterType::AccountId if !is_account_id(&value) => {
                return Err(PlanError::BadAccount {
                    name: p.name.clone(),
                    value,
                    flag,
                });
            }
            ParameterType::AccountId => {}
            ParameterType::S3Bucket if !is_bucket_name(&value) => {
                return Err(PlanError::BadBucket {
                    name: p.name.clone(),
                    value,
                });
            }
            ParameterType::S3Bucket => {}
            ParameterType::KmsKeyArn if !is_kms_key_arn(&value) => {
                return Err(PlanError::BadKmsKey {
                    name: p.name.clone(),
                    value,
                });
            }
            ParameterType::KmsKeyArn => {}
            ParameterType::Cidr => match value.parse::<Cidr>() {
                // Stored canonical (IPv6 compressed, lowercase), as EC2 reports rules.
                Ok(cidr) => {
                    out.insert(p.name.clone(), cidr.to_string());
                    continue;
                }
                Err(e) => {
                    return Err(PlanError::BadCidr {
                        name: p.name.clone(),
                        value,
                        reason: e.to_string(),
                    });
                }
            },
            ParameterType::RoleArn => match parse_iam_arn(&value) {
                Ok(arn) if arn.resource_type == "role" => {}
                Ok(_) => {
                    return Err(PlanError::BadRoleArn {
                        name: p.name.clone(),
                        value,
                        reason: "not a role".to_owned(),
                    });
                }
                Err(e) => {
                    return Err(PlanError::BadRoleArn {
                        name: p.name.clone(),
                        value,
                        reason: e.to_string(),
                    });
                }
            },
        }
        out.insert(p.name.clone(), value);
    }
    Ok(out)
}

/// S3 bucket naming rules (general purpose buckets): 3-63 characters of lowercase letters,
/// digits, '.' and '-', starting and ending with a letter or digit, no "..", not an IP address.
pub(crate) fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias")
}

/// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `...:alias/NAME`.
pub(crate) fn is_kms_key_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "kms", region, account, resource] => {
            partition.starts_with("aws")
                && !region.is_empty()
                && is_account_id(account)
                && (resource
                    .strip_prefix("key/")
                    .is_some_and(|id| !id.is_empty())
                    || resource
                        .strip_prefix("alias/")
                        .is_some_and(|a| !a.is_empty()))
        }
        _ => false,
    }
}

/// IAM accepts external IDs of 2-1224 characters from this set.
pub(crate) fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-".contains(c))
}

/// Refuses profiles that need step kinds this version cannot carry out (before any I/O).
pub(crate) fn check_implemented(profile: &Profile) -> Result<(), PlanError> {
    let missing = profile.unimplemented_steps();
    if missing.is_empty() {
        return Ok(());
    }
    Err(PlanError::UnimplementedSteps {
        profile: profile.name().to_owned(),
        steps: missing
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Placeholder values for a cluster.
pub fn vars_for(
    profile: &Profile,
    cluster: &ClusterFacts,
    params: &BTreeMap<String, String>,
    namespace: &str,
) -> Vars {
    let partition = cluster
        .arn
        .split(':')
        .nth(1)
        .filter(|p| !p.is_empty())
        .unwrap_or("aws");
    let mut vars = Vars::new();
    vars.set("profile", profile.name())
        .set("cluster", cluster.name.as_str())
        .set("clusterArn", cluster.arn.as_str())
        .set("region", cluster.region.as_str())
        .set("account", cluster.account.as_str())
        .set("partition", partition)
        .set("namespace", namespace);
    // Parameters that were not given render as their default, else "" (which drops what
    // they fill, e.g. an optional kmsKeyId).
    for p in &profile.spec.parameters {
        vars.set(&p.name, p.default.clone().unwrap_or_default());
    }
    for (k, v) in params {
        vars.set(k, v.as_str());
    }
    if let Some(issuer) = cluster
        .oidc_issuer
        .as_deref()
        .filter(|i| !i.trim().is_empty())
    {
        let host_path = issuer_host_path(issuer);
        vars.set(
            "oidcProviderArn",
            crate::irsa::oidc_provider_arn(partition, &cluster.account, &host_path),
        );
        vars.set("oidcIssuer", host_path);
    }
    vars
}

/// Whether an `onlyIf` parameter leaves its item out (the parameter is empty or not given).
pub(super) fn skipped(only_if: &Option<String>, vars: &Vars) -> bool {
    only_if
        .as_deref()
        .is_some_and(|name| vars.get(name).unwrap_or_default().is_empty())
}

/// The inline policies at `field` (`spec.vendorRole`, ...) rendered as (name, document), those
/// whose `onlyIf` parameter is empty left out.
pub(super) fn render_inline_policies(
    field: &str,
    policies: &[crate::profile::InlinePolicy],
    vars: &Vars,
) -> Result<Vec<(String, serde_json::Value)>, PlanError> {
    let mut out = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        if skipped(&p.only_if, vars) {
            continue;
        }
        let f = format!("{field}.inlinePolicies[{i}]");
        out.push((
            vars.render(&f, &p.name)?,
            vars.render_json(&f, &p.document)?,
        ));
    }
    Ok(out)
}

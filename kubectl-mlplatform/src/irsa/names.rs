//! What the user passes, checked: role names (with paths), ServiceAccount names, managed
//! policy ARNs and inline policy documents.

use serde::Serialize;
use serde_json::Value;

use super::error::IrsaError;
use crate::steps::{MAX_ROLE_NAME, shorten_role_name};

/// IAM limits a tag value to 256 characters.
const MAX_TAG_VALUE: usize = 256;
/// IAM limits a role path to 512 characters.
const MAX_ROLE_PATH: usize = 512;

/// `--role-name` split into IAM path and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RoleName {
    /// `/` or `/a/b/`.
    pub(crate) path: String,
    pub(crate) name: String,
}

fn is_iam_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)
}

/// Parses `NAME` or `PATH/NAME` (`a/b/Name`, `/a/b/Name`).
pub(crate) fn parse_role_name(input: &str) -> Result<RoleName, IrsaError> {
    let bad = |reason: &str| IrsaError::BadRoleName {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = input.trim().trim_start_matches('/');
    let (path_part, name) = match trimmed.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", trimmed),
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if name.len() > MAX_ROLE_NAME {
        return Err(bad("the name is longer than 64 characters"));
    }
    if !name.bytes().all(is_iam_name_char) {
        return Err(bad("the name has a character IAM does not allow"));
    }
    let segments: Vec<&str> = if path_part.is_empty() {
        Vec::new()
    } else {
        path_part.split('/').collect()
    };
    if segments
        .iter()
        .any(|s| s.is_empty() || !s.bytes().all(is_iam_name_char))
    {
        return Err(bad(
            "the path has an empty segment or a character IAM does not allow",
        ));
    }
    let path = if segments.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}/", segments.join("/"))
    };
    if path.len() > MAX_ROLE_PATH {
        return Err(bad("the path is longer than 512 characters"));
    }
    Ok(RoleName {
        path,
        name: name.to_owned(),
    })
}

/// `mlplatform-irsa-<cluster>-<namespace>-<sa>` (several SAs: joined), at most 64 characters
/// (longer names keep a prefix and get a hash suffix, so distinct inputs never collide).
pub(crate) fn default_role_name(
    cluster: &str,
    namespace: &str,
    service_accounts: &[String],
) -> String {
    let mut sas: Vec<&str> = service_accounts.iter().map(String::as_str).collect();
    sas.sort_unstable();
    sas.dedup();
    let raw = format!("mlplatform-irsa-{cluster}-{namespace}-{}", sas.join("-"));
    // ServiceAccount names may hold '.', IAM names too; anything else is already allowed.
    shorten_role_name(&raw)
}

/// True for a DNS-1123 subdomain (what a ServiceAccount name must be).
pub(crate) fn is_service_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `--service-account NAME` or `NAMESPACE/NAME`: the namespace part, if any, and the name.
pub(crate) fn split_service_account(raw: &str) -> (Option<&str>, &str) {
    match raw.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, raw),
    }
}

/// The ServiceAccount names in `namespace`; one given as `OTHER/NAME` is refused (one command
/// works in one namespace), as is a name that is not a ServiceAccount name.
pub(crate) fn service_accounts_in(
    raw: &[String],
    namespace: &str,
) -> Result<Vec<String>, IrsaError> {
    let mut out = Vec::new();
    for given in raw {
        let (ns, name) = split_service_account(given);
        if let Some(other) = ns.filter(|ns| *ns != namespace) {
            return Err(IrsaError::OtherNamespace {
                given: given.clone(),
                other: other.to_owned(),
                namespace: namespace.to_owned(),
            });
        }
        if !is_service_account_name(name) {
            return Err(IrsaError::BadServiceAccount(given.clone()));
        }
        out.push(name.to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks a managed policy ARN: `arn:PARTITION:iam::(aws|ACCOUNT):policy/[PATH/]NAME`.
pub(crate) fn check_policy_arn(input: &str) -> Result<String, IrsaError> {
    let bad = |reason: &str| IrsaError::BadPolicyArn {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let arn = input.trim();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
        return Err(bad("it is not arn:PARTITION:iam::ACCOUNT:policy/NAME"));
    };
    if !partition.starts_with("aws") {
        return Err(bad("unknown partition"));
    }
    if *account != "aws" && !crate::arn::is_account_id(account) {
        return Err(bad(
            "the account is neither `aws` nor a 12-digit account ID",
        ));
    }
    let Some(name) = resource.strip_prefix("policy/") else {
        return Err(bad("the resource is not policy/NAME"));
    };
    if name.is_empty() || name.ends_with('/') {
        return Err(bad("the policy name is empty"));
    }
    if arn.len() > MAX_TAG_VALUE {
        return Err(bad(
            "it is longer than 256 characters, which this tool cannot track",
        ));
    }
    Ok(arn.to_owned())
}

/// Parses and checks an inline policy document (`file` names it in errors).
pub(crate) fn parse_inline_policy(file: &str, text: &str) -> Result<Value, IrsaError> {
    let bad = |reason: String| IrsaError::BadInlinePolicy {
        file: file.to_owned(),
        reason,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Some(map) = doc.as_object() else {
        return Err(bad("not a JSON object".to_owned()));
    };
    if let Some(version) = map.get("Version")
        && version != "2012-10-17"
        && version != "2008-10-17"
    {
        return Err(bad(format!("Version {version} is not 2012-10-17")));
    }
    let statements: Vec<&Value> = match map.get("Statement") {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => {
            return Err(bad(
                "no Statement (an object or a non-empty list)".to_owned()
            ));
        }
    };
    for (i, st) in statements.iter().enumerate() {
        let Some(st) = st.as_object() else {
            return Err(bad(format!("Statement {i} is not an object")));
        };
        match st.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            _ => return Err(bad(format!("Statement {i} has no Effect Allow or Deny"))),
        }
        if !st.contains_key("Action") && !st.contains_key("NotAction") {
            return Err(bad(format!("Statement {i} has no Action")));
        }
        if !st.contains_key("Resource") && !st.contains_key("NotResource") {
            return Err(bad(format!("Statement {i} has no Resource")));
        }
        if st.contains_key("Principal") {
            return Err(bad(format!(
                "Statement {i} has a Principal, which identity policies cannot have"
            )));
        }
    }
    Ok(doc)
}

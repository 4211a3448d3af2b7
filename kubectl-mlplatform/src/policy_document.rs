//! IAM policy documents: semantic comparison (so a re-run does not rewrite an equal policy) and
//! decoding of the URL-encoded documents IAM returns.

use serde_json::{Map, Value};

/// True when two policy documents mean the same to IAM: key order, a string vs a one-element
/// array, the order of actions/resources/principals/statements, action case, a bare account
/// ID vs its `:root` ARN as an AWS principal, and a missing `Version` (taken as 2012-10-17,
/// the only version this tool writes) do not count as differences.
pub fn policy_documents_equal(a: &Value, b: &Value) -> bool {
    normalize_policy(a) == normalize_policy(b)
}

/// The canonical form [`policy_documents_equal`] compares.
pub(crate) fn normalize_policy(doc: &Value) -> Value {
    let Value::Object(map) = doc else {
        return doc.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let v = match k.as_str() {
            "Statement" => {
                let mut statements: Vec<Value> = as_list(v)
                    .iter()
                    .map(|st| sort_keys(normalize_statement(st)))
                    .collect();
                statements.sort_by_key(Value::to_string);
                statements.dedup();
                Value::Array(statements)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    out.entry("Version")
        .or_insert_with(|| Value::String("2012-10-17".into()));
    sort_keys(Value::Object(out))
}

/// Objects rebuilt with keys in sorted order at every level, so the text form used to sort
/// statements does not depend on how the input ordered its keys (serde_json may keep
/// insertion order when another crate enables `preserve_order`).
fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// A scalar or list of scalars as a sorted, de-duplicated list of strings.
fn string_set(v: &Value, lowercase: bool) -> Value {
    let mut items: Vec<String> = as_list(v)
        .iter()
        .map(|item| {
            let s = match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if lowercase { s.to_ascii_lowercase() } else { s }
        })
        .collect();
    items.sort();
    items.dedup();
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn normalize_statement(statement: &Value) -> Value {
    let Value::Object(map) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let v = match k.as_str() {
            "Action" | "NotAction" => string_set(v, true),
            "Resource" | "NotResource" => string_set(v, false),
            "Principal" | "NotPrincipal" => normalize_principal(v),
            "Condition" => normalize_condition(v),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn normalize_principal(v: &Value) -> Value {
    let Value::Object(map) = v else {
        return v.clone(); // "*"
    };
    let mut out = Map::new();
    for (k, v) in map {
        let v = if k == "AWS" {
            // IAM stores a bare account ID principal as its root ARN.
            let list: Vec<Value> = as_list(v)
                .into_iter()
                .map(|p| match p.as_str() {
                    Some(s) if crate::arn::is_account_id(s) => {
                        Value::String(format!("arn:aws:iam::{s}:root"))
                    }
                    _ => p,
                })
                .collect();
            string_set(&Value::Array(list), false)
        } else {
            string_set(v, false)
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn normalize_condition(v: &Value) -> Value {
    let Value::Object(operators) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (op, keys) in operators {
        let normalized = match keys {
            Value::Object(keys) => Value::Object(
                keys.iter()
                    .map(|(key, values)| (key.clone(), string_set(values, false)))
                    .collect(),
            ),
            other => other.clone(),
        };
        out.insert(op.clone(), normalized);
    }
    Value::Object(out)
}

/// Decodes a policy document as IAM returns it (URL-encoded JSON, RFC 3986: `+` is literal). Plain JSON is accepted too
/// (some IAM-compatible endpoints do not encode).
pub(crate) fn decode_policy_document(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    let json = if trimmed.starts_with('{') {
        text.to_string()
    } else {
        percent_decode(text)?
    };
    serde_json::from_str(&json).map_err(|e| format!("policy document is not JSON: {e}"))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding at byte {i}"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "policy document is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_and_one_element_array_are_equal() {
        let a = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        let b = json!({"Statement": {"Resource": ["*"], "Action": ["S3:getobject"], "Effect": "Allow"}, "Version": "2012-10-17"});
        assert!(policy_documents_equal(&a, &b));
    }

    #[test]
    fn missing_version_and_order_do_not_matter() {
        let a = json!({"Statement": [{"Effect": "Allow", "Action": ["a:B", "a:A"], "Resource": "*"}, {"Effect": "Deny", "Action": "c:D", "Resource": "*"}]});
        let b = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "c:D", "Resource": "*"}, {"Effect": "Allow", "Action": ["a:A", "a:B"], "Resource": "*"}]});
        assert!(policy_documents_equal(&a, &b));
    }

    #[test]
    fn account_principal_equals_its_root_arn_and_conditions_normalize() {
        let a = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "x"}}}]});
        let b = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::123456789012:root"]}, "Action": ["sts:AssumeRole"], "Condition": {"StringEquals": {"sts:ExternalId": ["x"]}}}]});
        assert!(policy_documents_equal(&a, &b));
    }

    #[test]
    fn real_differences_are_differences() {
        let base = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*"}]});
        for other in [
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*"}]}),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::a/*"}]}),
            // Resource ARNs are case sensitive.
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::A/*"}]}),
            json!({"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*"}]}),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}),
        ] {
            assert!(!policy_documents_equal(&base, &other), "{other}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn action() -> impl Strategy<Value = String> {
            "[a-z]{2,5}:[A-Z][a-zA-Z]{1,10}"
        }

        /// A statement, and the same statement written differently (string vs one-element
        /// list, list order, action case, key order).
        fn statement_pair() -> impl Strategy<Value = (Value, Value)> {
            (
                prop::sample::select(vec!["Allow", "Deny"]),
                prop::collection::vec(action(), 1..4),
                prop::collection::vec("arn:aws:s3:::[a-z]{1,6}/\\*", 1..3),
                any::<bool>(),
            )
                .prop_map(|(effect, actions, resources, scalar)| {
                    let a = json!({"Effect": effect, "Action": actions, "Resource": resources});
                    let mut reversed_actions: Vec<String> =
                        actions.iter().rev().map(|x| x.to_ascii_uppercase()).collect();
                    reversed_actions.dedup();
                    let action_value = if scalar && reversed_actions.len() == 1 {
                        json!(reversed_actions[0])
                    } else {
                        json!(reversed_actions)
                    };
                    let resources_rev: Vec<String> = resources.iter().rev().cloned().collect();
                    let b = json!({"Resource": resources_rev, "Action": action_value, "Effect": effect});
                    (a, b)
                })
        }

        proptest! {
            #[test]
            fn rewritten_documents_are_equal_and_normalizing_is_idempotent(
                pairs in prop::collection::vec(statement_pair(), 1..4),
                reverse in any::<bool>(),
            ) {
                let (mut left, mut right): (Vec<Value>, Vec<Value>) = pairs.into_iter().unzip();
                if reverse {
                    right.reverse();
                }
                let a = json!({"Version": "2012-10-17", "Statement": left.clone()});
                let b = json!({"Statement": right.clone()});
                prop_assert!(policy_documents_equal(&a, &b));
                let once = normalize_policy(&a);
                prop_assert_eq!(normalize_policy(&once), once);
                // Dropping a statement is a real difference (unless it was a duplicate).
                let removed = left.remove(0);
                if !left.iter().any(|s| policy_documents_equal(&json!({"Statement": [s]}), &json!({"Statement": [&removed]}))) {
                    let c = json!({"Version": "2012-10-17", "Statement": left});
                    prop_assert!(!policy_documents_equal(&a, &c));
                }
            }
        }
    }

    #[test]
    fn decodes_url_encoded_documents() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(
            decode_policy_document(encoded).unwrap(),
            json!({"Version": "2012-10-17", "Statement": []})
        );
        assert_eq!(
            decode_policy_document("{\"a\": \"50%\"}").unwrap(),
            json!({"a": "50%"})
        );
        assert!(decode_policy_document("%7").is_err());
        assert!(decode_policy_document("%7B").is_err());
    }
}

//! What the decisions know about the cluster: namespace policies and ServiceAccount IRSA
//! settings, stripped to the few fields the webhook needs and parsed once when cached.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use mlplatform_namespace_policy::{FS_GROUP_ANNOTATION, NamespacePolicy, PolicyError, eks};
use serde::Deserialize as _;

/// A namespace as the webhook keeps it: its parsed policy and fsGroup opt-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceEntry {
    /// `Ok(None)`: not managed. `Err`: managed but its annotations do not parse (fail closed).
    pub policy: Result<Option<NamespacePolicy>, PolicyError>,
    /// `mlplatform.io/fs-group`: `None` when absent; `Err` holds a value that is not a group
    /// ID (its first 64 bytes), for the warning.
    pub fs_group: Option<Result<i64, String>>,
}

impl NamespaceEntry {
    pub fn from_metadata(
        labels: Option<&BTreeMap<String, String>>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Self {
        let fs_group = annotations
            .and_then(|a| a.get(FS_GROUP_ANNOTATION))
            .map(|value| {
                parse_fs_group(value).ok_or_else(|| shorten(value, MAX_QUOTED_VALUE).to_owned())
            });
        Self {
            policy: NamespacePolicy::from_metadata(labels, annotations),
            fs_group,
        }
    }
}

/// A group ID as Kubernetes accepts it for `fsGroup` (0 to 2^31-1).
pub fn parse_fs_group(value: &str) -> Option<i64> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|gid| (0..=i64::from(i32::MAX)).contains(gid))
}

/// Longest annotation value quoted in a warning.
pub(crate) const MAX_QUOTED_VALUE: usize = 64;

/// At most `max` bytes of `value` (whole characters), for messages quoting input.
pub(crate) fn shorten(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// A ServiceAccount as the webhook keeps it: the `eks.amazonaws.com/*` annotations, parsed.
/// Invalid values are dropped (the flag default applies), as the Go webhook does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceAccountEntry {
    pub role_arn: Option<String>,
    pub audience: Option<String>,
    pub sts_regional_endpoints: Option<bool>,
    pub token_expiration: Option<i64>,
}

/// Shared by every ServiceAccount without IRSA annotations, so large clusters cost one
/// pointer per such account.
static NO_IRSA: LazyLock<Arc<ServiceAccountEntry>> =
    LazyLock::new(|| Arc::new(ServiceAccountEntry::default()));

impl ServiceAccountEntry {
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Arc<Self> {
        let Some(annotations) = annotations else {
            return NO_IRSA.clone();
        };
        let get = |key: &str| {
            annotations
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let entry = Self {
            role_arn: get(eks::ROLE_ARN).map(str::to_owned),
            audience: get(eks::AUDIENCE).map(str::to_owned),
            sts_regional_endpoints: get(eks::STS_REGIONAL_ENDPOINTS).and_then(parse_go_bool),
            token_expiration: get(eks::TOKEN_EXPIRATION).and_then(parse_token_expiration),
        };
        if entry == Self::default() {
            NO_IRSA.clone()
        } else {
            Arc::new(entry)
        }
    }
}

/// Go's `strconv.ParseBool`, which is what users of the Go webhook write in annotations.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A token lifetime in seconds, raised to the kubelet's minimum; `None` when not an integer.
pub fn parse_token_expiration(value: &str) -> Option<i64> {
    value.trim().parse::<i64>().ok().map(floor_token_expiration)
}

pub fn floor_token_expiration(seconds: i64) -> i64 {
    seconds.max(eks::MIN_TOKEN_EXPIRATION)
}

/// The answer to "what do you know about X".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(Arc<T>),
    /// Known not to exist.
    NotFound,
    /// Not in the cache yet: the caller may fetch it and decide again.
    Missing,
    /// Not in the cache and fetching it failed: decide without it.
    Unavailable,
}

/// A cache key a decision needed but did not find.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Missing {
    Namespace(String),
    ServiceAccount { namespace: String, name: String },
}

/// Read access to cached cluster state. Implemented by the live cache and by test fixtures.
pub trait ClusterView {
    fn namespace(&self, name: &str) -> Lookup<NamespaceEntry>;
    fn service_account(&self, namespace: &str, name: &str) -> Lookup<ServiceAccountEntry>;
}

/// A fixed cluster state (tests, golden fixtures, benchmarks). Absent means `NotFound`.
#[derive(Debug, Default, Clone)]
pub struct StaticClusterView {
    namespaces: HashMap<String, Arc<NamespaceEntry>>,
    service_accounts: HashMap<(String, String), Arc<ServiceAccountEntry>>,
}

/// The metadata fields read from fixture objects.
#[derive(Debug, Default, serde::Deserialize)]
struct FixtureMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, serde::Deserialize)]
struct FixtureObject {
    #[serde(default)]
    metadata: FixtureMeta,
}

impl StaticClusterView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_namespace(
        &mut self,
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> &mut Self {
        self.namespaces.insert(
            name.to_owned(),
            Arc::new(NamespaceEntry::from_metadata(labels, annotations)),
        );
        self
    }

    pub fn add_service_account(
        &mut self,
        namespace: &str,
        name: &str,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> &mut Self {
        self.service_accounts.insert(
            (namespace.to_owned(), name.to_owned()),
            ServiceAccountEntry::from_annotations(annotations),
        );
        self
    }

    /// Builds a view from Kubernetes object JSON (`{"metadata": {...}}`), as fixtures hold it.
    pub fn from_objects(
        namespaces: &[serde_json::Value],
        service_accounts: &[serde_json::Value],
    ) -> Result<Self, serde_json::Error> {
        let mut view = Self::new();
        for ns in namespaces {
            let obj = FixtureObject::deserialize(ns)?;
            let m = obj.metadata;
            view.add_namespace(&m.name, m.labels.as_ref(), m.annotations.as_ref());
        }
        for sa in service_accounts {
            let obj = FixtureObject::deserialize(sa)?;
            let m = obj.metadata;
            view.add_service_account(&m.namespace, &m.name, m.annotations.as_ref());
        }
        Ok(view)
    }
}

impl ClusterView for StaticClusterView {
    fn namespace(&self, name: &str) -> Lookup<NamespaceEntry> {
        self.namespaces
            .get(name)
            .map_or(Lookup::NotFound, |e| Lookup::Found(e.clone()))
    }

    fn service_account(&self, namespace: &str, name: &str) -> Lookup<ServiceAccountEntry> {
        self.service_accounts
            .get(&(namespace.to_owned(), name.to_owned()))
            .map_or(Lookup::NotFound, |e| Lookup::Found(e.clone()))
    }
}

/// Wraps a view so that `Missing` becomes `Unavailable`: used for the second decision after a
/// fetch failed, so the decision takes its fallback instead of asking again.
pub struct FinalView<'a, V>(pub &'a V);

impl<V: ClusterView> ClusterView for FinalView<'_, V> {
    fn namespace(&self, name: &str) -> Lookup<NamespaceEntry> {
        match self.0.namespace(name) {
            Lookup::Missing => Lookup::Unavailable,
            other => other,
        }
    }

    fn service_account(&self, namespace: &str, name: &str) -> Lookup<ServiceAccountEntry> {
        match self.0.service_account(namespace, name) {
            Lookup::Missing => Lookup::Unavailable,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn service_account_entry_parses_and_floors() {
        let e = ServiceAccountEntry::from_annotations(Some(&map(&[
            (eks::ROLE_ARN, "arn:aws:iam::111122223333:role/r"),
            (eks::STS_REGIONAL_ENDPOINTS, "True"),
            (eks::TOKEN_EXPIRATION, "100"),
            ("unrelated", "x"),
        ])));
        assert_eq!(
            e.role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/r")
        );
        assert_eq!(e.sts_regional_endpoints, Some(true));
        assert_eq!(e.token_expiration, Some(600));
        assert_eq!(e.audience, None);
    }

    #[test]
    fn invalid_values_are_dropped_and_plain_accounts_share_one_entry() {
        let e = ServiceAccountEntry::from_annotations(Some(&map(&[
            (eks::STS_REGIONAL_ENDPOINTS, "yes"),
            (eks::TOKEN_EXPIRATION, "1h"),
        ])));
        assert!(Arc::ptr_eq(&e, &NO_IRSA));
        let none = ServiceAccountEntry::from_annotations(None);
        assert!(Arc::ptr_eq(&none, &NO_IRSA));
    }

    #[test]
    fn fs_group_is_a_group_id_and_invalid_values_are_kept_for_the_warning() {
        for (value, expected) in [
            ("65534", Some(65534)),
            (" 0 ", Some(0)),
            ("2147483647", Some(2_147_483_647)),
            ("2147483648", None),
            ("-1", None),
            ("1.5", None),
            ("nobody", None),
            ("", None),
        ] {
            assert_eq!(parse_fs_group(value), expected, "{value:?}");
        }
        let entry = |value: &str| {
            NamespaceEntry::from_metadata(None, Some(&map(&[(FS_GROUP_ANNOTATION, value)])))
                .fs_group
        };
        assert_eq!(entry("2000"), Some(Ok(2000)));
        assert_eq!(entry("staff"), Some(Err("staff".to_owned())));
        assert_eq!(entry(&"é".repeat(40)).unwrap().unwrap_err(), "é".repeat(32));
        assert_eq!(NamespaceEntry::from_metadata(None, None).fs_group, None);
    }

    #[test]
    fn final_view_turns_missing_into_unavailable() {
        struct Empty;
        impl ClusterView for Empty {
            fn namespace(&self, _: &str) -> Lookup<NamespaceEntry> {
                Lookup::Missing
            }
            fn service_account(&self, _: &str, _: &str) -> Lookup<ServiceAccountEntry> {
                Lookup::NotFound
            }
        }
        assert_eq!(FinalView(&Empty).namespace("x"), Lookup::Unavailable);
        assert_eq!(
            FinalView(&Empty).service_account("x", "y"),
            Lookup::NotFound
        );
    }
}

//! Small borrowed views of the Kubernetes objects under review: only the fields a decision
//! reads. Unknown fields are skipped by serde, nothing is cloned, strings borrow from the body
//! unless they contain escapes. Lists and maps a decision only asks one question of (does an
//! env var, volume or mount with this name exist; what is this one annotation) are read into
//! that answer instead of a collection: every element is still checked as the full type
//! would be, so what parses (and what is rejected, with which message) does not change.

use std::borrow::Cow;
use std::marker::PhantomData;

use mlplatform_namespace_policy::FS_GROUP_ANNOTATION;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A string borrowed from the request body when it has no escapes, owned otherwise.
/// (serde borrows a bare `Cow<str>` field only; inside `Option`, maps and vectors it would
/// always allocate, hence this newtype.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

type Str<'a> = Text<'a>;

/// Which keys of a string map a decision reads.
pub trait KeepKeys {
    fn keep(key: &str) -> bool;
}

/// Annotations: only `eks.amazonaws.com/*` and `mlplatform.io/fs-group` are read.
#[derive(Debug)]
pub struct AnnotationKeys;

impl KeepKeys for AnnotationKeys {
    fn keep(key: &str) -> bool {
        key.starts_with("eks.amazonaws.com/") || key == FS_GROUP_ANNOTATION
    }
}

/// Node selector: only the OS labels are read.
#[derive(Debug)]
pub struct OsKeys;

impl KeepKeys for OsKeys {
    fn keep(key: &str) -> bool {
        matches!(key, "kubernetes.io/os" | "beta.kubernetes.io/os")
    }
}

/// A JSON object of strings (annotations, a node selector) of which only the entries `K`
/// keeps are stored; usually none, so nothing is allocated. Every value must still be a
/// string, as in a map of strings; a repeated key's last value wins, as in a map.
#[derive(Debug)]
pub struct StrMap<'a, K> {
    entries: Vec<(Str<'a>, Str<'a>)>,
    keys: PhantomData<K>,
}

impl<K> Default for StrMap<'_, K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            keys: PhantomData,
        }
    }
}

impl<'a, K> StrMap<'a, K> {
    pub(crate) fn push(&mut self, key: Str<'a>, value: Str<'a>) {
        self.entries.push((key, value));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| &**v)
    }
}

impl<'de: 'a, 'a, K: KeepKeys> Deserialize<'de> for StrMap<'a, K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<'a, K>(PhantomData<(Str<'a>, K)>);
        impl<'de: 'a, 'a, K: KeepKeys> Visitor<'de> for MapVisitor<'a, K> {
            type Value = StrMap<'a, K>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    let value = map.next_value::<Str<'de>>()?;
                    if K::keep(&key) {
                        entries.push((key, value));
                    }
                }
                Ok(StrMap {
                    entries,
                    keys: PhantomData,
                })
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Reads a JSON array element by element into `acc` without keeping the elements.
fn fold_seq<'de, D, E, A>(deserializer: D, acc: A, f: fn(A, E) -> A) -> Result<A, D::Error>
where
    D: Deserializer<'de>,
    E: Deserialize<'de>,
{
    struct Fold<E, A> {
        acc: A,
        f: fn(A, E) -> A,
    }
    impl<'de, E: Deserialize<'de>, A> Visitor<'de> for Fold<E, A> {
        type Value = A;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<A, S::Error> {
            let Fold { mut acc, f } = self;
            while let Some(element) = seq.next_element::<E>()? {
                acc = f(acc, element);
            }
            Ok(acc)
        }
    }
    deserializer.deserialize_seq(Fold { acc, f })
}

/// Anything with a `name` field (env vars, volumes).
#[derive(Debug, Deserialize)]
pub struct Named<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub mount_path: Str<'a>,
}

/// The IRSA env var names present in a container's `env`, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvNames(u8);

impl EnvNames {
    pub const ROLE_ARN: u8 = 1;
    pub const TOKEN_FILE: u8 = 2;
    pub const REGION: u8 = 4;
    pub const DEFAULT_REGION: u8 = 8;
    pub const STS_REGIONAL_ENDPOINTS: u8 = 16;

    fn bit(name: &str) -> u8 {
        match name {
            "AWS_ROLE_ARN" => Self::ROLE_ARN,
            "AWS_WEB_IDENTITY_TOKEN_FILE" => Self::TOKEN_FILE,
            "AWS_REGION" => Self::REGION,
            "AWS_DEFAULT_REGION" => Self::DEFAULT_REGION,
            "AWS_STS_REGIONAL_ENDPOINTS" => Self::STS_REGIONAL_ENDPOINTS,
            _ => 0,
        }
    }

    /// With the bit of env var `name`, if it is one of them.
    pub(crate) fn with(self, name: &str) -> Self {
        EnvNames(self.0 | Self::bit(name))
    }

    /// True when any of `bits` is set by the user.
    pub fn any(self, bits: u8) -> bool {
        self.0 & bits != 0
    }
}

impl<'de> Deserialize<'de> for EnvNames {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fold_seq(deserializer, EnvNames(0), |names, var: Named<'de>| {
            EnvNames(names.0 | Self::bit(&var.name))
        })
    }
}

/// Whether a list of volumes (by name) or volume mounts (by name or path) already holds the
/// IRSA token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HasToken(pub bool);

/// `spec.volumes`: is there a volume named `aws-iam-token`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Volumes(pub HasToken);

impl<'de> Deserialize<'de> for Volumes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fold_seq(
            deserializer,
            Volumes::default(),
            |found, volume: Named<'de>| Volumes(HasToken(found.0.0 || volume.name == TOKEN_VOLUME)),
        )
    }
}

/// A container's `volumeMounts`: does one use the token volume's name or mount path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeMounts(pub HasToken);

impl<'de> Deserialize<'de> for VolumeMounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fold_seq(
            deserializer,
            VolumeMounts::default(),
            |found, mount: VolumeMount<'de>| {
                VolumeMounts(HasToken(
                    found.0.0 || mount.name == TOKEN_VOLUME || mount.mount_path == TOKEN_MOUNT_PATH,
                ))
            },
        )
    }
}

/// Name of the projected token volume IRSA injects.
pub const TOKEN_VOLUME: &str = "aws-iam-token";
/// Where the token volume is mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub generate_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub annotations: Option<StrMap<'a, AnnotationKeys>>,
    /// Set once deletion has started (finalizers pending).
    #[serde(borrow, default)]
    pub deletion_timestamp: Option<Str<'a>>,
}

impl ObjectMeta<'_> {
    /// An annotation [`AnnotationKeys`] keeps (the only ones read).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        debug_assert!(AnnotationKeys::keep(key), "annotation {key} is not kept");
        self.annotations.as_ref()?.get(key)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    /// `None` when absent or null: the patch then creates the array.
    #[serde(default)]
    pub env: Option<EnvNames>,
    #[serde(default)]
    pub volume_mounts: Option<VolumeMounts>,
}

/// The service-account fields of a pod spec (all that validation needs).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodServiceAccount<'a> {
    #[serde(borrow, default)]
    pub service_account_name: Option<Str<'a>>,
    /// Deprecated alias the API server still copies into `serviceAccountName`.
    #[serde(borrow, default)]
    pub service_account: Option<Str<'a>>,
}

impl PodServiceAccount<'_> {
    pub fn effective(&self) -> &str {
        effective_service_account(&self.service_account_name, &self.service_account)
    }
}

/// The name as the API server resolves it: `serviceAccountName`, else the deprecated
/// `serviceAccount`, else `default`.
fn effective_service_account<'s>(
    service_account_name: &'s Option<Str<'_>>,
    service_account: &'s Option<Str<'_>>,
) -> &'s str {
    let name = [service_account_name, service_account]
        .into_iter()
        .flatten()
        .map(|s| s.as_ref())
        .find(|s| !s.is_empty())
        .unwrap_or("");
    mlplatform_namespace_policy::effective_service_account(name)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec<'a> {
    #[serde(borrow, default)]
    pub service_account_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub service_account: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub node_selector: Option<StrMap<'a, OsKeys>>,
    #[serde(borrow, default)]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<Container<'a>>>,
    #[serde(default)]
    pub volumes: Option<Volumes>,
    /// `None` when absent or null: an fsGroup patch then adds the whole object.
    #[serde(default)]
    pub security_context: Option<PodSecurityContext>,
}

/// `spec.securityContext`: only `fsGroup`, which the webhook never overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(default)]
    pub fs_group: Option<i64>,
}

impl PodSpec<'_> {
    pub fn effective_service_account(&self) -> &str {
        effective_service_account(&self.service_account_name, &self.service_account)
    }
}

#[derive(Debug, Deserialize)]
pub struct Pod<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub spec: PodSpec<'a>,
}

#[derive(Debug, Deserialize)]
pub struct ServiceAccount<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
}

/// A Pod for validation: metadata and the service-account fields only.
#[derive(Debug, Deserialize)]
pub struct PodForValidation<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub spec: PodServiceAccount<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PodTemplate<'a> {
    #[serde(borrow, default)]
    pub spec: PodServiceAccount<'a>,
}

/// The spec of a Deployment, StatefulSet, DaemonSet, ReplicaSet or Job (`spec.template`), or
/// of a CronJob (`spec.jobTemplate.spec.template`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec<'a> {
    #[serde(borrow, default)]
    pub template: PodTemplate<'a>,
    #[serde(borrow, default)]
    pub job_template: Option<Box<JobTemplate<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct JobTemplate<'a> {
    #[serde(borrow, default)]
    pub spec: WorkloadSpec<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Workload<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub spec: WorkloadSpec<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlplatform_namespace_policy::eks;

    #[test]
    fn effective_service_account_prefers_name_then_deprecated_then_default() {
        let parse =
            |s: &'static str| serde_json::from_str::<PodServiceAccount<'static>>(s).unwrap();
        assert_eq!(
            parse(r#"{"serviceAccountName":"a","serviceAccount":"b"}"#).effective(),
            "a"
        );
        assert_eq!(
            parse(r#"{"serviceAccountName":"","serviceAccount":"b"}"#).effective(),
            "b"
        );
        assert_eq!(parse(r#"{}"#).effective(), "default");
    }

    #[test]
    fn escaped_strings_are_owned_plain_ones_borrowed() {
        let pod: Pod<'_> = serde_json::from_str(
            r#"{"metadata":{"name":"p","annotations":{"eks.amazonaws.com/x":"a\"b"}},"spec":{"containers":[{"name":"c","env":null}],"unknown":[1,2]}}"#,
        )
        .unwrap();
        assert!(matches!(pod.metadata.name, Some(Text(Cow::Borrowed("p")))));
        let name = &pod.spec.containers.as_ref().unwrap()[0].name;
        assert!(matches!(name, Text(Cow::Borrowed("c"))));
        assert_eq!(pod.metadata.annotation("eks.amazonaws.com/x"), Some("a\"b"));
        let containers = pod.spec.containers.unwrap();
        assert!(containers[0].env.is_none());
    }

    #[test]
    fn lists_become_their_answers_and_maps_keep_only_what_is_read() {
        let pod: Pod<'_> = serde_json::from_str(
            r#"{"metadata":{"annotations":{"a":"1","eks.amazonaws.com/skip-containers":"x","eks.amazonaws.com/skip-containers":"y"}},
               "spec":{"nodeSelector":{"kubernetes.io/os":"windows","zone":"a"},
                       "volumes":[{"name":"v"},{"name":"aws-iam-token"}],
                       "containers":[{"name":"c","env":[{"name":"AWS_REGION"},{"name":"X"}],"volumeMounts":[{"name":"m","mountPath":"/var/run/secrets/eks.amazonaws.com/serviceaccount"}]},
                                     {"name":"d","env":[],"volumeMounts":[{"name":"m","mountPath":"/m"}]}]}}"#,
        )
        .unwrap();
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations.entries.len(),
            2,
            "only eks.amazonaws.com/* kept"
        );
        assert_eq!(pod.metadata.annotation(eks::SKIP_CONTAINERS), Some("y"));
        let selector = pod.spec.node_selector.as_ref().unwrap();
        assert_eq!(selector.get("kubernetes.io/os"), Some("windows"));
        assert_eq!(selector.get("zone"), None);
        assert_eq!(pod.spec.volumes, Some(Volumes(HasToken(true))));
        let containers = pod.spec.containers.as_ref().unwrap();
        let env = containers[0].env.unwrap();
        assert!(env.any(EnvNames::REGION) && !env.any(EnvNames::ROLE_ARN));
        assert_eq!(
            containers[0].volume_mounts,
            Some(VolumeMounts(HasToken(true)))
        );
        assert_eq!(containers[1].env, Some(EnvNames::default()));
        assert_eq!(
            containers[1].volume_mounts,
            Some(VolumeMounts(HasToken(false)))
        );
    }

    #[test]
    fn every_annotation_a_decision_reads_is_kept() {
        for key in [
            eks::ROLE_ARN,
            eks::AUDIENCE,
            eks::STS_REGIONAL_ENDPOINTS,
            eks::TOKEN_EXPIRATION,
            eks::SKIP_CONTAINERS,
            FS_GROUP_ANNOTATION,
        ] {
            assert!(AnnotationKeys::keep(key), "{key}");
        }
    }

    #[test]
    fn elements_and_values_are_checked_as_before() {
        for (object, expected) in [
            (r#"{"spec":{"containers":"x"}}"#, "expected a sequence"),
            (r#"{"spec":{"volumes":[{"name":1}]}}"#, "expected a string"),
            (
                r#"{"spec":{"containers":[{"env":[1]}]}}"#,
                "expected struct Named",
            ),
            (
                r#"{"metadata":{"annotations":{"a":1}}}"#,
                "expected a string",
            ),
            (r#"{"metadata":{"annotations":[]}}"#, "expected a map"),
        ] {
            let err = serde_json::from_str::<Pod<'_>>(object)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{object}: {err}");
        }
    }
}

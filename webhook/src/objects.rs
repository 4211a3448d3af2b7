//! Small borrowed views of the Kubernetes objects under review: only the fields a decision
//! reads. Unknown fields are skipped by serde, nothing is cloned, strings borrow from the body
//! unless they contain escapes.

use std::borrow::Cow;
use std::collections::HashMap;

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
type StrMap<'a> = HashMap<Text<'a>, Text<'a>>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub generate_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub annotations: Option<StrMap<'a>>,
    /// Set once deletion has started (finalizers pending).
    #[serde(borrow, default)]
    pub deletion_timestamp: Option<Str<'a>>,
}

impl ObjectMeta<'_> {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(|v| &**v)
    }
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    /// `None` when absent or null: the patch then creates the array.
    #[serde(borrow, default)]
    pub env: Option<Vec<Named<'a>>>,
    #[serde(borrow, default)]
    pub volume_mounts: Option<Vec<VolumeMount<'a>>>,
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
    pub node_selector: Option<StrMap<'a>>,
    #[serde(borrow, default)]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub volumes: Option<Vec<Named<'a>>>,
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
            r#"{"metadata":{"name":"p","annotations":{"k":"a\"b"}},"spec":{"containers":[{"name":"c","env":null}],"unknown":[1,2]}}"#,
        )
        .unwrap();
        assert!(matches!(pod.metadata.name, Some(Text(Cow::Borrowed("p")))));
        let name = &pod.spec.containers.as_ref().unwrap()[0].name;
        assert!(matches!(name, Text(Cow::Borrowed("c"))));
        assert_eq!(pod.metadata.annotation("k"), Some("a\"b"));
        let containers = pod.spec.containers.unwrap();
        assert!(containers[0].env.is_none());
    }
}

//! The namespaces every review is tried in: the plugin's policies in each enforcement mode,
//! broken and unmanaged ones, and a fixture's own namespace.

use std::collections::BTreeMap;

use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, ENFORCEMENT_LABEL, EnforcementMode, MANAGED_LABEL, NamespacePolicy,
    SYSTEM_SERVICE_ACCOUNTS_ANNOTATION, USER_SERVICE_ACCOUNT_ANNOTATION,
};
use mlplatform_webhook::cluster::StaticClusterView;
use serde_json::{Value, json};

pub(crate) const MODES: [EnforcementMode; 3] = [
    EnforcementMode::Enforce,
    EnforcementMode::Warn,
    EnforcementMode::Audit,
];
pub(crate) const ROLE: &str = "arn:aws:iam::123456789012:role/ml-user";

#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Namespace {
    pub(crate) fn new(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Self {
            name: name.to_owned(),
            labels: map(labels),
            annotations: map(annotations),
        }
    }

    /// As the plugin writes it: `NamespacePolicy`'s labels and annotations.
    pub(crate) fn written(name: &str, policy: &NamespacePolicy) -> Self {
        Self {
            name: name.to_owned(),
            labels: policy.to_labels(),
            annotations: policy.to_annotations(),
        }
    }

    /// Its labels as the API server keeps them (with `kubernetes.io/metadata.name`).
    pub(crate) fn server_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), self.name.clone());
        labels
    }

    /// The object the API server binds to `namespaceObject` (empty maps omitted, as in Go).
    pub(crate) fn object(&self) -> Value {
        let mut metadata = json!({"name": self.name, "labels": self.server_labels()});
        if !self.annotations.is_empty() {
            metadata["annotations"] = json!(self.annotations);
        }
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata, "spec": {}, "status": {"phase": "Active"}})
    }

    pub(crate) fn view(&self) -> StaticClusterView {
        StaticClusterView::from_objects(&[self.object()], &[]).unwrap()
    }
}

pub(crate) fn policy(
    user: &str,
    system: &[&str],
    role: Option<&str>,
    mode: EnforcementMode,
) -> NamespacePolicy {
    NamespacePolicy {
        user_service_account: user.to_owned(),
        system_service_accounts: system.iter().map(|s| (*s).to_owned()).collect(),
        irsa_role_arn: role.map(str::to_owned),
        enforcement: mode,
    }
}

/// The namespace policies every review is tried under, for namespace `ns`.
pub(crate) fn namespace_policies(ns: &str) -> Vec<(String, Namespace)> {
    let mut out = Vec::new();
    for mode in MODES {
        let m = mode.as_str();
        let label = [(MANAGED_LABEL, "true"), (ENFORCEMENT_LABEL, m)];
        for (what, p) in [
            ("user ml-user", policy("ml-user", &[], None, mode)),
            (
                "user ml-user, system ml-system",
                policy("ml-user", &["ml-system"], None, mode),
            ),
            (
                "default listed as system",
                policy("ml-user", &["ml-system", "default"], None, mode),
            ),
            ("user is default", policy("default", &[], None, mode)),
            (
                "ml-user not allowed",
                policy("ml-admin", &["ml-system", "ops"], Some(ROLE), mode),
            ),
        ] {
            out.push((format!("{m}: {what}"), Namespace::written(ns, &p)));
        }
        let spaced_mode = format!(" {m} ");
        out.push((
            format!("{m}: values padded with blanks"),
            Namespace::new(
                ns,
                &label,
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, " ml-admin "),
                    (
                        SYSTEM_SERVICE_ACCOUNTS_ANNOTATION,
                        " , ml-system ,, default ",
                    ),
                    (ENFORCEMENT_ANNOTATION, &spaced_mode),
                ],
            ),
        ));
        out.push((
            format!("{m}: broken, no user SA"),
            Namespace::new(ns, &label, &[(ENFORCEMENT_ANNOTATION, m)]),
        ));
        out.push((
            format!("{m}: broken, blank user SA"),
            Namespace::new(
                ns,
                &label,
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, "  "),
                    (ENFORCEMENT_ANNOTATION, m),
                ],
            ),
        ));
        out.push((
            format!("label {m}: broken, enforcement annotation \"block\""),
            Namespace::new(
                ns,
                &label,
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin"),
                    (ENFORCEMENT_ANNOTATION, "block"),
                ],
            ),
        ));
        out.push((
            format!("{m}: unmanaged"),
            Namespace::new(
                ns,
                &[(ENFORCEMENT_LABEL, m)],
                &[
                    (USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin"),
                    (ENFORCEMENT_ANNOTATION, m),
                ],
            ),
        ));
        out.push((
            format!("{m}: managed label \"false\""),
            Namespace::new(
                ns,
                &[(MANAGED_LABEL, "false"), (ENFORCEMENT_LABEL, m)],
                &[(USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin")],
            ),
        ));
    }
    out.push((
        "no enforcement annotation nor label (enforce)".into(),
        Namespace::new(
            ns,
            &[(MANAGED_LABEL, "true")],
            &[(USER_SERVICE_ACCOUNT_ANNOTATION, "ml-admin")],
        ),
    ));
    out.push((
        "broken, no annotations at all, no enforcement label".into(),
        Namespace::new(ns, &[(MANAGED_LABEL, "true")], &[]),
    ));
    out
}

/// A fixture's own namespace, labelled as the plugin would label it.
pub(crate) fn labelled_as_written(object: &Value) -> Namespace {
    let meta = &object["metadata"];
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    };
    let mut labels = strings(&meta["labels"]);
    labels.remove("kubernetes.io/metadata.name");
    let annotations = strings(&meta["annotations"]);
    if let Some(Ok(mode)) = annotations
        .get(ENFORCEMENT_ANNOTATION)
        .map(|v| v.parse::<EnforcementMode>())
    {
        labels.insert(ENFORCEMENT_LABEL.into(), mode.as_str().into());
    }
    Namespace {
        name: meta["name"].as_str().unwrap_or_default().to_owned(),
        labels,
        annotations,
    }
}

/// The review as if sent for namespace `ns`.
pub(crate) fn in_namespace(review: &Value, ns: &str) -> Value {
    let mut review = review.clone();
    review["request"]["namespace"] = json!(ns);
    for field in ["object", "oldObject"] {
        if review["request"][field]["metadata"].is_object() {
            review["request"][field]["metadata"]["namespace"] = json!(ns);
        }
    }
    review
}

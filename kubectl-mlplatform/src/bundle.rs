//! The per-namespace bundle (seed concurrent-namespace-roles.md, fixed): the managed namespace
//! with its SPEC §3 policy, the shared system ClusterRole, and the system/user ServiceAccounts
//! with their bindings, all rendered purely from a profile.

use std::collections::BTreeMap;

use crate::vocabulary::{IRSA_ROLE_ARN_ANNOTATION, PROFILE_ANNOTATION, PROFILE_LABEL};
use mlplatform_namespace_policy::{NamespacePolicy, eks};
use serde_json::{Value, json};

use crate::objects::{Kind, KubeObject, new_namespace};
use crate::profile::{NamespaceBundle, Profile, RbacRule, TemplateError, Vars};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Everything one namespace of a profile consists of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bundle {
    pub(crate) namespace: String,
    /// The namespace's labels and annotations we own (the namespace object itself may predate us).
    pub(crate) namespace_labels: BTreeMap<String, String>,
    pub(crate) namespace_annotations: BTreeMap<String, String>,
    pub(crate) policy: NamespacePolicy,
    /// Shared across every namespace of the profile (the system ClusterRole).
    pub(crate) cluster_scoped: Vec<KubeObject>,
    /// Inside the namespace: ServiceAccounts, Roles, RoleBindings.
    pub(crate) namespaced: Vec<KubeObject>,
    pub(crate) user_service_account: String,
    pub(crate) system_service_account: Option<String>,
}

impl Bundle {
    /// The IRSA role the user ServiceAccount should carry (SPEC §3): into the policy and the
    /// namespace annotations, and onto the bundle's ServiceAccounts named in `service_accounts`.
    pub(crate) fn set_irsa_role(&mut self, role_arn: &str, service_accounts: &[String]) {
        if service_accounts.contains(&self.user_service_account) {
            self.policy.irsa_role_arn = Some(role_arn.to_owned());
            self.namespace_annotations
                .insert(IRSA_ROLE_ARN_ANNOTATION.to_owned(), role_arn.to_owned());
        }
        for obj in &mut self.namespaced {
            if obj.key.kind == Kind::ServiceAccount && service_accounts.contains(&obj.key.name) {
                obj.body["metadata"]["annotations"][eks::ROLE_ARN] = json!(role_arn);
            }
        }
    }

    /// Names of the ServiceAccounts the bundle creates.
    pub(crate) fn created_service_accounts(&self) -> Vec<String> {
        self.namespaced
            .iter()
            .filter(|o| o.key.kind == Kind::ServiceAccount)
            .map(|o| o.key.name.clone())
            .collect()
    }

    /// The namespace object as connect creates it when it does not exist yet.
    pub(crate) fn namespace_object(&self, profile: &str) -> KubeObject {
        let mut obj = new_namespace(&self.namespace, profile);
        if let Some(labels) = obj.body["metadata"]["labels"].as_object_mut() {
            for (k, v) in &self.namespace_labels {
                labels.insert(k.clone(), v.clone().into());
            }
        }
        if let Some(annotations) = obj.body["metadata"]["annotations"].as_object_mut() {
            for (k, v) in &self.namespace_annotations {
                annotations.insert(k.clone(), v.clone().into());
            }
        }
        obj
    }
}

/// A RoleBinding in `ns` of a Role or ClusterRole to one ServiceAccount of `namespace`.
fn service_account_binding(
    ns: Option<&str>,
    binding: &str,
    profile: &str,
    role_kind: &str,
    role_name: &str,
    service_account: &str,
    namespace: &str,
) -> KubeObject {
    KubeObject::new(
        Kind::RoleBinding,
        ns,
        binding,
        profile,
        json!({
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        }),
    )
}

fn rules_json(rules: &[RbacRule]) -> Value {
    serde_json::to_value(rules).unwrap_or(Value::Null)
}

/// Renders the bundle of `profile` for `namespace`; `vars` must hold the profile's placeholders
/// (`namespace` is set here).
pub(crate) fn render_bundle(
    profile: &Profile,
    spec: &NamespaceBundle,
    vars: &Vars,
    namespace: &str,
) -> Result<Bundle, TemplateError> {
    let mut vars = vars.clone();
    vars.set("namespace", namespace);
    let name = profile.name();
    let r = |field: &str, t: &str| vars.render(field, t);
    let ns = Some(namespace);

    let mut cluster_scoped = Vec::new();
    let mut namespaced = Vec::new();

    let system_cluster_role = spec
        .system_cluster_role
        .as_ref()
        .map(|role| r("spec.namespace.systemClusterRole.name", &role.name).map(|n| (n, role)))
        .transpose()?;
    if let Some((cr_name, role)) = &system_cluster_role {
        cluster_scoped.push(KubeObject::new(
            Kind::ClusterRole,
            None,
            cr_name,
            name,
            json!({ "rules": rules_json(&role.rules) }),
        ));
    }

    let system_sa = spec
        .system_service_account
        .as_deref()
        .map(|t| r("spec.namespace.systemServiceAccount", t))
        .transpose()?;
    if let Some(sa) = system_sa.as_ref().filter(|_| spec.create_service_accounts) {
        namespaced.push(KubeObject::new(
            Kind::ServiceAccount,
            ns,
            sa,
            name,
            json!({}),
        ));
    }
    if let (Some(binding), Some(sa), Some((cr_name, _))) =
        (&spec.system_role_binding, &system_sa, &system_cluster_role)
    {
        let binding = r("spec.namespace.systemRoleBinding", binding)?;
        namespaced.push(service_account_binding(
            ns,
            &binding,
            name,
            "ClusterRole",
            cr_name,
            sa,
            namespace,
        ));
    }
    if let (Some(binding), Some(access), Some((cr_name, _))) = (
        &spec.vendor_role_binding,
        &profile.spec.cluster_access,
        &system_cluster_role,
    ) {
        let binding = r("spec.namespace.vendorRoleBinding", binding)?;
        let group = r("spec.clusterAccess.group", &access.group)?;
        namespaced.push(KubeObject::new(
            Kind::RoleBinding,
            ns,
            &binding,
            name,
            json!({
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cr_name},
                "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
            }),
        ));
    }

    let user_sa = r(
        "spec.namespace.userServiceAccount",
        &spec.user_service_account,
    )?;
    if spec.create_service_accounts {
        namespaced.push(KubeObject::new(
            Kind::ServiceAccount,
            ns,
            &user_sa,
            name,
            json!({}),
        ));
    }
    if let (Some(role), Some(binding)) = (&spec.user_role, &spec.user_role_binding) {
        let role_name = r("spec.namespace.userRole.name", &role.name)?;
        let binding = r("spec.namespace.userRoleBinding", binding)?;
        namespaced.push(KubeObject::new(
            Kind::Role,
            ns,
            &role_name,
            name,
            json!({ "rules": rules_json(&role.rules) }),
        ));
        namespaced.push(service_account_binding(
            ns, &binding, name, "Role", &role_name, &user_sa, namespace,
        ));
    }

    let mut system_service_accounts: Vec<String> = system_sa.iter().cloned().collect();
    for (i, extra) in spec.extra_system_service_accounts.iter().enumerate() {
        system_service_accounts.push(r(
            &format!("spec.namespace.extraSystemServiceAccounts[{i}]"),
            extra,
        )?);
    }
    let policy = NamespacePolicy {
        user_service_account: user_sa.clone(),
        system_service_accounts,
        irsa_role_arn: None,
        enforcement: spec.enforcement,
    };
    let mut namespace_annotations = policy.to_annotations();
    namespace_annotations.insert(PROFILE_ANNOTATION.to_owned(), name.to_owned());
    // The managed label and the enforcement label (admission policy bindings select by it).
    let mut namespace_labels = policy.to_labels();
    namespace_labels.insert(PROFILE_LABEL.to_owned(), name.to_owned());

    Ok(Bundle {
        namespace: namespace.to_owned(),
        namespace_labels,
        namespace_annotations,
        policy,
        cluster_scoped,
        namespaced,
        user_service_account: user_sa,
        system_service_account: system_sa,
    })
}

//! RBAC authorization over stored Roles, ClusterRoles and their bindings, as the
//! apiserver's RBAC authorizer decides a SubjectAccessReview.

use serde_json::{Value, json};

use super::json::str_list;
use super::selectors::label_selector_object_matches as label_selector_matches;

/// Who is asking (a SubjectAccessReview's `spec.user` and `spec.groups`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub user: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// Groups including the implicit ones: `system:authenticated` for everyone, and the
    /// service-account groups for `system:serviceaccount:NS:NAME` users. (The real SAR
    /// only uses the groups in the request; implying them saves every test from listing them.)
    pub fn effective_groups(&self) -> Vec<String> {
        let mut groups = self.groups.clone();
        let mut add = |g: String| {
            if !groups.contains(&g) {
                groups.push(g);
            }
        };
        if self.user != "system:anonymous" {
            add("system:authenticated".to_string());
        }
        if let Some((ns, _)) = service_account_of(&self.user) {
            add("system:serviceaccounts".to_string());
            add(format!("system:serviceaccounts:{ns}"));
        }
        groups
    }
}

/// `system:serviceaccount:NS:NAME` → (NS, NAME).
fn service_account_of(user: &str) -> Option<(&str, &str)> {
    user.strip_prefix("system:serviceaccount:")?.split_once(':')
}

/// What is being asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Resource {
        namespace: String,
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        name: String,
    },
    NonResource {
        path: String,
        verb: String,
    },
}

impl Request {
    /// From a SubjectAccessReview spec (`resourceAttributes` or `nonResourceAttributes`).
    pub fn from_sar_spec(spec: &Value, namespace_override: Option<&str>) -> Option<Request> {
        let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(ra) = spec.get("resourceAttributes") {
            return Some(Request::Resource {
                namespace: namespace_override
                    .map(str::to_string)
                    .unwrap_or_else(|| text(ra, "namespace")),
                verb: text(ra, "verb"),
                group: text(ra, "group"),
                resource: text(ra, "resource"),
                subresource: text(ra, "subresource"),
                name: text(ra, "name"),
            });
        }
        spec.get("nonResourceAttributes")
            .map(|na| Request::NonResource {
                path: text(na, "path"),
                verb: text(na, "verb"),
            })
    }
}

/// The RBAC objects a decision is made from.
#[derive(Debug, Clone, Default)]
pub struct RbacObjects {
    pub roles: Vec<Value>,
    pub cluster_roles: Vec<Value>,
    pub role_bindings: Vec<Value>,
    pub cluster_role_bindings: Vec<Value>,
}

/// The answer: allowed or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn namespace_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl RbacObjects {
    fn cluster_role(&self, name: &str) -> Option<&Value> {
        self.cluster_roles.iter().find(|r| name_of(r) == name)
    }

    /// A ClusterRole's rules, with aggregated roles' rules added when it has an aggregationRule
    /// (the controller that fills those in is simulated here).
    fn cluster_role_rules(&self, role: &Value) -> Vec<Value> {
        let mut rules: Vec<Value> = role
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(selectors) = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
        {
            for other in &self.cluster_roles {
                if name_of(other) == name_of(role) {
                    continue;
                }
                let selected = selectors.iter().any(|sel| {
                    let labels = other
                        .pointer("/metadata/labels")
                        .cloned()
                        .unwrap_or(json!({}));
                    label_selector_matches(sel, &labels)
                });
                if selected && let Some(r) = other.get("rules").and_then(Value::as_array) {
                    rules.extend(r.iter().cloned());
                }
            }
        }
        rules
    }

    /// The rules a binding grants, and how to name the role in a reason.
    fn rules_of_binding(&self, binding: &Value, binding_ns: &str) -> Option<(Vec<Value>, String)> {
        let role_ref = binding.get("roleRef")?;
        let kind = role_ref.get("kind")?.as_str()?;
        let name = role_ref.get("name")?.as_str()?;
        match kind {
            "ClusterRole" => {
                let role = self.cluster_role(name)?;
                Some((
                    self.cluster_role_rules(role),
                    format!("ClusterRole \"{name}\""),
                ))
            }
            "Role" => {
                let role = self
                    .roles
                    .iter()
                    .find(|r| name_of(r) == name && namespace_of(r) == binding_ns)?;
                let rules = role
                    .get("rules")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                Some((rules, format!("Role \"{name}\"")))
            }
            _ => None,
        }
    }
}

/// Whether a binding subject is this user (or one of its groups).
fn subject_matches(subject: &Value, binding_ns: &str, user: &str, groups: &[String]) -> bool {
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match subject.get("kind").and_then(Value::as_str).unwrap_or("") {
        "User" => name == user,
        "Group" => groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty())
                .unwrap_or(binding_ns);
            service_account_of(user) == Some((ns, name))
        }
        _ => false,
    }
}

fn subject_text(subject: &Value, binding_ns: &str) -> String {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    if kind == "ServiceAccount" {
        let ns = subject
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(binding_ns);
        format!("ServiceAccount \"{name}/{ns}\"")
    } else {
        format!("{kind} \"{name}\"")
    }
}

fn any_matches(list: &[String], wanted: &str) -> bool {
    list.iter().any(|x| x == "*" || x == wanted)
}

/// Whether one PolicyRule covers the request (k8s.io/kubernetes rbac `RuleAllows`).
pub fn rule_allows(rule: &Value, request: &Request) -> bool {
    let verbs = str_list(rule, "verbs");
    match request {
        Request::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            if !any_matches(&verbs, verb) || !any_matches(&str_list(rule, "apiGroups"), group) {
                return false;
            }
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resource_ok = str_list(rule, "resources").iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!subresource.is_empty() && *r == format!("*/{subresource}"))
            });
            if !resource_ok {
                return false;
            }
            let names = str_list(rule, "resourceNames");
            names.is_empty() || (!name.is_empty() && names.iter().any(|n| n == name))
        }
        Request::NonResource { path, verb } => {
            any_matches(&verbs, verb)
                && str_list(rule, "nonResourceURLs").iter().any(|u| {
                    u == "*"
                        || u == path
                        || u.strip_suffix('*')
                            .is_some_and(|prefix| path.starts_with(prefix))
                })
        }
    }
}

/// Decides a request the way the apiserver's RBAC authorizer does, with `system:masters`
/// allowed everything as the apiserver's superuser group.
pub fn authorize(objects: &RbacObjects, who: &UserInfo, request: &Request) -> Decision {
    let groups = who.effective_groups();
    if groups.iter().any(|g| g == "system:masters") {
        return Decision {
            allowed: true,
            reason: "member of system:masters".to_string(),
        };
    }
    for binding in &objects.cluster_role_bindings {
        let Some(subject) = binding
            .get("subjects")
            .and_then(Value::as_array)
            .and_then(|subs| {
                subs.iter()
                    .find(|s| subject_matches(s, "", &who.user, &groups))
            })
        else {
            continue;
        };
        if binding.pointer("/roleRef/kind").and_then(Value::as_str) != Some("ClusterRole") {
            continue;
        }
        let Some((rules, role_text)) = objects.rules_of_binding(binding, "") else {
            continue;
        };
        if rules.iter().any(|r| rule_allows(r, request)) {
            return Decision {
                allowed: true,
                reason: format!(
                    "RBAC: allowed by ClusterRoleBinding \"{}\" of {role_text} to {}",
                    name_of(binding),
                    subject_text(subject, "")
                ),
            };
        }
    }
    if let Request::Resource { namespace, .. } = request
        && !namespace.is_empty()
    {
        for binding in objects
            .role_bindings
            .iter()
            .filter(|b| namespace_of(b) == namespace)
        {
            let Some(subject) =
                binding
                    .get("subjects")
                    .and_then(Value::as_array)
                    .and_then(|subs| {
                        subs.iter()
                            .find(|s| subject_matches(s, namespace, &who.user, &groups))
                    })
            else {
                continue;
            };
            let Some((rules, role_text)) = objects.rules_of_binding(binding, namespace) else {
                continue;
            };
            if rules.iter().any(|r| rule_allows(r, request)) {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by RoleBinding \"{}/{namespace}\" of {role_text} to {}",
                        name_of(binding),
                        subject_text(subject, namespace)
                    ),
                };
            }
        }
    }
    Decision {
        allowed: false,
        reason: format!("RBAC: no rule allows {} {}", who.user, describe(request)),
    }
}

fn describe(request: &Request) -> String {
    match request {
        Request::Resource {
            namespace,
            verb,
            group,
            resource,
            subresource,
            name,
        } => {
            let mut text = format!("to {verb} {resource}");
            if !subresource.is_empty() {
                text.push_str(&format!("/{subresource}"));
            }
            if !group.is_empty() {
                text.push_str(&format!(".{group}"));
            }
            if !name.is_empty() {
                text.push_str(&format!(" \"{name}\""));
            }
            if namespace.is_empty() {
                text.push_str(" at cluster scope");
            } else {
                text.push_str(&format!(" in namespace \"{namespace}\""));
            }
            text
        }
        Request::NonResource { path, verb } => format!("to {verb} {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(ns: &str, verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Request {
        Request::Resource {
            namespace: ns.into(),
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
        }
    }

    fn user(name: &str) -> UserInfo {
        UserInfo {
            user: name.into(),
            groups: vec![],
        }
    }

    fn objects() -> RbacObjects {
        RbacObjects {
            roles: vec![json!({
                "metadata": {"name": "pods-reader", "namespace": "team"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
                    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": ["get", "update"]}
                ]
            })],
            cluster_roles: vec![
                json!({"metadata": {"name": "jobs-admin"}, "rules": [
                    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["*"]}]}),
                json!({"metadata": {"name": "status-reader"}, "rules": [
                    {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]}]}),
                json!({"metadata": {"name": "metrics"}, "rules": [
                    {"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}]}),
                json!({"metadata": {"name": "aggregate"}, "aggregationRule": {"clusterRoleSelectors": [
                    {"matchLabels": {"agg": "yes"}}]}, "rules": []}),
                json!({"metadata": {"name": "agg-part", "labels": {"agg": "yes"}}, "rules": [
                    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]}),
            ],
            role_bindings: vec![
                json!({"metadata": {"name": "readers", "namespace": "team"},
                    "roleRef": {"kind": "Role", "name": "pods-reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "user-sa"}, {"kind": "Group", "name": "readers"}]}),
                json!({"metadata": {"name": "jobs", "namespace": "team"},
                    "roleRef": {"kind": "ClusterRole", "name": "jobs-admin"},
                    "subjects": [{"kind": "ServiceAccount", "name": "system-sa", "namespace": "team"}]}),
            ],
            cluster_role_bindings: vec![
                json!({"metadata": {"name": "status"}, "roleRef": {"kind": "ClusterRole", "name": "status-reader"},
                    "subjects": [{"kind": "User", "name": "alice"}]}),
                json!({"metadata": {"name": "metrics"}, "roleRef": {"kind": "ClusterRole", "name": "metrics"},
                    "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}),
                json!({"metadata": {"name": "agg"}, "roleRef": {"kind": "ClusterRole", "name": "aggregate"},
                    "subjects": [{"kind": "User", "name": "bob"}]}),
            ],
        }
    }

    fn allowed(who: &UserInfo, req: &Request) -> bool {
        authorize(&objects(), who, req).allowed
    }

    #[test]
    fn role_binding_grants_inside_its_namespace_only() {
        let sa = user("system:serviceaccount:team:user-sa");
        assert!(allowed(&sa, &res("team", "list", "", "pods", "", "")));
        assert!(!allowed(&sa, &res("other", "list", "", "pods", "", "")));
        assert!(!allowed(&sa, &res("", "list", "", "pods", "", "")));
        assert!(!allowed(&sa, &res("team", "delete", "", "pods", "", "p")));
        // Same SA name in another namespace is another subject.
        assert!(!allowed(
            &user("system:serviceaccount:other:user-sa"),
            &res("team", "list", "", "pods", "", "")
        ));
    }

    #[test]
    fn cluster_role_via_role_binding_is_namespaced() {
        let sa = user("system:serviceaccount:team:system-sa");
        assert!(allowed(
            &sa,
            &res("team", "create", "batch", "jobs", "", "")
        ));
        assert!(!allowed(
            &sa,
            &res("other", "create", "batch", "jobs", "", "")
        ));
        assert!(
            !allowed(&sa, &res("team", "create", "", "jobs", "", "")),
            "jobs are not in the core group"
        );
    }

    #[test]
    fn subresources_and_resource_names() {
        let reader = UserInfo {
            user: "carol".into(),
            groups: vec!["readers".into()],
        };
        assert!(allowed(
            &reader,
            &res("team", "get", "", "pods", "log", "p")
        ));
        assert!(!allowed(
            &reader,
            &res("team", "get", "", "pods", "exec", "p")
        ));
        assert!(allowed(
            &reader,
            &res("team", "get", "", "configmaps", "", "settings")
        ));
        assert!(!allowed(
            &reader,
            &res("team", "get", "", "configmaps", "", "other")
        ));
        assert!(!allowed(
            &reader,
            &res("team", "list", "", "configmaps", "", "")
        ));
        let alice = user("alice");
        assert!(allowed(
            &alice,
            &res("x", "get", "apps", "deployments", "status", "d")
        ));
        assert!(!allowed(
            &alice,
            &res("x", "get", "apps", "deployments", "", "d")
        ));
    }

    #[test]
    fn non_resource_urls_and_implicit_sa_groups() {
        let sa = user("system:serviceaccount:any:thing");
        assert!(allowed(
            &sa,
            &Request::NonResource {
                path: "/metrics".into(),
                verb: "get".into()
            }
        ));
        assert!(allowed(
            &sa,
            &Request::NonResource {
                path: "/logs/kubelet".into(),
                verb: "get".into()
            }
        ));
        assert!(!allowed(
            &sa,
            &Request::NonResource {
                path: "/healthz".into(),
                verb: "get".into()
            }
        ));
        assert!(!allowed(
            &user("alice"),
            &Request::NonResource {
                path: "/metrics".into(),
                verb: "get".into()
            }
        ));
    }

    #[test]
    fn masters_and_aggregation() {
        let admin = UserInfo {
            user: "x".into(),
            groups: vec!["system:masters".into()],
        };
        assert!(allowed(&admin, &res("", "delete", "", "nodes", "", "n")));
        assert!(allowed(
            &user("bob"),
            &res("ns", "list", "apps", "deployments", "", "")
        ));
        assert!(!allowed(
            &user("bob"),
            &res("ns", "get", "apps", "deployments", "", "d")
        ));
    }

    #[test]
    fn reasons_name_the_binding() {
        let d = authorize(
            &objects(),
            &user("system:serviceaccount:team:user-sa"),
            &res("team", "get", "", "pods", "", "p"),
        );
        assert_eq!(
            d.reason,
            "RBAC: allowed by RoleBinding \"readers/team\" of Role \"pods-reader\" to ServiceAccount \"user-sa/team\""
        );
        let d = authorize(
            &objects(),
            &user("nobody"),
            &res("team", "get", "", "pods", "", "p"),
        );
        assert!(!d.allowed);
        assert!(
            d.reason.contains("get pods \"p\" in namespace \"team\""),
            "{}",
            d.reason
        );
    }
}

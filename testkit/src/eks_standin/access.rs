//! Access entries, access policies, the authentication mode and resource tags.
//!
//! Paths: `POST|GET /clusters/{name}/access-entries`,
//! `GET|POST|DELETE /clusters/{name}/access-entries/{principalArn}`,
//! `POST|GET /clusters/{name}/access-entries/{principalArn}/access-policies`,
//! `DELETE /clusters/{name}/access-entries/{principalArn}/access-policies/{policyArn}`,
//! `GET /access-policies`, `POST /clusters/{name}/update-config` with `accessConfig`,
//! `GET /clusters/{name}/updates/{updateId}`, `POST|GET|DELETE /tags/{resourceArn}`.

use serde_json::{Value, json};

use super::model::{
    AUTHENTICATION_MODES, AccessEntry, AssociatedPolicy, Body, ClusterState, Ctx, EksError, Page,
    Query, State, Tags, now_epoch, opt_str, opt_str_list, parse_iam_principal, parse_tags, req_str,
    tags_json, uuid, with_next_token,
};

/// The access policies EKS offers (ListAccessPolicies), `arn:aws:eks::aws:cluster-access-policy/NAME`.
const ACCESS_POLICIES: &[&str] = &[
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStorageClusterPolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSComputeClusterPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSHybridPolicy",
    "AmazonEKSLoadBalancingClusterPolicy",
    "AmazonEKSNetworkingClusterPolicy",
    "AmazonEKSViewPolicy",
    "AmazonEMRJobPolicy",
    "AmazonSagemakerHyperpodClusterPolicy",
    "AmazonSagemakerHyperpodControllerPolicy",
    "AmazonSagemakerHyperpodSystemNamespacePolicy",
];
const POLICY_PREFIX: &str = "arn:aws:eks::aws:cluster-access-policy/";
const ENTRY_TYPES: &[&str] = &[
    "STANDARD",
    "FARGATE_LINUX",
    "EC2_LINUX",
    "EC2_WINDOWS",
    "EC2",
    "HYBRID_LINUX",
    "HYPERPOD_LINUX",
];
const RESERVED_USERNAME_PREFIXES: &[&str] = &["system:", "eks:", "aws:", "amazon:", "iam:"];
const ENTRY_NOT_FOUND: &str = "The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'.";
const STANDARD_ONLY: &str =
    "This operation can only be performed on Access Entries with a type of \"STANDARD\".";

pub(super) fn entry_arn(ctx: &Ctx, entry: &AccessEntry) -> String {
    let (kind, account, name) =
        parse_iam_principal(&entry.principal_arn).unwrap_or(("role", "", ""));
    ctx.arn(&format!(
        "access-entry/{}/{kind}/{account}/{name}/{}",
        ctx.cluster, entry.uuid
    ))
}

fn render_entry(ctx: &Ctx, entry: &AccessEntry) -> Value {
    json!({
        "clusterName": ctx.cluster,
        "principalArn": entry.principal_arn,
        "kubernetesGroups": entry.groups,
        "accessEntryArn": entry_arn(ctx, entry),
        "createdAt": entry.created_at,
        "modifiedAt": entry.modified_at,
        "tags": tags_json(&entry.tags),
        "username": entry.username,
        "type": entry.entry_type,
    })
}

fn render_policy(policy: &AssociatedPolicy) -> Value {
    let mut scope = json!({"type": policy.scope_type});
    if policy.scope_type == "namespace" {
        scope["namespaces"] = json!(policy.namespaces);
    }
    json!({
        "policyArn": policy.policy_arn,
        "accessScope": scope,
        "associatedAt": policy.associated_at,
        "modifiedAt": policy.modified_at,
    })
}

fn find<'a>(
    cluster: &'a mut ClusterState,
    principal: &str,
) -> Result<&'a mut AccessEntry, EksError> {
    cluster.require_api_mode()?;
    cluster
        .entries
        .values_mut()
        .find(|e| e.principal_arn == principal)
        .ok_or_else(|| EksError::not_found(ENTRY_NOT_FOUND))
}

fn check_username(username: &str) -> Result<(), EksError> {
    match RESERVED_USERNAME_PREFIXES
        .iter()
        .find(|prefix| username.starts_with(*prefix))
    {
        Some(prefix) => Err(EksError::invalid_parameter(format!(
            "The username {username} is not valid, it cannot start with {prefix}"
        ))),
        None => Ok(()),
    }
}

fn check_groups(groups: &[String]) -> Result<(), EksError> {
    match groups.iter().find(|g| g.starts_with("system:")) {
        Some(group) => Err(EksError::invalid_parameter(format!(
            "The kubernetes group name {group} is invalid, it cannot start with system:"
        ))),
        None => Ok(()),
    }
}

/// The username EKS generates: the assumed-role session for a role, the ARN for a user,
/// the node name for node types.
fn default_username(entry_type: &str, principal: &str) -> String {
    match (entry_type, parse_iam_principal(principal)) {
        ("STANDARD", Some(("user", _, _))) => principal.to_string(),
        ("STANDARD", Some((_, account, name))) => {
            format!("arn:aws:sts::{account}:assumed-role/{name}/{{{{SessionName}}}}")
        }
        ("EC2_LINUX" | "EC2_WINDOWS" | "EC2", _) => "system:node:{{EC2PrivateDNSName}}".into(),
        _ => "system:node:{{SessionName}}".into(),
    }
}

/// An access entry as a test presets it, or as CreateAccessEntry makes it.
pub(super) fn new_entry(
    seq: u64,
    principal: &str,
    entry_type: &str,
    username: Option<String>,
    groups: Vec<String>,
    tags: Tags,
) -> AccessEntry {
    let now = now_epoch();
    AccessEntry {
        seq,
        principal_arn: principal.to_string(),
        entry_type: entry_type.to_string(),
        username: username.unwrap_or_else(|| default_username(entry_type, principal)),
        groups,
        uuid: uuid(),
        policies: Vec::new(),
        tags,
        created_at: now,
        modified_at: now,
    }
}

/// CreateAccessEntry: one entry per principal, STANDARD unless `type` says otherwise.
pub(super) fn create_entry(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    seq: u64,
    body: &Body,
) -> Result<Value, EksError> {
    cluster.require_api_mode()?;
    let principal = req_str(body, "principalArn")?;
    if parse_iam_principal(&principal).is_none() {
        return Err(EksError::invalid_parameter(format!(
            "The principalArn parameter format is not valid: {principal}"
        )));
    }
    let entry_type = opt_str(body, "type")?.unwrap_or_else(|| "STANDARD".into());
    if !ENTRY_TYPES.contains(&entry_type.as_str()) {
        return Err(EksError::invalid_parameter(format!(
            "The type {entry_type} is not valid. Valid values are [{}]",
            ENTRY_TYPES.join(", ")
        )));
    }
    let username = opt_str(body, "username")?.filter(|u| !u.is_empty());
    let groups = opt_str_list(body, "kubernetesGroups")?.unwrap_or_default();
    let tags = parse_tags(body.get("tags"), "InvalidParameterException")?;
    if entry_type != "STANDARD" && (username.is_some() || !groups.is_empty()) {
        return Err(EksError::invalid_parameter(format!(
            "kubernetesGroups and username can't be set on an access entry of type {entry_type}."
        )));
    }
    if let Some(username) = &username {
        check_username(username)?;
    }
    check_groups(&groups)?;
    if cluster
        .entries
        .values()
        .any(|e| e.principal_arn == principal)
    {
        return Err(EksError::in_use(
            "The specified access entry resource is already in use on this cluster.",
        )
        .with("clusterName", &ctx.cluster));
    }
    let entry = new_entry(seq, &principal, &entry_type, username, groups, tags);
    let answer = json!({"accessEntry": render_entry(ctx, &entry)});
    cluster.entries.insert(seq, entry);
    Ok(answer)
}

pub(super) fn describe_entry(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    principal: &str,
) -> Result<Value, EksError> {
    let entry = find(cluster, principal)?;
    Ok(json!({"accessEntry": render_entry(ctx, entry)}))
}

/// ListAccessEntries: principal ARNs in creation order, optionally only those with
/// `associatedPolicyArn`.
pub(super) fn list_entries(cluster: &ClusterState, query: &Query) -> Result<Value, EksError> {
    cluster.require_api_mode()?;
    let page = Page::from_query(query)?;
    let policy = query.get("associatedPolicyArn");
    let matching = cluster
        .entries
        .values()
        .filter(|e| policy.is_none_or(|p| e.policies.iter().any(|a| a.policy_arn == p)))
        .map(|e| (format!("{:016x}", e.seq), e.principal_arn.clone()))
        .collect();
    let (items, next) = page.take(matching);
    Ok(with_next_token(json!({"accessEntries": items}), next))
}

/// UpdateAccessEntry: `kubernetesGroups` (replaced when given) and `username`.
pub(super) fn update_entry(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    principal: &str,
    body: &Body,
) -> Result<Value, EksError> {
    let groups = opt_str_list(body, "kubernetesGroups")?;
    let username = opt_str(body, "username")?.filter(|u| !u.is_empty());
    let entry = find(cluster, principal)?;
    if entry.entry_type != "STANDARD"
        && (groups.as_ref().is_some_and(|g| !g.is_empty())
            || username.as_ref().is_some_and(|u| *u != entry.username))
    {
        return Err(EksError::invalid_parameter(STANDARD_ONLY));
    }
    if let Some(username) = username.as_ref().filter(|u| **u != entry.username) {
        check_username(username)?;
    }
    if let Some(groups) = &groups {
        check_groups(groups)?;
    }
    if let Some(groups) = groups {
        entry.groups = groups;
    }
    if let Some(username) = username {
        entry.username = username;
    }
    entry.modified_at = now_epoch();
    Ok(json!({"accessEntry": render_entry(ctx, entry)}))
}

/// DeleteAccessEntry: the entry and its policy associations; answers `{}`.
pub(super) fn delete_entry(cluster: &mut ClusterState, principal: &str) -> Result<Value, EksError> {
    let seq = find(cluster, principal)?.seq;
    cluster.entries.remove(&seq);
    Ok(json!({}))
}

fn valid_namespace(namespace: &str) -> bool {
    let name = namespace.strip_suffix('*').unwrap_or(namespace);
    (namespace.len() <= 63 && !namespace.is_empty())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn parse_scope(body: &Body) -> Result<(String, Vec<String>), EksError> {
    let scope = match body.get("accessScope") {
        Some(Value::Object(scope)) => scope,
        _ => {
            return Err(EksError::invalid_parameter(
                "The parameter accessScope is required.",
            ));
        }
    };
    let scope_type = req_str(scope, "type")?;
    let namespaces = opt_str_list(scope, "namespaces")?.unwrap_or_default();
    match scope_type.as_str() {
        "cluster" if namespaces.is_empty() => Ok((scope_type, namespaces)),
        "cluster" => Err(EksError::invalid_parameter(
            "namespaces can't be set when the access scope type is cluster.",
        )),
        "namespace" if namespaces.is_empty() => Err(EksError::invalid_parameter(
            "namespaces must be set when the access scope type is namespace.",
        )),
        "namespace" => match namespaces.iter().find(|ns| !valid_namespace(ns)) {
            Some(bad) => Err(EksError::invalid_parameter(format!(
                "The namespace {bad} is not valid."
            ))),
            None => Ok((scope_type, namespaces)),
        },
        other => Err(EksError::invalid_parameter(format!(
            "The access scope type {other} is not valid. Valid values are [cluster, namespace]"
        ))),
    }
}

/// AssociateAccessPolicy: associating a policy again replaces its scope.
pub(super) fn associate_policy(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    principal: &str,
    body: &Body,
) -> Result<Value, EksError> {
    let policy_arn = req_str(body, "policyArn")?;
    let (scope_type, namespaces) = parse_scope(body)?;
    let entry = find(cluster, principal)?;
    if !matches!(entry.entry_type.as_str(), "STANDARD" | "EC2") {
        return Err(EksError::invalid_parameter(STANDARD_ONLY));
    }
    let known = policy_arn
        .strip_prefix(POLICY_PREFIX)
        .is_some_and(|name| ACCESS_POLICIES.contains(&name));
    if !known {
        return Err(EksError::invalid_parameter(format!(
            "The policyArn {policy_arn} is not a valid access policy."
        )));
    }
    let now = now_epoch();
    let associated = match entry
        .policies
        .iter_mut()
        .find(|p| p.policy_arn == policy_arn)
    {
        Some(existing) => {
            existing.scope_type = scope_type;
            existing.namespaces = namespaces;
            existing.modified_at = now;
            existing.clone()
        }
        None => {
            let new = AssociatedPolicy {
                policy_arn,
                scope_type,
                namespaces,
                associated_at: now,
                modified_at: now,
            };
            entry.policies.push(new.clone());
            new
        }
    };
    Ok(json!({
        "clusterName": ctx.cluster,
        "principalArn": entry.principal_arn,
        "associatedAccessPolicy": render_policy(&associated),
    }))
}

pub(super) fn list_associated_policies(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    principal: &str,
    query: &Query,
) -> Result<Value, EksError> {
    let page = Page::from_query(query)?;
    let entry = find(cluster, principal)?;
    let items = entry
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{i:08x}"), render_policy(p)))
        .collect();
    let (items, next) = page.take(items);
    Ok(with_next_token(
        json!({
            "clusterName": ctx.cluster,
            "principalArn": entry.principal_arn,
            "associatedAccessPolicies": items,
        }),
        next,
    ))
}

pub(super) fn disassociate_policy(
    cluster: &mut ClusterState,
    principal: &str,
    policy_arn: &str,
) -> Result<Value, EksError> {
    let entry = find(cluster, principal)?;
    let before = entry.policies.len();
    entry.policies.retain(|p| p.policy_arn != policy_arn);
    if entry.policies.len() == before {
        return Err(EksError::not_found(
            "The specified policyArn is not associated with the access entry.",
        ));
    }
    Ok(json!({}))
}

/// ListAccessPolicies (not cluster-scoped, no authentication-mode check).
pub(super) fn list_access_policies(query: &Query) -> Result<Value, EksError> {
    let page = Page::from_query(query)?;
    let items = ACCESS_POLICIES
        .iter()
        .map(|name| {
            let policy = json!({"name": name, "arn": format!("{POLICY_PREFIX}{name}")});
            ((*name).to_string(), policy)
        })
        .collect();
    let (items, next) = page.take(items);
    Ok(with_next_token(json!({"accessPolicies": items}), next))
}

/// UpdateClusterConfig with `accessConfig`: CONFIG_MAP → API_AND_CONFIG_MAP → API, never
/// back, never to the same mode, and no other change in the same call. The mode applies at
/// once; the answer is `InProgress` and DescribeUpdate then says `Successful`.
pub(super) fn update_access_config(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    body: &Body,
) -> Result<Value, EksError> {
    if body
        .keys()
        .any(|k| k != "accessConfig" && k != "clientRequestToken")
    {
        return Err(
            EksError::invalid_parameter("Only one type of update can be allowed.")
                .with("clusterName", &ctx.cluster),
        );
    }
    let config = match body.get("accessConfig") {
        Some(Value::Object(config)) => config,
        _ => {
            return Err(EksError::invalid_parameter(
                "The parameter accessConfig must be an object.",
            ));
        }
    };
    let mode = req_str(config, "authenticationMode")?;
    if !AUTHENTICATION_MODES.contains(&mode.as_str()) {
        return Err(EksError::invalid_parameter(format!(
            "The authenticationMode {mode} is not valid. Valid values are [API, API_AND_CONFIG_MAP, CONFIG_MAP]"
        )));
    }
    let current = cluster.auth_mode().to_string();
    let allowed = matches!(
        (current.as_str(), mode.as_str()),
        ("CONFIG_MAP", "API_AND_CONFIG_MAP") | ("API_AND_CONFIG_MAP", "API")
    );
    if !allowed {
        return Err(EksError::invalid_parameter(format!(
            "Unsupported authentication mode update from {current} to {mode}"
        ))
        .with("clusterName", &ctx.cluster));
    }
    cluster.auth_mode = Some(mode.clone());
    let id = uuid();
    let mut update = json!({
        "id": id,
        "status": "Successful",
        "type": "AccessConfigUpdate",
        "params": [{"type": "AuthenticationMode", "value": mode}],
        "createdAt": now_epoch(),
        "errors": [],
    });
    cluster.updates.insert(id, update.clone());
    update["status"] = json!("InProgress");
    Ok(json!({"update": update}))
}

/// What an EKS ARN the stand-in made points at: `(cluster, kind, last segment)`.
pub(super) fn parse_own_arn(arn: &str) -> Option<(String, &'static str, String)> {
    let resource = arn.strip_prefix("arn:aws:eks:")?.splitn(3, ':').nth(2)?;
    let mut parts = resource.split('/');
    let kind = match parts.next()? {
        "podidentityassociation" => "podidentityassociation",
        "access-entry" => "access-entry",
        "addon" => "addon",
        _ => return None,
    };
    let cluster = parts.next()?.to_string();
    let last = resource.rsplit('/').next()?.to_string();
    Some((cluster, kind, last))
}

fn tags_of<'a>(state: &'a mut State, arn: &str) -> Result<&'a mut Tags, EksError> {
    let not_found = || EksError::new(404, "NotFoundException", "Resource was not found");
    let (cluster, kind, last) = parse_own_arn(arn).ok_or_else(not_found)?;
    let cluster_state = state.clusters.get_mut(&cluster).ok_or_else(not_found)?;
    let tags = match kind {
        "podidentityassociation" => cluster_state
            .associations
            .values_mut()
            .find(|a| a.id == last)
            .map(|a| &mut a.tags),
        "access-entry" => cluster_state
            .entries
            .values_mut()
            .find(|e| e.uuid == last)
            .map(|e| &mut e.tags),
        _ => cluster_state
            .addons
            .values_mut()
            .find(|a| a.uuid == last)
            .map(|a| &mut a.tags),
    };
    tags.ok_or_else(not_found)
}

/// TagResource, UntagResource and ListTagsForResource on the ARNs the stand-in made.
pub(super) fn tag_operation(
    state: &mut State,
    method: &http::Method,
    arn: &str,
    query: &Query,
    body: &Body,
) -> Result<Value, EksError> {
    let tags = tags_of(state, arn)?;
    match *method {
        http::Method::GET => Ok(json!({"tags": tags_json(tags)})),
        http::Method::POST => {
            let new = parse_tags(body.get("tags"), "BadRequestException")?;
            if new.is_empty() {
                return Err(EksError::new(
                    400,
                    "BadRequestException",
                    "tags are required.",
                ));
            }
            tags.extend(new);
            if tags.len() > 50 {
                return Err(EksError::new(
                    400,
                    "BadRequestException",
                    "A resource can have at most 50 tags.",
                ));
            }
            Ok(json!({}))
        }
        _ => {
            for key in query.all("tagKeys") {
                tags.remove(&key);
            }
            Ok(json!({}))
        }
    }
}

/// The ARN of each kind of resource, for tests that check what a TagResource call names.
#[cfg(test)]
pub(super) fn own_arns(ctx: &Ctx, cluster: &ClusterState) -> Vec<String> {
    use super::pod_identity::{addon_arn, association_arn};
    let mut arns: Vec<String> = cluster
        .associations
        .values()
        .map(|a| association_arn(ctx, &a.id))
        .collect();
    arns.extend(cluster.entries.values().map(|e| entry_arn(ctx, e)));
    arns.extend(cluster.addons.values().map(|a| addon_arn(ctx, a)));
    arns
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn ctx() -> Ctx {
        Ctx::from_cluster_arn("demo", "arn:aws:eks:us-east-1:123456789012:cluster/demo")
    }

    fn body(value: Value) -> Body {
        value.as_object().cloned().unwrap_or_else(Map::new)
    }

    #[test]
    fn entries_need_the_api_mode() {
        let mut cluster = ClusterState::default();
        let create = body(json!({"principalArn": "arn:aws:iam::123456789012:role/dev"}));
        let err = create_entry(&ctx(), &mut cluster, 1, &create).unwrap_err();
        assert_eq!((err.status, err.kind), (400, "InvalidRequestException"));
        assert!(list_entries(&cluster, &Query::default()).is_err());
        cluster.auth_mode = Some("API_AND_CONFIG_MAP".into());
        let made = create_entry(&ctx(), &mut cluster, 1, &create).unwrap();
        assert_eq!(
            made["accessEntry"]["username"],
            "arn:aws:sts::123456789012:assumed-role/dev/{{SessionName}}"
        );
        let again = create_entry(&ctx(), &mut cluster, 2, &create).unwrap_err();
        assert_eq!(again.kind, "ResourceInUseException");
    }

    #[test]
    fn reserved_groups_and_usernames_are_refused() {
        let mut cluster = ClusterState {
            auth_mode: Some("API".into()),
            ..Default::default()
        };
        for create in [
            json!({"principalArn": "arn:aws:iam::123456789012:role/a", "kubernetesGroups": ["system:masters"]}),
            json!({"principalArn": "arn:aws:iam::123456789012:role/a", "username": "eks:x"}),
            json!({"principalArn": "arn:aws:iam::123456789012:role/a", "type": "EC2_LINUX", "username": "u"}),
            json!({"principalArn": "arn:aws:sts::123456789012:assumed-role/a/s"}),
            json!({"principalArn": "arn:aws:iam::123456789012:role/a", "type": "NODE"}),
        ] {
            let err = create_entry(&ctx(), &mut cluster, 1, &body(create.clone())).unwrap_err();
            assert_eq!(err.kind, "InvalidParameterException", "{create}");
        }
        assert!(cluster.entries.is_empty());
    }

    #[test]
    fn authentication_mode_moves_one_way() {
        let mut cluster = ClusterState::default();
        let to = |mode: &str| body(json!({"accessConfig": {"authenticationMode": mode}}));
        let err = update_access_config(&ctx(), &mut cluster, &to("API")).unwrap_err();
        assert_eq!(
            err.message,
            "Unsupported authentication mode update from CONFIG_MAP to API"
        );
        let ok = update_access_config(&ctx(), &mut cluster, &to("API_AND_CONFIG_MAP")).unwrap();
        assert_eq!(ok["update"]["status"], "InProgress");
        assert_eq!(ok["update"]["type"], "AccessConfigUpdate");
        let id = ok["update"]["id"].as_str().unwrap();
        assert_eq!(cluster.updates[id]["status"], "Successful");
        for back in ["CONFIG_MAP", "API_AND_CONFIG_MAP"] {
            let err = update_access_config(&ctx(), &mut cluster, &to(back)).unwrap_err();
            assert_eq!(err.kind, "InvalidParameterException", "{back}");
        }
        update_access_config(&ctx(), &mut cluster, &to("API")).unwrap();
        assert_eq!(cluster.auth_mode(), "API");
        let mixed = body(json!({"accessConfig": {"authenticationMode": "API"}, "logging": {}}));
        let err = update_access_config(&ctx(), &mut cluster, &mixed).unwrap_err();
        assert_eq!(err.message, "Only one type of update can be allowed.");
    }

    #[test]
    fn own_arns_parse_back() {
        let mut cluster = ClusterState {
            auth_mode: Some("API".into()),
            ..Default::default()
        };
        let create = body(json!({"principalArn": "arn:aws:iam::123456789012:user/u"}));
        create_entry(&ctx(), &mut cluster, 1, &create).unwrap();
        let arns = own_arns(&ctx(), &cluster);
        let (name, kind, _) = parse_own_arn(&arns[0]).unwrap();
        assert_eq!((name.as_str(), kind), ("demo", "access-entry"));
        assert!(
            arns[0].contains(":access-entry/demo/user/123456789012/u/"),
            "{}",
            arns[0]
        );
        assert_eq!(parse_own_arn("arn:aws:eks:us-east-1:1:cluster/demo"), None);
        assert_eq!(parse_own_arn("garbage"), None);
    }

    #[test]
    fn namespace_scopes_are_validated() {
        let mut cluster = ClusterState {
            auth_mode: Some("API".into()),
            ..Default::default()
        };
        let principal = "arn:aws:iam::123456789012:role/a";
        create_entry(
            &ctx(),
            &mut cluster,
            1,
            &body(json!({"principalArn": principal})),
        )
        .unwrap();
        let edit = format!("{POLICY_PREFIX}AmazonEKSEditPolicy");
        for (scope, ok) in [
            (
                json!({"type": "namespace", "namespaces": ["ml-team", "dev-*"]}),
                true,
            ),
            (json!({"type": "namespace", "namespaces": []}), false),
            (json!({"type": "cluster", "namespaces": ["x"]}), false),
            (
                json!({"type": "namespace", "namespaces": ["Bad_NS"]}),
                false,
            ),
            (json!({"type": "global"}), false),
        ] {
            let request = body(json!({"policyArn": edit, "accessScope": scope}));
            let result = associate_policy(&ctx(), &mut cluster, principal, &request);
            assert_eq!(result.is_ok(), ok, "{scope}");
        }
        let unknown = body(
            json!({"policyArn": "arn:aws:eks::aws:cluster-access-policy/Nope",
            "accessScope": {"type": "cluster"}}),
        );
        assert!(associate_policy(&ctx(), &mut cluster, principal, &unknown).is_err());
        assert!(disassociate_policy(&mut cluster, principal, &edit).is_ok());
        let again = disassociate_policy(&mut cluster, principal, &edit).unwrap_err();
        assert_eq!(again.status, 404);
    }
}

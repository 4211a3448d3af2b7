//! EKS Pod Identity associations and add-ons, answered from the stand-in's state.
//!
//! Paths (cluster name and ids percent-decoded by the router):
//! `POST|GET /clusters/{name}/pod-identity-associations`,
//! `GET|POST|DELETE /clusters/{name}/pod-identity-associations/{associationId}`,
//! `POST|GET /clusters/{name}/addons`, `GET|DELETE /clusters/{name}/addons/{addonName}`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::model::{
    Addon, AddonStatus, Association, Body, ClusterState, Ctx, EksError, Page, Query,
    association_id, now_epoch, opt_bool, opt_str, parse_iam_principal, parse_tags, req_str,
    tags_json, uuid, with_next_token,
};

/// Add-ons the stand-in installs, with the version it reports when none is asked for.
const KNOWN_ADDONS: &[(&str, &str)] = &[
    ("eks-pod-identity-agent", "v1.3.8-eksbuild.2"),
    ("vpc-cni", "v1.19.5-eksbuild.1"),
    ("coredns", "v1.12.1-eksbuild.2"),
    ("kube-proxy", "v1.33.0-eksbuild.2"),
    ("aws-ebs-csi-driver", "v1.45.0-eksbuild.2"),
    ("aws-efs-csi-driver", "v2.1.8-eksbuild.1"),
    ("aws-mountpoint-s3-csi-driver", "v1.15.0-eksbuild.1"),
    ("snapshot-controller", "v8.2.0-eksbuild.1"),
    ("amazon-cloudwatch-observability", "v4.1.0-eksbuild.1"),
    ("aws-guardduty-agent", "v1.10.0-eksbuild.2"),
    ("adot", "v0.117.0-eksbuild.1"),
    ("eks-node-monitoring-agent", "v1.3.0-eksbuild.2"),
    ("metrics-server", "v0.7.2-eksbuild.3"),
];

pub(super) fn render_association(ctx: &Ctx, a: &Association) -> Value {
    let mut out = json!({
        "clusterName": ctx.cluster,
        "namespace": a.namespace,
        "serviceAccount": a.service_account,
        "roleArn": a.role_arn,
        "associationArn": association_arn(ctx, &a.id),
        "associationId": a.id,
        "tags": tags_json(&a.tags),
        "createdAt": a.created_at,
        "modifiedAt": a.modified_at,
        "disableSessionTags": a.disable_session_tags,
    });
    for (name, value) in [
        ("targetRoleArn", &a.target_role_arn),
        ("externalId", &a.external_id),
        ("policy", &a.policy),
    ] {
        if let (Some(value), Some(object)) = (value, out.as_object_mut()) {
            object.insert(name.into(), Value::String(value.clone()));
        }
    }
    out
}

pub(super) fn association_arn(ctx: &Ctx, id: &str) -> String {
    ctx.arn(&format!("podidentityassociation/{}/{id}", ctx.cluster))
}

fn summary(ctx: &Ctx, a: &Association) -> Value {
    json!({
        "clusterName": ctx.cluster,
        "namespace": a.namespace,
        "serviceAccount": a.service_account,
        "associationArn": association_arn(ctx, &a.id),
        "associationId": a.id,
    })
}

fn role_arn(body: &Body, name: &str) -> Result<Option<String>, EksError> {
    let Some(arn) = opt_str(body, name)? else {
        return Ok(None);
    };
    match parse_iam_principal(&arn) {
        Some(("role", _, _)) => Ok(Some(arn)),
        _ => Err(EksError::invalid_parameter(format!(
            "The parameter {name} is not a valid IAM role ARN: {arn}"
        ))),
    }
}

fn find<'a>(cluster: &'a mut ClusterState, id: &str) -> Result<&'a mut Association, EksError> {
    if id.len() != 19 {
        return Err(EksError::invalid_parameter(
            "The parameter associationId should be 19 characters long.",
        ));
    }
    cluster
        .associations
        .values_mut()
        .find(|a| a.id == id)
        .ok_or_else(|| {
            EksError::not_found(format!("No Pod Identity Association found with id: {id}."))
        })
}

/// CreatePodIdentityAssociation: one association per namespace/ServiceAccount.
pub(super) fn create_association(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    seq: u64,
    body: &Body,
) -> Result<Value, EksError> {
    let namespace = req_str(body, "namespace")?;
    let service_account = req_str(body, "serviceAccount")?;
    let role = role_arn(body, "roleArn")?
        .ok_or_else(|| EksError::invalid_parameter("The parameter roleArn is required."))?;
    let target_role_arn = role_arn(body, "targetRoleArn")?;
    let disable_session_tags = opt_bool(body, "disableSessionTags")?.unwrap_or(false);
    let policy = opt_str(body, "policy")?;
    let tags = parse_tags(body.get("tags"), "InvalidParameterException")?;
    if let Some(existing) = cluster
        .associations
        .values()
        .find(|a| a.namespace == namespace && a.service_account == service_account)
    {
        return Err(
            EksError::in_use(format!("Association already exists: {}", existing.id))
                .with("clusterName", &ctx.cluster),
        );
    }
    let now = now_epoch();
    let association = Association {
        seq,
        id: association_id(),
        namespace,
        service_account,
        role_arn: role,
        external_id: target_role_arn.as_ref().map(|_| uuid()),
        target_role_arn,
        disable_session_tags,
        policy,
        tags,
        created_at: now,
        modified_at: now,
    };
    let answer = json!({"association": render_association(ctx, &association)});
    cluster.associations.insert(seq, association);
    Ok(answer)
}

/// ListPodIdentityAssociations, filtered by `namespace` and `serviceAccount`, in creation order.
pub(super) fn list_associations(
    ctx: &Ctx,
    cluster: &ClusterState,
    query: &Query,
) -> Result<Value, EksError> {
    let page = Page::from_query(query)?;
    let namespace = query.get("namespace");
    let service_account = query.get("serviceAccount");
    let matching = cluster
        .associations
        .values()
        .filter(|a| namespace.is_none_or(|ns| a.namespace == ns))
        .filter(|a| service_account.is_none_or(|sa| a.service_account == sa))
        .map(|a| (format!("{:016x}", a.seq), summary(ctx, a)))
        .collect();
    let (items, next) = page.take(matching);
    Ok(with_next_token(json!({"associations": items}), next))
}

pub(super) fn describe_association(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    id: &str,
) -> Result<Value, EksError> {
    let association = find(cluster, id)?;
    Ok(json!({"association": render_association(ctx, association)}))
}

/// UpdatePodIdentityAssociation: role, target role, session tags and policy.
pub(super) fn update_association(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    id: &str,
    body: &Body,
) -> Result<Value, EksError> {
    let role = role_arn(body, "roleArn")?;
    let target = role_arn(body, "targetRoleArn")?;
    let disable_session_tags = opt_bool(body, "disableSessionTags")?;
    let policy = opt_str(body, "policy")?;
    let association = find(cluster, id)?;
    if let Some(role) = role {
        association.role_arn = role;
    }
    if let Some(target) = target {
        if association.target_role_arn.as_deref() != Some(target.as_str()) {
            association.external_id = Some(uuid());
        }
        association.target_role_arn = Some(target);
    }
    if let Some(disable) = disable_session_tags {
        association.disable_session_tags = disable;
    }
    if let Some(policy) = policy {
        association.policy = Some(policy).filter(|p| !p.is_empty());
    }
    association.modified_at = now_epoch();
    Ok(json!({"association": render_association(ctx, association)}))
}

pub(super) fn delete_association(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    id: &str,
) -> Result<Value, EksError> {
    let seq = find(cluster, id)?.seq;
    let association = cluster
        .associations
        .remove(&seq)
        .ok_or_else(|| EksError::server("association vanished"))?;
    Ok(json!({"association": render_association(ctx, &association)}))
}

pub(super) fn addon_status(addon: &Addon) -> String {
    match &addon.status {
        AddonStatus::CreatingUntil(at) if Instant::now() < *at => "CREATING".into(),
        AddonStatus::CreatingUntil(_) => "ACTIVE".into(),
        AddonStatus::Fixed(status) => status.clone(),
    }
}

pub(super) fn addon_arn(ctx: &Ctx, addon: &Addon) -> String {
    ctx.arn(&format!(
        "addon/{}/{}/{}",
        ctx.cluster, addon.name, addon.uuid
    ))
}

fn render_addon(ctx: &Ctx, addon: &Addon, status: &str) -> Value {
    let mut out = json!({
        "addonName": addon.name,
        "clusterName": ctx.cluster,
        "status": status,
        "addonVersion": addon.version,
        "health": {"issues": addon.issues},
        "addonArn": addon_arn(ctx, addon),
        "createdAt": addon.created_at,
        "modifiedAt": addon.modified_at,
        "tags": tags_json(&addon.tags),
    });
    for (name, value) in [
        ("serviceAccountRoleArn", &addon.service_account_role_arn),
        ("configurationValues", &addon.configuration_values),
    ] {
        if let (Some(value), Some(object)) = (value, out.as_object_mut()) {
            object.insert(name.into(), Value::String(value.clone()));
        }
    }
    out
}

/// An add-on as a test presets it, or as CreateAddon makes it.
pub(super) fn new_addon(name: &str, version: Option<String>, status: AddonStatus) -> Addon {
    let default_version = KNOWN_ADDONS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or("v1.0.0-eksbuild.1", |(_, v)| v);
    let now = now_epoch();
    Addon {
        name: name.to_string(),
        version: version.unwrap_or_else(|| default_version.to_string()),
        status,
        issues: Vec::new(),
        uuid: uuid(),
        service_account_role_arn: None,
        configuration_values: None,
        tags: Default::default(),
        created_at: now,
        modified_at: now,
    }
}

/// CreateAddon: `CREATING`, then `ACTIVE` once the stand-in's add-on delay has passed.
pub(super) fn create_addon(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    delay: Duration,
    body: &Body,
) -> Result<Value, EksError> {
    let name = req_str(body, "addonName")?;
    if !KNOWN_ADDONS.iter().any(|(known, _)| *known == name) {
        return Err(EksError::invalid_parameter(format!(
            "Addon {name} specified is not supported"
        ))
        .with("clusterName", &ctx.cluster)
        .with("addonName", &name));
    }
    let version = opt_str(body, "addonVersion")?;
    let service_account_role_arn = role_arn(body, "serviceAccountRoleArn")?;
    let configuration_values = opt_str(body, "configurationValues")?;
    let tags = parse_tags(body.get("tags"), "InvalidParameterException")?;
    if cluster.addons.contains_key(&name) {
        return Err(EksError::in_use("Addon already exists.")
            .with("clusterName", &ctx.cluster)
            .with("addonName", &name));
    }
    let mut addon = new_addon(
        &name,
        version,
        AddonStatus::CreatingUntil(Instant::now() + delay),
    );
    addon.service_account_role_arn = service_account_role_arn;
    addon.configuration_values = configuration_values;
    addon.tags = tags;
    // The create answer is always CREATING, as the service's is.
    let answer = json!({"addon": render_addon(ctx, &addon, "CREATING")});
    cluster.addons.insert(name, addon);
    Ok(answer)
}

fn addon_not_found(ctx: &Ctx, name: &str) -> EksError {
    EksError::not_found(format!(
        "No addon: {name} found in cluster: {}",
        ctx.cluster
    ))
    .with("clusterName", &ctx.cluster)
    .with("addonName", name)
}

pub(super) fn describe_addon(
    ctx: &Ctx,
    cluster: &ClusterState,
    name: &str,
) -> Result<Value, EksError> {
    let addon = cluster
        .addons
        .get(name)
        .ok_or_else(|| addon_not_found(ctx, name))?;
    Ok(json!({"addon": render_addon(ctx, addon, &addon_status(addon))}))
}

/// ListAddons: names, alphabetical.
pub(super) fn list_addons(cluster: &ClusterState, query: &Query) -> Result<Value, EksError> {
    let page = Page::from_query(query)?;
    let names = cluster
        .addons
        .keys()
        .map(|name| (name.clone(), name.clone()))
        .collect();
    let (items, next) = page.take(names);
    Ok(with_next_token(json!({"addons": items}), next))
}

/// DeleteAddon: gone at once; the answer says `DELETING`, as the service's does.
pub(super) fn delete_addon(
    ctx: &Ctx,
    cluster: &mut ClusterState,
    name: &str,
) -> Result<Value, EksError> {
    let addon = cluster
        .addons
        .remove(name)
        .ok_or_else(|| addon_not_found(ctx, name))?;
    Ok(json!({"addon": render_addon(ctx, &addon, "DELETING")}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn ctx() -> Ctx {
        Ctx::from_cluster_arn("demo", "arn:aws:eks:eu-west-1:123456789012:cluster/demo")
    }

    fn body(value: Value) -> Body {
        value.as_object().cloned().unwrap_or_else(Map::new)
    }

    #[test]
    fn one_association_per_service_account() {
        let mut cluster = ClusterState::default();
        let create = body(json!({"namespace": "ml", "serviceAccount": "sa",
            "roleArn": "arn:aws:iam::123456789012:role/r", "tags": {"owner": "us"}}));
        let made = create_association(&ctx(), &mut cluster, 1, &create).unwrap();
        let id = made["association"]["associationId"].as_str().unwrap();
        assert_eq!(
            made["association"]["associationArn"],
            format!("arn:aws:eks:eu-west-1:123456789012:podidentityassociation/demo/{id}")
        );
        let again = create_association(&ctx(), &mut cluster, 2, &create).unwrap_err();
        assert_eq!((again.status, again.kind), (409, "ResourceInUseException"));
        assert_eq!(again.message, format!("Association already exists: {id}"));
        let short = describe_association(&ctx(), &mut cluster, "a-1").unwrap_err();
        assert_eq!(short.kind, "InvalidParameterException");
        let missing = describe_association(&ctx(), &mut cluster, "a-00000000000000000");
        assert_eq!(missing.unwrap_err().status, 404);
    }

    #[test]
    fn bad_role_arns_are_invalid_parameters() {
        let mut cluster = ClusterState::default();
        for role in [
            json!("arn:aws:iam::123456789012:user/u"),
            json!(7),
            json!("r"),
        ] {
            let create = body(json!({"namespace": "ml", "serviceAccount": "sa", "roleArn": role}));
            let err = create_association(&ctx(), &mut cluster, 1, &create).unwrap_err();
            assert_eq!(err.kind, "InvalidParameterException", "{role}");
        }
        assert!(cluster.associations.is_empty());
    }

    #[test]
    fn addons_become_active_after_the_delay() {
        let mut cluster = ClusterState::default();
        let create = body(json!({"addonName": "eks-pod-identity-agent"}));
        let made = create_addon(&ctx(), &mut cluster, Duration::from_secs(60), &create).unwrap();
        assert_eq!(made["addon"]["status"], "CREATING");
        let seen = describe_addon(&ctx(), &cluster, "eks-pod-identity-agent").unwrap();
        assert_eq!(seen["addon"]["status"], "CREATING");
        if let Some(addon) = cluster.addons.get_mut("eks-pod-identity-agent") {
            addon.status = AddonStatus::CreatingUntil(Instant::now());
        }
        let seen = describe_addon(&ctx(), &cluster, "eks-pod-identity-agent").unwrap();
        assert_eq!(seen["addon"]["status"], "ACTIVE");
        let typo = body(json!({"addonName": "eks-pod-identity"}));
        let err = create_addon(&ctx(), &mut cluster, Duration::ZERO, &typo).unwrap_err();
        assert_eq!(err.kind, "InvalidParameterException");
        let missing = describe_addon(&ctx(), &cluster, "vpc-cni").unwrap_err();
        assert_eq!(missing.message, "No addon: vpc-cni found in cluster: demo");
    }
}

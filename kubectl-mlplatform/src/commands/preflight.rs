//! Resolving where to work (context, cluster, region, namespace) and reading everything a plan
//! needs, in parallel, without writing anything.

use std::collections::BTreeMap;

use futures::future::try_join_all;
use serde_json::Value;

use super::error::CommandError;
use crate::aws::{
    Aws, CallerIdentity, ClusterFacts, ClusterNetwork, RoleFacts, SecurityGroupRuleFacts,
};
use crate::aws_auth::store::read_aws_auth;
use crate::bundle::render_bundle;
use crate::cli::ConnectArgs;
use crate::cli::policy::EnforcementArg;
use crate::common::GlobalArgs;
use crate::eks_pod_identity::{read_addon, read_associations};
use crate::facts::PodIdentityFacts;
use crate::kube_io::{
    ClusterHint, KubeTarget, get_object, get_objects, list_objects, list_profile_namespaces,
    load_target,
};
use crate::objects::{Kind, ObjectKey};
use crate::plan::{
    ConnectInputs, Observed, OidcProviderFacts, access_principal, existing_role_name,
    irsa_role_names, irsa_service_account_keys, opens_ports, resolve_params, uses_access_entry,
    vars_for,
};
use crate::pod_identity::{AGENT_ADDON, Identity, trusts_pod_identity};
use crate::profile::{Profile, Vars};
use crate::steps::shorten_role_name;

/// Where a command works: kube client, AWS clients, cluster, namespace.
pub(crate) struct Session {
    pub(crate) kube: kube::Client,
    pub(crate) aws: Aws,
    pub(crate) cluster_name: String,
    pub(crate) namespace: String,
}

/// The namespace: `-n`, else the context's (unless it is just `default`), else the profile's.
pub(crate) fn resolve_namespace(
    global: &GlobalArgs,
    target: Option<&KubeTarget>,
    profile: &Profile,
) -> Result<String, CommandError> {
    let from_context = target
        .and_then(KubeTarget::context_namespace)
        .filter(|n| n != "default");
    // A profile without a bundle works in its IRSA role's fixed namespace (sagemaker-operator).
    let from_profile = profile
        .spec
        .namespace
        .as_ref()
        .map(|b| b.default_name.clone())
        .or_else(|| {
            profile
                .spec
                .irsa_roles
                .iter()
                .map(|r| r.namespace.clone())
                .find(|ns| !ns.contains("${"))
        });
    let namespace = global
        .namespace
        .clone()
        .or(from_context)
        .or(from_profile)
        .ok_or_else(|| CommandError::Usage("no namespace given; pass -n NAMESPACE".to_owned()))?;
    if !is_dns_label(&namespace) {
        return Err(CommandError::Usage(format!(
            "namespace {namespace:?} is not a valid name (lowercase letters, digits and '-', at most 63); pass another -n"
        )));
    }
    Ok(namespace)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `--enforcement` over the enforcement the profile's namespace bundle names.
pub(crate) fn set_enforcement(
    profile: &mut Profile,
    enforcement: Option<EnforcementArg>,
) -> Result<(), CommandError> {
    let Some(mode) = enforcement else {
        return Ok(());
    };
    match profile.spec.namespace.as_mut() {
        Some(bundle) => {
            bundle.enforcement = mode.into();
            Ok(())
        }
        None => Err(CommandError::Usage(format!(
            "--enforcement: profile {} makes no namespace bundle, so there is no namespace policy to enforce; leave out --enforcement",
            profile.name()
        ))),
    }
}

/// Profile parameters from `--param` and the dedicated flags.
pub(crate) fn given_params(
    profile: &Profile,
    args: &ConnectArgs,
) -> Result<BTreeMap<String, String>, CommandError> {
    let mut given: BTreeMap<String, String> = args.params.iter().cloned().collect();
    let flags = [("vendor-account", &args.vendor_account)]
        .into_iter()
        .chain(args.parameter_flags());
    for (flag, value) in flags {
        let Some(value) = value else { continue };
        let param = profile
            .spec
            .parameters
            .iter()
            .find(|p| p.flag.as_deref() == Some(flag))
            .ok_or_else(|| {
                CommandError::Usage(format!(
                    "--{flag} is not used by profile {}; see `kubectl mlplatform profiles show {}`",
                    profile.name(),
                    profile.name()
                ))
            })?;
        given.insert(param.name.clone(), value.clone());
    }
    Ok(given)
}

/// Cluster and region from the flags, else from the kubeconfig context's EKS cluster.
pub(crate) fn cluster_and_region(
    cluster: Option<&String>,
    region: Option<&String>,
    hint: Option<ClusterHint>,
) -> Result<(String, Option<String>), CommandError> {
    let name = cluster
        .cloned()
        .or_else(|| hint.as_ref().map(|h| h.name.clone()))
        .ok_or_else(|| {
            CommandError::Usage(
                "cannot tell which EKS cluster to use: the kubeconfig context is neither an EKS cluster ARN nor uses `aws eks get-token --cluster-name`; pass --cluster NAME"
                    .to_owned(),
            )
        })?;
    let region = region.cloned().or_else(|| hint.and_then(|h| h.region));
    Ok((name, region))
}

/// Resolves context, cluster, region and namespace, and builds both clients.
pub(crate) async fn session(
    global: &GlobalArgs,
    args: &ConnectArgs,
    profile: &Profile,
) -> Result<Session, CommandError> {
    if args.identity == Identity::PodIdentity && profile.spec.irsa_roles.is_empty() {
        return Err(CommandError::Usage(format!(
            "--identity pod-identity: profile {} has no workload roles (irsaRoles) for EKS Pod Identity; leave out --identity",
            profile.name()
        )));
    }
    let target = load_target(global)?;
    let hint = target.cluster_hint();
    let (cluster_name, region) =
        cluster_and_region(args.cluster.as_ref(), args.region.as_ref(), hint.clone())?;
    let namespace = resolve_namespace(global, Some(&target), profile)?;
    tracing::debug!(cluster = %cluster_name, region = ?region, %namespace, hint = ?hint, "target resolved");
    let (kube, aws) = tokio::join!(target.client(), Aws::from_env(region.as_deref()));
    Ok(Session {
        kube: kube?,
        aws: aws?,
        cluster_name,
        namespace,
    })
}

/// Vars known before describe-cluster (names that use only these can be read in parallel).
fn early_vars(profile: &Profile, session: &Session, params: &BTreeMap<String, String>) -> Vars {
    let mut vars = Vars::new();
    vars.set("profile", profile.name())
        .set("cluster", session.cluster_name.as_str())
        .set("region", session.aws.region.as_str())
        .set("namespace", session.namespace.as_str());
    for (k, v) in params {
        vars.set(k, v.as_str());
    }
    vars
}

fn role_name(profile: &Profile, vars: &Vars) -> Option<String> {
    let spec = profile.spec.vendor_role.as_ref()?;
    vars.render("spec.vendorRole.name", &spec.name)
        .ok()
        .map(|n| shorten_role_name(&n))
}

/// Keys of every object of the bundle in `namespace` (namespace, shared and namespaced).
fn bundle_keys(profile: &Profile, vars: &Vars, namespace: &str) -> Option<Vec<ObjectKey>> {
    let spec = profile.spec.namespace.as_ref()?;
    let bundle = render_bundle(profile, spec, vars, namespace).ok()?;
    let mut keys = vec![bundle.namespace_object(profile.name()).key];
    keys.extend(
        bundle
            .cluster_scoped
            .iter()
            .chain(&bundle.namespaced)
            .map(|o| o.key.clone()),
    );
    Some(keys)
}

/// The vendor role's inline policy names, as far as they render from `vars` (read with the
/// role in one round trip).
fn vendor_policy_names(profile: &Profile, vars: &Vars) -> Vec<String> {
    let Some(spec) = &profile.spec.vendor_role else {
        return Vec::new();
    };
    spec.inline_policies
        .iter()
        .filter_map(|p| {
            vars.render("spec.vendorRole.inlinePolicies[].name", &p.name)
                .ok()
        })
        .collect()
}

async fn read_role(
    aws: &Aws,
    name: Option<&str>,
    expected_policies: &[String],
) -> Result<Option<RoleFacts>, CommandError> {
    match name {
        Some(name) => Ok(aws.get_role_expecting(name, expected_policies).await?),
        None => Ok(None),
    }
}

async fn read_objects(
    kube: &kube::Client,
    keys: &[ObjectKey],
) -> Result<BTreeMap<ObjectKey, Value>, CommandError> {
    get_objects(kube, keys.iter().cloned())
        .await
        .map_err(|(_, e)| CommandError::from(e))
}

/// What the reads are for: connect also fetches the issuer's thumbprint when the OIDC provider
/// is missing; disconnect also lists the roles that trust the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Connect,
    Disconnect,
    Doctor,
}

/// Keys of the ServiceAccounts (and their namespaces) IRSA roles annotate.
fn irsa_object_keys(profile: &Profile, vars: &Vars) -> Vec<ObjectKey> {
    let mut keys = Vec::new();
    for (i, spec) in profile.spec.irsa_roles.iter().enumerate() {
        if !spec.annotate_service_accounts {
            continue;
        }
        let Ok(ns) = vars.render(&format!("spec.irsaRoles[{i}].namespace"), &spec.namespace) else {
            continue;
        };
        keys.push(ObjectKey {
            kind: Kind::Namespace,
            namespace: None,
            name: ns.clone(),
        });
        for sa in &spec.service_accounts {
            if let Ok(sa) = vars.render("spec.irsaRoles[].serviceAccounts", sa) {
                keys.push(ObjectKey {
                    kind: Kind::ServiceAccount,
                    namespace: Some(ns.clone()),
                    name: sa,
                });
            }
        }
    }
    keys
}

/// Names of the existing roles the profile adds policies to (those whose parameter is given).
fn existing_role_names(profile: &Profile, vars: &Vars) -> Vec<String> {
    profile
        .spec
        .existing_role_policies
        .iter()
        .filter_map(|spec| {
            vars.render("spec.existingRolePolicies[].roleArn", &spec.role_arn)
                .ok()
        })
        .filter_map(|arn| existing_role_name(&arn))
        .collect()
}

async fn read_roles(
    aws: &Aws,
    names: Vec<String>,
) -> Result<BTreeMap<String, RoleFacts>, CommandError> {
    let found = try_join_all(
        names
            .into_iter()
            .map(|name| async move { aws.get_role(&name).await.map(|r| r.map(|r| (name, r))) }),
    )
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The OIDC provider for the cluster's issuer (with its tags), the thumbprint when it is
/// missing (connect), and the roles trusting it (disconnect).
async fn read_oidc(
    aws: &Aws,
    cluster: &ClusterFacts,
    purpose: Purpose,
) -> Result<(Option<OidcProviderFacts>, Option<String>, Vec<String>), CommandError> {
    let Some(issuer) = cluster.oidc_issuer.as_deref().filter(|i| !i.is_empty()) else {
        return Ok((None, None, Vec::new()));
    };
    let Some(arn) = aws.find_oidc_provider(issuer).await? else {
        let thumbprint = if purpose == Purpose::Connect {
            let roots = std::sync::Arc::new(crate::oidc::system_roots());
            match crate::oidc::fetch_thumbprint(issuer, roots, crate::oidc::THUMBPRINT_TIMEOUT)
                .await
            {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::info!(error = %e, "no thumbprint; IAM does not need one for EKS issuers");
                    None
                }
            }
        } else {
            None
        };
        return Ok((None, thumbprint, Vec::new()));
    };
    let (tags, trusting) = tokio::try_join!(aws.oidc_provider_tags(&arn), async {
        if purpose == Purpose::Disconnect {
            aws.roles_trusting(&arn).await
        } else {
            Ok(Vec::new())
        }
    })?;
    Ok((Some(OidcProviderFacts { arn, tags }), None, trusting))
}

/// The cluster's network (for manual steps and security group rules) and, when the profile
/// opens ports on the cluster security group, that group's rules. disconnect reads them even
/// without the CIDR parameter (to find ours), but then a failed read only warns: a user who
/// never opened ports need not be allowed to read EC2.
async fn read_network(
    aws: &Aws,
    profile: &Profile,
    params: &BTreeMap<String, String>,
    cluster: &str,
    purpose: Purpose,
) -> Result<(Option<ClusterNetwork>, Option<Vec<SecurityGroupRuleFacts>>), CommandError> {
    let opens = opens_ports(profile, params);
    let reads_rules =
        profile.spec.security_group_ingress.is_some() && (opens || purpose == Purpose::Disconnect);
    if profile.spec.manual_steps.is_empty() && !reads_rules {
        return Ok((None, None));
    }
    let network = aws.describe_cluster_network(cluster).await?;
    let Some(group) = network
        .cluster_security_group_id
        .as_deref()
        .filter(|_| reads_rules)
    else {
        return Ok((Some(network), None));
    };
    match aws.security_group_rules(group).await {
        Ok(rules) => Ok((Some(network), Some(rules))),
        Err(e) if !opens => {
            crate::output::warn(&format!(
                "cannot read the rules of cluster security group {group} ({e}); rules connect opened there, if any, were left in place"
            ));
            Ok((Some(network), None))
        }
        Err(e) => Err(e.into()),
    }
}

/// EKS Pod Identity: the associations of the workload roles' ServiceAccounts (with
/// `--identity pod-identity`; on disconnect also when a role's trust has a Pod Identity
/// statement) and, for doctor, the agent add-on.
async fn read_pod_identity(
    aws: &Aws,
    profile: &Profile,
    vars: &Vars,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    roles: &BTreeMap<String, RoleFacts>,
    purpose: Purpose,
) -> Result<PodIdentityFacts, CommandError> {
    let wanted = inputs.identity == Identity::PodIdentity;
    let trusting = roles.values().any(|r| trusts_pod_identity(&r.trust_policy));
    let cleanup = trusting && purpose == Purpose::Disconnect;
    if !(wanted || cleanup) {
        return Ok(PodIdentityFacts::default());
    }
    let keys = irsa_service_account_keys(profile, vars);
    let agent = async {
        if wanted && purpose == Purpose::Doctor {
            read_addon(aws, &cluster.name, AGENT_ADDON).await
        } else {
            Ok(None)
        }
    };
    let (associations, agent_addon) =
        tokio::try_join!(read_associations(aws, &cluster.name, keys), agent)?;
    Ok(PodIdentityFacts {
        associations: Some(associations),
        agent_addon,
    })
}

/// Reads everything a connect/disconnect/doctor plan compares against, in parallel.
pub(crate) async fn read_state(
    session: &Session,
    profile: &Profile,
    params: &BTreeMap<String, String>,
    inputs: &ConnectInputs,
    purpose: Purpose,
) -> Result<(ClusterFacts, Observed), CommandError> {
    let vars = early_vars(profile, session, params);
    let early_role = role_name(profile, &vars);
    let early_policies = vendor_policy_names(profile, &vars);
    let early_keys = bundle_keys(profile, &vars, &session.namespace);
    let needs_aws_auth = profile.spec.cluster_access.is_some();
    let (caller, cluster, role, aws_auth, objects, namespaces) = tokio::try_join!(
        async { Ok::<CallerIdentity, CommandError>(session.aws.caller_identity().await?) },
        async { Ok(session.aws.describe_cluster(&session.cluster_name).await?) },
        read_role(&session.aws, early_role.as_deref(), &early_policies),
        async {
            if needs_aws_auth {
                Ok(read_aws_auth(&session.kube).await?)
            } else {
                Ok(None)
            }
        },
        read_objects(&session.kube, early_keys.as_deref().unwrap_or_default()),
        async { Ok(list_profile_namespaces(&session.kube, profile.name()).await?) },
    )?;
    // Names that need describe-cluster's answers (cluster ARN, account, issuer) are read now.
    let full = vars_for(profile, &cluster, params, &session.namespace);
    let role = match (&early_role, role_name(profile, &full)) {
        (None, Some(name)) => session.aws.get_role(&name).await?,
        _ => role,
    };
    let mut keys = match early_keys {
        Some(_) => Vec::new(),
        None => bundle_keys(profile, &full, &session.namespace).unwrap_or_default(),
    };
    keys.extend(irsa_object_keys(profile, &full));
    keys.retain(|k| !objects.contains_key(k));
    let mut role_names = irsa_role_names(profile, &full);
    role_names.extend(existing_role_names(profile, &full));
    let principal = access_principal(profile, &full, &caller.account)
        .filter(|_| uses_access_entry(profile, inputs, &cluster));
    let (more_objects, roles, oidc, storage_classes, (network, sg_rules), access_entry) = tokio::try_join!(
        read_objects(&session.kube, &keys),
        read_roles(&session.aws, role_names),
        async {
            if profile.spec.oidc_provider.is_some() {
                read_oidc(&session.aws, &cluster, purpose).await
            } else {
                Ok((None, None, Vec::new()))
            }
        },
        async {
            if profile.spec.storage_class.is_some() {
                Ok(list_objects(&session.kube, Kind::StorageClass).await?)
            } else {
                Ok(Vec::new())
            }
        },
        read_network(&session.aws, profile, params, &cluster.name, purpose),
        async {
            match &principal {
                Some(arn) => Ok(crate::eks_access::read_access_entry(
                    &session.aws,
                    &cluster.name,
                    &crate::arn::parse_iam_arn(arn)
                        .map(|a| a.without_path())
                        .unwrap_or_else(|_| arn.clone()),
                )
                .await?),
                None => Ok(None),
            }
        },
    )?;
    let pod_identity = read_pod_identity(
        &session.aws,
        profile,
        &full,
        inputs,
        &cluster,
        &roles,
        purpose,
    )
    .await?;
    let mut objects = objects;
    objects.extend(more_objects);
    let (oidc_provider, oidc_thumbprint, roles_trusting_provider) = oidc;
    tracing::debug!(
        role_found = role.is_some(),
        aws_auth_found = aws_auth.is_some(),
        objects_found = objects.len(),
        other_roles_found = roles.len(),
        oidc_provider = ?oidc_provider,
        "preflight read"
    );
    let observed = Observed {
        caller,
        role,
        aws_auth,
        objects,
        profile_namespaces: namespaces.into_iter().map(|(n, _)| n).collect(),
        oidc_provider,
        oidc_thumbprint,
        roles,
        roles_trusting_provider,
        storage_classes,
        network,
        security_group_rules: sg_rules,
        access_entry,
        pod_identity,
    };
    Ok((cluster, observed))
}

/// Reads just the bundle's objects and the profile's namespaces (namespace add/remove).
pub(crate) async fn read_bundle_state(
    kube: &kube::Client,
    profile: &Profile,
    vars: &Vars,
    namespace: &str,
) -> Result<Observed, CommandError> {
    let keys = bundle_keys(profile, vars, namespace).unwrap_or_default();
    let (objects, namespaces) = tokio::try_join!(read_objects(kube, &keys), async {
        Ok(list_profile_namespaces(kube, profile.name()).await?)
    })?;
    Ok(Observed {
        objects,
        profile_namespaces: namespaces.into_iter().map(|(n, _)| n).collect(),
        ..Observed::default()
    })
}

/// Checks parameters (strictly for connect/doctor: required ones must be there).
pub(crate) fn params_for(
    profile: &Profile,
    args: &ConnectArgs,
    strict: bool,
) -> Result<BTreeMap<String, String>, CommandError> {
    let given = given_params(profile, args)?;
    Ok(resolve_params(profile, &given, strict)?)
}

fn sa_object_key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::ServiceAccount,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// The ServiceAccounts at `keys`; None for one that does not exist.
pub(crate) async fn read_service_accounts(
    kube: &kube::Client,
    keys: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<(String, String), Option<Value>>, crate::kube_io::KubeIoError> {
    let found = try_join_all(keys.into_iter().map(|(ns, name)| async move {
        let live = get_object(kube, &sa_object_key(&ns, &name)).await?;
        Ok::<_, crate::kube_io::KubeIoError>(((ns, name), live))
    }))
    .await?;
    Ok(found.into_iter().collect())
}

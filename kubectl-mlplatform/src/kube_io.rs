//! Thin Kubernetes I/O: the client from kubeconfig/context, the EKS cluster a context points
//! at, and get/create/patch/delete of [`KubeObject`]s by key. Decisions live in `plan`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use crate::arn::parse_eks_cluster_arn;
use crate::common::{DryRun, GlobalArgs};
use crate::objects::{Kind, ObjectKey};
use crate::vocabulary::{FIELD_MANAGER, MANAGED_LABEL, MANAGED_VALUE, PROFILE_ANNOTATION};

#[derive(Debug, thiserror::Error)]
pub enum KubeIoError {
    #[error("cannot load kubeconfig {path}: {message}; check --kubeconfig / KUBECONFIG")]
    Kubeconfig { path: String, message: String },
    #[error(
        "no kubeconfig found; pass --kubeconfig or set KUBECONFIG (e.g. `aws eks update-kubeconfig --name CLUSTER`)"
    )]
    NoKubeconfig,
    #[error(
        "kubeconfig context {context:?} cannot be used: {message}; check --context (`kubectl config get-contexts`)"
    )]
    Context { context: String, message: String },
    #[error(
        "{action} {object}: forbidden ({message}); use a kubeconfig context with that permission or ask a cluster admin"
    )]
    Forbidden {
        action: &'static str,
        object: String,
        message: String,
    },
    #[error(
        "{action} {object}: unauthorized; refresh the cluster credentials (e.g. `aws eks update-kubeconfig`) and re-run"
    )]
    Unauthorized {
        action: &'static str,
        object: String,
    },
    #[error(
        "{action} {object}: namespace {namespace} is being deleted (Terminating), so nothing can be created in it; wait until it is gone (`kubectl get namespace {namespace}`) and re-run"
    )]
    NamespaceTerminating {
        action: &'static str,
        object: String,
        namespace: String,
    },
    #[error("{action} {object}: the object changed meanwhile; re-run the command")]
    Conflict {
        action: &'static str,
        object: String,
    },
    #[error(
        "{action} {object} failed: {message}; check cluster access (`kubectl cluster-info`) and re-run"
    )]
    Api {
        action: &'static str,
        object: String,
        message: String,
    },
}

/// Converts a kube error into one line naming the action and the object.
pub(crate) fn kube_error(
    action: &'static str,
    object: impl ToString,
    e: kube::Error,
) -> KubeIoError {
    let object = object.to_string();
    match e {
        kube::Error::Api(status)
            if status.code == 403 && terminating_namespace(&status).is_some() =>
        {
            KubeIoError::NamespaceTerminating {
                action,
                object,
                namespace: terminating_namespace(&status).unwrap_or_default(),
            }
        }
        kube::Error::Api(status) if status.code == 403 => KubeIoError::Forbidden {
            action,
            object,
            message: one_line(&status.message),
        },
        kube::Error::Api(status) if status.code == 401 => {
            KubeIoError::Unauthorized { action, object }
        }
        kube::Error::Api(status) if status.code == 409 => KubeIoError::Conflict { action, object },
        other => KubeIoError::Api {
            action,
            object,
            message: one_line(&other.to_string()),
        },
    }
}

/// The namespace a 403 says is being deleted: the API server refuses creates into a
/// Terminating namespace with the cause `NamespaceTerminating` ("namespace X is being
/// terminated").
fn terminating_namespace(status: &kube::core::Status) -> Option<String> {
    let cause = status
        .details
        .as_ref()?
        .causes
        .iter()
        .find(|c| c.reason == "NamespaceTerminating")?;
    Some(
        cause
            .message
            .strip_prefix("namespace ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("(its namespace)")
            .to_owned(),
    )
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The EKS cluster a kubeconfig context points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterHint {
    pub(crate) name: String,
    pub(crate) region: Option<String>,
}

/// A loaded kubeconfig and the context to use.
#[derive(Debug, Clone)]
pub(crate) struct KubeTarget {
    pub(crate) kubeconfig: Kubeconfig,
    pub(crate) context: Option<String>,
}

fn read_one(path: &Path) -> Result<Kubeconfig, KubeIoError> {
    Kubeconfig::read_from(path).map_err(|e| KubeIoError::Kubeconfig {
        path: path.display().to_string(),
        message: one_line(&e.to_string()),
    })
}

/// Loads the kubeconfig like kubectl: `--kubeconfig`/KUBECONFIG (a path list, merged), else
/// `~/.kube/config`.
pub(crate) fn load_target(global: &GlobalArgs) -> Result<KubeTarget, KubeIoError> {
    let paths: Vec<PathBuf> = match &global.kubeconfig {
        Some(list) => std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => std::env::var_os("HOME")
            .map(|h| vec![PathBuf::from(h).join(".kube").join("config")])
            .unwrap_or_default(),
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        if global.kubeconfig.is_none() && !path.exists() {
            continue;
        }
        let next = read_one(path)?;
        merged = Some(match merged {
            None => next,
            Some(acc) => acc.merge(next).map_err(|e| KubeIoError::Kubeconfig {
                path: path.display().to_string(),
                message: one_line(&e.to_string()),
            })?,
        });
    }
    let kubeconfig = merged.ok_or(KubeIoError::NoKubeconfig)?;
    let target = KubeTarget {
        kubeconfig,
        context: global.context.clone(),
    };
    match target.context_name() {
        None => Err(KubeIoError::Context {
            context: "(none)".to_owned(),
            message: "the kubeconfig has no current context".to_owned(),
        }),
        Some(name) if !target.kubeconfig.contexts.iter().any(|c| c.name == name) => {
            Err(KubeIoError::Context {
                context: name.to_owned(),
                message: "no such context in the kubeconfig".to_owned(),
            })
        }
        Some(_) => Ok(target),
    }
}

impl KubeTarget {
    fn context_name(&self) -> Option<&str> {
        self.context
            .as_deref()
            .or(self.kubeconfig.current_context.as_deref())
    }

    fn context(&self) -> Option<&kube::config::Context> {
        let name = self.context_name()?;
        self.kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
    }

    /// The namespace the context sets, if any.
    pub(crate) fn context_namespace(&self) -> Option<String> {
        self.context()
            .and_then(|c| c.namespace.clone())
            .filter(|n| !n.is_empty())
    }

    /// The EKS cluster of the context: its cluster entry named by an EKS ARN (what
    /// `aws eks update-kubeconfig` writes), else its user's `aws eks get-token --cluster-name`.
    pub(crate) fn cluster_hint(&self) -> Option<ClusterHint> {
        let ctx = self.context()?;
        if let Ok(arn) = parse_eks_cluster_arn(&ctx.cluster) {
            return Some(ClusterHint {
                name: arn.name,
                region: Some(arn.region),
            });
        }
        let user = ctx.user.as_deref()?;
        let exec = self
            .kubeconfig
            .auth_infos
            .iter()
            .find(|a| a.name == user)?
            .auth_info
            .as_ref()?
            .exec
            .as_ref()?;
        cluster_hint_from_exec_args(exec.args.as_deref().unwrap_or_default())
    }

    pub(crate) async fn client(&self) -> Result<kube::Client, KubeIoError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            cluster: None,
            user: None,
        };
        let context_label = self.context_name().unwrap_or("(current)").to_owned();
        let config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &options)
            .await
            .map_err(|e| KubeIoError::Context {
                context: context_label.clone(),
                message: one_line(&e.to_string()),
            })?;
        kube::Client::try_from(config).map_err(|e| KubeIoError::Context {
            context: context_label,
            message: one_line(&e.to_string()),
        })
    }
}

/// `aws eks get-token --cluster-name NAME [--region R]` (also `--cluster-name=NAME`), and
/// aws-iam-authenticator's `token -i NAME`.
pub(crate) fn cluster_hint_from_exec_args(args: &[String]) -> Option<ClusterHint> {
    let value_of = |flags: &[&str]| -> Option<String> {
        args.iter().enumerate().find_map(|(i, a)| {
            flags.iter().find_map(|f| {
                if a == f {
                    args.get(i + 1).cloned()
                } else {
                    a.strip_prefix(&format!("{f}=")).map(str::to_owned)
                }
            })
        })
    };
    let is_eks_get_token = args
        .windows(2)
        .any(|w| w[0] == "eks" && w[1] == "get-token");
    let is_authenticator = args.iter().any(|a| a == "token");
    let name = if is_eks_get_token {
        value_of(&["--cluster-name"])
    } else if is_authenticator {
        value_of(&["-i", "--cluster-id"])
    } else {
        None
    }?;
    Some(ClusterHint {
        name,
        region: value_of(&["--region"]),
    })
}

fn api_for(client: &kube::Client, key: &ObjectKey) -> Api<DynamicObject> {
    let ar = key.kind.api_resource();
    match (&key.namespace, key.kind.namespaced()) {
        (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

fn to_value(obj: DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

pub(crate) async fn get_object(
    client: &kube::Client,
    key: &ObjectKey,
) -> Result<Option<Value>, KubeIoError> {
    api_for(client, key)
        .get_opt(&key.name)
        .await
        .map(|o| o.map(to_value))
        .map_err(|e| kube_error("reading", key, e))
}

/// The live objects of `keys`, read in parallel; absent ones are left out. The first failure
/// is returned with the object it was for.
pub(crate) async fn get_objects(
    client: &kube::Client,
    keys: impl IntoIterator<Item = ObjectKey>,
) -> Result<std::collections::BTreeMap<ObjectKey, Value>, (ObjectKey, KubeIoError)> {
    let found = futures::future::try_join_all(keys.into_iter().map(|key| async move {
        match get_object(client, &key).await {
            Ok(live) => Ok(live.map(|l| (key, l))),
            Err(e) => Err((key, e)),
        }
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

pub(crate) async fn create_object(
    client: &kube::Client,
    key: &ObjectKey,
    body: &Value,
    dry_run: DryRun,
) -> Result<(), KubeIoError> {
    let obj: DynamicObject =
        serde_json::from_value(body.clone()).map_err(|e| KubeIoError::Api {
            action: "rendering",
            object: key.to_string(),
            message: e.to_string(),
        })?;
    let pp = PostParams {
        dry_run: dry_run == DryRun::Server,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    api_for(client, key)
        .create(&pp, &obj)
        .await
        .map(drop)
        .map_err(|e| kube_error("creating", key, e))
}

pub(crate) async fn merge_patch_object(
    client: &kube::Client,
    key: &ObjectKey,
    patch: &Value,
    dry_run: DryRun,
) -> Result<(), KubeIoError> {
    let mut pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    if dry_run == DryRun::Server {
        pp = pp.dry_run();
    }
    api_for(client, key)
        .patch(&key.name, &pp, &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(|e| kube_error("updating", key, e))
}

/// Server-side apply of a whole object with the plugin's field manager (forced: the objects
/// applied this way are wholly the plugin's).
pub(crate) async fn apply_object(
    client: &kube::Client,
    key: &ObjectKey,
    body: &Value,
    dry_run: DryRun,
) -> Result<(), KubeIoError> {
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.dry_run = dry_run == DryRun::Server;
    api_for(client, key)
        .patch(&key.name, &pp, &Patch::Apply(body))
        .await
        .map(drop)
        .map_err(|e| kube_error("applying", key, e))
}

pub(crate) async fn delete_object(
    client: &kube::Client,
    key: &ObjectKey,
    dry_run: DryRun,
) -> Result<(), KubeIoError> {
    let dp = DeleteParams {
        dry_run: dry_run == DryRun::Server,
        ..DeleteParams::default()
    };
    match api_for(client, key).delete(&key.name, &dp).await {
        Ok(_) => Ok(()),
        // Gone meanwhile: the goal holds.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(kube_error("deleting", key, e)),
    }
}

/// Every object of a cluster-scoped kind (e.g. all StorageClasses). A real API server leaves
/// `kind`/`apiVersion` out of list items; they are put back from what was listed, so a listed
/// object reads (and shows in reports) like one that was fetched.
pub(crate) async fn list_objects(
    client: &kube::Client,
    kind: Kind,
) -> Result<Vec<Value>, KubeIoError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_error("listing", kind.as_str(), e))?;
    Ok(list
        .items
        .into_iter()
        .map(|item| with_type(to_value(item), kind))
        .collect())
}

fn with_type(mut item: Value, kind: Kind) -> Value {
    if let Some(map) = item.as_object_mut() {
        map.insert("apiVersion".to_owned(), kind.api_version().into());
        map.insert("kind".to_owned(), kind.as_str().into());
    }
    item
}

/// Names of the namespaces managed for `profile`, with their live objects.
pub(crate) async fn list_profile_namespaces(
    client: &kube::Client,
    profile: &str,
) -> Result<Vec<(String, Value)>, KubeIoError> {
    list_managed_namespaces(client).await.map(|all| {
        all.into_iter()
            .filter(|(_, ns)| ns["metadata"]["annotations"][PROFILE_ANNOTATION] == profile)
            .collect()
    })
}

/// Every namespace labelled managed, with its live object.
pub(crate) async fn list_managed_namespaces(
    client: &kube::Client,
) -> Result<Vec<(String, Value)>, KubeIoError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &Kind::Namespace.api_resource());
    let selector = format!("{MANAGED_LABEL}={MANAGED_VALUE}");
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| kube_error("listing", "namespaces", e))?;
    let mut out: Vec<(String, Value)> = list
        .items
        .into_iter()
        .map(to_value)
        // Filter here too: a selector the server ignored must not widen the result.
        .filter(|v| v["metadata"]["labels"][MANAGED_LABEL] == MANAGED_VALUE)
        .filter_map(|v| Some((v["metadata"]["name"].as_str()?.to_owned(), v)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// One question to the API server's authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessQuestion {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
    pub(crate) verb: String,
    pub(crate) group: String,
    pub(crate) resource: String,
    /// None: cluster-wide.
    pub(crate) namespace: Option<String>,
}

impl AccessQuestion {
    /// A ServiceAccount as the authorizer sees it.
    pub(crate) fn service_account(
        namespace: &str,
        name: &str,
        verb: &str,
        group: &str,
        resource: &str,
    ) -> Self {
        Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            namespace: Some(namespace.to_owned()),
        }
    }
}

/// Asks a SubjectAccessReview whether the subject may do it.
pub(crate) async fn can_i(client: &kube::Client, q: &AccessQuestion) -> Result<bool, KubeIoError> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(q.user.clone()),
            groups: Some(q.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(q.verb.clone()),
                group: Some(q.group.clone()),
                resource: Some(q.resource.clone()),
                namespace: q.namespace.clone(),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| kube_error("creating", "SubjectAccessReview", e))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_create_into_a_terminating_namespace_says_so_in_one_line() {
        // The body kube-apiserver sends for a create into a namespace being deleted.
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "serviceaccounts \"sa\" is forbidden: unable to create new content in namespace team because it is being terminated",
            "reason": "Forbidden",
            "details": {"name": "sa", "kind": "serviceaccounts", "causes": [{
                "reason": "NamespaceTerminating",
                "message": "namespace team is being terminated",
                "field": "metadata.namespace"}]},
            "code": 403,
        }))
        .unwrap();
        let e = kube_error(
            "creating",
            "ServiceAccount team/sa",
            kube::Error::Api(status.boxed()),
        );
        assert_eq!(
            e.to_string(),
            "creating ServiceAccount team/sa: namespace team is being deleted (Terminating), so nothing can be created in it; wait until it is gone (`kubectl get namespace team`) and re-run"
        );
        // Any other 403 stays a permission problem.
        let forbidden: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "no", "reason": "Forbidden", "code": 403,
        }))
        .unwrap();
        let e = kube_error("creating", "x", kube::Error::Api(forbidden.boxed()));
        assert!(matches!(e, KubeIoError::Forbidden { .. }), "{e}");
    }

    #[test]
    fn cluster_comes_from_aws_eks_get_token_args() {
        assert_eq!(
            cluster_hint_from_exec_args(&args(
                "--region us-east-2 eks get-token --cluster-name kubetest32 --output json"
            )),
            Some(ClusterHint {
                name: "kubetest32".into(),
                region: Some("us-east-2".into())
            })
        );
        assert_eq!(
            cluster_hint_from_exec_args(&args("eks get-token --cluster-name=c1")),
            Some(ClusterHint {
                name: "c1".into(),
                region: None
            })
        );
        assert_eq!(
            cluster_hint_from_exec_args(&args("token -i c2")),
            Some(ClusterHint {
                name: "c2".into(),
                region: None
            })
        );
        assert_eq!(
            cluster_hint_from_exec_args(&args("sts get-caller-identity")),
            None
        );
    }

    #[test]
    fn cluster_comes_from_an_eks_arn_context() {
        let yaml = r#"
apiVersion: v1
kind: Config
current-context: arn:aws:eks:us-east-2:678901234557:cluster/kubetest32
clusters:
- name: arn:aws:eks:us-east-2:678901234557:cluster/kubetest32
  cluster: {server: "https://example.invalid"}
- name: plain
  cluster: {server: "https://example.invalid"}
contexts:
- name: arn:aws:eks:us-east-2:678901234557:cluster/kubetest32
  context: {cluster: "arn:aws:eks:us-east-2:678901234557:cluster/kubetest32", user: u, namespace: team}
- name: plain
  context: {cluster: plain, user: u}
users:
- name: u
  user: {}
"#;
        let kubeconfig = Kubeconfig::from_yaml(yaml).unwrap();
        let target = KubeTarget {
            kubeconfig,
            context: None,
        };
        assert_eq!(
            target.cluster_hint(),
            Some(ClusterHint {
                name: "kubetest32".into(),
                region: Some("us-east-2".into())
            })
        );
        assert_eq!(target.context_namespace().as_deref(), Some("team"));
        let plain = KubeTarget {
            context: Some("plain".into()),
            ..target
        };
        assert_eq!(plain.cluster_hint(), None);
    }
}

//! The scanner's reading half: the fields the decisions need, read as the derived
//! `Deserialize` impls read them (types, nulls, duplicate fields), into the same structs;
//! everything else is skipped by the [`super::lexer`].

use std::borrow::Cow;

use super::lexer::Json;
use crate::Endpoint;
use crate::objects::{
    AnnotationKeys, Container, EnvNames, HasToken, JobTemplate, KeepKeys, ObjectMeta, OsKeys, Pod,
    PodForValidation, PodSecurityContext, PodServiceAccount, PodSpec, PodTemplate, ServiceAccount,
    StrMap, TOKEN_MOUNT_PATH, TOKEN_VOLUME, Text, VolumeMounts, Volumes, Workload, WorkloadSpec,
};
use crate::review::{AdmissionRequest, GroupVersionKind, Object, Operation, View, object_view};

/// CronJob → jobTemplate → spec → ... nesting before the serde reader takes over.
const MAX_WORKLOAD_DEPTH: usize = 8;

/// Stores a field seen for the first time; `None` for a repeated one (serde derive rejects it).
pub(super) fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

impl<'a> Json<'a> {
    pub(super) fn request(&mut self, endpoint: Endpoint) -> Option<AdmissionRequest<'a>> {
        let (mut uid, mut kind, mut sub_resource, mut name, mut namespace) =
            (None, None, None, None, None);
        let (mut operation, mut object) = (None, None);
        self.object(|j, key| match key {
            "uid" => once(&mut uid, j.text()?),
            "kind" => once(&mut kind, j.group_version_kind()?),
            "subResource" => once(&mut sub_resource, j.opt_text()?),
            "name" => once(&mut name, j.opt_text()?),
            "namespace" => once(&mut namespace, j.opt_text()?),
            "operation" => once(&mut operation, j.operation()?),
            "object" => {
                // The API server sends kind and operation first; otherwise serde reads it.
                let (Some(kind), Some(operation)) = (&kind, operation) else {
                    return None;
                };
                let subresource = sub_resource.as_ref().is_some_and(|s: &Option<Text<'_>>| {
                    s.as_deref().is_some_and(|s| !s.is_empty())
                });
                let read = match object_view(endpoint, kind, operation, subresource) {
                    None => {
                        j.skip()?;
                        Object::Skipped
                    }
                    Some(_) if j.null() => Object::Absent,
                    Some(View::Pod) => Object::Pod(Box::new(j.pod()?)),
                    Some(View::PodForValidation) => {
                        Object::PodForValidation(Box::new(j.pod_for_validation()?))
                    }
                    Some(View::Workload) => Object::Workload(Box::new(j.workload(0)?)),
                    Some(View::ServiceAccount) => {
                        Object::ServiceAccount(Box::new(j.service_account()?))
                    }
                };
                once(&mut object, read)
            }
            _ => j.skip(),
        })?;
        Some(AdmissionRequest {
            uid: uid.unwrap_or_default().0,
            kind: kind.unwrap_or_default(),
            sub_resource: sub_resource.flatten(),
            name: name.flatten(),
            namespace: namespace.flatten(),
            operation: operation?,
            object: object.unwrap_or_default(),
        })
    }

    fn group_version_kind(&mut self) -> Option<GroupVersionKind<'a>> {
        let (mut group, mut version, mut kind) = (None, None, None);
        self.object(|j, key| match key {
            "group" => once(&mut group, j.text()?),
            "version" => once(&mut version, j.text()?),
            "kind" => once(&mut kind, j.text()?),
            _ => j.skip(),
        })?;
        Some(GroupVersionKind {
            group: group.unwrap_or_default().0,
            version: version.unwrap_or_default().0,
            kind: kind.unwrap_or_default().0,
        })
    }

    fn operation(&mut self) -> Option<Operation> {
        Some(match &*self.text()? {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => return None,
        })
    }

    /// A map of strings of which `K` keeps some entries (every value must be a string).
    fn str_map<K: KeepKeys>(&mut self) -> Option<StrMap<'a, K>> {
        let mut map = StrMap::default();
        self.object(|j, key| {
            let value = j.text()?;
            if K::keep(key) {
                map.push(Text(Cow::Borrowed(key)), value);
            }
            Some(())
        })?;
        Some(map)
    }

    fn opt_str_map<K: KeepKeys>(&mut self) -> Option<Option<StrMap<'a, K>>> {
        if self.null() {
            Some(None)
        } else {
            self.str_map().map(Some)
        }
    }

    fn meta(&mut self) -> Option<ObjectMeta<'a>> {
        let (mut name, mut generate_name, mut annotations, mut deletion_timestamp) =
            (None, None, None, None);
        self.object(|j, key| match key {
            "name" => once(&mut name, j.opt_text()?),
            "generateName" => once(&mut generate_name, j.opt_text()?),
            "annotations" => once(&mut annotations, j.opt_str_map::<AnnotationKeys>()?),
            "deletionTimestamp" => once(&mut deletion_timestamp, j.opt_text()?),
            _ => j.skip(),
        })?;
        Some(ObjectMeta {
            name: name.flatten(),
            generate_name: generate_name.flatten(),
            annotations: annotations.flatten(),
            deletion_timestamp: deletion_timestamp.flatten(),
        })
    }

    fn pod(&mut self) -> Option<Pod<'a>> {
        let (mut metadata, mut spec) = (None, None);
        self.object(|j, key| match key {
            "metadata" => once(&mut metadata, j.meta()?),
            "spec" => once(&mut spec, j.pod_spec()?),
            _ => j.skip(),
        })?;
        Some(Pod {
            metadata: metadata.unwrap_or_default(),
            spec: spec.unwrap_or_default(),
        })
    }

    fn pod_spec(&mut self) -> Option<PodSpec<'a>> {
        let (mut service_account_name, mut service_account, mut node_selector) = (None, None, None);
        let (mut containers, mut init_containers, mut volumes) = (None, None, None);
        let mut security_context = None;
        self.object(|j, key| match key {
            "serviceAccountName" => once(&mut service_account_name, j.opt_text()?),
            "serviceAccount" => once(&mut service_account, j.opt_text()?),
            "nodeSelector" => once(&mut node_selector, j.opt_str_map::<OsKeys>()?),
            "containers" => once(&mut containers, j.containers()?),
            "initContainers" => once(&mut init_containers, j.containers()?),
            "volumes" => once(&mut volumes, j.volumes()?),
            "securityContext" => once(&mut security_context, j.security_context()?),
            _ => j.skip(),
        })?;
        Some(PodSpec {
            service_account_name: service_account_name.flatten(),
            service_account: service_account.flatten(),
            node_selector: node_selector.flatten(),
            containers: containers.flatten(),
            init_containers: init_containers.flatten(),
            volumes: volumes.flatten(),
            security_context: security_context.flatten(),
        })
    }

    fn security_context(&mut self) -> Option<Option<PodSecurityContext>> {
        if self.null() {
            return Some(None);
        }
        let mut fs_group = None;
        self.object(|j, key| match key {
            "fsGroup" => once(&mut fs_group, j.opt_i64()?),
            _ => j.skip(),
        })?;
        Some(Some(PodSecurityContext {
            fs_group: fs_group.flatten(),
        }))
    }

    fn containers(&mut self) -> Option<Option<Vec<Container<'a>>>> {
        if self.null() {
            return Some(None);
        }
        let mut list = Vec::new();
        self.array(|j| {
            list.push(j.container()?);
            Some(())
        })?;
        Some(Some(list))
    }

    fn container(&mut self) -> Option<Container<'a>> {
        let (mut name, mut env, mut volume_mounts) = (None, None, None);
        self.object(|j, key| match key {
            "name" => once(&mut name, j.text()?),
            "env" => once(&mut env, j.env()?),
            "volumeMounts" => once(&mut volume_mounts, j.volume_mounts()?),
            _ => j.skip(),
        })?;
        Some(Container {
            name: name.unwrap_or_default(),
            env: env.flatten(),
            volume_mounts: volume_mounts.flatten(),
        })
    }

    /// An object's `name` (`Named`).
    fn named(&mut self) -> Option<Text<'a>> {
        let mut name = None;
        self.object(|j, key| match key {
            "name" => once(&mut name, j.text()?),
            _ => j.skip(),
        })?;
        Some(name.unwrap_or_default())
    }

    fn env(&mut self) -> Option<Option<EnvNames>> {
        if self.null() {
            return Some(None);
        }
        let mut names = EnvNames::default();
        self.array(|j| {
            names = names.with(&j.named()?);
            Some(())
        })?;
        Some(Some(names))
    }

    fn volumes(&mut self) -> Option<Option<Volumes>> {
        if self.null() {
            return Some(None);
        }
        let mut found = false;
        self.array(|j| {
            found |= *j.named()? == *TOKEN_VOLUME;
            Some(())
        })?;
        Some(Some(Volumes(HasToken(found))))
    }

    fn volume_mounts(&mut self) -> Option<Option<VolumeMounts>> {
        if self.null() {
            return Some(None);
        }
        let mut found = false;
        self.array(|j| {
            let (mut name, mut mount_path) = (None, None);
            j.object(|j, key| match key {
                "name" => once(&mut name, j.text()?),
                "mountPath" => once(&mut mount_path, j.text()?),
                _ => j.skip(),
            })?;
            found |= name.is_some_and(|n| *n == *TOKEN_VOLUME)
                || mount_path.is_some_and(|p| *p == *TOKEN_MOUNT_PATH);
            Some(())
        })?;
        Some(Some(VolumeMounts(HasToken(found))))
    }

    fn pod_service_account(&mut self) -> Option<PodServiceAccount<'a>> {
        let (mut service_account_name, mut service_account) = (None, None);
        self.object(|j, key| match key {
            "serviceAccountName" => once(&mut service_account_name, j.opt_text()?),
            "serviceAccount" => once(&mut service_account, j.opt_text()?),
            _ => j.skip(),
        })?;
        Some(PodServiceAccount {
            service_account_name: service_account_name.flatten(),
            service_account: service_account.flatten(),
        })
    }

    fn pod_for_validation(&mut self) -> Option<PodForValidation<'a>> {
        let (mut metadata, mut spec) = (None, None);
        self.object(|j, key| match key {
            "metadata" => once(&mut metadata, j.meta()?),
            "spec" => once(&mut spec, j.pod_service_account()?),
            _ => j.skip(),
        })?;
        Some(PodForValidation {
            metadata: metadata.unwrap_or_default(),
            spec: spec.unwrap_or_default(),
        })
    }

    fn workload(&mut self, depth: usize) -> Option<Workload<'a>> {
        let (mut metadata, mut spec) = (None, None);
        self.object(|j, key| match key {
            "metadata" => once(&mut metadata, j.meta()?),
            "spec" => once(&mut spec, j.workload_spec(depth)?),
            _ => j.skip(),
        })?;
        Some(Workload {
            metadata: metadata.unwrap_or_default(),
            spec: spec.unwrap_or_default(),
        })
    }

    fn workload_spec(&mut self, depth: usize) -> Option<WorkloadSpec<'a>> {
        if depth > MAX_WORKLOAD_DEPTH {
            return None;
        }
        let (mut template, mut job_template) = (None, None);
        self.object(|j, key| match key {
            "template" => {
                let mut spec = None;
                j.object(|j, key| match key {
                    "spec" => once(&mut spec, j.pod_service_account()?),
                    _ => j.skip(),
                })?;
                once(
                    &mut template,
                    PodTemplate {
                        spec: spec.unwrap_or_default(),
                    },
                )
            }
            "jobTemplate" => {
                let read = if j.null() {
                    None
                } else {
                    let mut spec = None;
                    j.object(|j, key| match key {
                        "spec" => once(&mut spec, j.workload_spec(depth + 1)?),
                        _ => j.skip(),
                    })?;
                    Some(Box::new(JobTemplate {
                        spec: spec.unwrap_or_default(),
                    }))
                };
                once(&mut job_template, read)
            }
            _ => j.skip(),
        })?;
        Some(WorkloadSpec {
            template: template.unwrap_or_default(),
            job_template: job_template.flatten(),
        })
    }

    fn service_account(&mut self) -> Option<ServiceAccount<'a>> {
        let mut metadata = None;
        self.object(|j, key| match key {
            "metadata" => once(&mut metadata, j.meta()?),
            _ => j.skip(),
        })?;
        Some(ServiceAccount {
            metadata: metadata.unwrap_or_default(),
        })
    }
}

//! The `kube-system/aws-auth` ConfigMap: a model that edits it without losing anything, and the
//! kube I/O that writes it back safely (`store`, see [`store::modify_aws_auth`]).
//!
//! Rules, each learned from another tool's outage:
//! - every key is parsed (`mapRoles`, `mapUsers`, `mapAccounts`); entries and fields this code
//!   does not understand (`sso` entries, unknown fields, other data keys) are kept as they are;
//! - only keys that changed are re-rendered; untouched keys keep their exact text, and so do
//!   untouched entries of a changed key whenever their text can be cut out safely;
//! - a document with an entry that does not parse is refused as a whole (no write);
//! - entries in `system:nodes` / `system:bootstrappers` are never removed (nodes would be
//!   locked out);
//! - role ARNs lose their path (aws-auth never matches a role ARN with a path);
//! - one entry per ARN: an upsert replaces it, and a document that already has duplicates of
//!   that ARN is refused.

mod emit;
mod splice;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_yaml_ng::{Mapping as YamlMapping, Value};

use crate::arn::{ArnError, parse_iam_arn};
use crate::common::Change;

pub(crate) const NAMESPACE: &str = "kube-system";
pub(crate) const CONFIGMAP_NAME: &str = "aws-auth";
pub(crate) const MAP_ROLES: &str = "mapRoles";
pub(crate) const MAP_USERS: &str = "mapUsers";
pub(crate) const MAP_ACCOUNTS: &str = "mapAccounts";
/// Groups whose entries keep nodes in the cluster; never removed.
pub(crate) const PROTECTED_GROUPS: [&str; 2] = ["system:nodes", "system:bootstrappers"];
pub(crate) const SYSTEM_MASTERS: &str = "system:masters";

const FIX_BY_HAND: &str = "fix it by hand with `kubectl edit -n kube-system configmap aws-auth`";

#[derive(Debug, thiserror::Error)]
pub enum AwsAuthError {
    #[error("aws-auth {key} is not valid YAML ({message}); {FIX_BY_HAND}")]
    InvalidYaml { key: String, message: String },
    #[error("aws-auth {key} is not a YAML list; {FIX_BY_HAND}")]
    NotAList { key: String },
    #[error(
        "aws-auth {key} entry {index} does not parse: {reason}; refusing to write; {FIX_BY_HAND}"
    )]
    MalformedEntry {
        key: String,
        index: usize,
        reason: String,
    },
    #[error(
        "refusing to remove the aws-auth {key} entry for {arn}: it is in group {group}, and removing it would lock nodes out of the cluster"
    )]
    ProtectedEntry {
        key: String,
        arn: String,
        group: String,
    },
    #[error(
        "refusing to take {arn} out of group {group} in aws-auth {key}: nodes using it would be locked out of the cluster; keep {group} in --group"
    )]
    ProtectedGroupDropped {
        key: String,
        arn: String,
        group: String,
    },
    #[error(
        "aws-auth {key} already holds {count} entries for {arn}; refusing to guess which one to change; {FIX_BY_HAND}"
    )]
    DuplicateArn {
        key: String,
        arn: String,
        count: usize,
    },
    #[error(transparent)]
    InvalidArn(#[from] ArnError),
    #[error("{arn} is {actual}, not {expected}: use --kind {actual_kind} (or leave --kind out)")]
    WrongKind {
        arn: String,
        actual: String,
        expected: String,
        actual_kind: MappingKind,
    },
    #[error("invalid mapping: {0}")]
    InvalidMapping(String),
    #[error(
        "group system:masters makes {arn} a cluster administrator: pass --allow-system-masters if that is really wanted, or use a named group bound to a ClusterRole"
    )]
    SystemMastersNotAllowed { arn: String },
    #[error("could not render aws-auth {key}: {message}")]
    Render { key: String, message: String },
    #[error(
        "{action} configmap kube-system/aws-auth: forbidden ({message}); ask a cluster admin for that permission or use a kubeconfig context that has it"
    )]
    Forbidden {
        action: &'static str,
        message: String,
    },
    #[error(
        "{action} configmap kube-system/aws-auth failed: {message}; check cluster access (`kubectl get -n kube-system configmap aws-auth`) and re-run"
    )]
    Kube {
        action: &'static str,
        message: String,
    },
    #[error(
        "could not write aws-auth after {attempts} attempts in {seconds}s (last: {last}); others keep changing it; re-run the command"
    )]
    RetriesExhausted {
        attempts: usize,
        seconds: u64,
        last: String,
    },
}

/// Which list a mapping lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MappingKind {
    /// `mapRoles` (`rolearn`).
    Role,
    /// `mapUsers` (`userarn`).
    User,
}

impl MappingKind {
    pub(crate) const fn key(self) -> &'static str {
        match self {
            Self::Role => MAP_ROLES,
            Self::User => MAP_USERS,
        }
    }
    const fn arn_field(self) -> &'static str {
        match self {
            Self::Role => "rolearn",
            Self::User => "userarn",
        }
    }
}

impl fmt::Display for MappingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Role => "role",
            Self::User => "user",
        })
    }
}

/// One `mapRoles` / `mapUsers` entry as this code understands it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    pub arn: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// A `mapRoles` entry for an IAM Identity Center permission set (`sso:` instead of `rolearn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoMapping {
    pub permission_set_name: String,
    pub(crate) account_id: String,
    pub(crate) username: String,
    pub(crate) groups: Vec<String>,
}

/// The understood content of one entry; the entry's YAML value itself is kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EntryView {
    Arn(Mapping),
    Sso(SsoMapping),
}

impl EntryView {
    fn groups(&self) -> &[String] {
        match self {
            Self::Arn(m) => &m.groups,
            Self::Sso(s) => &s.groups,
        }
    }
}

/// Parsed aws-auth `data`. Keeps the original text of every key; re-renders only keys that an
/// edit changed.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsAuth {
    original: BTreeMap<String, String>,
    roles: Vec<Value>,
    users: Vec<Value>,
    accounts: Vec<Value>,
    /// Per entry of `roles` / `users`: its index in the text as read while it is untouched
    /// (so re-rendering can reuse its original text), None once new or changed.
    role_origins: Vec<Option<usize>>,
    user_origins: Vec<Option<usize>>,
    /// Keys an edit changed, with their new text.
    rerendered: BTreeMap<&'static str, String>,
}

impl AwsAuth {
    /// Parses the ConfigMap's `data` (None: no ConfigMap / no data). Any entry that does not
    /// parse makes the whole document an error: editing around it could hide or break it.
    pub fn parse(data: Option<&BTreeMap<String, String>>) -> Result<AwsAuth, AwsAuthError> {
        let original = data.cloned().unwrap_or_default();
        let roles = parse_list(&original, MAP_ROLES)?;
        for (index, entry) in roles.iter().enumerate() {
            view_entry(MappingKind::Role, index, entry)?;
        }
        let users = parse_list(&original, MAP_USERS)?;
        for (index, entry) in users.iter().enumerate() {
            view_entry(MappingKind::User, index, entry)?;
        }
        let accounts = parse_list(&original, MAP_ACCOUNTS)?;
        for (index, entry) in accounts.iter().enumerate() {
            account_of(entry).ok_or_else(|| AwsAuthError::MalformedEntry {
                key: MAP_ACCOUNTS.into(),
                index,
                reason: "an account must be a 12-digit account ID (string or number)".into(),
            })?;
        }
        Ok(AwsAuth {
            original,
            role_origins: (0..roles.len()).map(Some).collect(),
            user_origins: (0..users.len()).map(Some).collect(),
            roles,
            users,
            accounts,
            rerendered: BTreeMap::new(),
        })
    }

    /// The `data` to write: untouched keys exactly as read, changed keys re-rendered.
    pub fn render(&self) -> BTreeMap<String, String> {
        let mut data = self.original.clone();
        for (key, text) in &self.rerendered {
            data.insert((*key).to_string(), text.clone());
        }
        data
    }

    /// Role mappings with a `rolearn` (`sso` entries are in [`AwsAuth::sso_roles`]).
    pub fn roles(&self) -> Vec<Mapping> {
        self.views(MappingKind::Role)
            .filter_map(|v| match v {
                EntryView::Arn(m) => Some(m),
                EntryView::Sso(_) => None,
            })
            .collect()
    }

    pub fn sso_roles(&self) -> Vec<SsoMapping> {
        self.views(MappingKind::Role)
            .filter_map(|v| match v {
                EntryView::Sso(s) => Some(s),
                EntryView::Arn(_) => None,
            })
            .collect()
    }

    pub fn users(&self) -> Vec<Mapping> {
        self.views(MappingKind::User)
            .filter_map(|v| match v {
                EntryView::Arn(m) => Some(m),
                EntryView::Sso(_) => None,
            })
            .collect()
    }

    pub fn accounts(&self) -> Vec<String> {
        self.accounts.iter().filter_map(account_of).collect()
    }

    /// The mapping for `arn` (compared the way aws-auth does: role path stripped, case
    /// insensitive). None when absent or ambiguous.
    pub fn find(&self, kind: MappingKind, arn: &str) -> Option<Mapping> {
        let wanted = normalize_arn(kind, arn).ok()?;
        let mut found = self.views(kind).filter_map(|v| match v {
            EntryView::Arn(m) if same_arn(kind, &m.arn, &wanted) => Some(m),
            _ => None,
        });
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Adds `m`, or replaces the one entry for its ARN (keeping that entry's unknown fields).
    /// The ARN is normalized first (role path stripped).
    pub fn upsert(&mut self, kind: MappingKind, m: Mapping) -> Result<Change, AwsAuthError> {
        let arn = normalize_arn(kind, &m.arn)?;
        validate_mapping(&m)?;
        let key = kind.key();
        let matches = self.matching_indexes(kind, &arn);
        let change = match matches.as_slice() {
            [] => {
                let mut entry = YamlMapping::new();
                entry.insert(kind.arn_field().into(), Value::String(arn));
                entry.insert("username".into(), Value::String(m.username));
                entry.insert("groups".into(), string_list(&m.groups));
                self.list_mut(kind).push(Value::Mapping(entry));
                self.origins_mut(kind).push(None);
                Change::Created
            }
            [index] => {
                let index = *index;
                let current = view_entry(kind, index, &self.list(kind)[index])?;
                let EntryView::Arn(current) = current else {
                    // matching_indexes only returns ARN entries.
                    return Err(AwsAuthError::MalformedEntry {
                        key: key.into(),
                        index,
                        reason: "expected an ARN entry".into(),
                    });
                };
                if let Some(group) = PROTECTED_GROUPS
                    .iter()
                    .find(|g| has_group(&current.groups, g) && !has_group(&m.groups, g))
                {
                    return Err(AwsAuthError::ProtectedGroupDropped {
                        key: key.into(),
                        arn: current.arn,
                        group: (*group).to_string(),
                    });
                }
                let same_groups = sorted(&current.groups) == sorted(&m.groups);
                if current.arn == arn && current.username == m.username && same_groups {
                    return Ok(Change::Unchanged);
                }
                let Some(entry) = self.list_mut(kind)[index].as_mapping_mut() else {
                    return Err(AwsAuthError::MalformedEntry {
                        key: key.into(),
                        index,
                        reason: "not a mapping".into(),
                    });
                };
                entry.insert(kind.arn_field().into(), Value::String(arn));
                entry.insert("username".into(), Value::String(m.username));
                if !same_groups {
                    entry.insert("groups".into(), string_list(&m.groups));
                }
                self.origins_mut(kind)[index] = None;
                Change::Updated
            }
            _ => {
                return Err(AwsAuthError::DuplicateArn {
                    key: key.into(),
                    arn,
                    count: matches.len(),
                });
            }
        };
        self.rerender(kind)?;
        Ok(change)
    }

    /// Removes the one entry for `arn`. Refuses entries in node groups and ambiguous ARNs.
    pub fn remove(&mut self, kind: MappingKind, arn: &str) -> Result<Change, AwsAuthError> {
        let arn = normalize_arn(kind, arn)?;
        let key = kind.key();
        let matches = self.matching_indexes(kind, &arn);
        match matches.as_slice() {
            [] => Ok(Change::Absent),
            [index] => {
                let index = *index;
                let view = view_entry(kind, index, &self.list(kind)[index])?;
                if let Some(group) = PROTECTED_GROUPS
                    .iter()
                    .find(|g| has_group(view.groups(), g))
                {
                    return Err(AwsAuthError::ProtectedEntry {
                        key: key.into(),
                        arn,
                        group: (*group).to_string(),
                    });
                }
                self.list_mut(kind).remove(index);
                self.origins_mut(kind).remove(index);
                self.rerender(kind)?;
                Ok(Change::Deleted)
            }
            _ => Err(AwsAuthError::DuplicateArn {
                key: key.into(),
                arn,
                count: matches.len(),
            }),
        }
    }

    /// What [`AwsAuth::upsert`] would do, changing nothing: for plans and preflight, so a
    /// refusal (duplicates, node groups, bad ARN) surfaces before anything is written anywhere.
    pub(crate) fn preview_upsert(
        &self,
        kind: MappingKind,
        m: Mapping,
    ) -> Result<Change, AwsAuthError> {
        self.clone().upsert(kind, m)
    }

    /// What [`AwsAuth::remove`] would do, changing nothing.
    pub(crate) fn preview_remove(
        &self,
        kind: MappingKind,
        arn: &str,
    ) -> Result<Change, AwsAuthError> {
        self.clone().remove(kind, arn)
    }

    fn list(&self, kind: MappingKind) -> &Vec<Value> {
        match kind {
            MappingKind::Role => &self.roles,
            MappingKind::User => &self.users,
        }
    }

    fn list_mut(&mut self, kind: MappingKind) -> &mut Vec<Value> {
        match kind {
            MappingKind::Role => &mut self.roles,
            MappingKind::User => &mut self.users,
        }
    }

    /// Entries were validated by `parse`, and edits only write valid ones.
    fn views(&self, kind: MappingKind) -> impl Iterator<Item = EntryView> + '_ {
        self.list(kind)
            .iter()
            .enumerate()
            .filter_map(move |(i, e)| view_entry(kind, i, e).ok())
    }

    fn matching_indexes(&self, kind: MappingKind, normalized_arn: &str) -> Vec<usize> {
        self.list(kind)
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match view_entry(kind, i, e) {
                Ok(EntryView::Arn(m)) if same_arn(kind, &m.arn, normalized_arn) => Some(i),
                _ => None,
            })
            .collect()
    }

    fn origins_mut(&mut self, kind: MappingKind) -> &mut Vec<Option<usize>> {
        match kind {
            MappingKind::Role => &mut self.role_origins,
            MappingKind::User => &mut self.user_origins,
        }
    }

    /// New text for `kind`'s key: untouched entries keep their original text when it can be
    /// cut out safely (verified by re-parsing), otherwise the whole list is re-serialized.
    /// Re-serialized strings are quoted wherever a YAML 1.1 reader (aws-iam-authenticator)
    /// could take them for a date, number, boolean or null.
    fn rerender(&mut self, kind: MappingKind) -> Result<(), AwsAuthError> {
        let key = kind.key();
        let (list, origins) = match kind {
            MappingKind::Role => (&self.roles, &self.role_origins),
            MappingKind::User => (&self.users, &self.user_origins),
        };
        let original = self
            .original
            .get(key)
            .map(String::as_str)
            .unwrap_or_default();
        let rewritten = || {
            emit::block_list(list, "").filter(|text| {
                serde_yaml_ng::from_str::<Vec<Value>>(text).ok().as_ref() == Some(list)
            })
        };
        let text = match splice::splice(original, list, origins)
            .or_else(|| splice::splice_flow(original, list, origins))
            .or_else(rewritten)
        {
            Some(text) => text,
            // Tagged values, which the emitter does not write: serde_yaml_ng keeps them.
            None => serde_yaml_ng::to_string(list).map_err(|e| AwsAuthError::Render {
                key: key.into(),
                message: e.to_string(),
            })?,
        };
        if self.original.get(key) == Some(&text) {
            self.rerendered.remove(key);
        } else {
            self.rerendered.insert(key, text);
        }
        Ok(())
    }
}

/// Refuses `system:masters` unless the caller passed the explicit flag.
pub(crate) fn check_system_masters(m: &Mapping, allowed: bool) -> Result<(), AwsAuthError> {
    if !allowed && has_group(&m.groups, SYSTEM_MASTERS) {
        return Err(AwsAuthError::SystemMastersNotAllowed { arn: m.arn.clone() });
    }
    Ok(())
}

/// The kind an ARN belongs in: roles and assumed roles → `mapRoles`, users and root → `mapUsers`.
pub(crate) fn kind_of_arn(arn: &str) -> Result<MappingKind, AwsAuthError> {
    let parsed = parse_iam_arn(arn)?;
    Ok(if parsed.is_role() {
        MappingKind::Role
    } else {
        MappingKind::User
    })
}

/// The ARN as aws-auth must hold it: roles without path (assumed-role sessions become their
/// role), users and root as given.
pub(crate) fn normalize_arn(kind: MappingKind, arn: &str) -> Result<String, AwsAuthError> {
    let parsed = parse_iam_arn(arn)?;
    match (kind, parsed.is_role()) {
        (MappingKind::Role, true) | (MappingKind::User, false) => Ok(parsed.without_path()),
        (MappingKind::Role, false) => Err(AwsAuthError::WrongKind {
            arn: arn.trim().to_string(),
            actual: format!("an IAM {}", parsed.resource_type),
            expected: "a role".into(),
            actual_kind: MappingKind::User,
        }),
        (MappingKind::User, true) => Err(AwsAuthError::WrongKind {
            arn: arn.trim().to_string(),
            actual: "an IAM role".into(),
            expected: "a user".into(),
            actual_kind: MappingKind::Role,
        }),
    }
}

fn validate_mapping(m: &Mapping) -> Result<(), AwsAuthError> {
    let bad_text = |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad_text(&m.username) {
        return Err(AwsAuthError::InvalidMapping(format!(
            "username {:?} must be non-empty and have no spaces",
            m.username
        )));
    }
    if let Some(g) = m.groups.iter().find(|g| bad_text(g)) {
        return Err(AwsAuthError::InvalidMapping(format!(
            "group {g:?} must be non-empty and have no spaces"
        )));
    }
    if m.username.starts_with("system:") && !m.username.starts_with("system:node:") {
        return Err(AwsAuthError::InvalidMapping(format!(
            "username {:?} is reserved for Kubernetes components; pick another",
            m.username
        )));
    }
    Ok(())
}

/// aws-iam-authenticator compares ARNs case-insensitively, and a role entry written with a path
/// is the same role (it just never matched).
fn same_arn(kind: MappingKind, entry_arn: &str, normalized: &str) -> bool {
    let entry = normalize_arn(kind, entry_arn).unwrap_or_else(|_| entry_arn.to_string());
    entry.eq_ignore_ascii_case(normalized)
}

fn has_group(groups: &[String], group: &str) -> bool {
    groups.iter().any(|g| g == group)
}

fn sorted(groups: &[String]) -> Vec<&str> {
    let set: BTreeSet<&str> = groups.iter().map(String::as_str).collect();
    set.into_iter().collect()
}

fn string_list(items: &[String]) -> Value {
    Value::Sequence(items.iter().cloned().map(Value::String).collect())
}

fn parse_list(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<Value>, AwsAuthError> {
    let Some(text) = data.get(key) else {
        return Ok(Vec::new());
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| AwsAuthError::InvalidYaml {
        key: key.into(),
        message: e.to_string().replace('\n', " "),
    })?;
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => Ok(items),
        _ => Err(AwsAuthError::NotAList { key: key.into() }),
    }
}

fn account_of(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        // YAML drops leading zeros of an unquoted number; put them back.
        Value::Number(n) => n.as_u64().map(|n| format!("{n:012}"))?,
        _ => return None,
    };
    crate::arn::is_account_id(&s).then_some(s)
}

fn view_entry(kind: MappingKind, index: usize, entry: &Value) -> Result<EntryView, AwsAuthError> {
    let malformed = |reason: String| AwsAuthError::MalformedEntry {
        key: kind.key().into(),
        index,
        reason,
    };
    let Some(map) = entry.as_mapping() else {
        return Err(malformed(
            "it is not a mapping (expected e.g. rolearn/username/groups)".into(),
        ));
    };
    let text_field = |name: &str| -> Result<Option<String>, AwsAuthError> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(malformed(format!("{name} is not a string"))),
        }
    };
    let username = text_field("username")?.unwrap_or_default();
    let groups = match map.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|g| g.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("groups is not a list of strings".into()))?,
        Some(_) => return Err(malformed("groups is not a list".into())),
    };
    let arn = text_field(kind.arn_field())?;
    let sso = map.get("sso");
    match (arn, sso, kind) {
        (Some(arn), None, _) => {
            normalize_arn(kind, &arn).map_err(|e| malformed(e.to_string()))?;
            Ok(EntryView::Arn(Mapping {
                arn,
                username,
                groups,
            }))
        }
        (None, Some(sso), MappingKind::Role) => {
            let field = |name: &str| sso.get(name).and_then(Value::as_str).map(str::to_string);
            let (Some(permission_set_name), Some(account_id)) =
                (field("permissionSetName"), field("accountID"))
            else {
                return Err(malformed(
                    "sso needs permissionSetName and accountID strings".into(),
                ));
            };
            Ok(EntryView::Sso(SsoMapping {
                permission_set_name,
                account_id,
                username,
                groups,
            }))
        }
        (Some(_), Some(_), _) => Err(malformed(format!(
            "it has both {} and sso",
            kind.arn_field()
        ))),
        _ => Err(malformed(format!("it has no {}", kind.arn_field()))),
    }
}

#[cfg(test)]
mod tests;

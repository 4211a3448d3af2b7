//! The one IAM role reconciler: a role as wanted (trust, description, tags, policies) and what
//! IAM holds in, the IAM steps that close the gap out. Every command that owns a role uses it:
//! connect's vendor role and IRSA roles, its policies on existing roles, and `irsa create`
//! (whose managed-policy attachments are tracked in tags, see `irsa`). Pure.

use serde_json::Value;

use crate::common::Change;
use crate::facts::RoleFacts;
use crate::policy_document::policy_documents_equal;
use crate::steps::{IamAction, IamStep};

/// A role as wanted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DesiredRole {
    /// The report row's kind (`IAMRole`, `IRSARole`).
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    /// `/` or `/team/ml/`.
    pub(crate) path: String,
    pub(crate) trust: Value,
    pub(crate) description: String,
    /// Put on a new role (ownership marks); an existing role's tags are not rewritten.
    pub(crate) tags: Vec<(String, String)>,
}

impl DesiredRole {
    /// The role's ARN: as IAM holds it, or as it will be once created.
    pub(crate) fn arn(
        &self,
        existing: Option<&RoleFacts>,
        partition: &str,
        account: &str,
    ) -> String {
        match existing {
            Some(role) => role.arn.clone(),
            None => format!(
                "arn:{partition}:iam::{account}:role{}{}",
                self.path, self.name
            ),
        }
    }

    /// The role itself: created when missing (with its tags), its trust updated when it differs.
    pub(crate) fn step(&self, existing: Option<&RoleFacts>) -> IamStep {
        let (change, action) = match existing {
            None => (
                Change::Created,
                IamAction::CreateRole {
                    role: self.name.clone(),
                    path: self.path.clone(),
                    trust_policy: self.trust.clone(),
                    description: self.description.clone(),
                    tags: self.tags.clone(),
                },
            ),
            Some(live) if policy_documents_equal(&live.trust_policy, &self.trust) => {
                (Change::Unchanged, IamAction::None)
            }
            Some(_) => (
                Change::Updated,
                IamAction::UpdateTrust {
                    role: self.name.clone(),
                    trust_policy: self.trust.clone(),
                },
            ),
        };
        IamStep {
            kind: self.kind,
            name: self.name.clone(),
            change,
            action,
        }
    }
}

/// The inline and managed policies of role `name` compared with what IAM holds. `prune`: the
/// role is ours, so policies the profile no longer names go away; on a role that is not ours
/// only the profile's own policies are ever written.
pub(crate) fn policy_steps(
    name: &str,
    existing: Option<&RoleFacts>,
    policies: &[(String, Value)],
    managed: &[String],
    prune: bool,
) -> Vec<IamStep> {
    let name = name.to_owned();
    let mut steps = Vec::new();
    let live_inline = existing.map(|r| &r.inline_policies);
    for (policy_name, document) in policies {
        let change = match live_inline.and_then(|m| m.get(policy_name)) {
            None => Change::Created,
            Some(live) if policy_documents_equal(live, document) => Change::Unchanged,
            Some(_) => Change::Updated,
        };
        steps.push(IamStep {
            kind: "IAMInlinePolicy",
            name: format!("{name}/{policy_name}"),
            change,
            action: if change == Change::Unchanged {
                IamAction::None
            } else {
                IamAction::PutInlinePolicy {
                    role: name.clone(),
                    policy_name: policy_name.clone(),
                    document: document.clone(),
                }
            },
        });
    }
    // Our role: inline policies the profile no longer names go away.
    for stale in live_inline
        .into_iter()
        .filter(|_| prune)
        .flat_map(|m| m.keys())
        .filter(|k| !policies.iter().any(|(n, _)| n == *k))
    {
        steps.push(IamStep {
            kind: "IAMInlinePolicy",
            name: format!("{name}/{stale}"),
            change: Change::Deleted,
            action: IamAction::DeleteInlinePolicy {
                role: name.clone(),
                policy_name: stale.clone(),
            },
        });
    }
    let live_managed: &[String] = existing.map_or(&[], |r| &r.attached_policy_arns);
    for arn in managed {
        let attached = live_managed.contains(arn);
        steps.push(IamStep {
            kind: "IAMManagedPolicy",
            name: format!("{name}/{arn}"),
            change: if attached {
                Change::Unchanged
            } else {
                Change::Created
            },
            action: if attached {
                IamAction::None
            } else {
                IamAction::AttachManagedPolicy {
                    role: name.clone(),
                    policy_arn: arn.clone(),
                }
            },
        });
    }
    for stale in live_managed
        .iter()
        .filter(|a| prune && !managed.contains(a))
    {
        steps.push(IamStep {
            kind: "IAMManagedPolicy",
            name: format!("{name}/{stale}"),
            change: Change::Deleted,
            action: IamAction::DetachManagedPolicy {
                role: name.clone(),
                policy_arn: stale.clone(),
            },
        });
    }
    steps
}

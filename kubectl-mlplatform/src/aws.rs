//! The AWS side: IAM, STS, EKS and EC2 clients on a rustls + ring HTTPS client (the SDK crates
//! are built without their default aws-lc client), configured by aws-config's default chain
//! (env, profile, SSO) with `AWS_ENDPOINT_URL` honoured. Every failure maps to an [`AwsError`]
//! line. EC2 security group rules: `ec2`.

mod ec2;
mod error;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_iam::types::Tag;
use aws_smithy_http_client::tls;
use futures::future::{join_all, try_join_all};
use serde_json::Value;

pub use crate::facts::{
    CallerIdentity, ClusterFacts, ClusterNetwork, RoleFacts, SecurityGroupRuleFacts,
    issuer_host_path,
};
pub(crate) use crate::policy_document::decode_policy_document;
pub use crate::policy_document::policy_documents_equal;
pub use error::AwsError;
pub(crate) use error::{classify, ignore_missing, missing_as_none};

/// IAM, STS, EKS and EC2 clients sharing one configuration.
#[derive(Debug, Clone)]
pub struct Aws {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub eks: aws_sdk_eks::Client,
    /// Security group rules (the cluster security group's ingress a profile opens).
    pub ec2: aws_sdk_ec2::Client,
    pub region: String,
}

/// Explicit settings for [`Aws::from_settings`]; anything left None comes from the default
/// chain (env, profile, SSO).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    /// e.g. a moto_server URL; overrides `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Static access key ID and secret (tests); None: the default credentials chain.
    pub static_credentials: Option<(String, String)>,
    /// A named AWS profile instead of `AWS_PROFILE`.
    pub profile: Option<String>,
    /// Limit for one attempt of one call (the SDK has none: a silent endpoint would hang the
    /// command). None: [`DEFAULT_ATTEMPT_TIMEOUT`].
    pub attempt_timeout: Option<Duration>,
}

/// Per-attempt limit for AWS calls; the SDK retries a timed-out attempt.
pub(crate) const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTPS client every SDK client (and aws-config's credential providers) uses.
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

fn json_text(operation: &str, doc: &Value) -> Result<String, AwsError> {
    serde_json::to_string(doc).map_err(|e| AwsError::InvalidInput {
        operation: operation.to_string(),
        message: e.to_string(),
    })
}

fn unreadable(operation: &str, message: impl Into<String>) -> AwsError {
    AwsError::BadResponse {
        operation: operation.to_string(),
        message: message.into(),
    }
}

/// Tags for an IAM request (`op` names it in errors).
fn iam_tags(op: &str, tags: &[(String, String)]) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| AwsError::InvalidInput {
                    operation: op.to_owned(),
                    message: e.to_string(),
                })
        })
        .collect()
}

impl Aws {
    /// For the binary: the default chain, `--region` when given.
    pub async fn from_env(region: Option<&str>) -> Result<Aws, AwsError> {
        Self::from_settings(AwsSettings {
            region: region.map(str::to_string),
            ..AwsSettings::default()
        })
        .await
    }

    /// For tests: a fixed region and endpoint (moto_server) with static dummy credentials, so
    /// nothing depends on the process environment.
    pub async fn from_conf(region: &str, endpoint: Option<&str>) -> Result<Aws, AwsError> {
        Self::from_settings(AwsSettings {
            region: Some(region.to_string()),
            endpoint_url: endpoint.map(str::to_string),
            static_credentials: Some(("testing".to_string(), "testing".to_string())),
            ..AwsSettings::default()
        })
        .await
    }

    pub async fn from_settings(settings: AwsSettings) -> Result<Aws, AwsError> {
        let attempt = settings.attempt_timeout.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(attempt))
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt * 4)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .timeout_config(timeouts);
        if let Some(region) = settings.region {
            loader = loader.region(Region::new(region));
        }
        if let Some(endpoint) = settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some((key, secret)) = settings.static_credentials {
            loader = loader.credentials_provider(Credentials::new(
                key,
                secret,
                None,
                None,
                "kubectl-mlplatform-static",
            ));
        }
        let config = loader.load().await;
        Self::from_sdk_config(&config)
    }

    pub(crate) fn from_sdk_config(config: &SdkConfig) -> Result<Aws, AwsError> {
        let region = config.region().ok_or(AwsError::NoRegion)?.to_string();
        Ok(Aws {
            iam: aws_sdk_iam::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            eks: aws_sdk_eks::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            region,
        })
    }

    pub async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        const OP: &str = "sts:GetCallerIdentity";
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        match (out.account(), out.arn()) {
            (Some(account), Some(arn)) => Ok(CallerIdentity {
                account: account.to_string(),
                arn: arn.to_string(),
            }),
            _ => Err(unreadable(OP, "no account or ARN in the answer")),
        }
    }

    pub async fn describe_cluster(&self, name: &str) -> Result<ClusterFacts, AwsError> {
        const OP: &str = "eks:DescribeCluster";
        let out = self
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| match classify(OP, e) {
                AwsError::Service { code, .. } if code == "ResourceNotFoundException" => {
                    AwsError::ClusterNotFound {
                        name: name.to_string(),
                        region: self.region.clone(),
                    }
                }
                other => other,
            })?;
        let cluster = out
            .cluster()
            .ok_or_else(|| unreadable(OP, "no cluster in the answer"))?;
        let arn = cluster
            .arn()
            .ok_or_else(|| unreadable(OP, "the cluster has no ARN"))?;
        let parsed =
            crate::arn::parse_eks_cluster_arn(arn).map_err(|e| unreadable(OP, e.to_string()))?;
        Ok(ClusterFacts {
            name: cluster.name().unwrap_or(name).to_string(),
            arn: arn.to_string(),
            account: parsed.account,
            region: parsed.region,
            oidc_issuer: cluster
                .identity()
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
                .map(str::to_string),
            authentication_mode: cluster
                .access_config()
                .and_then(|a| a.authentication_mode())
                .map(|m| m.as_str().to_string()),
            version: cluster.version().map(str::to_string),
            endpoint: cluster.endpoint().map(str::to_string),
        })
    }

    /// The cluster's security group and VPC.
    pub(crate) async fn describe_cluster_network(
        &self,
        name: &str,
    ) -> Result<ClusterNetwork, AwsError> {
        const OP: &str = "eks:DescribeCluster";
        let out = self
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let vpc = out.cluster().and_then(|c| c.resources_vpc_config());
        Ok(ClusterNetwork {
            cluster_security_group_id: vpc
                .and_then(|v| v.cluster_security_group_id())
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            vpc_id: vpc
                .and_then(|v| v.vpc_id())
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// Tags of an IAM OIDC provider.
    pub async fn oidc_provider_tags(
        &self,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        const OP: &str = "iam:ListOpenIDConnectProviderTags";
        let out = self
            .iam
            .list_open_id_connect_provider_tags()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    /// Creates the IAM OIDC provider with tags (so that disconnect can tell it made it).
    pub(crate) async fn create_oidc_provider_tagged(
        &self,
        issuer_url: &str,
        client_ids: &[String],
        thumbprints: &[String],
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        const OP: &str = "iam:CreateOpenIDConnectProvider";
        let tags = iam_tags(OP, tags)?;
        let out = self
            .iam
            .create_open_id_connect_provider()
            .url(issuer_url)
            .set_client_id_list(Some(client_ids.to_vec()))
            .set_thumbprint_list((!thumbprints.is_empty()).then(|| thumbprints.to_vec()))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        out.open_id_connect_provider_arn()
            .map(str::to_string)
            .ok_or_else(|| unreadable(OP, "no provider ARN in the answer"))
    }

    /// Names of every role whose trust policy names `provider_arn` as a federated principal.
    pub(crate) async fn roles_trusting(&self, provider_arn: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "iam:ListRoles";
        let roles: Vec<aws_sdk_iam::types::Role> = self
            .iam
            .list_roles()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(OP, e))?;
        let mut out = Vec::new();
        for role in roles {
            let Some(doc) = role.assume_role_policy_document() else {
                continue;
            };
            let trust = decode_policy_document(doc).map_err(|e| unreadable(OP, e))?;
            if trust.to_string().contains(provider_arn) {
                out.push(role.role_name().to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The role with its trust policy, inline policies (read in parallel), attached policies
    /// and tags; Ok(None) when there is no such role.
    pub async fn get_role(&self, name: &str) -> Result<Option<RoleFacts>, AwsError> {
        self.get_role_expecting(name, &[]).await
    }

    /// One inline policy document; None when the role has no policy of that name (or no role).
    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<Value>, AwsError> {
        const OP: &str = "iam:GetRolePolicy";
        match self
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(out) => decode_policy_document(out.policy_document())
                .map(Some)
                .map_err(|e| unreadable(OP, e)),
            Err(e) => missing_as_none(classify(OP, e)),
        }
    }

    /// [`Aws::get_role`] in one round trip when the role's inline policies are the `expected`
    /// ones: the role, both policy lists and the expected documents are asked for at once
    /// (IAM has no call that returns them together); only documents of other names take a
    /// second round.
    pub async fn get_role_expecting(
        &self,
        name: &str,
        expected: &[String],
    ) -> Result<Option<RoleFacts>, AwsError> {
        const OP: &str = "iam:GetRole";
        let role = async { self.iam.get_role().role_name(name).send().await };
        let listed = async {
            self.iam
                .list_role_policies()
                .role_name(name)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| classify("iam:ListRolePolicies", e))
        };
        let attached = async {
            self.iam
                .list_attached_role_policies()
                .role_name(name)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| classify("iam:ListAttachedRolePolicies", e))
        };
        let documents = join_all(expected.iter().map(|p| self.get_role_policy(name, p)));
        let (role, listed, attached, documents) = futures::join!(role, listed, attached, documents);
        // A missing role makes the other reads fail too: GetRole's answer decides.
        let out = match role {
            Ok(out) => out,
            Err(e) => return missing_as_none(classify(OP, e)),
        };
        let role = out
            .role()
            .ok_or_else(|| unreadable(OP, "no role in the answer"))?;
        let trust_policy = match role.assume_role_policy_document() {
            Some(doc) => decode_policy_document(doc).map_err(|e| unreadable(OP, e))?,
            None => Value::Null,
        };
        let mut known: BTreeMap<String, Option<Value>> = BTreeMap::new();
        for (policy, document) in expected.iter().zip(documents) {
            known.insert(policy.clone(), document?);
        }
        let inline = try_join_all(listed?.into_iter().map(|policy| {
            let known = known.remove(&policy);
            async move {
                let document = match known {
                    Some(Some(doc)) => doc,
                    // Listed but not read (or gone meanwhile, then read again to be sure).
                    _ => self
                        .get_role_policy(name, &policy)
                        .await?
                        .unwrap_or(Value::Null),
                };
                Ok::<_, AwsError>((policy, document))
            }
        }))
        .await?;
        let mut attached_policy_arns: Vec<String> = attached?
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
        attached_policy_arns.sort();

        Ok(Some(RoleFacts {
            name: role.role_name().to_string(),
            arn: role.arn().to_string(),
            path: role.path().to_string(),
            trust_policy,
            inline_policies: inline.into_iter().collect(),
            attached_policy_arns,
            tags: role
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            description: role.description().map(str::to_string),
        }))
    }

    pub async fn create_role(
        &self,
        name: &str,
        path: &str,
        trust: &Value,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        const OP: &str = "iam:CreateRole";
        let tags = iam_tags(OP, tags)?;
        let out = self
            .iam
            .create_role()
            .role_name(name)
            .path(if path.is_empty() { "/" } else { path })
            .assume_role_policy_document(json_text(OP, trust)?)
            .description(description)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        out.role()
            .map(|r| r.arn().to_string())
            .ok_or_else(|| unreadable(OP, "no role in the answer"))
    }

    pub async fn update_trust_policy(&self, role: &str, trust: &Value) -> Result<(), AwsError> {
        const OP: &str = "iam:UpdateAssumeRolePolicy";
        self.iam
            .update_assume_role_policy()
            .role_name(role)
            .policy_document(json_text(OP, trust)?)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(())
    }

    pub async fn put_inline_policy(
        &self,
        role: &str,
        policy_name: &str,
        doc: &Value,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:PutRolePolicy";
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy_name)
            .policy_document(json_text(OP, doc)?)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(())
    }

    pub(crate) async fn tag_role(
        &self,
        role: &str,
        tags: &[(String, String)],
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:TagRole";
        self.iam
            .tag_role()
            .role_name(role)
            .set_tags(Some(iam_tags(OP, tags)?))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(())
    }

    pub(crate) async fn untag_role(&self, role: &str, keys: &[String]) -> Result<(), AwsError> {
        const OP: &str = "iam:UntagRole";
        self.iam
            .untag_role()
            .role_name(role)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(())
    }

    /// Idempotent: a policy that is already gone is fine.
    pub async fn delete_inline_policy(
        &self,
        role: &str,
        policy_name: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:DeleteRolePolicy";
        match self
            .iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy_name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_missing(classify(OP, e)),
        }
    }

    pub async fn attach_managed_policy(
        &self,
        role: &str,
        policy_arn: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:AttachRolePolicy";
        self.iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(())
    }

    /// Idempotent: a policy that is not attached is fine.
    pub async fn detach_managed_policy(
        &self,
        role: &str,
        policy_arn: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:DetachRolePolicy";
        match self
            .iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_missing(classify(OP, e)),
        }
    }

    /// Deletes the role after removing its inline policies and detaching its managed ones
    /// (IAM refuses otherwise). Idempotent: a missing role is fine.
    pub async fn delete_role(&self, role: &str) -> Result<(), AwsError> {
        const OP: &str = "iam:DeleteRole";
        let Some(facts) = self.get_role(role).await? else {
            return Ok(());
        };
        for policy in facts.inline_policies.keys() {
            self.delete_inline_policy(role, policy).await?;
        }
        for policy_arn in &facts.attached_policy_arns {
            self.detach_managed_policy(role, policy_arn).await?;
        }
        match self.iam.delete_role().role_name(role).send().await {
            Ok(_) => Ok(()),
            Err(e) => ignore_missing(classify(OP, e)),
        }
    }

    /// The ARN of the IAM OIDC provider for `issuer_url` (`https://oidc.eks...`), if any.
    pub async fn find_oidc_provider(&self, issuer_url: &str) -> Result<Option<String>, AwsError> {
        const OP: &str = "iam:ListOpenIDConnectProviders";
        let out = self
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let wanted = issuer_host_path(issuer_url);
        Ok(out
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn())
            .find(|arn| {
                arn.split_once(":oidc-provider/")
                    .is_some_and(|(_, host_path)| host_path.eq_ignore_ascii_case(&wanted))
            })
            .map(str::to_string))
    }

    /// Creates the IAM OIDC provider; `thumbprints` may be empty (IAM no longer needs them for
    /// well-known issuers).
    pub async fn create_oidc_provider(
        &self,
        issuer_url: &str,
        client_ids: &[String],
        thumbprints: &[String],
    ) -> Result<String, AwsError> {
        const OP: &str = "iam:CreateOpenIDConnectProvider";
        let out = self
            .iam
            .create_open_id_connect_provider()
            .url(issuer_url)
            .set_client_id_list(Some(client_ids.to_vec()))
            .set_thumbprint_list((!thumbprints.is_empty()).then(|| thumbprints.to_vec()))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        out.open_id_connect_provider_arn()
            .map(str::to_string)
            .ok_or_else(|| unreadable(OP, "no provider ARN in the answer"))
    }

    /// Idempotent: a provider that is already gone is fine.
    pub async fn delete_oidc_provider(&self, arn: &str) -> Result<(), AwsError> {
        const OP: &str = "iam:DeleteOpenIDConnectProvider";
        match self
            .iam
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_missing(classify(OP, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error::classify_code;
    use super::*;

    #[test]
    fn issuer_urls_become_iam_host_paths() {
        assert_eq!(
            issuer_host_path("https://oidc.eks.us-east-1.amazonaws.com/id/ABC/"),
            "oidc.eks.us-east-1.amazonaws.com/id/ABC"
        );
        assert_eq!(issuer_host_path("oidc.example.com/x"), "oidc.example.com/x");
    }

    #[test]
    fn missing_objects_are_fine_to_delete() {
        let missing = classify_code("iam:DeleteRole", "NoSuchEntity", "gone");
        assert_eq!(ignore_missing(missing), Ok(()));
        let denied = classify_code("iam:DeleteRole", "AccessDenied", "no");
        assert!(ignore_missing(denied).is_err());
        let gone = classify_code("eks:DescribeAddon", "ResourceNotFoundException", "gone");
        assert!(matches!(missing_as_none::<()>(gone), Ok(None)));
    }
}

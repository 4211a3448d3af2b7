//! What commands read before they plan, as plain data: the facts planners take. The clients
//! (`aws`, `kube_io`) produce them; planners never see a client type.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFacts {
    pub name: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub oidc_issuer: Option<String>,
    /// `CONFIG_MAP`, `API_AND_CONFIG_MAP` or `API`; None when EKS did not say (older clusters
    /// behave as `CONFIG_MAP`).
    pub authentication_mode: Option<String>,
    pub version: Option<String>,
    pub endpoint: Option<String>,
}

/// The cluster's network as describe-cluster reports it (kept apart from [`ClusterFacts`] so
/// code that builds those by hand does not change).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    /// `resourcesVpcConfig.clusterSecurityGroupId` (the security group EKS made).
    pub cluster_security_group_id: Option<String>,
    pub vpc_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleFacts {
    pub name: String,
    pub arn: String,
    pub path: String,
    pub trust_policy: Value,
    pub inline_policies: BTreeMap<String, Value>,
    pub attached_policy_arns: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
}

/// `https://oidc.eks.us-east-1.amazonaws.com/id/ABC/` → `oidc.eks.us-east-1.amazonaws.com/id/ABC`
/// (the form IAM uses in provider ARNs and trust-policy condition keys).
pub fn issuer_host_path(issuer_url: &str) -> String {
    issuer_url
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

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

/// One rule of a security group, as DescribeSecurityGroupRules reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupRuleFacts {
    /// `sgr-...`.
    pub id: String,
    pub egress: bool,
    /// `tcp`, `udp`, `icmp`, or `-1` (every protocol).
    pub protocol: String,
    /// -1 for every port.
    pub from_port: i32,
    pub to_port: i32,
    /// `CidrIpv4` or `CidrIpv6`; None for a rule naming another group or a prefix list.
    pub cidr: Option<String>,
    pub description: Option<String>,
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

/// An EKS Pod Identity association, as DescribePodIdentityAssociation reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityAssociationFacts {
    /// `a-` and 17 characters.
    pub id: String,
    pub arn: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub tags: BTreeMap<String, String>,
}

/// An EKS add-on, as DescribeAddon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonFacts {
    pub name: String,
    /// `ACTIVE`, `CREATING`, `DEGRADED`, `CREATE_FAILED`...
    pub status: String,
    pub version: Option<String>,
    /// Health issues, `CODE: message`.
    pub issues: Vec<String>,
}

/// (namespace, ServiceAccount).
pub type ServiceAccountKey = (String, String);

/// What EKS holds for Pod Identity: the associations of the ServiceAccounts asked about (read
/// with `--identity pod-identity`, or when a role's trust has a Pod Identity statement) and
/// the agent add-on (read by doctor).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityFacts {
    /// None: not read. Per ServiceAccount, every association EKS lists for it (at most one).
    pub associations: Option<BTreeMap<ServiceAccountKey, Vec<PodIdentityAssociationFacts>>>,
    /// `eks-pod-identity-agent`; None: not installed (or not read).
    pub agent_addon: Option<AddonFacts>,
}

impl PodIdentityFacts {
    /// The associations of one ServiceAccount (none when not read).
    pub fn associations_of(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> &[PodIdentityAssociationFacts] {
        self.associations
            .as_ref()
            .and_then(|all| all.get(&(namespace.to_owned(), service_account.to_owned())))
            .map_or(&[], Vec::as_slice)
    }
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

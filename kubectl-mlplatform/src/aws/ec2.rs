//! EC2 security group rules: read a group's rules, open TCP ports from a CIDR block (with a
//! description), revoke rules by their ID. Only what the cluster security group's ingress
//! step (`Step::Ec2`) needs.

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range};

use super::{Aws, AwsError, SecurityGroupRuleFacts, classify};

/// EC2's answer when the rule asked for exists already (someone made it meanwhile).
const DUPLICATE: &str = "InvalidPermission.Duplicate";
/// EC2's answers when a rule to revoke is already gone.
const GONE: [&str; 2] = [
    "InvalidPermission.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
];

impl Aws {
    /// Every rule of security group `group_id` (ingress and egress).
    pub async fn security_group_rules(
        &self,
        group_id: &str,
    ) -> Result<Vec<SecurityGroupRuleFacts>, AwsError> {
        const OP: &str = "ec2:DescribeSecurityGroupRules";
        let rules: Vec<aws_sdk_ec2::types::SecurityGroupRule> = self
            .ec2
            .describe_security_group_rules()
            .filters(Filter::builder().name("group-id").values(group_id).build())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(rules
            .iter()
            .filter(|r| r.group_id().is_none_or(|g| g == group_id))
            .map(|r| SecurityGroupRuleFacts {
                id: r.security_group_rule_id().unwrap_or_default().to_owned(),
                egress: r.is_egress().unwrap_or(false),
                protocol: r.ip_protocol().unwrap_or("-1").to_owned(),
                from_port: r.from_port().unwrap_or(-1),
                to_port: r.to_port().unwrap_or(-1),
                cidr: r.cidr_ipv4().or(r.cidr_ipv6()).map(str::to_owned),
                description: r.description().map(str::to_owned),
            })
            .collect())
    }

    /// Opens TCP `port` on `group_id` from `cidr` (IPv4 or IPv6), described as `description`.
    /// A rule that exists already (made meanwhile) is the goal reached.
    pub async fn authorize_tcp_ingress(
        &self,
        group_id: &str,
        port: u16,
        cidr: &str,
        ipv6: bool,
        description: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "ec2:AuthorizeSecurityGroupIngress";
        let mut permission = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(i32::from(port))
            .to_port(i32::from(port));
        permission = if ipv6 {
            permission.ipv6_ranges(
                Ipv6Range::builder()
                    .cidr_ipv6(cidr)
                    .description(description)
                    .build(),
            )
        } else {
            permission.ip_ranges(
                IpRange::builder()
                    .cidr_ip(cidr)
                    .description(description)
                    .build(),
            )
        };
        match self
            .ec2
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(permission.build())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify(OP, e) {
                err if err.code() == Some(DUPLICATE) => Ok(()),
                err => Err(err),
            },
        }
    }

    /// Revokes exactly the ingress rule `rule_id` of `group_id`; one already gone is fine.
    pub async fn revoke_ingress_rule(&self, group_id: &str, rule_id: &str) -> Result<(), AwsError> {
        const OP: &str = "ec2:RevokeSecurityGroupIngress";
        match self
            .ec2
            .revoke_security_group_ingress()
            .group_id(group_id)
            .security_group_rule_ids(rule_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify(OP, e) {
                err if err.code().is_some_and(|c| GONE.contains(&c)) => Ok(()),
                err => Err(err),
            },
        }
    }
}

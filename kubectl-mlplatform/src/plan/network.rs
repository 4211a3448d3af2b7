//! The cluster security group's ingress a profile opens (`securityGroupIngress`, hopsworks:
//! TCP 80 and 443 from the Hopsworks network). connect authorizes the rules that are missing
//! and revokes ours that the profile no longer wants (another network given since); disconnect
//! revokes ours with the profile's last namespace. A rule is ours by its description
//! ([`rule_description`]); a rule someone else made for the same port and network already
//! opens the port, so connect uses it as it is and disconnect leaves it.

use std::collections::BTreeMap;

use super::error::PlanError;
use super::model::Observed;
use super::params::skipped;
use crate::common::Change;
use crate::facts::{ClusterFacts, SecurityGroupRuleFacts};
use crate::profile::{Profile, SecurityGroupIngress, Vars};
use crate::security_group::{Cidr, is_ours, opens, rule_description};
use crate::steps::{Ec2Action, SecurityGroupRuleStep};

const FIELD: &str = "spec.securityGroupIngress";

/// Whether the profile opens ports with these parameters (its `onlyIf` parameter given).
pub(crate) fn opens_ports(profile: &Profile, params: &BTreeMap<String, String>) -> bool {
    profile
        .spec
        .security_group_ingress
        .as_ref()
        .is_some_and(|spec| match &spec.only_if {
            None => true,
            Some(name) => params.get(name).is_some_and(|v| !v.trim().is_empty()),
        })
}

/// The spec and its CIDR block, when the profile opens ports with these parameters.
fn wanted<'a>(
    profile: &'a Profile,
    vars: &Vars,
) -> Result<Option<(&'a SecurityGroupIngress, Cidr)>, PlanError> {
    let Some(spec) = &profile.spec.security_group_ingress else {
        return Ok(None);
    };
    if skipped(&spec.only_if, vars) {
        return Ok(None);
    }
    let text = vars.render(&format!("{FIELD}.cidr"), &spec.cidr)?;
    let cidr = text.parse::<Cidr>().map_err(|e| PlanError::BadCidr {
        name: spec
            .only_if
            .clone()
            .unwrap_or_else(|| format!("{FIELD}.cidr")),
        value: text.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some((spec, cidr)))
}

fn group_id(observed: &Observed) -> Option<String> {
    observed
        .network
        .as_ref()
        .and_then(|n| n.cluster_security_group_id.clone())
}

/// A step for a live rule (its port and network as EC2 reports them).
fn live_step(
    group: &str,
    rule: &SecurityGroupRuleFacts,
    change: Change,
    action: Ec2Action,
) -> SecurityGroupRuleStep {
    SecurityGroupRuleStep {
        group_id: group.to_owned(),
        port: u16::try_from(rule.from_port).unwrap_or_default(),
        cidr: rule.cidr.clone().unwrap_or_default(),
        description: rule.description.clone().unwrap_or_default(),
        change,
        action,
    }
}

/// connect: every wanted port open from the CIDR block, by our rule or someone else's; ours
/// that are no longer wanted revoked.
pub(super) fn plan_ingress_apply(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    warnings: &mut Vec<String>,
) -> Result<Vec<SecurityGroupRuleStep>, PlanError> {
    let Some((spec, cidr)) = wanted(profile, vars)? else {
        return Ok(Vec::new());
    };
    let group = group_id(observed).ok_or_else(|| PlanError::NoClusterSecurityGroup {
        cluster: cluster.name.clone(),
        param: spec.only_if.clone().unwrap_or_default(),
    })?;
    let rules = observed.security_group_rules.as_deref().unwrap_or_default();
    let description = rule_description(profile.name(), &cluster.name);
    if cidr.is_everything() {
        warnings.push(format!(
            "{cidr} opens TCP port(s) {} of the cluster security group {group} to every address",
            ports_text(&spec.tcp_ports)
        ));
    }
    let mut steps = Vec::new();
    for &port in &spec.tcp_ports {
        let open: Vec<&SecurityGroupRuleFacts> =
            rules.iter().filter(|r| opens(r, port, &cidr)).collect();
        let (change, action) = if open.iter().any(|r| is_ours(r, &description)) {
            (Change::Unchanged, Ec2Action::None)
        } else if let Some(theirs) = open.first() {
            warnings.push(format!(
                "TCP {port} from {cidr} is already open on security group {group} by rule {} ({:?}), which kubectl-mlplatform did not make: it is used as it is, and disconnect leaves it",
                theirs.id,
                theirs.description.as_deref().unwrap_or("no description")
            ));
            (Change::Unchanged, Ec2Action::None)
        } else {
            (Change::Created, Ec2Action::AuthorizeIngress)
        };
        steps.push(SecurityGroupRuleStep {
            group_id: group.clone(),
            port,
            cidr: cidr.to_string(),
            description: description.clone(),
            change,
            action,
        });
    }
    for rule in rules.iter().filter(|r| is_ours(r, &description)) {
        if !spec.tcp_ports.iter().any(|&port| opens(rule, port, &cidr)) {
            let revoke = Ec2Action::RevokeIngress {
                rule_id: rule.id.clone(),
            };
            steps.push(live_step(&group, rule, Change::Deleted, revoke));
        }
    }
    Ok(steps)
}

/// disconnect: our rules on the profile's ports (from the given CIDR block, or any when it is
/// not given) go with the profile's last namespace; someone else's always stay.
pub(super) fn plan_ingress_remove(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    last: bool,
) -> Result<Vec<SecurityGroupRuleStep>, PlanError> {
    let Some(spec) = &profile.spec.security_group_ingress else {
        return Ok(Vec::new());
    };
    let (Some(group), Some(rules)) = (group_id(observed), &observed.security_group_rules) else {
        return Ok(Vec::new());
    };
    let cidr = wanted(profile, vars)?.map(|(_, cidr)| cidr);
    let description = rule_description(profile.name(), &cluster.name);
    let matches = |rule: &SecurityGroupRuleFacts, port: u16| match &cidr {
        Some(cidr) => opens(rule, port, cidr),
        None => rule
            .cidr
            .as_deref()
            .and_then(|c| c.parse::<Cidr>().ok())
            .is_some_and(|c| opens(rule, port, &c)),
    };
    let mut steps = Vec::new();
    for &port in &spec.tcp_ports {
        let ours: Vec<&SecurityGroupRuleFacts> = rules
            .iter()
            .filter(|r| is_ours(r, &description) && matches(r, port))
            .collect();
        for rule in &ours {
            steps.push(if last {
                let revoke = Ec2Action::RevokeIngress {
                    rule_id: rule.id.clone(),
                };
                live_step(&group, rule, Change::Deleted, revoke)
            } else {
                live_step(&group, rule, Change::Unchanged, Ec2Action::None)
            });
        }
        if let (true, Some(cidr)) = (ours.is_empty(), &cidr) {
            steps.push(SecurityGroupRuleStep {
                group_id: group.clone(),
                port,
                cidr: cidr.to_string(),
                description: description.clone(),
                change: Change::Absent,
                action: Ec2Action::None,
            });
        }
    }
    Ok(steps)
}

fn ports_text(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::ClusterNetwork;
    use crate::plan::resolve_params;
    use crate::profile::load_profile;

    const SG: &str = "sg-0123456789abcdef0";
    const OURS: &str = "kubectl-mlplatform hopsworks: c1";

    fn cluster() -> ClusterFacts {
        ClusterFacts {
            name: "c1".into(),
            arn: "arn:aws:eks:us-east-1:123456789012:cluster/c1".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            oidc_issuer: None,
            authentication_mode: None,
            version: None,
            endpoint: None,
        }
    }

    fn rule(id: &str, port: i32, cidr: &str, description: &str) -> SecurityGroupRuleFacts {
        SecurityGroupRuleFacts {
            id: id.into(),
            egress: false,
            protocol: "tcp".into(),
            from_port: port,
            to_port: port,
            cidr: Some(cidr.into()),
            description: Some(description.into()),
        }
    }

    fn observed(rules: Vec<SecurityGroupRuleFacts>) -> Observed {
        Observed {
            network: Some(ClusterNetwork {
                cluster_security_group_id: Some(SG.into()),
                vpc_id: None,
            }),
            security_group_rules: Some(rules),
            ..Observed::default()
        }
    }

    fn vars(cidr: Option<&str>) -> Vars {
        let mut vars = Vars::new();
        vars.set("hopsworksVpcCidr", cidr.unwrap_or_default());
        vars
    }

    fn summary(steps: &[SecurityGroupRuleStep]) -> Vec<(u16, String, Change, Ec2Action)> {
        steps
            .iter()
            .map(|s| (s.port, s.cidr.clone(), s.change, s.action.clone()))
            .collect()
    }

    fn revoke(id: &str) -> Ec2Action {
        Ec2Action::RevokeIngress { rule_id: id.into() }
    }

    #[test]
    fn connect_opens_what_is_missing_uses_others_rules_and_revokes_our_stale_ones() {
        let profile = load_profile("hopsworks").unwrap();
        let net = "10.1.0.0/16".to_owned();
        let mut warnings = Vec::new();
        let fresh = plan_ingress_apply(
            &profile,
            &cluster(),
            &observed(vec![]),
            &vars(Some(&net)),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(
            summary(&fresh),
            [
                (
                    80,
                    net.clone(),
                    Change::Created,
                    Ec2Action::AuthorizeIngress
                ),
                (
                    443,
                    net.clone(),
                    Change::Created,
                    Ec2Action::AuthorizeIngress
                ),
            ]
        );
        assert!(
            fresh
                .iter()
                .all(|s| s.description == OURS && s.group_id == SG)
        );
        assert_eq!(warnings, Vec::<String>::new());

        // Ours for 80, someone else's for 443 (same network), ours for an old network.
        let live = observed(vec![
            rule("sgr-ours80", 80, &net, OURS),
            rule("sgr-theirs", 443, &net, "Hopsworks HTTPS"),
            rule("sgr-old", 443, "10.9.0.0/16", OURS),
            rule("sgr-other", 22, "0.0.0.0/0", "ssh"),
        ]);
        let steps = plan_ingress_apply(
            &profile,
            &cluster(),
            &live,
            &vars(Some(&net)),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(
            summary(&steps),
            [
                (80, net.clone(), Change::Unchanged, Ec2Action::None),
                (443, net.clone(), Change::Unchanged, Ec2Action::None),
                (
                    443,
                    "10.9.0.0/16".into(),
                    Change::Deleted,
                    revoke("sgr-old")
                ),
            ]
        );
        assert!(
            warnings.len() == 1 && warnings[0].contains("sgr-theirs"),
            "{warnings:?}"
        );

        // Without the parameter nothing is planned (the manual step is printed instead).
        let none = plan_ingress_apply(&profile, &cluster(), &live, &vars(None), &mut warnings);
        assert_eq!(none.unwrap(), []);
        // No cluster security group reported: refused before anything is written.
        let mut no_group = observed(vec![]);
        no_group.network = Some(ClusterNetwork::default());
        let err = plan_ingress_apply(
            &profile,
            &cluster(),
            &no_group,
            &vars(Some(&net)),
            &mut warnings,
        )
        .unwrap_err();
        assert!(
            matches!(err, PlanError::NoClusterSecurityGroup { .. })
                && err.to_string().contains("--param hopsworksVpcCidr"),
            "{err}"
        );
    }

    #[test]
    fn disconnect_revokes_only_our_rules_and_only_with_the_last_namespace() {
        let profile = load_profile("hopsworks").unwrap();
        let live = observed(vec![
            rule("sgr-80", 80, "10.1.0.0/16", OURS),
            rule("sgr-443", 443, "10.1.0.0/16", OURS),
            rule("sgr-theirs", 443, "10.2.0.0/16", "theirs"),
            rule(
                "sgr-cluster2",
                443,
                "10.1.0.0/16",
                "kubectl-mlplatform hopsworks: c2",
            ),
        ]);
        let any = plan_ingress_remove(&profile, &cluster(), &live, &vars(None), true).unwrap();
        assert_eq!(
            summary(&any),
            [
                (80, "10.1.0.0/16".into(), Change::Deleted, revoke("sgr-80")),
                (
                    443,
                    "10.1.0.0/16".into(),
                    Change::Deleted,
                    revoke("sgr-443")
                ),
            ]
        );
        let kept = plan_ingress_remove(&profile, &cluster(), &live, &vars(None), false).unwrap();
        assert!(kept.iter().all(|s| s.action == Ec2Action::None), "{kept:?}");
        // With the network given: only rules for it; absent ones say so.
        let other = plan_ingress_remove(
            &profile,
            &cluster(),
            &live,
            &vars(Some("10.2.0.0/16")),
            true,
        )
        .unwrap();
        assert_eq!(
            summary(&other),
            [
                (80, "10.2.0.0/16".into(), Change::Absent, Ec2Action::None),
                (443, "10.2.0.0/16".into(), Change::Absent, Ec2Action::None),
            ]
        );
        // Rules not read (no permission to read EC2): nothing planned.
        let mut unread = live.clone();
        unread.security_group_rules = None;
        assert_eq!(
            plan_ingress_remove(&profile, &cluster(), &unread, &vars(None), true).unwrap(),
            []
        );
    }

    #[test]
    fn the_network_parameter_is_a_checked_cidr_block_and_selects_the_automated_step() {
        let profile = load_profile("hopsworks").unwrap();
        let given = |v: &str| {
            BTreeMap::from([
                (
                    "instanceRoleArn".to_owned(),
                    "arn:aws:iam::123456789012:role/i".to_owned(),
                ),
                ("hopsworksVpcCidr".to_owned(), v.to_owned()),
            ])
        };
        let ok = resolve_params(&profile, &given("2600:1F18:0::/56"), true).unwrap();
        assert_eq!(ok["hopsworksVpcCidr"], "2600:1f18::/56");
        assert!(opens_ports(&profile, &ok));
        for bad in ["10.1.0.0", "10.1.2.3/16", "sg-123", "10.1.0.0/40"] {
            let err = resolve_params(&profile, &given(bad), true).unwrap_err();
            assert!(
                matches!(err, PlanError::BadCidr { .. }) && err.to_string().contains(bad),
                "{bad}: {err}"
            );
        }
        assert!(!opens_ports(&profile, &BTreeMap::new()));
    }
}

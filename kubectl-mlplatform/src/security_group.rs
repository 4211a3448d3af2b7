//! Ingress on the cluster security group, pure: CIDR blocks (checked before any I/O), the rule
//! description that marks a rule as made by kubectl-mlplatform for one profile and cluster, and
//! which live rule grants which permission. Planned in `plan::network`, sent by the executor.
//!
//! A rule is ours only when its description is exactly ours: EC2 rules carry no tags we could
//! rely on (DescribeSecurityGroups does not show them), and a rule someone else made for the
//! same port and network is left alone by connect (it already opens the port) and disconnect.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::facts::SecurityGroupRuleFacts;
use crate::vocabulary::MANAGED_BY_VALUE;

/// EC2's limit on a rule description.
const MAX_DESCRIPTION: usize = 255;

/// An IPv4 or IPv6 CIDR block with no host bits set (`10.1.0.0/16`, `2600:1f18::/56`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("no prefix length (use ADDRESS/LENGTH, e.g. 10.1.0.0/16)")]
    NoPrefix,
    #[error("{0:?} is not an IPv4 or IPv6 address")]
    Address(String),
    #[error("prefix length {given:?} is not a number from 0 to {max}")]
    Prefix { given: String, max: u8 },
    #[error("host bits are set; the block is {0}")]
    HostBits(String),
}

impl Cidr {
    pub(crate) fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// `0.0.0.0/0` or `::/0`: every address.
    pub(crate) fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    fn network(addr: IpAddr, prefix: u8) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = text.trim().split_once('/').ok_or(CidrError::NoPrefix)?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_owned()))?;
        let max = if addr.is_ipv6() { 128 } else { 32 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max && prefix.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| CidrError::Prefix {
                given: prefix.to_owned(),
                max,
            })?;
        let network = Self::network(addr, prefix);
        if network != addr {
            return Err(CidrError::HostBits(format!("{network}/{prefix}")));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The description that marks a rule as ours: `kubectl-mlplatform PROFILE: CLUSTER`, with the
/// characters EC2 refuses in descriptions left out.
pub(crate) fn rule_description(profile: &str, cluster: &str) -> String {
    let allowed = |c: &char| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(*c);
    format!("{MANAGED_BY_VALUE} {profile}: {cluster}")
        .chars()
        .filter(allowed)
        .take(MAX_DESCRIPTION)
        .collect()
}

/// Whether `rule` is an ingress rule opening exactly TCP `port` from `cidr`.
pub(crate) fn opens(rule: &SecurityGroupRuleFacts, port: u16, cidr: &Cidr) -> bool {
    !rule.egress
        && matches!(rule.protocol.as_str(), "tcp" | "6")
        && rule.from_port == i32::from(port)
        && rule.to_port == i32::from(port)
        && rule
            .cidr
            .as_deref()
            .and_then(|c| c.parse::<Cidr>().ok())
            .is_some_and(|c| c == *cidr)
}

/// Whether `rule` is an ingress rule made by us (its description is exactly `description`).
pub(crate) fn is_ours(rule: &SecurityGroupRuleFacts, description: &str) -> bool {
    !rule.egress && rule.description.as_deref() == Some(description)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(port: i32, cidr: &str, description: Option<&str>) -> SecurityGroupRuleFacts {
        SecurityGroupRuleFacts {
            id: "sgr-1".into(),
            egress: false,
            protocol: "tcp".into(),
            from_port: port,
            to_port: port,
            cidr: Some(cidr.into()),
            description: description.map(str::to_owned),
        }
    }

    #[test]
    fn cidr_blocks_are_checked_and_printed_canonically() {
        for (text, shown) in [
            ("10.1.0.0/16", "10.1.0.0/16"),
            (" 192.168.0.0/24 ", "192.168.0.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("10.0.0.1/32", "10.0.0.1/32"),
            ("2600:1F18:0:0::/56", "2600:1f18::/56"),
            ("::/0", "::/0"),
        ] {
            assert_eq!(text.parse::<Cidr>().unwrap().to_string(), shown, "{text}");
        }
        assert!("2600:1f18::/56".parse::<Cidr>().unwrap().is_ipv6());
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().is_everything());
        for (text, error) in [
            ("10.1.0.0", CidrError::NoPrefix),
            ("10.1.0/16", CidrError::Address("10.1.0".into())),
            ("vpc-123/16", CidrError::Address("vpc-123".into())),
            (
                "10.1.0.0/33",
                CidrError::Prefix {
                    given: "33".into(),
                    max: 32,
                },
            ),
            (
                "10.1.0.0/+8",
                CidrError::Prefix {
                    given: "+8".into(),
                    max: 32,
                },
            ),
            (
                "::/129",
                CidrError::Prefix {
                    given: "129".into(),
                    max: 128,
                },
            ),
            ("10.1.2.3/16", CidrError::HostBits("10.1.0.0/16".into())),
            (
                "2600:1f18::1/56",
                CidrError::HostBits("2600:1f18::/56".into()),
            ),
        ] {
            assert_eq!(text.parse::<Cidr>(), Err(error), "{text}");
        }
    }

    #[test]
    fn our_description_names_profile_and_cluster_and_fits_ec2() {
        assert_eq!(
            rule_description("hopsworks", "prod-1"),
            "kubectl-mlplatform hopsworks: prod-1"
        );
        let odd = rule_description("my\"profile<>", &"c".repeat(300));
        assert!(odd.starts_with("kubectl-mlplatform myprofile: c"), "{odd}");
        assert_eq!(odd.len(), MAX_DESCRIPTION);
    }

    #[test]
    fn a_rule_opens_a_port_only_for_exactly_that_port_protocol_and_network() {
        let cidr: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(opens(&rule(443, "10.1.0.0/16", None), 443, &cidr));
        assert!(!opens(&rule(443, "10.1.0.0/16", None), 80, &cidr));
        assert!(!opens(&rule(443, "10.2.0.0/16", None), 443, &cidr));
        let mut range = rule(443, "10.1.0.0/16", None);
        range.from_port = 0;
        assert!(!opens(&range, 443, &cidr));
        let mut egress = rule(443, "10.1.0.0/16", None);
        egress.egress = true;
        assert!(!opens(&egress, 443, &cidr));
        let v6: Cidr = "2600:1f18::/56".parse().unwrap();
        assert!(opens(&rule(80, "2600:1f18:0::/56", None), 80, &v6));

        let ours = rule_description("hopsworks", "c1");
        assert!(is_ours(&rule(80, "10.1.0.0/16", Some(&ours)), &ours));
        assert!(!is_ours(
            &rule(80, "10.1.0.0/16", Some("Hopsworks HTTP")),
            &ours
        ));
        assert!(!is_ours(
            &rule(
                80,
                "10.1.0.0/16",
                Some(&rule_description("hopsworks", "c2"))
            ),
            &ours
        ));
    }
}

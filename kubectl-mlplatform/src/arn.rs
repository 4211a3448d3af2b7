//! IAM and EKS ARNs: parsing with clear errors, and the path-free form aws-auth matches on.
//!
//! aws-iam-authenticator compares a caller's role against `rolearn` *without* the role's path
//! (STS reports assumed roles without it), so a mapping written with a path never matches.

use std::fmt;

/// A parsed IAM identity ARN: a role, a user, an account root, or an STS assumed-role session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IamArn {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub(crate) partition: String,
    /// 12-digit account ID.
    pub(crate) account: String,
    /// `role`, `user`, `root` or `assumed-role`.
    pub(crate) resource_type: String,
    /// IAM path, `/` when none (`/a/b/` otherwise); always `/` for root and assumed-role.
    pub(crate) path: String,
    /// Role or user name; for assumed-role the role's name; empty for root.
    pub(crate) name: String,
    /// For assumed-role only: the session name.
    pub(crate) session_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error(
        "not an IAM ARN: {input:?} ({reason}); expected e.g. arn:aws:iam::123456789012:role/Name"
    )]
    NotIamArn { input: String, reason: String },
    #[error(
        "not an EKS cluster ARN: {input:?} ({reason}); expected e.g. arn:aws:eks:us-east-1:123456789012:cluster/Name"
    )]
    NotEksClusterArn { input: String, reason: String },
}

fn not_iam(input: &str, reason: impl Into<String>) -> ArnError {
    ArnError::NotIamArn {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// True for exactly 12 ASCII digits (an AWS account ID).
pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_partition(s: &str) -> bool {
    s.starts_with("aws")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Characters IAM allows in role and user names (and path segments): `[\w+=,.@-]`.
fn is_iam_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// Parses `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME` (also `user/...` and `root`) and
/// `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
pub(crate) fn parse_iam_arn(s: &str) -> Result<IamArn, ArnError> {
    let input = s.trim();
    let parts: Vec<&str> = input.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(not_iam(
            input,
            "it does not have the 6 ':'-separated fields of an ARN",
        ));
    };
    if *arn != "arn" {
        return Err(not_iam(input, "it does not start with \"arn:\""));
    }
    if !is_partition(partition) {
        return Err(not_iam(input, format!("unknown partition {partition:?}")));
    }
    if *service != "iam" && *service != "sts" {
        return Err(not_iam(
            input,
            format!("service {service:?} is not iam or sts"),
        ));
    }
    if !region.is_empty() {
        return Err(not_iam(input, "IAM ARNs have an empty region field"));
    }
    if !is_account_id(account) {
        return Err(not_iam(
            input,
            format!("account {account:?} is not a 12-digit account ID"),
        ));
    }
    let iam = |resource_type: &str, path: String, name: &str, session_name: Option<String>| {
        Ok(IamArn {
            partition: partition.to_string(),
            account: account.to_string(),
            resource_type: resource_type.to_string(),
            path,
            name: name.to_string(),
            session_name,
        })
    };
    match *service {
        "iam" => {
            if *resource == "root" {
                return iam("root", "/".into(), "", None);
            }
            let Some((resource_type, rest)) = resource.split_once('/') else {
                return Err(not_iam(
                    input,
                    "the resource is not role/NAME, user/NAME or root",
                ));
            };
            if resource_type != "role" && resource_type != "user" {
                return Err(not_iam(
                    input,
                    format!("resource type {resource_type:?} is not role or user"),
                ));
            }
            let segments: Vec<&str> = rest.split('/').collect();
            let Some((name, path_segments)) = segments.split_last() else {
                return Err(not_iam(input, "missing name"));
            };
            if !is_iam_name(name) || name.len() > 64 {
                return Err(not_iam(
                    input,
                    format!("{name:?} is not a valid {resource_type} name"),
                ));
            }
            if let Some(bad) = path_segments.iter().find(|seg| !is_iam_name(seg)) {
                return Err(not_iam(input, format!("bad path segment {bad:?}")));
            }
            let path = if path_segments.is_empty() {
                "/".to_string()
            } else {
                format!("/{}/", path_segments.join("/"))
            };
            iam(resource_type, path, name, None)
        }
        "sts" => {
            let mut it = resource.split('/');
            let (Some("assumed-role"), Some(role), Some(session), None) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(not_iam(
                    input,
                    "an STS ARN must be assumed-role/ROLE/SESSION",
                ));
            };
            if !is_iam_name(role) || !is_iam_name(session) {
                return Err(not_iam(input, "bad role or session name"));
            }
            iam("assumed-role", "/".into(), role, Some(session.to_string()))
        }
        other => Err(not_iam(
            input,
            format!("service {other:?} is not iam or sts"),
        )),
    }
}

impl IamArn {
    /// The ARN aws-auth needs: the role path removed, and an assumed-role session turned back
    /// into its role (`arn:aws:sts::1:assumed-role/R/s` → `arn:aws:iam::1:role/R`).
    /// Users keep their path: STS reports users with it, so aws-auth matches it.
    pub(crate) fn without_path(&self) -> String {
        match self.resource_type.as_str() {
            "root" => format!("arn:{}:iam::{}:root", self.partition, self.account),
            "role" | "assumed-role" => {
                format!(
                    "arn:{}:iam::{}:role/{}",
                    self.partition, self.account, self.name
                )
            }
            _ => self.to_string(),
        }
    }

    /// True for roles and assumed-role sessions (things `mapRoles` holds).
    pub(crate) fn is_role(&self) -> bool {
        matches!(self.resource_type.as_str(), "role" | "assumed-role")
    }
}

impl fmt::Display for IamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, a) = (&self.partition, &self.account);
        match self.resource_type.as_str() {
            "root" => write!(f, "arn:{p}:iam::{a}:root"),
            "assumed-role" => write!(
                f,
                "arn:{p}:sts::{a}:assumed-role/{}/{}",
                self.name,
                self.session_name.as_deref().unwrap_or_default()
            ),
            t => write!(f, "arn:{p}:iam::{a}:{t}{}{}", self.path, self.name),
        }
    }
}

/// A parsed `arn:PARTITION:eks:REGION:ACCOUNT:cluster/NAME` (kubeconfig contexts made by
/// `aws eks update-kubeconfig` are named like this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EksClusterArn {
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) account: String,
    pub(crate) name: String,
}

pub(crate) fn parse_eks_cluster_arn(s: &str) -> Result<EksClusterArn, ArnError> {
    let input = s.trim();
    let bad = |reason: &str| ArnError::NotEksClusterArn {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = input.splitn(6, ':').collect();
    let ["arn", partition, "eks", region, account, resource] = parts.as_slice() else {
        return Err(bad(
            "it is not arn:PARTITION:eks:REGION:ACCOUNT:cluster/NAME",
        ));
    };
    if !is_partition(partition) || region.is_empty() || !is_account_id(account) {
        return Err(bad("bad partition, region or account"));
    }
    let Some(name) = resource.strip_prefix("cluster/") else {
        return Err(bad("the resource is not cluster/NAME"));
    };
    if name.is_empty() || name.contains('/') {
        return Err(bad("bad cluster name"));
    }
    Ok(EksClusterArn {
        partition: partition.to_string(),
        region: region.to_string(),
        account: account.to_string(),
        name: name.to_string(),
    })
}

impl fmt::Display for EksClusterArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:eks:{}:{}:cluster/{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_with_path_strips_to_name() {
        let arn = parse_iam_arn("arn:aws:iam::111122223333:role/a/b/Name").unwrap();
        assert_eq!(arn.resource_type, "role");
        assert_eq!(arn.path, "/a/b/");
        assert_eq!(arn.name, "Name");
        assert_eq!(arn.without_path(), "arn:aws:iam::111122223333:role/Name");
        assert_eq!(arn.to_string(), "arn:aws:iam::111122223333:role/a/b/Name");
    }

    #[test]
    fn role_without_path() {
        let arn = parse_iam_arn("arn:aws-cn:iam::111122223333:role/eks-node").unwrap();
        assert_eq!(arn.path, "/");
        assert_eq!(arn.partition, "aws-cn");
        assert_eq!(
            arn.to_string(),
            "arn:aws-cn:iam::111122223333:role/eks-node"
        );
        assert!(arn.is_role());
    }

    #[test]
    fn user_keeps_its_path() {
        let arn = parse_iam_arn("arn:aws:iam::111122223333:user/ops/alice").unwrap();
        assert_eq!(arn.resource_type, "user");
        assert_eq!(
            arn.without_path(),
            "arn:aws:iam::111122223333:user/ops/alice"
        );
        assert!(!arn.is_role());
    }

    #[test]
    fn root_and_assumed_role() {
        let root = parse_iam_arn("arn:aws:iam::111122223333:root").unwrap();
        assert_eq!(root.resource_type, "root");
        assert_eq!(root.to_string(), "arn:aws:iam::111122223333:root");

        let s = "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com";
        let assumed = parse_iam_arn(s).unwrap();
        assert_eq!(assumed.resource_type, "assumed-role");
        assert_eq!(assumed.to_string(), s);
        assert_eq!(
            assumed.without_path(),
            "arn:aws:iam::111122223333:role/Admin"
        );
    }

    #[test]
    fn wrong_shapes_get_clear_errors() {
        for (input, needle) in [
            ("", "6 ':'-separated"),
            ("<YOUR ROLE RoleARN>", "6 ':'-separated"),
            ("arn:aws:iam::12345:role/x", "12-digit"),
            ("arn:aws:s3:::bucket/x", "service"),
            ("arn:aws:iam:us-east-1:111122223333:role/x", "empty region"),
            ("arn:aws:iam::111122223333:group/x", "not role or user"),
            ("arn:aws:iam::111122223333:role/", "not a valid role name"),
            ("arn:aws:iam::111122223333:role/a//b", "bad path segment"),
            ("arn:aws:iam::111122223333:role/has space", "not a valid"),
            (
                "arn:aws:sts::111122223333:assumed-role/R",
                "assumed-role/ROLE/SESSION",
            ),
            ("ARN:aws:iam::111122223333:role/x", "arn:"),
        ] {
            let err = parse_iam_arn(input).unwrap_err().to_string();
            assert!(err.starts_with("not an IAM ARN:"), "{err}");
            assert!(err.contains(needle), "{input:?}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn account_ids() {
        assert!(is_account_id("012345678901"));
        assert!(!is_account_id("12345678901"));
        assert!(!is_account_id("12345678901a"));
    }

    proptest::proptest! {
        #[test]
        fn valid_arns_round_trip(
            partition in "aws(-cn|-us-gov)?",
            account in "[0-9]{12}",
            kind in proptest::sample::select(vec!["role", "user"]),
            path in proptest::collection::vec("[A-Za-z0-9_+=,.@-]{1,8}", 0..3),
            name in "[A-Za-z0-9_+=,.@-]{1,64}",
        ) {
            let path_text = if path.is_empty() { "/".to_string() } else { format!("/{}/", path.join("/")) };
            let text = format!("arn:{partition}:iam::{account}:{kind}{path_text}{name}");
            let arn = parse_iam_arn(&text).unwrap();
            proptest::prop_assert_eq!(arn.to_string(), text);
            proptest::prop_assert_eq!(&arn.path, &path_text);
            let stripped = parse_iam_arn(&arn.without_path()).unwrap();
            proptest::prop_assert_eq!(&stripped.name, &name);
            if kind == "role" {
                proptest::prop_assert_eq!(stripped.path.as_str(), "/");
            } else {
                proptest::prop_assert_eq!(stripped.path, path_text);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
            let _ = parse_iam_arn(&s);
            let _ = parse_eks_cluster_arn(&s);
        }
    }

    #[test]
    fn eks_cluster_arns() {
        let c =
            parse_eks_cluster_arn("arn:aws:eks:us-east-2:678901234557:cluster/kubetest32").unwrap();
        assert_eq!(c.name, "kubetest32");
        assert_eq!(c.region, "us-east-2");
        assert_eq!(
            c.to_string(),
            "arn:aws:eks:us-east-2:678901234557:cluster/kubetest32"
        );
        assert!(parse_eks_cluster_arn("kind-kind").is_err());
        assert!(parse_eks_cluster_arn("arn:aws:eks:us-east-2:678901234557:nodegroup/x").is_err());
    }
}

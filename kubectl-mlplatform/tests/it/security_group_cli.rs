//! Hopsworks step 4 (ports 80 and 443 from the Hopsworks network on the EKS cluster security
//! group) through the real binary against moto_server (EKS, IAM, EC2) and the Kubernetes API
//! double: `--param hopsworksVpcCidr=CIDR` opens exactly two rules, marked as ours by their
//! description; a re-run writes nothing; a client dry run shows them before anything is
//! written; doctor checks them; disconnect revokes only ours; a bad CIDR is refused up front;
//! without the parameter the manual step is printed as before.

use kubectl_mlplatform::aws::{Aws, SecurityGroupRuleFacts};
use serde_json::{Value, json};

use crate::support::{Env, changes_of};

const NET: &str = "10.1.0.0/16";

async fn instance_role(env: &Env, aws: &Aws) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let name = format!("hw-sg-{}", env.cluster);
    aws.create_role(&name, "/", &trust, "test", &[])
        .await
        .unwrap()
}

/// The group's ingress rules, sorted by port and network.
async fn ingress(aws: &Aws, group: &str) -> Vec<SecurityGroupRuleFacts> {
    let mut rules: Vec<_> = aws
        .security_group_rules(group)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| !r.egress)
        .collect();
    rules.sort_by(|a, b| (a.from_port, &a.cidr).cmp(&(b.from_port, &b.cidr)));
    rules
}

fn summary(rules: &[SecurityGroupRuleFacts]) -> Vec<(i32, String, String)> {
    rules
        .iter()
        .map(|r| {
            (
                r.from_port,
                r.cidr.clone().unwrap_or_default(),
                r.description.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn rule_changes(report: &Value) -> Vec<(String, String)> {
    changes_of(report)
        .into_iter()
        .filter(|(name, _)| name.starts_with("SecurityGroupRule/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_opens_two_rules_once_doctor_checks_them_and_disconnect_revokes_only_ours() {
    let (env, group) = Env::with_cluster_security_group().await;
    let aws = env.aws().await;
    let instance = instance_role(&env, &aws).await;
    // Someone else's rule on 443 (another network): never touched.
    aws.authorize_tcp_ingress(&group, 443, "10.2.0.0/16", false, "ops HTTPS")
        .await
        .unwrap();
    let theirs = ingress(&aws, &group).await;
    let ours = format!("kubectl-mlplatform hopsworks: {}", env.cluster);
    let param = format!("hopsworksVpcCidr={NET}");
    let connect = [
        "connect",
        "--profile",
        "hopsworks",
        "--instance-role-arn",
        &instance,
        "--param",
        &param,
    ];

    // A client dry run renders both rules and writes nothing.
    let dry = env
        .run(&[&connect[..], &["--dry-run=client", "-o", "yaml"]].concat())
        .await;
    dry.assert_ok();
    let report: Value = serde_yaml_ng::from_str(&dry.stdout).unwrap();
    let rendered = &report["rendered"]["securityGroupRules"];
    let shown: Vec<(u64, &str, &str, &str)> = rendered
        .as_array()
        .unwrap_or_else(|| panic!("{}", dry.stdout))
        .iter()
        .map(|r| {
            (
                r["port"].as_u64().unwrap(),
                r["cidr"].as_str().unwrap(),
                r["description"].as_str().unwrap(),
                r["action"]["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (80, NET, ours.as_str(), "authorizeIngress"),
            (443, NET, ours.as_str(), "authorizeIngress"),
        ]
    );
    assert!(rendered[0]["groupId"] == group.as_str(), "{rendered}");
    assert!(report.get("manualSteps").is_none(), "{}", dry.stdout);
    assert_eq!(ingress(&aws, &group).await, theirs);
    assert_eq!(env.double.mutating_requests(), vec![]);

    // connect: exactly two rules, ours by their description.
    let run = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    let report = run.json();
    let created: Vec<_> = rule_changes(&report);
    assert_eq!(
        created,
        [
            (
                format!("SecurityGroupRule/{group} tcp/80 from {NET}"),
                "created".to_owned()
            ),
            (
                format!("SecurityGroupRule/{group} tcp/443 from {NET}"),
                "created".to_owned()
            ),
        ]
    );
    assert!(report.get("manualSteps").is_none(), "{report}");
    let after = ingress(&aws, &group).await;
    assert_eq!(
        summary(&after),
        [
            (80, NET.to_owned(), ours.clone()),
            (443, NET.to_owned(), ours.clone()),
            (443, "10.2.0.0/16".to_owned(), "ops HTTPS".to_owned()),
        ]
    );

    // A re-run changes nothing (the same rules, by ID).
    let again = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    again.assert_ok();
    assert!(
        rule_changes(&again.json())
            .iter()
            .all(|(_, c)| c == "unchanged"),
        "{}",
        again.stdout
    );
    assert_eq!(ingress(&aws, &group).await, after);

    // doctor passes, then fails with the fix once one of our rules is gone; connect repairs.
    env.seed_webhook_configurations();
    let doctor = [
        "doctor",
        "--profile",
        "hopsworks",
        "--instance-role-arn",
        &instance,
        "--param",
        &param,
    ];
    let ok = env.run(&doctor).await;
    ok.assert_ok();
    assert!(
        ok.stdout
            .contains(&format!("SecurityGroupRule {group} tcp/443 from {NET}"))
            && !ok.stdout.contains("manual step"),
        "{}",
        ok.stdout
    );
    let ours_443 = after
        .iter()
        .find(|r| r.from_port == 443 && r.cidr.as_deref() == Some(NET));
    aws.revoke_ingress_rule(&group, &ours_443.unwrap().id)
        .await
        .unwrap();
    let bad = env.run(&doctor).await;
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stdout
            .contains(&format!("SecurityGroupRule {group} tcp/443 from {NET}"))
            && bad.stdout.contains(&format!("--param {param}")),
        "{}",
        bad.stdout
    );
    env.run(&connect).await.assert_ok();
    assert_eq!(summary(&ingress(&aws, &group).await), summary(&after));

    // disconnect: ours go, someone else's 443 rule stays.
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &instance,
            "--param",
            &param,
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    assert!(
        rule_changes(&run.json())
            .iter()
            .all(|(_, c)| c == "deleted"),
        "{}",
        run.stdout
    );
    assert_eq!(ingress(&aws, &group).await, theirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cidr_is_refused_before_anything_is_written_and_without_it_the_step_is_printed() {
    let (env, group) = Env::with_cluster_security_group().await;
    let aws = env.aws().await;
    let instance = instance_role(&env, &aws).await;
    let name = instance.rsplit('/').next().unwrap().to_owned();
    for bad in ["10.1.2.3/16", "vpc-123", "10.1.0.0/33", "10.1.0.0"] {
        let param = format!("hopsworksVpcCidr={bad}");
        let run = env
            .run(&[
                "connect",
                "--profile",
                "hopsworks",
                "--instance-role-arn",
                &instance,
                "--param",
                &param,
            ])
            .await;
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert!(
            lines.len() == 1
                && lines[0].starts_with("error: parameter hopsworksVpcCidr=")
                && lines[0].contains("is not a CIDR block"),
            "{bad}: {}",
            run.stderr
        );
    }
    assert_eq!(env.double.mutating_requests(), vec![]);
    assert!(ingress(&aws, &group).await.is_empty());
    let role = aws.get_role(&name).await.unwrap().unwrap();
    assert!(role.inline_policies.is_empty(), "IAM was written");

    // Without the parameter: the manual step, as before, with the cluster's group filled in.
    let run = env
        .run(&[
            "connect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &instance,
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!(
            "MANUAL STEP (security-group-ports): open HTTP (80) and HTTPS (443) from the Hopsworks network on the EKS cluster security group (run this once, or pass --param hopsworksVpcCidr=CIDR and connect adds them)\n  aws ec2 authorize-security-group-ingress --region us-east-1 --group-id {group} --ip-permissions 'IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{{CidrIp=<HOPSWORKS_VPC_CIDR>,Description=Hopsworks HTTP}}]'"
        )),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("SecurityGroupRule"), "{}", run.stdout);
    assert!(ingress(&aws, &group).await.is_empty());
}

//! `aws-auth migrate` through the real binary against the EKS stand-in (access entries and the
//! authentication mode, in front of moto's IAM and EKS) and the Kubernetes API double: the
//! mappings concurrent and hopsworks connect made move to access entries and back; CONFIG_MAP
//! stops with the command unless `--update-authentication-mode`; a client dry run shows every
//! entry and association first; a failed aws-auth write leaves every principal with access
//! (the new path is in place before the old one goes) and a re-run finishes; every other
//! aws-auth entry keeps its text byte for byte.

use std::collections::BTreeSet;

use kubectl_mlplatform::aws::Aws;
use mlplatform_testkit::EksStandIn;
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use serde_json::{Value, json};

use crate::support::{Env, Run, changes_of};

const AWS_AUTH_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/aws-auth";
const EDIT_POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy";

/// A cluster in CONFIG_MAP mode with the seeded aws-auth (a node role, ops, alice) and the
/// mappings connect made for concurrent (its vendor role) and hopsworks (an existing role).
struct Setup {
    env: Env,
    aws: Aws,
    vendor: String,
    instance: String,
}

async fn setup() -> Setup {
    let env = Env::with_eks_standin().await;
    env.seed_aws_auth();
    let aws = env.aws().await;
    env.connect(&[]).await.assert_ok();
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let instance = aws
        .create_role(&format!("hw-mig-{}", env.cluster), "/", &trust, "test", &[])
        .await
        .unwrap();
    env.run(&[
        "connect",
        "--profile",
        "hopsworks",
        "--instance-role-arn",
        &instance,
    ])
    .await
    .assert_ok();
    let vendor = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/{}", env.role_name());
    Setup {
        env,
        aws,
        vendor,
        instance,
    }
}

fn map_roles(env: &Env) -> String {
    env.aws_auth_data().unwrap()["mapRoles"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `text` without the list entries (blocks starting with `- ` at column 0) naming any of
/// `arns`: what is left must be the rest, byte for byte.
fn without_entries(text: &str, arns: &[&str]) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        match blocks.last_mut() {
            Some(block) if !line.starts_with("- ") => block.push_str(line),
            _ => blocks.push(line.to_owned()),
        }
    }
    blocks
        .into_iter()
        .filter(|b| !arns.iter().any(|arn| b.contains(arn)))
        .collect()
}

/// The principal's access entry as EKS holds it: username, groups, tags, and the policies
/// with their namespaces; None when there is none.
async fn entry(aws: &Aws, cluster: &str, principal: &str) -> Option<Value> {
    let found = aws
        .eks
        .describe_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
        .ok()?;
    let entry = found.access_entry()?;
    let policies = aws
        .eks
        .list_associated_access_policies()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
        .unwrap();
    let policies: Vec<Value> = policies
        .associated_access_policies()
        .iter()
        .map(|p| {
            json!({"policy": p.policy_arn(),
                "namespaces": p.access_scope().map(|s| s.namespaces().to_vec())})
        })
        .collect();
    Some(json!({
        "username": entry.username(),
        "groups": entry.kubernetes_groups(),
        "ours": entry.tags().and_then(|t| t.get("app.kubernetes.io/managed-by")).map(String::as_str)
            == Some("kubectl-mlplatform"),
        "policies": policies,
    }))
}

fn migrate(to: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["aws-auth", "migrate", "--to", to];
    args.extend_from_slice(extra);
    args.into_iter().map(str::to_owned).collect()
}

async fn run(env: &Env, args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run(&args).await
}

fn changes(run: &Run) -> BTreeSet<(String, String)> {
    changes_of(&run.json()).into_iter().collect()
}

/// Exit `code` and one `error:` line saying `needle` (besides the plan's warnings).
fn one_error_line(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "{}\n{}", run.stdout, run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert!(
        errors.len() == 1 && errors[0].starts_with("error: ") && errors[0].contains(needle),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_mappings_move_to_access_entries_only_after_each_entry_is_in_place() {
    let Setup {
        env,
        aws,
        vendor,
        instance,
    } = setup().await;
    let standin = EksStandIn::shared();
    let cluster = env.cluster.clone();
    let before = map_roles(&env);
    let users_before = env.aws_auth_data().unwrap()["mapUsers"].clone();
    assert!(
        before.contains(&vendor) && before.contains(&instance),
        "{before}"
    );
    standin.clear_calls();
    env.double.clear_requests();

    // CONFIG_MAP: the exact (one-way) command, nothing written.
    let refused = run(&env, &migrate("access-entries", &["--arn", &instance])).await;
    one_error_line(
        &refused,
        1,
        &format!(
            "`aws eks update-cluster-config --name {cluster} --access-config authenticationMode=API_AND_CONFIG_MAP`"
        ),
    );
    assert!(refused.stderr.contains("one-way"), "{}", refused.stderr);

    // A client dry run shows the mode switch, every entry and association, and the removals.
    let args = migrate(
        "access-entries",
        &["--update-authentication-mode", "--arn", &instance],
    );
    let mut dry_args = args.clone();
    dry_args.extend(["--dry-run=client", "-o", "yaml"].map(str::to_owned));
    let dry = run(&env, &dry_args).await;
    dry.assert_ok();
    let report: Value = serde_yaml_ng::from_str(&dry.stdout).unwrap();
    let rendered = &report["rendered"];
    assert_eq!(rendered["authenticationMode"]["to"], "API_AND_CONFIG_MAP");
    let entries: Vec<(String, Value)> = rendered["accessEntries"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", dry.stdout))
        .iter()
        .map(|e| {
            (
                e["principalArn"].as_str().unwrap().to_owned(),
                e["actions"].clone(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                instance.clone(),
                json!([
                    {"action": "createEntry", "username": "hopsworks", "groups": ["mlplatform:hopsworks"]},
                    {"action": "associatePolicy", "policyArn": EDIT_POLICY, "namespaces": ["hopsworks"]},
                ])
            ),
            (
                vendor.clone(),
                json!([
                    {"action": "createEntry", "username": "concurrent:{{SessionName}}", "groups": ["mlplatform:concurrent"]},
                    {"action": "associatePolicy", "policyArn": EDIT_POLICY, "namespaces": ["parallelsns"]},
                ])
            ),
        ]
    );
    let removals: Vec<&str> = rendered["awsAuth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(removals, ["remove", "remove"]);
    assert_eq!(standin.eks_writes_for(&cluster), vec![]);
    assert_eq!(standin.authentication_mode(&cluster), "CONFIG_MAP");
    assert_eq!(env.double.mutating_requests(), vec![]);

    // The first aws-auth write fails: the mode and the first entry are in place, aws-auth still
    // maps both (no principal is ever without access).
    env.double.inject_failure("PUT", AWS_AUTH_PATH, 403, 1);
    let failed = run(&env, &args).await;
    one_error_line(&failed, 1, "stopped after 2 of 5 changes");
    assert_eq!(standin.authentication_mode(&cluster), "API_AND_CONFIG_MAP");
    assert!(entry(&aws, &cluster, &instance).await.is_some());
    assert!(entry(&aws, &cluster, &vendor).await.is_none());
    assert_eq!(map_roles(&env), before);

    // The re-run finishes.
    let mut json_args = args.clone();
    json_args.extend(["-o", "json"].map(str::to_owned));
    let done = run(&env, &json_args).await;
    done.assert_ok();
    let row = |kind: &str, name: &str, change: &str| (format!("{kind}/{name}"), change.to_owned());
    assert_eq!(
        changes(&done),
        BTreeSet::from([
            row("AccessEntry", &instance, "unchanged"),
            row("AwsAuthMapping", &instance, "deleted"),
            row("AccessEntry", &vendor, "created"),
            row("AwsAuthMapping", &vendor, "deleted"),
        ])
    );
    for (principal, username, group, namespace) in [
        (
            &vendor,
            "concurrent:{{SessionName}}",
            "mlplatform:concurrent",
            "parallelsns",
        ),
        (&instance, "hopsworks", "mlplatform:hopsworks", "hopsworks"),
    ] {
        assert_eq!(
            entry(&aws, &cluster, principal).await.unwrap(),
            json!({"username": username, "groups": [group], "ours": true,
                "policies": [{"policy": EDIT_POLICY, "namespaces": [namespace]}]})
        );
    }
    // Every other entry keeps its text, byte for byte.
    assert_eq!(
        map_roles(&env),
        without_entries(&before, &[&vendor, &instance])
    );
    assert_eq!(env.aws_auth_data().unwrap()["mapUsers"], users_before);

    // Re-runs write nothing; connect on the switched cluster finds its entry as it wants it.
    standin.clear_calls();
    env.double.clear_requests();
    let again = run(&env, &args).await;
    again.assert_ok();
    assert!(
        again.stdout.contains("nothing to change"),
        "{}",
        again.stdout
    );
    let connect = env.connect(&["-o", "json"]).await;
    connect.assert_ok();
    assert!(
        changes_of(&connect.json())
            .iter()
            .all(|(_, change)| change == "unchanged"),
        "{}",
        connect.stdout
    );
    assert_eq!(standin.eks_writes_for(&cluster), vec![]);
    assert_eq!(env.double.mutating_requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_aws_auth_maps_each_principal_before_its_entry_goes() {
    let Setup {
        env,
        aws,
        vendor,
        instance,
    } = setup().await;
    let cluster = env.cluster.clone();
    let before = map_roles(&env);
    run(
        &env,
        &migrate(
            "access-entries",
            &["--update-authentication-mode", "--arn", &instance],
        ),
    )
    .await
    .assert_ok();
    let moved = map_roles(&env);

    // The aws-auth write fails: both entries stay (the mapping is not in place yet).
    env.double.inject_failure("PUT", AWS_AUTH_PATH, 403, 1);
    let failed = run(&env, &migrate("aws-auth", &[])).await;
    one_error_line(&failed, 1, "stopped after 0 of 4 changes");
    assert!(entry(&aws, &cluster, &vendor).await.is_some());
    assert!(entry(&aws, &cluster, &instance).await.is_some());
    assert_eq!(map_roles(&env), moved);

    // Our entries (both match a profile's mapping and are tagged as ours) move back.
    let mut args = migrate("aws-auth", &[]);
    args.extend(["-o", "json"].map(str::to_owned));
    let back = run(&env, &args).await;
    back.assert_ok();
    let row = |kind: &str, name: &str, change: &str| (format!("{kind}/{name}"), change.to_owned());
    assert_eq!(
        changes(&back),
        BTreeSet::from([
            row("AwsAuthMapping", &instance, "created"),
            row("AccessEntry", &instance, "deleted"),
            row("AwsAuthMapping", &vendor, "created"),
            row("AccessEntry", &vendor, "deleted"),
        ])
    );
    assert!(entry(&aws, &cluster, &vendor).await.is_none());
    assert!(entry(&aws, &cluster, &instance).await.is_none());
    let after = map_roles(&env);
    // The untouched entries keep their text; ours are back with connect's username and group.
    assert!(after.starts_with(&moved), "{after}");
    assert_eq!(
        without_entries(&after, &[&vendor, &instance]),
        without_entries(&before, &[&vendor, &instance])
    );
    for (arn, username, group) in [
        (
            &vendor,
            "concurrent:{{SessionName}}",
            "mlplatform:concurrent",
        ),
        (&instance, "hopsworks", "mlplatform:hopsworks"),
    ] {
        let listing = env.run(&["aws-auth", "get", "-o", "json"]).await;
        listing.assert_ok();
        let roles = listing.json()["roles"].clone();
        assert!(
            roles
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["arn"] == arn.as_str()
                    && r["username"] == username
                    && r["groups"] == json!([group])),
            "{roles}"
        );
    }
    let again = run(&env, &migrate("aws-auth", &[])).await;
    again.assert_ok();
    assert!(
        again.stdout.contains("nothing to change"),
        "{}",
        again.stdout
    );
}

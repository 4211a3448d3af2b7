use super::*;

#[test]
fn every_builtin_profile_parses_and_validates() {
    let profiles = builtin_profiles().unwrap();
    let names: Vec<_> = profiles.iter().map(|p| p.name().to_owned()).collect();
    assert_eq!(
        names,
        ["concurrent", "hopsworks", "arthur", "sagemaker-operator"]
    );
}

#[test]
fn every_builtin_profile_uses_only_implemented_steps() {
    for profile in builtin_profiles().unwrap() {
        assert!(
            profile.unimplemented_steps().is_empty(),
            "{}",
            profile.name()
        );
    }
    let arthur = load_profile("arthur").unwrap();
    let steps: Vec<_> = arthur.step_kinds().iter().map(|k| k.as_str()).collect();
    assert_eq!(
        steps,
        ["oidcProvider", "irsaRoles", "storageClass", "namespace"]
    );
    let hopsworks = load_profile("hopsworks").unwrap();
    let steps: Vec<_> = hopsworks.step_kinds().iter().map(|k| k.as_str()).collect();
    assert_eq!(
        steps,
        [
            "existingRolePolicies",
            "clusterAccess",
            "namespace",
            "securityGroupIngress",
            "manualSteps"
        ]
    );
}

#[test]
fn security_group_ingress_and_unless_name_parameters_and_ports_are_checked() {
    let yaml = include_str!("../profiles/hopsworks.yaml");
    for (from, to, want) in [
        (
            "onlyIf: hopsworksVpcCidr",
            "onlyIf: nope",
            "spec.securityGroupIngress.onlyIf: \"nope\" is not a parameter",
        ),
        (
            "unless: hopsworksVpcCidr",
            "unless: nope",
            "spec.manualSteps[0].unless: \"nope\" is not a parameter",
        ),
        (
            "tcpPorts: [80, 443]",
            "tcpPorts: [0]",
            "spec.securityGroupIngress.tcpPorts",
        ),
        ("tcpPorts: [80, 443]", "tcpPorts: [70000]", "tcpPorts"),
    ] {
        let err = parse_profile("p", &yaml.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{to}: {err}");
    }
}

#[test]
fn only_if_must_name_a_parameter_and_irsa_needs_an_oidc_provider() {
    let yaml =
        include_str!("../profiles/arthur.yaml").replace("onlyIf: sesRoleArn", "onlyIf: nope");
    let err = parse_profile("p", &yaml).unwrap_err().to_string();
    assert!(
        err.contains("spec.irsaRoles[0].inlinePolicies[2].onlyIf: \"nope\" is not a parameter"),
        "{err}"
    );
    let yaml = include_str!("../profiles/sagemaker-operator.yaml")
        .replace("  oidcProvider:\n    clientIds: [sts.amazonaws.com]\n", "");
    let err = parse_profile("p", &yaml).unwrap_err().to_string();
    assert!(
        err.contains("spec.irsaRoles: needs spec.oidcProvider"),
        "{err}"
    );
}

#[test]
fn builtin_profiles_round_trip_through_yaml() {
    for profile in builtin_profiles().unwrap() {
        let yaml = serde_yaml_ng::to_string(&profile).unwrap();
        let again = parse_profile("round-trip", &yaml).unwrap();
        assert_eq!(again, profile);
    }
}

#[test]
fn unknown_key_is_reported_with_its_path() {
    let yaml =
        include_str!("../profiles/concurrent.yaml").replace("    userRole:", "    userRolez:");
    let err = parse_profile("./x.yaml", &yaml).unwrap_err().to_string();
    assert!(
        err.starts_with("profile ./x.yaml: spec.namespace.userRolez: unknown field `userRolez`"),
        "{err}"
    );
    let yaml = include_str!("../profiles/concurrent.yaml").replace(
        "verbs: [get, list, watch]\n",
        "verbs: [get]\n          rulez: []\n",
    );
    let err = parse_profile("./x.yaml", &yaml).unwrap_err().to_string();
    assert!(
        err.contains("spec.namespace.userRole.rules[0].rulez: unknown field"),
        "{err}"
    );
}

#[test]
fn seed_bugs_are_rejected_by_validation() {
    let base = include_str!("../profiles/concurrent.yaml");
    let post = base.replacen("verbs: [get, list, watch]", "verbs: [get, post]", 1);
    let err = parse_profile("p", &post).unwrap_err().to_string();
    assert!(
        err.contains("\"post\" is not a Kubernetes RBAC verb"),
        "{err}"
    );
    let core_jobs = base.replacen(
        "resources: [pods, pods/log, configmaps]",
        "resources: [pods, jobs]",
        1,
    );
    let err = parse_profile("p", &core_jobs).unwrap_err().to_string();
    assert!(err.contains("\"jobs\" is in API group \"batch\""), "{err}");
}

#[test]
fn unknown_placeholders_are_caught_at_load_time_with_their_path() {
    let yaml =
        include_str!("../profiles/concurrent.yaml").replace("${vendorAccount}", "${vendorAcount}");
    let err = parse_profile("p", &yaml).unwrap_err().to_string();
    assert!(
        err.contains("spec.vendorRole.trustAccount: unknown placeholder ${vendorAcount}"),
        "{err}"
    );
}

#[test]
fn wrong_api_version_and_unknown_profile_are_clear() {
    let yaml = include_str!("../profiles/concurrent.yaml").replace(PROFILE_API_VERSION, "v9");
    let err = parse_profile("p", &yaml).unwrap_err().to_string();
    assert!(err.contains("apiVersion: expected"), "{err}");
    let err = load_profile("nope").unwrap_err().to_string();
    assert!(
        err.contains("unknown profile \"nope\"") && err.contains("concurrent"),
        "{err}"
    );
}

#[test]
fn templates_render_and_report_undefined_names() {
    let mut vars = Vars::new();
    vars.set("cluster", "c1").set("namespace", "ns");
    assert_eq!(
        vars.render("f", "a-${cluster}-${namespace}$x").unwrap(),
        "a-c1-ns$x"
    );
    assert_eq!(
        vars.render("f", "${nope}"),
        Err(TemplateError::Undefined {
            name: "nope".into(),
            field: "f".into()
        })
    );
    assert!(matches!(
        vars.render("f", "${oops"),
        Err(TemplateError::Unterminated { .. })
    ));
    let doc = serde_json::json!({"Resource": ["arn:${cluster}"], "n": 1});
    assert_eq!(
        vars.render_json("d", &doc).unwrap(),
        serde_json::json!({"Resource": ["arn:c1"], "n": 1})
    );
}

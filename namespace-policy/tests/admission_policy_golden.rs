//! Golden YAML of the rendered admission policies: `tests/fixtures/admission-policies.yaml`.
//!
//! `BLESS=1` (or `UPDATE_GOLDEN=1`) `cargo test -p mlplatform-namespace-policy --test
//! admission_policy_golden` rewrites it (review the diff). Whether the CEL in it agrees with the
//! webhook is `tests/tests/policy_parity.rs`'s job.

use std::path::Path;

use mlplatform_namespace_policy::admission_policy::all_objects;

fn render() -> String {
    let docs: Vec<String> = all_objects()
        .iter()
        .map(|object| serde_yaml_ng::to_string(object).expect("JSON values serialize to YAML"))
        .collect();
    format!(
        "# Rendered by mlplatform_namespace_policy::admission_policy; regenerate with BLESS=1.\n---\n{}",
        docs.join("---\n")
    )
}

#[test]
fn rendered_policies_match_the_golden_yaml() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission-policies.yaml");
    let rendered = render();
    if std::env::var_os("BLESS").is_some() || std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with BLESS=1 and review it", path.display()));
    // Compared as data: key order in the text depends on whether serde_json's
    // `preserve_order` is on, which workspace feature unification decides.
    let golden: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&golden)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    assert!(
        golden == all_objects(),
        "rendered policies differ from {}; run with BLESS=1 and review the diff",
        path.display()
    );
}

#[test]
fn golden_yaml_parses_back_to_the_rendered_objects() {
    let parsed: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&render())
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    assert_eq!(parsed, all_objects());
}

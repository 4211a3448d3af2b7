//! The krew manifest: krew's rules, each a check; the manifest `make dist` generates from the
//! archives (sha256 included); and an install the way krew does it, run through real kubectl.
//!
//! `scripts/dist.sh` is run here with `DIST_BINARY` (the binary this test harness built), so
//! the workspace is never rebuilt in a test; the release build happens once, in `make dist`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mlplatform");
const KUBECTL: &str = "/usr/bin/kubectl";
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const PLUGIN: &str = "mlplatform";
const KREW_OS: [&str; 3] = ["linux", "darwin", "windows"];
const KREW_ARCH: [&str; 5] = ["amd64", "arm64", "386", "arm", "ppc64le"];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Manifest {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    version: String,
    homepage: Option<String>,
    short_description: String,
    description: Option<String>,
    #[serde(rename = "caveats")]
    _caveats: Option<String>,
    platforms: Vec<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Platform {
    selector: Selector,
    uri: String,
    sha256: String,
    #[serde(default)]
    files: Vec<FileOperation>,
    bin: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperation {
    from: String,
    to: String,
}

fn is_semver_with_v(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'))
        })
        && pre.is_none_or(|p| {
            !p.is_empty()
                && p.split('.').all(|id| {
                    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        })
}

impl Platform {
    fn matches(&self, os: &str, arch: &str) -> bool {
        self.selector
            .match_labels
            .iter()
            .all(|(k, v)| match k.as_str() {
                "os" => v == os,
                "arch" => v == arch,
                _ => false,
            })
    }
}

/// Every krew rule this project promises, as one message per violation.
fn violations(file_name: &str, text: &str) -> Vec<String> {
    let manifest: Manifest = match serde_yaml_ng::from_str(text) {
        Ok(m) => m,
        Err(e) => return vec![format!("does not parse as a krew Plugin: {e}")],
    };
    let mut errors = Vec::new();
    let mut check = |ok: bool, message: String| {
        if !ok {
            errors.push(message);
        }
    };
    check(
        manifest.api_version == "krew.googlecontainertools.github.com/v1alpha2",
        format!("apiVersion {}", manifest.api_version),
    );
    check(manifest.kind == "Plugin", format!("kind {}", manifest.kind));
    let name = &manifest.metadata.name;
    check(
        file_name == format!("{name}.yaml"),
        format!("metadata.name {name} is not the file name {file_name}"),
    );
    check(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        format!("metadata.name {name} is not a safe plugin name"),
    );
    let spec = &manifest.spec;
    check(
        is_semver_with_v(&spec.version),
        format!("spec.version {} is not v-prefixed semver", spec.version),
    );
    let short = &spec.short_description;
    check(
        !short.trim().is_empty()
            && short.len() <= 50
            && short.split_whitespace().count() <= 8
            && !short.ends_with('.')
            && !short.contains('\n'),
        format!("shortDescription {short:?} is not a few words"),
    );
    check(
        spec.description
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty()),
        "description is empty".into(),
    );
    check(
        spec.homepage
            .as_deref()
            .is_some_and(|h| h.starts_with("https://")),
        "homepage is not an https URL".into(),
    );
    check(!spec.platforms.is_empty(), "no platforms".into());
    for (i, p) in spec.platforms.iter().enumerate() {
        let labels: Vec<&str> = p.selector.match_labels.keys().map(String::as_str).collect();
        check(
            !labels.is_empty()
                && labels.iter().all(|k| *k == "os" || *k == "arch")
                && p.selector.match_expressions.is_empty(),
            format!("platform {i}: selector must use os/arch labels only, got {labels:?}"),
        );
        if let Some(os) = p.selector.match_labels.get("os") {
            check(
                KREW_OS.contains(&os.as_str()),
                format!("platform {i}: os {os}"),
            );
        }
        if let Some(arch) = p.selector.match_labels.get("arch") {
            check(
                KREW_ARCH.contains(&arch.as_str()),
                format!("platform {i}: arch {arch}"),
            );
        }
        check(
            p.sha256.len() == 64
                && p.sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            format!(
                "platform {i}: sha256 {:?} is not 64 lowercase hex digits",
                p.sha256
            ),
        );
        check(
            p.uri.starts_with("https://")
                && (p.uri.ends_with(".tar.gz") || p.uri.ends_with(".zip")),
            format!("platform {i}: uri {} is not an https archive", p.uri),
        );
        let windows = p
            .selector
            .match_labels
            .get("os")
            .is_some_and(|o| o == "windows");
        let expected_bin = if windows {
            "kubectl-mlplatform.exe"
        } else {
            "kubectl-mlplatform"
        };
        check(
            p.bin == expected_bin,
            format!("platform {i}: bin {} (want {expected_bin})", p.bin),
        );
        check(
            p.files
                .iter()
                .all(|f| !f.from.is_empty() && !f.to.is_empty() && !f.to.contains("..")),
            format!("platform {i}: a files entry has an empty or escaping from/to"),
        );
        check(
            p.files.is_empty() || p.files.iter().any(|f| f.from == p.bin && f.to == "."),
            format!(
                "platform {i}: files do not put {} at the install root",
                p.bin
            ),
        );
    }
    for os in KREW_OS {
        for arch in KREW_ARCH {
            let matching = spec
                .platforms
                .iter()
                .filter(|p| p.matches(os, arch))
                .count();
            check(
                matching <= 1,
                format!("{matching} platforms overlap on {os}/{arch}"),
            );
        }
    }
    errors
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn krew_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no krew arch for {other}"),
    };
    (std::env::consts::OS, arch)
}

fn host_triple() -> String {
    let out = Command::new(BIN)
        .args(["version", "-o", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["target"].as_str().unwrap().to_owned()
}

struct Dist {
    dir: tempfile::TempDir,
    manifest: PathBuf,
}

/// `scripts/dist.sh` for this host's target, packing the binary the harness built.
fn dist() -> Dist {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("plugins").join("mlplatform.yaml");
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/dist.sh"))
        .env("DIST_DIR", dir.path().join("out"))
        .env("DIST_TARGETS", host_triple())
        .env("DIST_BINARY", BIN)
        .env("DIST_KREW_OUT", &manifest)
        .env("DIST_GZIP_LEVEL", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dist.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Dist { dir, manifest }
}

fn parse(path: &Path) -> Manifest {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn archive_of(manifest: &Manifest) -> &Platform {
    let (os, arch) = krew_platform();
    let matching: Vec<&Platform> = manifest
        .spec
        .platforms
        .iter()
        .filter(|p| p.matches(os, arch))
        .collect();
    assert_eq!(matching.len(), 1, "platforms for {os}/{arch}: {matching:?}");
    matching[0]
}

fn file_name_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap()
}

#[test]
fn committed_manifest_follows_krews_rules_and_matches_dist_output() {
    let path = Path::new(ROOT).join("krew-index/plugins/mlplatform.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make dist`", path.display()));
    let errors = violations("mlplatform.yaml", &text);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let manifest = parse(&path);
    assert_eq!(manifest.metadata.name, PLUGIN);
    assert_eq!(
        manifest.spec.version,
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    // Where `make dist` has run, every archive it names must hash to the manifest's sha256.
    let dist = Path::new(ROOT).join("dist");
    for p in &manifest.spec.platforms {
        let archive = dist.join(file_name_of(&p.uri));
        if archive.exists() {
            assert_eq!(sha256_hex(&archive), p.sha256, "{}", archive.display());
        }
    }
}

#[test]
fn each_rule_catches_its_violation() {
    let good = std::fs::read_to_string(Path::new(ROOT).join("krew-index/plugins/mlplatform.yaml"))
        .unwrap();
    assert!(violations("mlplatform.yaml", &good).is_empty());
    let sha = good
        .lines()
        .find_map(|l| l.trim().strip_prefix("sha256: "))
        .unwrap()
        .to_owned();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let linux = "        os: linux\n        arch: amd64\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (good.clone(), "other.yaml", "is not the file name"),
        (good.replace(&version, &version[1..]), "mlplatform.yaml", "semver"),
        (good.replace(&sha, &sha.to_uppercase()), "mlplatform.yaml", "lowercase hex"),
        (good.replace(&sha, &sha[..60]), "mlplatform.yaml", "lowercase hex"),
        (
            good.replace("bin: kubectl-mlplatform", "bin: mlplatform"),
            "mlplatform.yaml",
            "bin mlplatform",
        ),
        (
            good.replace(linux, "        os: linux\n        arch: amd64\n        distro: debian\n"),
            "mlplatform.yaml",
            "os/arch labels only",
        ),
        (
            good.replace(
                "shortDescription: Connect ML platform vendors to Amazon EKS",
                "shortDescription: This plugin connects every machine learning platform vendor to Amazon EKS clusters.",
            ),
            "mlplatform.yaml",
            "a few words",
        ),
        (good.replace("apiVersion: krew", "apiVersion: x"), "mlplatform.yaml", "apiVersion"),
        (good.replace("  homepage:", "  homepages:"), "mlplatform.yaml", "does not parse"),
    ];
    for (text, file, needle) in cases {
        let errors = violations(file, &text);
        assert!(!errors.is_empty(), "not caught: {needle}");
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{needle}: {errors:?}"
        );
    }
    // Two platforms for one os/arch: a duplicate entry overlaps.
    let manifest: serde_yaml_ng::Value = serde_yaml_ng::from_str(&good).unwrap();
    let mut doubled = manifest.clone();
    let platforms = doubled["spec"]["platforms"].as_sequence_mut().unwrap();
    let first = platforms[0].clone();
    platforms.push(first);
    let errors = violations(
        "mlplatform.yaml",
        &serde_yaml_ng::to_string(&doubled).unwrap(),
    );
    assert!(errors.iter().any(|e| e.contains("overlap")), "{errors:?}");
    // An os-only selector overlaps with any other linux entry too.
    let mut broad = manifest;
    let platforms = broad["spec"]["platforms"].as_sequence_mut().unwrap();
    let mut any_arch = platforms[0].clone();
    any_arch["selector"]["matchLabels"]
        .as_mapping_mut()
        .unwrap()
        .remove("arch");
    platforms.push(any_arch);
    let errors = violations(
        "mlplatform.yaml",
        &serde_yaml_ng::to_string(&broad).unwrap(),
    );
    assert!(errors.iter().any(|e| e.contains("overlap")), "{errors:?}");
}

#[test]
fn dist_generates_a_valid_manifest_whose_sha256_matches_the_archive() {
    let dist = dist();
    let text = std::fs::read_to_string(&dist.manifest).unwrap();
    let errors = violations("mlplatform.yaml", &text);
    assert!(errors.is_empty(), "{}\n{text}", errors.join("\n"));
    let manifest = parse(&dist.manifest);
    let platform = archive_of(&manifest);
    let name = file_name_of(&platform.uri);
    assert_eq!(
        name,
        format!(
            "kubectl-mlplatform-v{}-{}.tar.gz",
            env!("CARGO_PKG_VERSION"),
            host_triple()
        )
    );
    let archive = dist.dir.path().join("out").join(name);
    assert_eq!(sha256_hex(&archive), platform.sha256);
    let sums = std::fs::read_to_string(dist.dir.path().join("out/SHA256SUMS")).unwrap();
    assert_eq!(sums, format!("{}  {name}\n", platform.sha256));
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&archive)
        .output()
        .unwrap();
    let mut entries: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "LICENSE",
            "README.md",
            "kubectl-mlplatform",
            "kubectl_complete-mlplatform"
        ]
    );
}

#[test]
fn installs_the_way_krew_does_and_runs_through_kubectl() {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} not found: install Debian's kubectl (scripts/install-test-deps.sh)"
    );
    let dist = dist();
    let manifest = parse(&dist.manifest);
    let platform = archive_of(&manifest);
    let archive = dist
        .dir
        .path()
        .join("out")
        .join(file_name_of(&platform.uri));
    // krew: verify the sha256, unpack, move `files` into the store, link `bin` as kubectl-NAME.
    assert_eq!(
        sha256_hex(&archive),
        platform.sha256,
        "krew refuses a mismatched archive"
    );
    let krew_root = tempfile::tempdir().unwrap();
    let unpacked = krew_root.path().join("download");
    let store = krew_root
        .path()
        .join("store")
        .join(&manifest.metadata.name)
        .join(&manifest.spec.version);
    let bin_dir = krew_root.path().join("bin");
    for d in [&unpacked, &store, &bin_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(untar.success());
    for f in &platform.files {
        let to = if f.to == "." {
            store.join(&f.from)
        } else {
            store.join(&f.to)
        };
        std::fs::rename(unpacked.join(&f.from), &to)
            .unwrap_or_else(|e| panic!("files: {} -> {}: {e}", f.from, f.to));
    }
    let link = bin_dir.join(format!("kubectl-{}", manifest.metadata.name));
    std::os::unix::fs::symlink(store.join(&platform.bin), &link).unwrap();
    let path = std::env::join_paths([bin_dir.as_path(), Path::new("/usr/bin"), Path::new("/bin")])
        .unwrap();

    let out = Command::new(KUBECTL)
        .args(["mlplatform", "version"])
        .env("PATH", &path)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!(
            "kubectl-mlplatform {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );

    // The caveat's one-time link makes `kubectl mlplatform <TAB>` work from the store.
    std::os::unix::fs::symlink(
        store.join("kubectl_complete-mlplatform"),
        bin_dir.join("kubectl_complete-mlplatform"),
    )
    .unwrap();
    let out = Command::new(KUBECTL)
        .args(["__complete", "mlplatform", "web"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("webhook\t"), "{stdout}");
}

mod release;

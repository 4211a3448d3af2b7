//! The release path: archives packed by each release job, then one manifest for all five
//! platforms written from them by `scripts/dist.sh manifest`.

use std::path::Path;
use std::process::Command;

use super::*;

/// The five platforms .github/workflows/release.yml builds: triple, krew os, krew arch.
const RELEASE_TARGETS: [(&str, &str, &str); 5] = [
    ("x86_64-unknown-linux-musl", "linux", "amd64"),
    ("aarch64-unknown-linux-musl", "linux", "arm64"),
    ("x86_64-apple-darwin", "darwin", "amd64"),
    ("aarch64-apple-darwin", "darwin", "arm64"),
    ("x86_64-pc-windows-msvc", "windows", "amd64"),
];

fn run_dist(args: &[&str], envs: &[(&str, &Path)]) -> std::process::Output {
    let mut command = Command::new("bash");
    command
        .arg(Path::new(ROOT).join("scripts/dist.sh"))
        .args(args)
        .env("DIST_GZIP_LEVEL", "1")
        .env_remove("DIST_BASE_URL")
        .env_remove("DIST_TARGETS")
        .env_remove("DIST_BINARY");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn archive_name(triple: &str) -> String {
    format!(
        "kubectl-mlplatform-v{}-{triple}.tar.gz",
        env!("CARGO_PKG_VERSION")
    )
}

/// What each release job does: `dist.sh pack` on the binary it built, here a stand-in script
/// that names its target, so every archive (and its sha256) differs.
fn pack_stand_ins(work: &Path, out: &Path, triples: &[&str]) {
    for triple in triples {
        let binary = work.join(format!("stand-in-{triple}"));
        std::fs::write(&binary, format!("#!/bin/sh\necho {triple}\n")).unwrap();
        std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let krew_out = work.join("pack-must-not-write.yaml");
        let result = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/dist.sh"))
            .arg("pack")
            .env("DIST_DIR", out)
            .env("DIST_TARGETS", triple)
            .env("DIST_BINARY", &binary)
            .env("DIST_KREW_OUT", &krew_out)
            .env("DIST_GZIP_LEVEL", "1")
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "pack {triple}: {}",
            stderr_of(&result)
        );
        assert!(!krew_out.exists(), "pack wrote a manifest");
    }
    assert!(!out.join("SHA256SUMS").exists(), "pack wrote SHA256SUMS");
}

fn entries_of(archive: &Path) -> Vec<String> {
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(listing.status.success(), "{}", archive.display());
    let mut entries: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    entries.sort();
    entries
}

fn file_in(archive: &Path, entry: &str) -> String {
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(archive)
        .arg(format!("./{entry}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{entry} in {}", archive.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn manifest_from_release_archives_covers_all_five_platforms() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("dist");
    let triples: Vec<&str> = RELEASE_TARGETS.iter().map(|(t, _, _)| *t).collect();
    pack_stand_ins(work.path(), &out, &triples);

    let manifest_path = work.path().join("plugins/mlplatform.yaml");
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let result = run_dist(
        &["manifest", out.to_str().unwrap(), &version],
        &[("DIST_KREW_OUT", &manifest_path)],
    );
    assert!(result.status.success(), "{}", stderr_of(&result));

    // krew's rules, including no two platforms matching one os/arch.
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let errors = violations("mlplatform.yaml", &text);
    assert!(errors.is_empty(), "{}\n{text}", errors.join("\n"));
    let manifest = parse(&manifest_path);
    assert_eq!(manifest.spec.version, version);
    assert_eq!(manifest.spec.platforms.len(), RELEASE_TARGETS.len());

    let mut sums = Vec::new();
    for (triple, os, arch) in RELEASE_TARGETS {
        let matching: Vec<&Platform> = manifest
            .spec
            .platforms
            .iter()
            .filter(|p| p.matches(os, arch))
            .collect();
        assert_eq!(matching.len(), 1, "{os}/{arch}: {matching:?}");
        let platform = matching[0];
        let labels: BTreeMap<String, String> = [("arch", arch), ("os", os)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(platform.selector.match_labels, labels, "{triple}");

        let name = archive_name(triple);
        assert_eq!(
            platform.uri,
            format!(
                "https://github.com/mlplatform-io/kubectl-mlplatform/releases/download/{version}/{name}"
            )
        );
        let archive = out.join(&name);
        let sha = sha256_hex(&archive);
        assert_eq!(platform.sha256, sha, "{triple}");
        sums.push(format!("{sha}  {name}"));

        let windows = os == "windows";
        let bin = if windows {
            "kubectl-mlplatform.exe"
        } else {
            "kubectl-mlplatform"
        };
        assert_eq!(platform.bin, bin, "{triple}");
        let mut expected = vec!["LICENSE", "README.md", bin];
        if !windows {
            expected.push("kubectl_complete-mlplatform");
        }
        expected.sort();
        let entries = entries_of(&archive);
        assert_eq!(entries, expected, "{triple}");
        // Every file krew moves must be in the archive, and the binary is this target's.
        for f in &platform.files {
            assert!(entries.contains(&f.from), "{triple}: files name {}", f.from);
            assert_eq!(f.to, ".");
        }
        assert_eq!(
            platform.files.first().map(|f| f.from.as_str()),
            Some(bin),
            "{triple}"
        );
        assert!(
            file_in(&archive, bin).contains(&format!("echo {triple}")),
            "{triple}: another target's binary"
        );
    }
    sums.sort_by(|a, b| {
        a.split_once("  ")
            .unwrap()
            .1
            .cmp(b.split_once("  ").unwrap().1)
    });
    let written = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(written, sums.join("\n") + "\n");
}

#[test]
fn manifest_prefers_musl_and_refuses_what_krew_could_not_install() {
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let manifest_of = |dir: &Path, work: &Path| {
        let path = work.join("mlplatform.yaml");
        let result = run_dist(
            &["manifest", dir.to_str().unwrap(), &version],
            &[("DIST_KREW_OUT", &path)],
        );
        (result, path)
    };

    // Both linux/amd64 archives: the static musl one is the krew platform, both are summed.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("dist");
    pack_stand_ins(
        work.path(),
        &out,
        &["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"],
    );
    let (result, path) = manifest_of(&out, work.path());
    assert!(result.status.success(), "{}", stderr_of(&result));
    assert!(stderr_of(&result).contains("x86_64-unknown-linux-gnu left out"));
    let manifest = parse(&path);
    assert_eq!(manifest.spec.platforms.len(), 1);
    assert!(
        manifest.spec.platforms[0]
            .uri
            .ends_with(&archive_name("x86_64-unknown-linux-musl"))
    );
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 2, "{sums}");

    // Without a version argument, the workspace's.
    let path = work.path().join("default-version.yaml");
    let result = run_dist(
        &["manifest", out.to_str().unwrap()],
        &[("DIST_KREW_OUT", &path)],
    );
    assert!(result.status.success(), "{}", stderr_of(&result));
    assert_eq!(parse(&path).spec.version, version);

    let fails = |dir: &Path, version: &str, needle: &str| {
        let path = dir.join("never.yaml");
        let result = run_dist(
            &["manifest", dir.to_str().unwrap(), version],
            &[("DIST_KREW_OUT", &path)],
        );
        assert!(!result.status.success(), "{needle}: dist.sh succeeded");
        assert!(
            stderr_of(&result).contains(needle),
            "{needle}: {}",
            stderr_of(&result)
        );
        assert!(!path.exists(), "{needle}: a manifest was written");
    };
    // No archive of that version; not a version.
    fails(
        &out,
        "v9.9.9",
        "no kubectl-mlplatform-v9.9.9-<target>.tar.gz",
    );
    fails(&out, "latest", "not semver");

    // An archive for a target krew would not know how to select.
    let odd = work.path().join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::copy(
        out.join(archive_name("x86_64-unknown-linux-musl")),
        odd.join(archive_name("riscv64gc-unknown-linux-gnu")),
    )
    .unwrap();
    fails(&odd, &version, "unknown target riscv64gc-unknown-linux-gnu");

    // An archive without the binary the manifest would name as `bin`.
    let empty = work.path().join("empty");
    let staging = work.path().join("staging");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("LICENSE"), "Apache-2.0").unwrap();
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(empty.join(archive_name("aarch64-apple-darwin")))
        .arg("-C")
        .arg(&staging)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    fails(&empty, &version, "has no kubectl-mlplatform");
}

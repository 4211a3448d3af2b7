//! Helpers shared by the webhook-operations tests (manifests.rs, webhook_e2e.rs).
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod discovery;
pub mod manifests;
pub mod process;
pub mod selector;

use std::path::PathBuf;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A workspace binary built by cargo: `$<ENV>` if set, else next to this test executable
/// (`target/<profile>/deps/..`), else `target/release` and `target/debug`.
pub fn workspace_binary(name: &str, env_override: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_override) {
        return Some(PathBuf::from(path));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(|deps| deps.parent())
    {
        candidates.push(profile_dir.join(name));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    candidates.push(target.join("debug").join(name));
    candidates.push(target.join("release").join(name));
    candidates.into_iter().find(|p| p.is_file())
}

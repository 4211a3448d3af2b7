#!/usr/bin/env bash
# Installs what the tests reach as real components, only when missing:
#   moto_server (PyPI moto[server]) stands in for AWS IAM/STS/EKS; kubectl runs the plugin.
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

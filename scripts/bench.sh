#!/usr/bin/env bash
# `make bench`: speed is measured here, never in timed tests. Loopback only, bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
echo "== webhook: pod-CREATE reviews over keep-alive HTTPS, server pinned to one core, vs a no-op axum+rustls ceiling"
"$BIN/webhook-bench" --webhook-bin "$BIN/mlplatform-webhook" --ceiling-bin "$BIN/noop-ceiling" --kube-double-bin "$BIN/kube-double"
if [ -x "$BIN/connect-bench" ]; then
    echo
    echo "== plugin: kubectl mlplatform connect against moto_server and the Kubernetes API double"
    "$BIN/connect-bench" --plugin-bin "$BIN/kubectl-mlplatform"
fi

#!/usr/bin/env bash
# `make bench`: speed is measured here, never in timed tests. Loopback only, bounded in time
# (about a minute and a half in all). Run it on an otherwise idle machine: the servers are pinned to core 0,
# the load generator to core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
echo "== webhook: pod-CREATE AdmissionReviews over keep-alive HTTPS, server on one core, against"
echo "   null-server (the webhook's own axum+rustls stack echoing the uid, no parse: the floor)"
echo "   and noop-ceiling (axum+rustls parsing into serde_json::Value)"
"$BIN/webhook-bench" --bin-dir "$BIN" "$@"
echo
echo "== plugin: kubectl mlplatform connect --profile concurrent against moto_server and the API double"
"$BIN/connect-bench" --plugin "$BIN/kubectl-mlplatform"

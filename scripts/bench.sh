#!/usr/bin/env bash
# `make bench`: speed is measured here, never in timed tests. Loopback only, bounded in time
# (about a minute and a half in all). Run it on an otherwise idle machine: the servers are pinned to core 0,
# the load generator to core 1.
#
# BENCH_ONLY=webhook runs only the webhook comparison, BENCH_ONLY=plugin only the plugin's;
# each needs only its own binaries, e.g. for the webhook:
#   cargo build --release -p mlplatform-webhook -p mlplatform-bench -p mlplatform-testkit --bins
#   BENCH_ONLY=webhook scripts/bench.sh
# Arguments go to webhook-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
only="${BENCH_ONLY:-}"
case "$only" in
"" | webhook | plugin) ;;
*)
    echo "bench.sh: BENCH_ONLY must be webhook or plugin, not '$only'" >&2
    exit 2
    ;;
esac
if [ "$only" != plugin ]; then
    echo "== webhook: pod-CREATE AdmissionReviews over keep-alive HTTPS, server on one core, against"
    echo "   null-server (the webhook's own axum+rustls stack echoing the uid, no parse: the floor),"
    echo "   null-same-answer (the same, sending the webhook's own answer with the uid spliced in)"
    echo "   and noop-ceiling (axum+rustls parsing into serde_json::Value)"
    "$BIN/webhook-bench" --bin-dir "$BIN" "$@"
fi
if [ -z "$only" ]; then
    echo
fi
if [ "$only" != webhook ]; then
    echo "== plugin: kubectl mlplatform connect --profile concurrent against moto_server and the API double"
    "$BIN/connect-bench" --plugin "$BIN/kubectl-mlplatform"
fi

#!/usr/bin/env bash
# Holds the kube API double to a real kube-apiserver: starts the kube-double binary on a free
# loopback port, records its answers with ../shared/apiserver-conformance/record.py, and
# compares them with the recorded kube-apiserver v1.36.2 (compare.py). Accepted differences
# are listed in testkit/conformance-allow.txt. Exits non-zero on any other difference.
#
# shared/ is found beside the repository (../shared), as CI checks it out; it may be
# read-only, so the recording goes to a temporary directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
conformance="${MLPLATFORM_SHARED_DIR:-$root/../shared}/apiserver-conformance"
reference="$conformance/reference/kube-apiserver-v1.36.2.json"
allow="$root/testkit/conformance-allow.txt"
cargo="${CARGO:-cargo}"

for needed in "$conformance/record.py" "$conformance/compare.py" "$reference"; do
    [ -f "$needed" ] || { echo "error: $needed not found (shared/ must sit beside the repository)" >&2; exit 1; }
done
command -v kubectl >/dev/null 2>&1 || { echo "error: record.py needs kubectl on PATH (make deps)" >&2; exit 1; }

(cd "$root" && "$cargo" build --quiet -p mlplatform-testkit --bin kube-double)
double="${CARGO_TARGET_DIR:-$root/target}/debug/kube-double"

work="$(mktemp -d "${TMPDIR:-/tmp}/mlplatform-conformance.XXXXXX")"
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the double picks a free port and writes it into the kubeconfig.
"$double" --listen 127.0.0.1:0 --kubeconfig-out "$work/kubeconfig" >"$work/url" 2>"$work/double.log" &
pid=$!
for _ in $(seq 100); do
    [ -s "$work/url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/double.log" >&2; echo "error: kube-double exited" >&2; exit 1; }
    sleep 0.1
done
[ -s "$work/url" ] || { echo "error: kube-double did not start within 10 s" >&2; exit 1; }

python3 "$conformance/record.py" --kubeconfig "$work/kubeconfig" --out "$work/double.json" >/dev/null
python3 "$conformance/compare.py" "$reference" "$work/double.json" --allow "$allow"

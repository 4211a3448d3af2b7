#!/usr/bin/env bash
# Runs the admission webhook locally, the way a new user first meets it.
#
# With MLPLATFORM_KUBECONFIG=path (a real cluster), the webhook caches that cluster's namespaces and
# ServiceAccounts. Without it, a local Kubernetes API test double is started with a managed demo
# namespace, so everything works on a fresh machine with no cluster.
# A throwaway CA and serving certificate for 127.0.0.1/localhost are generated in .run/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
RUN=.run
mkdir -p "$RUN"
for b in mlplatform-webhook kube-double; do
    [ -x "$BIN/$b" ] || { echo "error: $BIN/$b missing; run 'make build' first" >&2; exit 1; }
done

if [ ! -s "$RUN/tls.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=mlplatform-local-ca" -keyout "$RUN/ca.key" -out "$RUN/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$RUN/tls.key" -out "$RUN/tls.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$RUN/ext.cnf"
    openssl x509 -req -in "$RUN/tls.csr" -CA "$RUN/ca.crt" -CAkey "$RUN/ca.key" -CAcreateserial \
        -days 30 -extfile "$RUN/ext.cnf" -out "$RUN/tls.crt" 2>/dev/null
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if [ -n "${MLPLATFORM_KUBECONFIG:-}" ]; then
    KCFG="$MLPLATFORM_KUBECONFIG"
    echo "using the cluster in $KCFG"
else
    KCFG="$RUN/kubeconfig"
    # A kubeconfig left by an earlier run names that run's port: wait for this double's own.
    rm -f "$KCFG"
    "$BIN/kube-double" --listen 127.0.0.1:0 --kubeconfig-out "$KCFG" --context local-double \
        --fixtures examples/local-cluster.yaml &
    pids+=($!)
    for _ in $(seq 50); do [ -s "$KCFG" ] && break; sleep 0.1; done
    [ -s "$KCFG" ] || { echo "error: the local API double wrote no $KCFG within 5 s" >&2; exit 1; }
    echo "started a local Kubernetes API double (kubeconfig: $KCFG) with managed namespace 'demo'"
fi

cat <<TXT
webhook: https://127.0.0.1:8443 (/mutate, /validate), health: http://127.0.0.1:8080 (/healthz, /readyz, /metrics)
try:  curl -s --cacert $RUN/ca.crt -H 'content-type: application/json' \\
        --data @examples/pod-create-review.json https://127.0.0.1:8443/mutate      # IRSA patch
      curl -s --cacert $RUN/ca.crt -H 'content-type: application/json' \\
        --data @examples/pod-default-sa-review.json https://127.0.0.1:8443/validate  # denied: wrong SA
      curl -s http://127.0.0.1:8080/metrics
Ctrl-C stops it.
TXT
"$BIN/mlplatform-webhook" --listen 127.0.0.1:8443 --health-listen 127.0.0.1:8080 \
    --tls-cert-file "$RUN/tls.crt" --tls-key-file "$RUN/tls.key" --kubeconfig "$KCFG" \
    --aws-region "${AWS_REGION:-us-east-1}" --log-format plain &
pids+=($!)
wait "${pids[-1]}"

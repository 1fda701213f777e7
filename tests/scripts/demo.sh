#!/usr/bin/env bash
# The README's first command: a local control plane (etcd, kube-apiserver,
# kube-controller-manager on 127.0.0.1), the Airlock operator and the fake provider.
# Applies deploy/examples/ (the seed's SecretStore and ExternalSecret), waits for the
# ExternalSecret to be Ready and prints it with the synced Secret. Stays up until Ctrl-C;
# `--once` (or CI=true) exits after printing. Everything is torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AIRLOCK_CACHE="${AIRLOCK_CACHE:-$HOME/.cache/airlock}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AIRLOCK_CACHE/target}"
once=false
[ "${1:-}" = "--once" ] && once=true
[ -n "${CI:-}" ] && once=true

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "stopping"; exit 0' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() {
  echo "demo failed: $*" >&2
  for log in "$work"/*.log; do echo "--- $log (last 30 lines)" >&2; tail -n 30 "$log" >&2; done
  exit 1
}

step "building the control plane, the operator and the fake provider (cached after the first run)"
tests/k8s/build.sh
cargo build --quiet -p airlock -p airlock-testenv
cargo build --quiet --target wasm32-wasip2 --profile wasm -p airlock-provider-fake
providers="$CARGO_TARGET_DIR/wasm32-wasip2/wasm"
airlock="$CARGO_TARGET_DIR/debug/airlock"

step "starting etcd + kube-apiserver + kube-controller-manager on 127.0.0.1"
"$CARGO_TARGET_DIR/debug/airlock-cluster" >"$work/cluster.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 240); do
  grep -q '^export KUBECONFIG=' "$work/cluster.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || fail "the control plane did not start"
  sleep 0.5
done
grep -q '^export KUBECONFIG=' "$work/cluster.log" || fail "the control plane did not become ready"
eval "$(grep '^export ' "$work/cluster.log")"
grep '^airlock-cluster: ready' "$work/cluster.log"

step "installing the CRDs"
"$airlock" crds | kubectl apply --server-side -f - >/dev/null
kubectl wait --for condition=established crd --all --timeout=60s >/dev/null

step "starting the operator (providers from $providers)"
"$airlock" run --providers-dir "$providers" >"$work/operator.log" 2>&1 &
pids+=($!)

step "applying deploy/examples/"
kubectl apply --server-side -f deploy/examples/
kubectl wait -n production externalsecret/database-credentials --for=condition=Ready --timeout=90s >/dev/null ||
  fail "the ExternalSecret did not become Ready"

step "kubectl get providers,secretstores,externalsecrets -A"
kubectl get providers.airlock.dev,secretstores,externalsecrets -A

step "the synced Secret production/database-secret"
kubectl get secret database-secret -n production \
  -o go-template='{{range $k, $v := .data}}{{printf "%s: %s\n" $k ($v | base64decode)}}{{end}}'
kubectl get secret database-secret -n production -o jsonpath='{.metadata.labels}{"\n"}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}{"\n"}'

if $once; then
  exit 0
fi
echo
echo "The cluster stays up; in another shell:"
grep '^export ' "$work/cluster.log"
echo "Press Ctrl-C to stop."
wait "${pids[0]}"

#!/usr/bin/env bash
# The README's first command: a local control plane (etcd, kube-apiserver,
# kube-controller-manager on 127.0.0.1), the Helm chart's CRDs and Provider objects (helm
# install with the Deployment switched off), the Airlock operator (out of cluster) and the examples in deploy/examples/*/ (the seed's
# SecretStore and ExternalSecret, served by the fake provider). Waits for every ExternalSecret
# to be Ready and prints them with the synced Secret. Stays up until Ctrl-C; `--once` (or
# CI=true) exits after printing. Everything is torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AIRLOCK_CACHE="${AIRLOCK_CACHE:-$HOME/.cache/airlock}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AIRLOCK_CACHE/target}"
once=false
[ "${1:-}" = "--once" ] && once=true
[ -n "${CI:-}" ] && once=true
helm="$AIRLOCK_CACHE/bin/helm"
chart=deploy/charts/airlock

work=$(mktemp -d)
export DEMO_WORK="$work"
# Helm keeps its repositories and cache with the demo, not in the user's home.
export HELM_CONFIG_HOME="$work/helm/config" HELM_CACHE_HOME="$work/helm/cache" HELM_DATA_HOME="$work/helm/data"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work"/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
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
[ -x "$helm" ] || fail "helm is not installed at $helm: run 'make setup'"

step "building the control plane, the operator and the provider components (cached after the first run)"
tests/k8s/build.sh >/dev/null
cargo build --quiet -p airlock -p airlock-testenv
# The bundled providers, as registered in the root Cargo.toml: `<crate> <chart key>` lines.
bundled=$(tests/scripts/wasm-crates.sh --bundled)
packages=()
while read -r crate _; do packages+=(-p "$crate"); done <<<"$bundled"
# The same target directory as the test guests (tests/artifacts), so `make test` warms it.
cargo build --quiet --target wasm32-wasip2 --profile wasm --target-dir "$CARGO_TARGET_DIR/wasm" "${packages[@]}"
export DEMO_PROVIDERS="$CARGO_TARGET_DIR/wasm/wasm32-wasip2/wasm"
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

# The chart's CRDs and Provider objects, without the Deployment: the operator runs here, out
# of cluster. A bundled Provider whose module was not built is left out.
chart_args=(--namespace airlock-system --create-namespace --set createOperator=false)
while read -r crate key; do
  [ -f "$DEMO_PROVIDERS/${crate//-/_}.wasm" ] || chart_args+=(--set "providers.$key.enabled=false")
done <<<"$bundled"
step "helm install airlock $chart --set createOperator=false (the CRDs and the Provider objects)"
"$helm" install airlock "$chart" "${chart_args[@]}" --kubeconfig "$KUBECONFIG" >"$work/helm.log" 2>&1 ||
  fail "helm install failed: $(cat "$work/helm.log")"

step "starting the operator (providers from $DEMO_PROVIDERS)"
"$airlock" --log=info run --providers-dir "$DEMO_PROVIDERS" --metrics-addr 127.0.0.1:0 \
  >"$work/operator.log" 2>&1 &
pids+=($!)

for dir in deploy/examples/*/; do
  example=$(basename "$dir")
  if [ ! -f "$DEMO_PROVIDERS/airlock_provider_$example.wasm" ]; then
    echo "skipping $dir: airlock_provider_$example.wasm is not built"
    continue
  fi
  if [ -x "$dir/demo-setup.sh" ]; then
    step "setting up $dir"
    "$dir/demo-setup.sh" || fail "$dir/demo-setup.sh failed"
  fi
  step "applying $dir"
  kubectl apply --server-side -f "$dir"
done
kubectl wait externalsecrets --all --all-namespaces --for=condition=Ready --timeout=90s >/dev/null ||
  fail "an ExternalSecret did not become Ready: $(kubectl get externalsecrets -A 2>&1)"

step "kubectl get providers,secretstores,externalsecrets -A"
kubectl get providers.airlock.dev,secretstores,externalsecrets -A

for namespace in production aws-demo; do
  kubectl get secret database-secret -n "$namespace" >/dev/null 2>&1 || continue
  step "the synced Secret $namespace/database-secret"
  kubectl get secret database-secret -n "$namespace" \
    -o go-template='{{range $k, $v := .data}}{{printf "%s: %s\n" $k ($v | base64decode)}}{{end}}'
  kubectl get secret database-secret -n "$namespace" -o jsonpath='{.metadata.labels}{"\n"}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}{"\n"}'
done

if $once; then
  exit 0
fi
echo
echo "The cluster stays up; in another shell:"
grep '^export ' "$work/cluster.log"
echo "Press Ctrl-C to stop."
wait "${pids[0]}"

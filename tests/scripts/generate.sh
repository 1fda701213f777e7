#!/usr/bin/env bash
# Regenerates crds/ from the Rust types (and the Helm chart's copy in
# deploy/charts/airlock/crds) and wit/deps from the wasmtime-wasi-http crate.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf crds && cargo run --quiet -p airlock -- crds --out crds
chart_crds=deploy/charts/airlock/crds
rm -rf "$chart_crds" && cp -r crds "$chart_crds"
manifest=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="wasmtime-wasi-http"))')
rm -rf wit/deps && cp -r "$(dirname "$manifest")/wit/deps" wit/deps
echo "regenerated crds/, $chart_crds and wit/deps"

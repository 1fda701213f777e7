#!/usr/bin/env bash
# Fails when a generated file is stale: the CRDs under crds/ (from the Rust types) and their
# copy in the Helm chart (deploy/charts/airlock/crds), and the
# WASI WIT files under wit/deps (from the wasmtime-wasi-http crate the host links).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cargo run --quiet -p airlock -- crds --out "$tmp/crds"
if ! diff -ru crds "$tmp/crds"; then
  echo "crds/ is stale: run 'make generate' and commit the result" >&2
  exit 1
fi
if ! diff -ru "$tmp/crds" deploy/charts/airlock/crds; then
  echo "deploy/charts/airlock/crds is stale: run 'make generate' and commit the result" >&2
  exit 1
fi

manifest=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="wasmtime-wasi-http"))')
upstream="$(dirname "$manifest")/wit/deps"
if ! diff -ru "$upstream" wit/deps; then
  echo "wit/deps differs from $upstream: run 'make generate' and commit the result" >&2
  exit 1
fi
echo "generated files are current"

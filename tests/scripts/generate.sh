#!/usr/bin/env bash
# Regenerates crds/ from the Rust types and wit/deps from the wasmtime-wasi-http crate.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf crds && cargo run --quiet -p airlock -- crds --out crds
manifest=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="wasmtime-wasi-http"))')
rm -rf wit/deps && cp -r "$(dirname "$manifest")/wit/deps" wit/deps
echo "regenerated crds/ and wit/deps"

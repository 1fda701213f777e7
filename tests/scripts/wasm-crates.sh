#!/usr/bin/env bash
# Prints the WebAssembly crates registered in the root Cargo.toml ([workspace.metadata.airlock]
# wasm), one per line. `--bundled`: only the providers the image and the chart bundle, as
# `<crate> <chart key>`. `--args`: all of them as cargo arguments (`-p <crate> …`).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
mode = sys.argv[1] if len(sys.argv) > 1 else ""
wasm = json.load(sys.stdin)["metadata"]["airlock"]["wasm"]
if mode == "--bundled":
    print("\n".join(w["crate"] + " " + w["chart"] for w in wasm if "chart" in w))
elif mode == "--args":
    print(" ".join("-p " + w["crate"] for w in wasm))
else:
    print("\n".join(w["crate"] for w in wasm))
' "$@"

# Airlock's task runner. CI runs `make test` (through .ci/run); developers use the same
# recipes. Heavy builds are cached under ~/.cache/airlock so a second run is fast.

SHELL := /bin/bash
export AIRLOCK_CACHE ?= $(HOME)/.cache/airlock
export CARGO_TARGET_DIR ?= $(AIRLOCK_CACHE)/target
export CARGO_TERM_COLOR ?= never
# CI builds once from scratch: incremental artifacts would only cost disk and time.
ifdef CI
export CARGO_INCREMENTAL ?= 0
endif

# The SDK and every WebAssembly crate registered in the root Cargo.toml (evaluated when used).
WASM_CRATES = -p airlock-provider-sdk -p airlock-tera-guest $(shell tests/scripts/wasm-crates.sh --args)

.PHONY: test setup lint generate check-generated k8s unit wasm bench fuzz demo cluster

## test: everything CI checks — toolchain, lint, generated files, all tests.
test: setup lint check-generated k8s
	cargo test --workspace --no-fail-fast
# The benchmarks still run end to end, with few samples and unoptimised (numbers: make bench).
	AIRLOCK_BENCH_CALLS=30 AIRLOCK_BENCH_RUNS=1 AIRLOCK_BENCH_ES=40 AIRLOCK_BENCH_NS=2 \
		cargo test -p airlock --benches

## setup: the Rust toolchain and wasm target pinned in rust-toolchain.toml, and the test
## servers and tools (moto, OpenBao, oras, helm, docker-registry, promtool, the Grafana
## dashboard schema check from npm) under $(AIRLOCK_CACHE).
setup:
	@command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)"; exit 1; }
	rustup show active-toolchain >/dev/null
	rustup target add wasm32-wasip2 >/dev/null
	@command -v go >/dev/null || { echo "go is required to build the test control plane"; exit 1; }
	tests/scripts/tools.sh

HELM := $(AIRLOCK_CACHE)/bin/helm
CHART := deploy/charts/airlock

## lint: rustfmt and clippy for the host and for the wasm guests; helm lint and template.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip2 $(WASM_CRATES) -- -D warnings
	$(HELM) lint --strict $(CHART)
	$(HELM) template airlock $(CHART) --namespace airlock-system >/dev/null

## generate: regenerate crds/ and wit/deps.
generate:
	tests/scripts/generate.sh

check-generated:
	tests/scripts/check-generated.sh

## k8s: build (once) kube-apiserver, kube-controller-manager, kubectl and etcd.
k8s:
	tests/k8s/build.sh

## wasm: build the provider components (target/.../wasm32-wasip2/wasm/*.wasm).
wasm:
	cargo build --target wasm32-wasip2 --profile wasm -p airlock-provider-fake

## bench: the runtime, OCI and sync-storm benchmarks (print tables).
bench:
	cargo bench -p airlock --bench runtime
	cargo bench -p airlock --bench registry
	cargo bench -p airlock --bench sync_storm
	cargo bench -p airlock --bench operator_scale
	cargo bench -p airlock --bench faults

## fuzz: the coverage-guided targets of host/src/fuzz.rs (cargo-fuzz on nightly), FUZZ_SECS
## seconds each on host/fuzz/corpus/<target>. `make test` runs the same targets for a few
## seconds each on stable (host/tests/fuzz.rs).
FUZZ_SECS ?= 300
FUZZ_TARGETS := manifest grant template host_imports
fuzz:
	rustup toolchain install nightly --profile minimal >/dev/null
	command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	cd host && for t in $(FUZZ_TARGETS); do \
		mkdir -p $(CARGO_TARGET_DIR)/fuzz-corpus/$$t && \
		cargo +nightly fuzz run $$t $(CARGO_TARGET_DIR)/fuzz-corpus/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECS) -timeout=10 \
			|| exit 1; done

## demo: local control plane, the chart's CRDs and Providers, the operator; prints the synced Secret.
demo: setup
	tests/scripts/demo.sh $(DEMO_ARGS)

## cluster: a local control plane for humans; prints the KUBECONFIG line.
cluster: k8s
	cargo run -p airlock-testenv --bin airlock-cluster

#!/usr/bin/env bash
# Build (once) the real Kubernetes control-plane binaries used by tests and the local demo:
#   kube-apiserver, kube-controller-manager, kubectl  v1.34.4   (k8s.io/kubernetes)
#   etcd, etcdctl                                     v3.6.16   (go.etcd.io/etcd)
# from the Go module proxy, through small wrapper modules generated into the cache.
#
# Cache layout (root: $AIRLOCK_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/airlock):
#   k8s-v1.34.4/bin/{kube-apiserver,kube-controller-manager,kubectl}
#   etcd-v3.6.16/bin/{etcd,etcdctl}
#   go/{mod,build}        Go module + build caches used by this script only
#   wrappers/{k8s,etcd}   generated wrapper modules (go.mod/go.sum)
#   logs/                 output of every go command of the last build
# A binary that is present is not rebuilt, so a warm run is a no-op that takes milliseconds.
#
# Progress goes to stderr. On success stdout carries exactly two lines for callers:
#   AIRLOCK_K8S_BIN=<dir>
#   AIRLOCK_ETCD_BIN=<dir>
# On failure the failing step, its command and its full output are printed and the exit
# status is non-zero.
#
# Options:
#   --prune-go-caches   after a successful build, delete go/{mod,build} (saves several GB;
#                       the next missing binary then pays the full cold build again)
#   --print-disk-usage  print the size of each cache part at the end
set -euo pipefail

K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16

PRUNE=0
DISK=0
for arg in "$@"; do
    case "$arg" in
        --prune-go-caches) PRUNE=1 ;;
        --print-disk-usage) DISK=1 ;;
        -h | --help)
            sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

CACHE_ROOT=${AIRLOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock}
K8S_DIR="$CACHE_ROOT/k8s-$K8S_VERSION"
ETCD_DIR="$CACHE_ROOT/etcd-$ETCD_VERSION"
K8S_BINS=(kube-apiserver kube-controller-manager kubectl)
ETCD_BINS=(etcd etcdctl)

START=$SECONDS
progress() { echo "[airlock k8s build +$((SECONDS - START))s] $*" >&2; }

missing() { # dir names... -> prints the names whose binary is absent
    local dir=$1 name
    shift
    for name in "$@"; do
        [[ -x "$dir/bin/$name" ]] || echo "$name"
    done
}

finish() {
    if [[ $PRUNE == 1 ]]; then
        progress "pruning the Go module and build caches"
        rm -rf "$CACHE_ROOT/go" "$CACHE_ROOT/wrappers"
    fi
    if [[ $DISK == 1 ]]; then
        progress "disk use:"
        du -sh "$K8S_DIR" "$ETCD_DIR" "$CACHE_ROOT/go/mod" "$CACHE_ROOT/go/build" \
            "$CACHE_ROOT/wrappers" 2>/dev/null | sed 's/^/    /' >&2 || true
        du -sh "$CACHE_ROOT" 2>/dev/null | sed 's/^/    total /' >&2 || true
    fi
    echo "AIRLOCK_K8S_BIN=$K8S_DIR/bin"
    echo "AIRLOCK_ETCD_BIN=$ETCD_DIR/bin"
}

# Fast path: everything cached, no lock, no go toolchain needed.
if [[ -z "$(missing "$K8S_DIR" "${K8S_BINS[@]}")$(missing "$ETCD_DIR" "${ETCD_BINS[@]}")" ]]; then
    finish
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: FAILED: the 'go' toolchain is not on PATH (needed once to build the" \
        "control-plane binaries into $CACHE_ROOT)" >&2
    exit 1
}

mkdir -p "$CACHE_ROOT/logs" "$K8S_DIR/bin" "$ETCD_DIR/bin"
# Serialise concurrent builds (parallel test binaries, the demo binary...).
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
    progress "another build holds $CACHE_ROOT/.build.lock; waiting for it"
    flock 9
fi

export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOCACHE="$CACHE_ROOT/go/build"
export GOFLAGS="-modcacherw -buildvcs=false"
export GOPATH="$CACHE_ROOT/go/path"
export CGO_ENABLED=0
unset GOBIN

# The go command of the step in flight runs in its own process group; kill it with us.
STEP_PID=
cleanup() {
    if [[ -n "$STEP_PID" ]]; then
        kill -TERM -- "-$STEP_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# run_step NAME DIR CMD... : run CMD in DIR with its output in a log; heartbeat every 30 s;
# on failure print the step, the command and the whole output, then exit 1.
run_step() {
    local name=$1 dir=$2
    shift 2
    local log
    log="$CACHE_ROOT/logs/$(tr -c 'A-Za-z0-9.-' '_' <<<"$name").log"
    local t0=$SECONDS
    progress "$name ..."
    (cd "$dir" && exec setsid "$@") >"$log" 2>&1 &
    STEP_PID=$!
    local last=$SECONDS
    while kill -0 "$STEP_PID" 2>/dev/null; do
        sleep 1
        if ((SECONDS - last >= 30)); then
            last=$SECONDS
            progress "$name: still running ($((SECONDS - t0))s)"
        fi
    done
    local rc=0
    wait "$STEP_PID" || rc=$?
    STEP_PID=
    if ((rc != 0)); then
        {
            echo "build.sh: FAILED at step: $name (exit status $rc, after $((SECONDS - t0))s)"
            echo "build.sh: command (in $dir): $*"
            echo "build.sh: ---- output ----"
            cat "$log"
            echo "build.sh: ---- end of output ($log) ----"
        } >&2
        exit 1
    fi
    progress "$name: done in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- etcd
build_etcd() {
    local todo
    todo=$(missing "$ETCD_DIR" "${ETCD_BINS[@]}")
    [[ -n "$todo" ]] || return 0
    local w="$CACHE_ROOT/wrappers/etcd"
    if [[ ! -f "$w/.complete" ]]; then
        rm -rf "$w"
        mkdir -p "$w"
        run_step "etcd: go mod init" "$w" go mod init airlock.local/etcd-wrapper
        run_step "etcd: go get $ETCD_VERSION" "$w" go get \
            "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION"
        touch "$w/.complete"
    fi
    local name pkg
    for name in $todo; do
        case "$name" in
            etcd) pkg=go.etcd.io/etcd/server/v3 ;;
            etcdctl) pkg=go.etcd.io/etcd/etcdctl/v3 ;;
        esac
        run_step "etcd: go build $name" "$w" go build -trimpath -ldflags "-s -w" \
            -o "$ETCD_DIR/bin/.$name.tmp" "$pkg"
        mv -f "$ETCD_DIR/bin/.$name.tmp" "$ETCD_DIR/bin/$name"
    done
}

# ---------------------------------------------------------------- kubernetes
# Writes the wrapper go.mod: require k8s.io/kubernetes plus one replace per staging module,
# generated from the v0.0.0 requirements of the published k8s.io/kubernetes go.mod.
generate_k8s_wrapper() {
    local w=$1 info gomod staging_version
    info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
    gomod=$(jq -r '.GoMod' <<<"$info")
    [[ -f "$gomod" ]] || {
        echo "build.sh: FAILED: 'go mod download -json k8s.io/kubernetes@$K8S_VERSION' gave no" \
            "go.mod path: $info" >&2
        return 1
    }
    staging_version="v0.${K8S_VERSION#v1.}"
    local -a staging
    mapfile -t staging < <(go mod edit -json "$gomod" |
        jq -r '.Require[] | select(.Version == "v0.0.0") | .Path' | sort -u)
    if ((${#staging[@]} < 20)); then
        echo "build.sh: FAILED: found only ${#staging[@]} v0.0.0 requirements in $gomod" >&2
        return 1
    fi
    {
        echo "// Generated by tests/k8s/build.sh from $gomod -- do not edit."
        echo "module airlock.local/k8s-wrapper"
        echo
        echo "go $(go mod edit -json "$gomod" | jq -r '.Go')"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        local m
        for m in "${staging[@]}"; do
            echo "	$m => $m $staging_version"
        done
        echo ")"
    } >"$w/go.mod"
    echo "generated $w/go.mod with ${#staging[@]} staging replaces at $staging_version"
}

k8s_ldflags() {
    # Version stamping like hack/lib/version.sh, so /version and `kubectl version` are right.
    local info commit date major minor
    info=$(go list -m -json "k8s.io/kubernetes@$K8S_VERSION")
    commit=$(jq -r '.Origin.Hash // empty' <<<"$info")
    date=$(jq -r '.Time // empty' <<<"$info")
    major=${K8S_VERSION#v}
    major=${major%%.*}
    minor=${K8S_VERSION#v*.}
    minor=${minor%%.*}
    local flags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean"
        # The proxy usually gives no commit; an empty one beats the "$Format:%H$" placeholder.
        flags+=" -X $pkg.gitCommit=$commit"
        [[ -z "$date" ]] || flags+=" -X $pkg.buildDate=$date"
    done
    echo "$flags"
}

build_k8s() {
    local todo name
    todo=$(missing "$K8S_DIR" "${K8S_BINS[@]}")
    [[ -n "$todo" ]] || return 0
    local w="$CACHE_ROOT/wrappers/k8s"
    if [[ ! -f "$w/.complete" ]]; then
        rm -rf "$w"
        mkdir -p "$w"
        run_step "k8s: generate wrapper go.mod" "$w" bash -c "$(declare -f generate_k8s_wrapper);
            K8S_VERSION=$K8S_VERSION generate_k8s_wrapper '$w'"
        local name
        for name in "${K8S_BINS[@]}"; do
            run_step "k8s: go get cmd/$name" "$w" go get "k8s.io/kubernetes/cmd/$name@$K8S_VERSION"
        done
        touch "$w/.complete"
    fi
    local ldflags
    ldflags=$(cd "$w" && k8s_ldflags)
    for name in $todo; do
        run_step "k8s: go build $name" "$w" go build -trimpath -ldflags "$ldflags" \
            -o "$K8S_DIR/bin/.$name.tmp" "k8s.io/kubernetes/cmd/$name"
        mv -f "$K8S_DIR/bin/.$name.tmp" "$K8S_DIR/bin/$name"
    done
}

progress "building missing control-plane binaries into $CACHE_ROOT (cold build: ~8-14 min on 2 cores)"
build_etcd
build_k8s
progress "all binaries built"
"$K8S_DIR/bin/kube-apiserver" --version >&2 || true
"$ETCD_DIR/bin/etcd" --version 2>&1 | head -1 >&2 || true
finish

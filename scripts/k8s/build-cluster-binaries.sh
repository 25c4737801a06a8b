#!/usr/bin/env bash
# Build (or reuse) the binaries of the single-node cluster tier (tests/cluster, marker `cluster`):
# kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl, containerd (+ shim, ctr), CoreDNS and a
# static `pause`, plus build-binaries.sh's kube-apiserver and helm (built here with the others, then checked by it).
#
# Same approach and cache as build-binaries.sh (docs/cluster-test-tier.md, docs/notes/coldbuild.md):
#   - Kubernetes components (kube-apiserver included): one throwaway Go module requiring k8s.io/kubernetes vX.Y.Z
#     with every staging module replaced by v0.Y.Z, ONE `go build -trimpath -gcflags=all=-dwarf=false -tags selinux,notest -o DIR/` of every
#     missing cmd/... (shared compiles once, links in parallel), CGO_ENABLED=0 (lib-build.sh);
#   - helm: `go install` (lib-build.sh);
#   - containerd: a plain `go install` of its three commands from the Go module proxy;
#   - CoreDNS: a small main (scripts/k8s/coredns/) importing only the plugins the cluster uses, so the build fetches
#     only those plugins' modules (the full CoreDNS pulls ~1.7 GB);
#   - pause: scripts/k8s/pause.c, `gcc -static`.
# Binaries go to ${MESHWORK_K8S_CACHE:-$HOME/.cache/meshwork/k8s}/<version>/, never into the repository.
# Idempotent: a cached binary answering its version command with the expected version is reused.
# The cache directory's lock (shared with build-binaries.sh) is held for the whole run. The Kubernetes build runs
# in the foreground; helm, containerd, CoreDNS and pause run one after another beside it, so their module
# downloads and single-threaded links fill the cores the big build leaves idle. All at nice ${MESHWORK_BUILD_NICE:-10}.
#
# Environment: as build-binaries.sh, plus
#   MESHWORK_CONTAINERD_VERSION  containerd version (default v2.4.2)
#   MESHWORK_COREDNS_VERSION     CoreDNS version (default v1.14.7)
# Prints the directory holding the binaries as its last line on stdout; progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="${MESHWORK_K8S_VERSION:-v1.35.4}"
CONTAINERD_VERSION="${MESHWORK_CONTAINERD_VERSION:-v2.4.2}"
COREDNS_VERSION="${MESHWORK_COREDNS_VERSION:-v1.14.7}"
CACHE_ROOT="${MESHWORK_K8S_CACHE:-$HOME/.cache/meshwork/k8s}"
NICE="${MESHWORK_BUILD_NICE:-10}"
OUT="$CACHE_ROOT/$K8S_VERSION"
K8S_COMPONENTS=(kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy kubectl)

log() { printf '[cluster-binaries] %s\n' "$*" >&2; }
die() {
    printf '[cluster-binaries] ERROR: %s\n' "$*" >&2
    exit 1
}
fmt_elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
HELM_VERSION="${MESHWORK_HELM_VERSION:-v3.22.0}" # keep in step with build-binaries.sh (it checks helm at the end)

[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "MESHWORK_K8S_VERSION must look like v1.35.4, got '$K8S_VERSION'"
K8S_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${K8S_MINOR}.${BASH_REMATCH[2]}"
[[ "$CONTAINERD_VERSION" =~ ^v2\.[0-9]+\.[0-9]+$ ]] || die "MESHWORK_CONTAINERD_VERSION must look like v2.4.2, got '$CONTAINERD_VERSION'"
[[ "$COREDNS_VERSION" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "MESHWORK_COREDNS_VERSION must look like v1.14.7, got '$COREDNS_VERSION'"

mkdir -p "$OUT"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi

WORK_DIRS=()
cleanup() { for d in "${WORK_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

k8s_ok() {
    local bin="$OUT/$1"
    [[ -x "$bin" ]] || return 1
    local out # captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail
    case "$1" in
        kubectl) out="$("$bin" version --client 2>/dev/null)" && grep -qx "Client Version: $K8S_VERSION" <<<"$out" ;;
        *) out="$("$bin" --version 2>/dev/null)" && grep -qx "Kubernetes $K8S_VERSION" <<<"$out" ;;
    esac
}
helm_ok() { [[ -x "$OUT/helm" ]] && "$OUT/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; }
containerd_ok() {
    [[ -x "$OUT/containerd" && -x "$OUT/containerd-shim-runc-v2" && -x "$OUT/ctr" ]] &&
        [[ "$("$OUT/containerd" --version 2>/dev/null)" == *" $CONTAINERD_VERSION "* ]] &&
        [[ "$("$OUT/ctr" --version 2>/dev/null)" == *" $CONTAINERD_VERSION" ]]
}
coredns_ok() {
    local out
    [[ -x "$OUT/coredns" ]] && cmp -s "$OUT/coredns-main.go" "$HERE/coredns/main.go" &&
        out="$("$OUT/coredns" -version 2>/dev/null)" && grep -qx "CoreDNS-${COREDNS_VERSION#v}" <<<"$out"
}
pause_ok() {
    [[ -x "$OUT/pause" ]] && cmp -s "$OUT/pause.c" "$HERE/pause.c" && "$OUT/pause" -v 2>/dev/null | grep -q '^meshwork pause'
}

need_go() {
    command -v go >/dev/null 2>&1 || die "'go' is not on PATH: the cluster tier builds its binaries from the Go \
module proxy; install Go >= 1.25 (https://go.dev/dl/) or provide cached binaries in $OUT"
}

# k8s_build (one `go build` for every component asked for) and helm_build.
# shellcheck source=lib-build.sh
source "$HERE/lib-build.sh"

build_containerd() {
    local start=$SECONDS
    log "building containerd $CONTAINERD_VERSION (containerd, containerd-shim-runc-v2, ctr; ~2 min)"
    GOBIN="$OUT" CGO_ENABLED=0 nice -n "$NICE" go install -trimpath -gcflags=all=-dwarf=false -tags "no_btrfs urfave_cli_no_docs" \
        -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" >&2 ||
        die "go install of containerd $CONTAINERD_VERSION failed (see above)"
    log "containerd built in $(fmt_elapsed $((SECONDS - start)))"
}

build_coredns() {
    local start=$SECONDS work
    work="$(mktemp -d "$OUT/.build-coredns.XXXXXX")"
    WORK_DIRS+=("$work")
    log "building CoreDNS $COREDNS_VERSION with only the plugins kubernetes, errors, health, ready, cache, bind"
    cp "$HERE/coredns/main.go" "$work/main.go"
    printf 'module meshwork.local/coredns-build\n\ngo 1.25\n' >"$work/go.mod"
    (cd "$work" && go get "github.com/coredns/coredns@$COREDNS_VERSION" >&2 && go mod tidy >&2) ||
        die "resolving github.com/coredns/coredns@$COREDNS_VERSION failed (see above)"
    (cd "$work" && CGO_ENABLED=0 nice -n "$NICE" go build -trimpath -gcflags=all=-dwarf=false \
        -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=meshwork" -o "$work/coredns" . >&2) ||
        die "go build of CoreDNS $COREDNS_VERSION failed (see above)"
    mv -f "$work/coredns" "$OUT/coredns"
    cp -f "$HERE/coredns/main.go" "$OUT/coredns-main.go"
    log "CoreDNS built in $(fmt_elapsed $((SECONDS - start)))"
}

build_pause() {
    command -v gcc >/dev/null 2>&1 || die "'gcc' is not on PATH: the pod sandbox image needs a static pause \
(scripts/k8s/pause.c); install gcc and libc6-dev (scripts/k8s/install-cluster-packages.sh does)"
    nice -n "$NICE" gcc -static -Os -s -o "$OUT/.pause.tmp" "$HERE/pause.c" || die "gcc -static of pause.c failed"
    mv -f "$OUT/.pause.tmp" "$OUT/pause"
    cp -f "$HERE/pause.c" "$OUT/pause.c"
    log "pause built"
}

total_start=$SECONDS
missing_k8s=()
for c in "${K8S_COMPONENTS[@]}"; do k8s_ok "$c" || missing_k8s+=("$c"); done
# Beside the Kubernetes build: helm, containerd, pause, CoreDNS, one after another (each verified).
side() {
    WORK_DIRS=()
    trap cleanup EXIT
    if ! helm_ok; then need_go && helm_build; fi
    helm_ok || die "$OUT/helm version --short does not start with $HELM_VERSION (got: $("$OUT/helm" version --short 2>&1 || true))"
    if ! containerd_ok; then need_go && build_containerd; fi
    containerd_ok || die "$OUT/containerd or ctr does not report $CONTAINERD_VERSION (got: $("$OUT/containerd" --version 2>&1 || true))"
    pause_ok || build_pause
    pause_ok || die "$OUT/pause -v does not answer 'meshwork pause'"
    if ! coredns_ok; then need_go && build_coredns; fi
    coredns_ok || die "$OUT/coredns -version does not print CoreDNS-${COREDNS_VERSION#v} (got: $("$OUT/coredns" -version 2>&1 || true))"
}
side &
side_pid=$!
k8s_rc=0
if [[ ${#missing_k8s[@]} -gt 0 ]]; then
    (
        WORK_DIRS=()
        trap cleanup EXIT
        need_go && k8s_build "${missing_k8s[@]}"
    ) || k8s_rc=$?
fi
side_rc=0
wait "$side_pid" || side_rc=$?
[[ $k8s_rc -eq 0 ]] || die "the Kubernetes components' build failed (see above)"
[[ $side_rc -eq 0 ]] || die "helm, containerd, pause or CoreDNS failed (see above)"
for c in "${K8S_COMPONENTS[@]}"; do k8s_ok "$c" || die "$OUT/$c does not report $K8S_VERSION"; done

# build-binaries.sh (the k8s tier's script, same lock) now finds kube-apiserver and helm and checks them.
exec 9>&-
"$HERE/build-binaries.sh" >/dev/null

log "kubelet $("$OUT/kubelet" --version | cut -d' ' -f2), containerd $CONTAINERD_VERSION, CoreDNS $COREDNS_VERSION, pause"
log "ready in $(fmt_elapsed $((SECONDS - total_start))): $OUT"
echo "$OUT"
